//! Prometheus metrics and the one-line-per-request access log.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as PromRegistry;

use crate::error::ApiError;
use crate::Registry;

/// Which endpoint answered, put on the response by the handler, read by [`observe`].
#[derive(Debug, Clone, Copy)]
pub struct RouteLabel(pub &'static str);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

pub struct Metrics {
    registry: PromRegistry,
    requests: Family<RequestLabels, Counter>,
    received: Counter,
    sent: Counter,
    uploads: Gauge,
    blobs: Gauge,
    manifests: Gauge,
    repositories: Gauge,
    gc: GcMetrics,
    /// The catalog's counts since start-up, by what happened (set at scrape time).
    catalog: Family<CatalogLabels, Gauge>,
    /// The pull-through cache's answers by kind (manifest, blob) and result.
    proxy: Family<ProxyLabels, Counter>,
    proxy_evicted: Counter,
    /// Replication: images by rule and result; a rule's last success.
    replication: Family<RuleLabels, Counter>,
    replication_success: Family<RuleOnly, Gauge>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleOnly {
    rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CatalogLabels {
    event: &'static str,
}

/// What the garbage collector did, run after run.
#[derive(Default)]
struct GcMetrics {
    runs: Counter,
    tags: Counter,
    manifests: Counter,
    blobs: Counter,
    bytes: Counter,
    duration: Gauge<f64, std::sync::atomic::AtomicU64>,
    last_success: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = PromRegistry::with_prefix("berth");
        let requests = Family::<RequestLabels, Counter>::default();
        let (received, sent) = (Counter::default(), Counter::default());
        let (uploads, blobs, manifests, repositories) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_received_bytes",
            "Bytes of request bodies received",
            received.clone(),
        );
        registry.register(
            "http_sent_bytes",
            "Bytes of blob and manifest bodies sent",
            sent.clone(),
        );
        registry.register("upload_sessions", "Open upload sessions", uploads.clone());
        registry.register("blobs", "Blobs stored", blobs.clone());
        registry.register(
            "manifests",
            "Manifests stored (per repository)",
            manifests.clone(),
        );
        registry.register("repositories", "Repositories", repositories.clone());
        let catalog = Family::<CatalogLabels, Gauge>::default();
        registry.register(
            "catalog_events",
            "What the catalog did since start-up: layers_analyzed, images_scanned, scans_failed, queue_dropped (left for the backfill), rematched",
            catalog.clone(),
        );
        let proxy = Family::<ProxyLabels, Counter>::default();
        registry.register(
            "proxy_requests",
            "Pull-through cache lookups: kind manifest or blob; result hit, miss (fetched upstream for a client), prefetch (a blob of a manifest just fetched, fetched before its client asked), revalidated (a tag checked upstream, unchanged or already here), stale (served while the upstream is unreachable)",
            proxy.clone(),
        );
        let proxy_evicted = Counter::default();
        registry.register(
            "proxy_evicted_bytes",
            "Bytes of cached blobs evicted to stay under a proxy's max_size",
            proxy_evicted.clone(),
        );
        let replication = Family::<RuleLabels, Counter>::default();
        registry.register(
            "replication_images",
            "Images replication looked at, by rule and result: copied, skipped (the target had it), failed (each try)",
            replication.clone(),
        );
        let replication_success = Family::<RuleOnly, Gauge>::default();
        registry.register(
            "replication_last_success_timestamp_seconds",
            "When a rule last copied an image, or found it there, with no error (unix seconds)",
            replication_success.clone(),
        );
        let gc = GcMetrics::default();
        registry.register("gc_runs", "Garbage collections finished", gc.runs.clone());
        registry.register(
            "gc_tags_expired",
            "Tags deleted by retention rules",
            gc.tags.clone(),
        );
        registry.register(
            "gc_manifests_removed",
            "Manifests removed by the garbage collector",
            gc.manifests.clone(),
        );
        registry.register(
            "gc_blobs_removed",
            "Blobs (rows and files) removed by the garbage collector",
            gc.blobs.clone(),
        );
        registry.register(
            "gc_freed_bytes",
            "Bytes of blob files removed by the garbage collector",
            gc.bytes.clone(),
        );
        registry.register(
            "gc_last_duration_seconds",
            "How long the last garbage collection took",
            gc.duration.clone(),
        );
        registry.register(
            "gc_last_success_timestamp_seconds",
            "When the last garbage collection finished (unix seconds)",
            gc.last_success.clone(),
        );
        Metrics {
            gc,
            catalog,
            proxy,
            proxy_evicted,
            replication,
            replication_success,
            registry,
            requests,
            received,
            sent,
            uploads,
            blobs,
            manifests,
            repositories,
        }
    }

    pub fn bytes_received(&self, n: u64) {
        self.received.inc_by(n);
    }

    /// A finished (not dry) collection: its report and the tags retention deleted
    /// before it.
    pub fn gc_run(&self, r: &berth_store::gc::RunReport, tags_expired: usize) {
        self.gc.runs.inc();
        self.gc.tags.inc_by(tags_expired as u64);
        self.gc.manifests.inc_by(r.manifests.len() as u64);
        self.gc.blobs.inc_by(r.blobs.len() as u64);
        self.gc.bytes.inc_by(r.bytes_freed());
        self.gc.duration.set(r.duration.as_secs_f64());
        self.gc.last_success.set(berth_store::unix_now());
    }

    pub(crate) fn proxy(&self, kind: &'static str, result: &'static str) {
        self.proxy
            .get_or_create(&ProxyLabels { kind, result })
            .inc();
    }

    pub(crate) fn proxy_evicted(&self, bytes: u64) {
        self.proxy_evicted.inc_by(bytes);
    }

    pub(crate) fn replication(&self, rule: &str, result: &'static str) {
        self.replication
            .get_or_create(&RuleLabels {
                rule: rule.to_string(),
                result,
            })
            .inc();
    }

    pub(crate) fn replication_success(&self, rule: &str, at: i64) {
        self.replication_success
            .get_or_create(&RuleOnly {
                rule: rule.to_string(),
            })
            .set(at);
    }

    pub fn bytes_sent(&self, n: u64) {
        self.sent.inc_by(n);
    }

    fn request(&self, route: &str, method: &Method, status: StatusCode) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method_label(method).to_string(),
                status: status.as_u16(),
            })
            .inc();
    }
}

