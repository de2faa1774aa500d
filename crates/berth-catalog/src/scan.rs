//! Scanning one manifest of a repository: each layer not analyzed yet (at the current
//! [`ANALYZER_VERSION`]) is streamed once from its blob file through
//! `berth_inventory::analyze_layer`; the image's layers are then squashed with the
//! config's history into its inventory, which is stored and matched. An index's
//! children each get their own inventory (one per platform).
//!
//! Everything here is synchronous and runs on a blocking thread (the worker's
//! `spawn_blocking`, or an admin command). Failures are values: the reason is
//! recorded (layer, image, scan state) and nothing here panics the server; a panic
//! inside the analyzer is caught and recorded as the layer's failure.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use berth_image::media_type::{is_non_distributable, DOCKER_CONFIG, OCI_CONFIG};
use berth_image::{Digest, Manifest, ManifestKind};
use berth_inventory::model::ANALYZER_VERSION;
use berth_inventory::{HistoryEntry, ImageHistory, Inventory, LayerArtifacts, LayerRef};
use serde::Deserialize;

use crate::store::{Child, ImageFacts, ScanRecord, ScanStatus};
use crate::{unix_now, Catalog, Result};

/// Largest image config read (configs are small; a huge one is not an image's).
const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// The parts of an image config the catalog reads.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConfigDoc {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<RunConfig>,
    #[serde(default)]
    pub rootfs: Option<RootFs>,
    #[serde(default)]
    pub history: Option<Vec<HistoryEntry>>,
}