/// A request's method as a label: one the API serves, or `other`. A client may send
/// any token as a method (answered 405); a series per made-up name would grow the
/// counters, and `/metrics`, without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `GET /metrics`: content gauges are read from the metadata store at scrape time, so
/// they are right even when another process changed the store.
pub(crate) async fn render(State(reg): State<Arc<Registry>>) -> Response {
    let m = &reg.metrics;
    match reg.meta.counts() {
        Ok(c) => {
            m.uploads.set(c.uploads as i64);
            m.blobs.set(c.blobs as i64);
            m.manifests.set(c.manifests as i64);
            m.repositories.set(c.repositories as i64);
        }
        Err(e) => return ApiError::internal(e).into_response(),
    }
    if let Some(c) = &reg.catalog {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &c.stats;
        for (event, n) in [
            ("layers_analyzed", &s.layers_analyzed),
            ("images_scanned", &s.images_scanned),
            ("scans_failed", &s.scans_failed),
            ("queue_dropped", &s.queue_dropped),
            ("rematched", &s.rematched),
        ] {
            m.catalog
                .get_or_create(&CatalogLabels { event })
                .set(n.load(Relaxed) as i64);
        }
    }
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &m.registry) {
        return ApiError::internal(e).into_response();
    }
    let mut resp = (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response();
    resp.extensions_mut().insert(RouteLabel("metrics"));
    resp
}

/// Counts every request and writes one access-log line for it.
pub(crate) async fn observe(
    State(reg): State<Arc<Registry>>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut resp = next.run(req).await;
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map_or("other", |r| r.0);
    let status = resp.status();
    reg.metrics.request(route, &method, status);
    tracing::info!(
        target: "berth::access",
        %method,
        path,
        status = status.as_u16(),
        route,
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    resp.headers_mut().insert(
        crate::routes::API_VERSION.0,
        axum::http::HeaderValue::from_static(crate::routes::API_VERSION.1),
    );
    resp
}