impl ConfigDoc {
    /// What berth-inventory's squash takes to rebuild the Containerfile: the history
    /// and, per layer, its compressed size and diff_id.
    fn image_history(&self, manifest: &Manifest) -> ImageHistory {
        let diff_ids = self
            .rootfs
            .as_ref()
            .and_then(|r| r.diff_ids.as_deref())
            .unwrap_or(&[]);
        ImageHistory {
            history: self.history.clone().unwrap_or_default(),
            layers: manifest
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| LayerRef {
                    size: l.size,
                    diff_id: diff_ids.get(i).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunConfig {
    #[serde(default, rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub diff_ids: Option<Vec<String>>,
}

/// How a scan of a manifest went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// Inventoried now (or an index whose children all are).
    Done,
    /// Inventoried before at the current analyzer version: nothing read.
    Current,
    /// Not an image (signature, SBOM, artifact).
    Skipped,
    /// The manifest is no longer in the repository.
    Gone,
    /// Recorded as failed, with this reason.
    Failed(String),
}

/// Indexes nested under the scanned one at most (an index of indexes of images is as
/// deep as registries go).
const MAX_INDEX_DEPTH: usize = 4;
/// An image with more layers is not inventoried (docker and podman stop near 127): each
/// layer's artifacts are held, and squashed, once per place the manifest names it.
const MAX_IMAGE_LAYERS: usize = 512;
/// Packages held across an image's layers at most: a manifest naming one layer of
/// 100,000 packages (the per-layer bound) hundreds of times held them all, cloned.
const MAX_IMAGE_PACKAGES: usize = 500_000;
/// Manifests scanned under one index at most (a multi-platform image has a few dozen).
const MAX_TREE: usize = 1024;

/// Where a scan is in an index's tree of manifests.
#[derive(Default)]
struct Tree {
    depth: usize,
    seen: std::collections::HashSet<Digest>,
}

impl Catalog {
    /// Scans `repo`'s manifest `digest`. With `force`, an image already inventoried is
    /// squashed and matched again (its layers are still read only when their
    /// analysis is missing, failed-and-forgotten or of an older analyzer).
    pub fn scan_manifest(&self, repo: &str, digest: &Digest, force: bool) -> Result<Scanned> {
        self.scan_within(repo, digest, force, &mut Tree::default())
    }

    /// [`Catalog::scan_manifest`] of a manifest met at depth `tree.depth` under the
    /// index scanned first: each manifest once per scan, indexes at most
    /// [`MAX_INDEX_DEPTH`] deep and [`MAX_TREE`] manifests in all. A push may nest
    /// indexes without bound, or name one child thousands of times: recursing into
    /// each overflowed the scanning thread's stack (which aborts the registry, again at
    /// every start, whose backfill queued the index again) or kept the worker for hours.
    fn scan_within(
        &self,
        repo: &str,
        digest: &Digest,
        force: bool,
        tree: &mut Tree,
    ) -> Result<Scanned> {
        let Some(stored) = self.meta.manifest_by_digest(repo, digest)? else {
            return Ok(Scanned::Gone);
        };
        let d = digest.to_string();
        let manifest = match Manifest::parse(Some(&stored.media_type), &stored.content) {
            Ok(m) => m,
            Err(e) => {
                let why = format!("manifest does not parse: {e}");
                self.record(
                    repo,
                    &d,
                    &stored.media_type,
                    Err(&why),
                    Default::default(),
                    vec![],
                )?;
                return Ok(Scanned::Failed(why));
            }
        };
        let annotations = manifest.annotations.clone().unwrap_or_default();
        match manifest.kind {
            ManifestKind::Index => {
                let mut children: Vec<Child> = Vec::new();
                let mut failures = Vec::new();
                let mut any_done = false;
                let too_deep = tree.depth >= MAX_INDEX_DEPTH;
                if too_deep {
                    failures.push(format!("indexes nested more than {MAX_INDEX_DEPTH} deep"));
                }
                let look_at = if too_deep {
                    &[][..]
                } else {
                    &manifest.manifests[..]
                };
                tree.depth += 1;
                for child in look_at {
                    let platform = child.platform.as_ref().map(|p| p.to_string());
                    // Attestations (buildkit's unknown/unknown) are not images.
                    if platform.as_deref() == Some("unknown/unknown") {
                        continue;
                    }
                    let digest = child.digest.to_string();
                    if !children.iter().any(|c| c.digest == digest) {
                        children.push(Child { digest, platform });
                    }
                    if !tree.seen.insert(child.digest.clone()) {
                        continue; // scanned once already in this scan
                    }
                    if tree.seen.len() > MAX_TREE {
                        failures.push(format!("more than {MAX_TREE} manifests under one index"));
                        break;
                    }
                    match self.scan_within(repo, &child.digest, force, tree)? {
                        Scanned::Failed(why) => failures.push(format!("{}: {why}", child.digest)),
                        Scanned::Done => any_done = true,
                        _ => {}
                    }
                }
                tree.depth -= 1;
                let result = if failures.is_empty() {
                    Ok(())
                } else {
                    Err(failures.join("; "))
                };
                self.record(
                    repo,
                    &d,
                    &stored.media_type,
                    result.as_ref().map(|_| ()).map_err(String::as_str),
                    annotations,
                    children,
                )?;
                Ok(match result {
                    Err(why) => Scanned::Failed(why),
                    Ok(()) if any_done => Scanned::Done,
                    Ok(()) => Scanned::Current,
                })
            }
            ManifestKind::Image => {
                // A sigstore attachment has an image config too (cosign and
                // containers/image write one), but its layers are signature payloads.
                let is_image =
                    manifest.config.as_ref().is_some_and(|c| {
                        c.media_type == OCI_CONFIG || c.media_type == DOCKER_CONFIG
                    }) && !self.is_sigstore_attachment(&manifest);
                if !is_image {
                    self.record_status(
                        repo,
                        &d,
                        &stored.media_type,
                        ScanStatus::Skipped,
                        None,
                        annotations,
                    )?;
                    // A sigstore signature (`sha256-<hex>.sig`) signs an image of this
                    // repository: its row says whether it is signed. Repositories of
                    // artifacts alone stay out of search.
                    if self.db.has_search_row(repo)? {
                        self.refresh_search(repo)?;
                    }
                    return Ok(Scanned::Skipped);
                }
                if !force {
                    if let Some(inv) = self.db.inventory(&d)? {
                        if inv.analyzer_version == ANALYZER_VERSION && inv.result.is_ok() {
                            self.record(repo, &d, &stored.media_type, Ok(()), annotations, vec![])?;
                            return Ok(Scanned::Current);
                        }
                    }
                }
                let outcome = self.scan_image(&d, &manifest, &annotations);
                let result = outcome.as_ref().map(|_| ()).map_err(String::as_str);
                self.record(
                    repo,
                    &d,
                    &stored.media_type,
                    result,
                    annotations.clone(),
                    vec![],
                )?;
                Ok(match outcome {
                    Ok(()) => Scanned::Done,
                    Err(why) => Scanned::Failed(why),
                })
            }
        }
    }

    /// Inventories one image manifest and matches it; `Err` is the reason it failed
    /// (also stored as the inventory's error).
    fn scan_image(
        &self,
        digest: &str,
        manifest: &Manifest,
        annotations: &BTreeMap<String, String>,
    ) -> std::result::Result<(), String> {
        let mut facts = ImageFacts::default();
        let outcome = self.inventory_of(manifest, annotations, &mut facts);
        let stored = match &outcome {
            Ok(inv) => self
                .db
                .put_inventory(digest, ANALYZER_VERSION, Ok(inv), &facts),
            Err(why) => self
                .db
                .put_inventory(digest, ANALYZER_VERSION, Err(why), &facts),
        };
        stored.map_err(|e| format!("storing the inventory: {e}"))?;
        let inv = outcome?;
        self.stats.images_scanned.fetch_add(1, Ordering::Relaxed);
        let image = crate::store::Matchable {
            os: inv.os,
            packages: inv.packages,
            unreadable: inv.unreadable,
        };
        self.match_images(&[(digest.to_string(), image)])
            .map_err(|e| format!("matching vulnerabilities: {e}"))?;
        Ok(())
    }

    fn inventory_of(
        &self,
        manifest: &Manifest,
        annotations: &BTreeMap<String, String>,
        facts: &mut ImageFacts,
    ) -> std::result::Result<Inventory, String> {
        let config_desc = manifest
            .config
            .as_ref()
            .ok_or("the manifest has no config")?;
        let config = self
            .read_config(&config_desc.digest)
            .map_err(|e| format!("config {}: {e}", config_desc.digest))?;
        facts.config_digest = Some(config_desc.digest.to_string());
        facts.created = config.created.clone();
        facts.os = config.os.clone();
        facts.architecture = config.architecture.clone();
        facts.platform = match (&config.os, &config.architecture) {
            (Some(os), Some(arch)) => Some(match &config.variant {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            }),
            _ => None,
        };
        facts.size = config_desc.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        facts.labels = config
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        facts.diff_ids = config
            .rootfs
            .as_ref()
            .and_then(|r| r.diff_ids.clone())
            .unwrap_or_default();

        if manifest.layers.len() > MAX_IMAGE_LAYERS {
            return Err(format!(
                "{} layers, over the {MAX_IMAGE_LAYERS} an image is inventoried with",
                manifest.layers.len()
            ));
        }
        let mut layers = Vec::with_capacity(manifest.layers.len());
        let mut packages = 0;
        for (i, l) in manifest.layers.iter().enumerate() {
            if is_non_distributable(&l.media_type) {
                // Foreign layers are not stored here; they hold nothing we can read.
                layers.push(LayerArtifacts {
                    analyzer_version: ANALYZER_VERSION,
                    ..Default::default()
                });
                continue;
            }
            let arts = self
                .layer_artifacts(&l.digest, &l.media_type)
                .map_err(|why| format!("layer {i} ({}): {why}", l.digest))?;
            packages += arts.databases.iter().map(|(_, p)| p.len()).sum::<usize>();
            if packages > MAX_IMAGE_PACKAGES {
                return Err(format!(
                    "over the {MAX_IMAGE_PACKAGES} packages read across an image's layers"
                ));
            }
            layers.push(arts);
        }
        let history = config.image_history(manifest);
        let inventory = berth_inventory::squash(&layers, Some(&history));
        facts.base_image = self
            .base_image(annotations, &facts.diff_ids)
            .map_err(|e| format!("finding the base image: {e}"))?;
        Ok(inventory)
    }

    /// A manifest whose layers are all sigstore payloads: an image's signatures, not an
    /// image (nothing in it to inventory). The media type is the pusher's word: an
    /// image whose tar layers were so labelled was skipped, out of every scan and
    /// vulnerability match. So each layer must read as a cosign payload (small JSON
    /// of that type), which no tar archive does; anything else is scanned, and fails
    /// visibly on its layers' media type.
    fn is_sigstore_attachment(&self, m: &Manifest) -> bool {
        if m.layers.is_empty() || m.layers.len() > MAX_ATTACHMENT_LAYERS {
            return false;
        }
        m.layers.iter().all(|l| {
            l.media_type == SIGSTORE_PAYLOAD
                && l.size <= MAX_PAYLOAD_BYTES
                && self.reads_as_cosign_payload(&l.digest)
        })
    }

    fn reads_as_cosign_payload(&self, digest: &Digest) -> bool {
        let Ok(Some((file, _))) = self.open_blob(digest) else {
            return false;
        };
        let mut bytes = Vec::new();
        if file
            .take(MAX_PAYLOAD_BYTES + 1)
            .read_to_end(&mut bytes)
            .is_err()
            || bytes.len() as u64 > MAX_PAYLOAD_BYTES
        {
            return false;
        }
        serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|v| {
            v["critical"]["type"] == "cosign container image signature"
                && v["critical"]["image"]["docker-manifest-digest"].is_string()
        })
    }

    fn read_config(&self, digest: &Digest) -> std::result::Result<ConfigDoc, String> {
        let (file, len) = self
            .open_blob(digest)
            .map_err(|e| e.to_string())?
            .ok_or("the blob is not stored")?;
        if len > MAX_CONFIG_BYTES {
            return Err(format!("{len} bytes, more than an image config may be"));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(MAX_CONFIG_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("not an image config: {e}"))
    }

    /// A layer's artifacts: stored ones at the current analyzer version, else the
    /// blob read once now (and stored, failure included).
    fn layer_artifacts(
        &self,
        digest: &Digest,
        media_type: &str,
    ) -> std::result::Result<LayerArtifacts, String> {
        let d = digest.to_string();
        // The manifest's claim fails this image only: the analysis is kept under the
        // digest for every image that has the layer, so a push naming a public base
        // layer with a made-up media type first recorded a failure for all of them.
        if !berth_inventory::is_layer_media_type(media_type) {
            return Err(format!(
                "layer media type {media_type:?} is not a tar layer's"
            ));
        }
        if let Some(rec) = self.db.layer(&d).map_err(|e| e.to_string())? {
            if rec.analyzer_version == ANALYZER_VERSION {
                return rec.result;
            }
        }
        let (file, _) = self
            .open_blob(digest)
            .map_err(|e| e.to_string())?
            .ok_or("the blob is not stored")?;
        let reader = BufReader::with_capacity(1 << 20, file);
        self.stats.layers_analyzed.fetch_add(1, Ordering::Relaxed);
        let result = catch_unwind(AssertUnwindSafe(|| {
            berth_inventory::analyze_layer(reader, media_type)
        }));
        let result = match result {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(e.to_string()),
            Err(panic) => Err(format!("the analyzer panicked: {}", panic_message(&panic))),
        };
        if let Err(why) = &result {
            tracing::warn!(target: "berth::catalog", layer = %d, error = %why, "layer analysis failed");
        }
        self.db
            .put_layer(
                &d,
                ANALYZER_VERSION,
                result.as_ref().map_err(String::as_str),
            )
            .map_err(|e| e.to_string())?;
        result
    }

    /// The base image: the `org.opencontainers.image.base.name` annotation (with
    /// `base.digest` when given), else the stored image whose layers are the longest
    /// strict prefix of this one's, as `REPOSITORY@DIGEST`.
    fn base_image(
        &self,
        annotations: &BTreeMap<String, String>,
        diff_ids: &[String],
    ) -> Result<Option<String>> {
        if let Some(name) = annotations.get("org.opencontainers.image.base.name") {
            return Ok(Some(
                match annotations.get("org.opencontainers.image.base.digest") {
                    Some(d) if !name.contains('@') => format!("{name}@{d}"),
                    _ => name.clone(),
                },
            ));
        }
        let Some(bottom) = diff_ids.first() else {
            return Ok(None);
        };
        let candidates = self.db.diff_ids_from(bottom)?;
        let best = berth_inventory::base_image(
            diff_ids,
            candidates.iter().map(|(d, ids)| (d, ids.as_slice())),
        );
        let Some(digest) = best else {
            return Ok(None);
        };
        Ok(self
            .db
            .repositories_of(digest)?
            .into_iter()
            .next()
            .map(|repo| format!("{repo}@{digest}")))
    }

    fn record(
        &self,
        repo: &str,
        digest: &str,
        media_type: &str,
        result: std::result::Result<(), &str>,
        annotations: BTreeMap<String, String>,
        children: Vec<Child>,
    ) -> Result<()> {
        let (status, error) = match result {
            Ok(()) => (ScanStatus::Ok, None),
            Err(e) => (ScanStatus::Failed, Some(e.to_string())),
        };
        self.db.put_scan(&ScanRecord {
            repository: repo.to_string(),
            manifest_digest: digest.to_string(),
            media_type: media_type.to_string(),
            status,
            error,
            annotations,
            children,
            updated_at: unix_now(),
        })?;
        if status == ScanStatus::Failed {
            self.stats.scans_failed.fetch_add(1, Ordering::Relaxed);
        }
        self.refresh_search(repo)
    }

    fn record_status(
        &self,
        repo: &str,
        digest: &str,
        media_type: &str,
        status: ScanStatus,
        error: Option<String>,
        annotations: BTreeMap<String, String>,
    ) -> Result<()> {
        self.db.put_scan(&ScanRecord {
            repository: repo.to_string(),
            manifest_digest: digest.to_string(),
            media_type: media_type.to_string(),
            status,
            error,
            annotations,
            children: vec![],
            updated_at: unix_now(),
        })
    }

    /// Records that a scan of `repo`'s `digest` died (a panic outside the analyzer,
    /// a lost thread): the reason is kept and `berth registry scan` retries it.
    pub fn record_failure(&self, repo: &str, digest: &Digest, why: &str) -> Result<()> {
        let media_type = self
            .meta
            .manifest_by_digest(repo, digest)?
            .map(|m| m.media_type)
            .unwrap_or_default();
        self.stats.scans_failed.fetch_add(1, Ordering::Relaxed);
        self.record_status(
            repo,
            &digest.to_string(),
            &media_type,
            ScanStatus::Failed,
            Some(why.to_string()),
            Default::default(),
        )
    }

    /// Rescans: every failed manifest (and the failed layer analyses, read again), or
    /// with `all` every manifest of every repository (or of `only`), inventoried again
    /// from stored layer analyses. Returns `(scanned, failed)`.
    pub fn rescan(
        &self,
        all: bool,
        only: Option<(&str, Option<&Digest>)>,
    ) -> Result<(usize, usize)> {
        self.db.forget_failed_layers()?;
        let mut jobs: Vec<(String, Digest)> = Vec::new();
        match only {
            Some((repo, Some(d))) => jobs.push((repo.to_string(), d.clone())),
            Some((repo, None)) => self.each_manifest(|e| {
                if e.repository == repo {
                    jobs.push((e.repository.clone(), e.digest.clone()));
                }
            })?,
            None if all => {
                self.each_manifest(|e| jobs.push((e.repository.clone(), e.digest.clone())))?
            }
            None => {
                for (repo, d) in self.db.failed_scans()? {
                    if let Ok(d) = d.parse() {
                        jobs.push((repo, d));
                    }
                }
            }
        }
        let (mut scanned, mut failed) = (0, 0);
        for (repo, d) in jobs {
            match self.scan_manifest(&repo, &d, true)? {
                Scanned::Failed(_) => failed += 1,
                Scanned::Gone => {}
                _ => scanned += 1,
            }
        }
        Ok((scanned, failed))
    }

    /// After a delete in `repo` (of manifest `digest`, or of a tag): forgets the scan
    /// of a manifest the repository no longer holds, and rebuilds its search row (or
    /// removes it when nothing is left).
    pub fn forget(&self, repo: &str, digest: Option<&Digest>) -> Result<()> {
        if let Some(d) = digest {
            if self.meta.manifest_by_digest(repo, d)?.is_none() {
                self.db.delete_scan(repo, &d.to_string())?;
            }
        }
        if self.meta.repository_exists(repo)? && !self.db.scans_of(repo)?.is_empty() {
            self.refresh_search(repo)
        } else {
            self.db.delete_search_row(repo)
        }
    }

    /// After a signature of `repo` was stored. A row that already says signed stays
    /// as it is (a signature only ever adds): a signing loop over a repository of many
    /// tags no longer rebuilds its row, which reads every indexed image, once per
    /// signature. Otherwise the row is rebuilt, as after a delete.
    pub(crate) fn signed(&self, repo: &str) -> Result<()> {
        if self.db.search_row_signed(repo)? {
            return Ok(());
        }
        self.forget(repo, None)
    }

    /// Calls `f` on every stored manifest, page by page in index order.
    pub(crate) fn each_manifest(
        &self,
        mut f: impl FnMut(&berth_store::ManifestEntry),
    ) -> Result<()> {
        let mut after: Option<(String, String)> = None;
        loop {
            let page = self
                .meta
                .manifests_after(after.as_ref().map(|(r, d)| (r.as_str(), d.as_str())), 500)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some((last.repository.clone(), last.digest.to_string()));
            page.iter().for_each(&mut f);
        }
    }
}

/// The media type of a sigstore signature layer (berth-signature's
/// `sigstore::PAYLOAD_MEDIA_TYPE`; the catalog does not depend on that crate).
const SIGSTORE_PAYLOAD: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// Layers a sigstore attachment has at most (cosign adds one per signature), and a
/// payload's size at most (they are a few hundred bytes): the registry's bounds.
const MAX_ATTACHMENT_LAYERS: usize = 128;
const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// `berth registry scan [--all | REPO[:TAG]]` and `POST /api/v1/catalog/scan`: the
/// failed manifests again (their failed layers read again), or everything (`all`),
/// or one repository (`repo`), or one tag of it. Answers `{scanned, failed,
/// failures: [{repository, digest, error}]}`; `Err` is a request that names nothing
/// stored.
pub fn scan_request(
    catalog: &Catalog,
    meta: &dyn berth_store::MetaStore,
    all: bool,
    repo: Option<&str>,
    tag: Option<&str>,
) -> std::result::Result<serde_json::Value, String> {
    let digest = match (repo, tag) {
        (Some(r), Some(t)) => Some(
            meta.manifest_by_tag(r, t)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{r}:{t}: no such tag"))?
                .digest,
        ),
        (None, Some(_)) => return Err("a tag needs its repository (REPO:TAG)".into()),
        (Some(r), None) => {
            if !meta.repository_exists(r).map_err(|e| e.to_string())? {
                return Err(format!("{r}: no such repository"));
            }
            None
        }
        (None, None) => None,
    };
    let only = repo.map(|r| (r, digest.as_ref()));
    let (scanned, failed) = catalog.rescan(all, only).map_err(|e| e.to_string())?;
    let failures: Vec<serde_json::Value> = catalog
        .db
        .failed_scans()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|(r, _)| repo.is_none_or(|x| x == r))
        .filter_map(|(r, d)| {
            let rec = catalog.db.scan(&r, &d).ok().flatten()?;
            Some(serde_json::json!({ "repository": r, "digest": d, "error": rec.error }))
        })
        .collect();
    Ok(serde_json::json!({ "scanned": scanned, "failed": failed, "failures": failures }))
}
