//! `/repository/NAME/manifest/DIGEST` and `/repository/NAME?tag=TAG`: one image
//! (an index shows the image of the chosen platform), with tabs rendered one at a
//! time on the server: Overview, Security, Packages, Containerfile, Tags,
//! Signatures, SBOM.

use berth_catalog::query::{
    ImageDetail, ManifestView, PackageDiffHead, TagSummary, VulnerabilityReport,
};
use berth_inventory::{Containerfile, Package};
use maud::{html, Markup};

use crate::format::{query, rfc3339, short_digest, size};
use crate::layout::{page, Chrome};
use crate::pager::{self, PER_PAGE};
use crate::repository::{command, tags_table};
use crate::search::grade_badge;

/// The tabs, in the order they are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Overview,
    Security,
    Packages,
    Containerfile,
    Tags,
    Signatures,
    Sbom,
}

impl Tab {
    pub const ALL: [Tab; 7] = [
        Tab::Overview,
        Tab::Security,
        Tab::Packages,
        Tab::Containerfile,
        Tab::Tags,
        Tab::Signatures,
        Tab::Sbom,
    ];

    /// `?tab=` (unknown or none: the overview).
    pub fn parse(s: &str) -> Tab {
        Tab::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .unwrap_or(Tab::Overview)
    }

    pub fn name(self) -> &'static str {
        match self {
            Tab::Overview => "overview",
            Tab::Security => "security",
            Tab::Packages => "packages",
            Tab::Containerfile => "containerfile",
            Tab::Tags => "tags",
            Tab::Signatures => "signatures",
            Tab::Sbom => "sbom",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Security => "Security",
            Tab::Packages => "Packages",
            Tab::Containerfile => "Containerfile",
            Tab::Tags => "Tags",
            Tab::Signatures => "Signatures",
            Tab::Sbom => "SBOM",
        }
    }
}

/// Where the chosen image's inventory stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan<'a> {
    Ready,
    /// Not inventoried yet.
    Pending,
    /// The scan failed, with the reason.
    Failed(&'a str),
    /// Not an image (an artifact, a signature): nothing inside to show.
    NotImage,
}

pub use berth_catalog::query::PackageSort;

/// The package diff against the previous tag.
#[derive(Debug, Clone, Copy)]
pub enum Diff<'a> {
    /// No older tag (or the image is not reached by a tag).
    NoPrevious,
    /// The previous tag has no image of this platform, or it is not inventoried.
    Unavailable(&'a str),
    Against(&'a str, &'a PackageDiffHead),
}

/// One signature as the Signatures tab shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureRow {
    /// `simple signing` or `sigstore`.
    pub kind: String,
    /// Key fingerprint / key id, and the user id when known.
    pub signer: String,
    /// The `docker-reference` it names.
    pub identity: String,
    pub verified: bool,
    /// Why it is not verified (or what verified it).
    pub reason: Option<String>,
}

/// What the current tab shows.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    Overview,
    Security {
        scan: Scan<'a>,
        report: Option<&'a VulnerabilityReport>,
        fixable: bool,
        page: usize,
    },
    Packages {
        scan: Scan<'a>,
        /// The page's rows, filtered by `q` and in `sort` order
        /// (`Catalog::package_page`).
        packages: &'a [Package],
        /// How many packages match `q` (all pages).
        total: usize,
        q: &'a str,
        sort: PackageSort,
        /// The page shown (1-based, clamped to those that exist).
        page: usize,
        diff: Diff<'a>,
    },
    Containerfile {
        scan: Scan<'a>,
        file: Option<&'a Containerfile>,
    },
    Tags(&'a [TagSummary]),
    Signatures(&'a [SignatureRow]),
    Sbom,
}

impl Content<'_> {
    fn tab(&self) -> Tab {
        match self {
            Content::Overview => Tab::Overview,
            Content::Security { .. } => Tab::Security,
            Content::Packages { .. } => Tab::Packages,
            Content::Containerfile { .. } => Tab::Containerfile,
            Content::Tags(_) => Tab::Tags,
            Content::Signatures(_) => Tab::Signatures,
            Content::Sbom => Tab::Sbom,
        }
    }
}

/// Everything the image page shows.
#[derive(Debug, Clone, Copy)]
pub struct ImagePage<'a> {
    pub repository: &'a str,
    /// How clients reach this registry (`HOST[:PORT]`).
    pub host: &'a str,
    /// The tag the page was asked by (`?tag=`), which its links keep.
    pub asked_tag: Option<&'a str>,
    /// A tag naming this manifest (the asked one, else the first in tag order).
    pub tag: Option<&'a str>,
    /// What was asked: an image, or an index whose images are `manifest.images`.
    pub manifest: &'a ManifestView,
    /// The image shown: the chosen platform of an index, or the image itself.
    pub image: Option<&'a ImageDetail>,
    /// The signatures kept for the manifest.
    pub signatures: usize,
    pub content: Content<'a>,
}

const TITLE: &str = "org.opencontainers.image.title";

impl ImagePage<'_> {
    fn is_index(&self) -> bool {
        self.manifest.images.len() > 1
            || self
                .manifest
                .images
                .first()
                .is_some_and(|i| i.summary.digest != self.manifest.digest)
    }

    /// A label of the shown image, else an annotation of the manifest.
    fn label(&self, key: &str) -> Option<&str> {
        self.image
            .and_then(|i| i.labels.get(key))
            .or_else(|| self.manifest.annotations.get(key))
            .map(String::as_str)
    }

    fn title(&self) -> String {
        match (self.label(TITLE), self.tag) {
            (Some(t), _) if !t.trim().is_empty() => t.to_string(),
            (_, Some(tag)) => format!("{}:{tag}", self.repository),
            (_, None) => format!(
                "{}@{}",
                self.repository,
                short_digest(&self.manifest.digest)
            ),
        }
    }

    /// A link to this page with `tab` and `extra` parameters (the asked tag and the
    /// platform kept).
    fn link(&self, tab: Tab, extra: &[(&str, &str)]) -> String {
        let platform = match (self.is_index(), self.image) {
            (true, Some(i)) => i.summary.digest.as_str(),
            _ => "",
        };
        let mut pairs = vec![
            ("tag", self.asked_tag.unwrap_or("")),
            ("tab", tab.name()),
            ("platform", platform),
        ];
        pairs.extend_from_slice(extra);
        let q = query(&pairs);
        if q.is_empty() {
            "?".into()
        } else {
            q
        }
    }

    /// Hidden fields that keep the page (tag, tab, platform) in a GET form.
    fn keep(&self, tab: Tab) -> Markup {
        html! {
            @if let Some(t) = self.asked_tag {
                input type="hidden" name="tag" value=(t);
            }
            input type="hidden" name="tab" value=(tab.name());
            @if let (true, Some(i)) = (self.is_index(), self.image) {
                input type="hidden" name="platform" value=(i.summary.digest);
            }
        }
    }
}

/// The image page.
pub fn page_html(chrome: &Chrome, p: &ImagePage) -> String {
    let title = p.title();
    let tab = p.content.tab();
    let body = html! {
        p.breadcrumb { a href={ "/repository/" (p.repository) } { (p.repository) } }
        h1 { (title) }
        @if p.is_index() {
            form #platform method="get" {
                @if let Some(t) = p.asked_tag {
                    input type="hidden" name="tag" value=(t);
                }
                input type="hidden" name="tab" value=(tab.name());
                label for="platform-select" { "Platform" }
                " "
                select #platform-select name="platform" {
                    @for i in &p.manifest.images {
                        @let chosen = p.image.is_some_and(|c| c.summary.digest == i.summary.digest);
                        option value=(i.summary.digest) selected[chosen] {
                            (i.summary.platform.as_deref().unwrap_or("unknown"))
                        }
                    }
                }
                " "
                button #platform-go type="submit" { "Show" }
            }
        }
        nav #tabs aria-label="Image" {
            ul {
                @for t in Tab::ALL {
                    li {
                        @if t == tab {
                            a data-tab=(t.name()) href=(p.link(t, &[])) aria-current="page" { (t.label()) }
                        } @else {
                            a data-tab=(t.name()) href=(p.link(t, &[])) { (t.label()) }
                        }
                    }
                }
            }
        }
        section id={ "tab-" (tab.name()) } {
            h2 { (tab.label()) }
            @match p.content {
                Content::Overview => (overview(p)),
                Content::Security { scan, report, fixable, page } => (security(p, scan, report, fixable, page)),
                Content::Packages { scan, packages, total, q, sort, page, diff } => (packages_tab(p, scan, packages, total, q, sort, page, diff)),
                Content::Containerfile { scan, file } => (containerfile(scan, file)),
                Content::Tags(tags) => (tags_table(p.repository, tags)),
                Content::Signatures(rows) => (signatures(rows, p.signatures)),
                Content::Sbom => (sbom(p)),
            }
        }
    };
    page(chrome, Some(&title), body)
}

fn scan_status(scan: Scan) -> Markup {
    html! {
        @match scan {
            Scan::Ready => {},
            Scan::Pending => p #scan-status { "This image is being scanned; its contents show here when the scan is done. Reload in a moment." },
            Scan::Failed(why) => p #scan-status { "The scan of this image failed: " (why) },
            Scan::NotImage => p #scan-status { "This is not a container image (an artifact or a signature): it has no packages or findings." },
        }
    }
}

fn overview(p: &ImagePage) -> Markup {
    let img = p.image;
    let summary = img.map(|i| &i.summary);
    let platform = summary.and_then(|s| s.platform.as_deref());
    let (os, arch) = match platform.and_then(|pl| pl.split_once('/')) {
        Some((os, arch)) => (Some(os), Some(arch)),
        None => (None, None),
    };
    let os_name = img
        .and_then(|i| i.os.as_ref())
        .map(|o| o.pretty_name.clone().unwrap_or_else(|| o.id.clone()));
    let facts: [(&str, Option<String>); 9] = [
        ("Title", p.label(TITLE).map(String::from)),
        (
            "Description",
            p.label("org.opencontainers.image.description")
                .map(String::from),
        ),
        (
            "Vendor",
            p.label("org.opencontainers.image.vendor").map(String::from),
        ),
        (
            "Version",
            p.label("org.opencontainers.image.version")
                .map(String::from),
        ),
        ("Created", summary.and_then(|s| s.created.clone())),
        ("Size", summary.map(|s| size(s.size))),
        ("OS", os_name.or(os.map(String::from))),
        ("Architecture", arch.map(String::from)),
        ("Base image", img.and_then(|i| i.base_image.clone())),
    ];
    let host = p.host;
    let name = p.repository;
    let digest = &p.manifest.digest;
    let scan = match summary.map(|s| (s.status.as_str(), s.error.as_deref())) {
        Some(("pending", _)) => Scan::Pending,
        Some(("failed", why)) => Scan::Failed(why.unwrap_or("unknown reason")),
        _ => Scan::Ready,
    };
    html! {
        (scan_status(scan))
        dl #facts {
            @for (k, v) in &facts {
                dt { (k) }
                dd { @if let Some(v) = v { (v) } @else { span.none { "—" } } }
            }
            dt { "Packages" }
            dd { (img.map_or(0, |i| i.packages)) }
        }
        p.digest {
            "Digest: "
            code #digest { (digest) }
            " "
            button.copy type="button" data-copy=(digest) aria-label="Copy digest" { "Copy" }
        }
        section #pull {
            h3 { "Pull" }
            @if let Some(tag) = p.tag {
                (command("pull-podman-tag", &format!("podman pull {host}/{name}:{tag}")))
                (command("pull-docker-tag", &format!("docker pull {host}/{name}:{tag}")))
                (command("pull-skopeo-tag", &format!("skopeo copy docker://{host}/{name}:{tag} containers-storage:{host}/{name}:{tag}")))
            }
            (command("pull-podman-digest", &format!("podman pull {host}/{name}@{digest}")))
            (command("pull-docker-digest", &format!("docker pull {host}/{name}@{digest}")))
            (command("pull-skopeo-digest", &format!("skopeo copy docker://{host}/{name}@{digest} containers-storage:{host}/{name}@{digest}")))
        }
        h3 { "Labels" }
        (pairs_table("labels", img.map(|i| &i.labels)))
        h3 { "Annotations" }
        (pairs_table("annotations", Some(&p.manifest.annotations)))
    }
}

fn pairs_table(id: &str, map: Option<&std::collections::BTreeMap<String, String>>) -> Markup {
    html! {
        div.table-wrap {
            table id=(id) {
                thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } } }
                tbody {
                    @for (k, v) in map.into_iter().flatten() {
                        tr { td { code { (k) } } td { (v) } }
                    }
                }
            }
        }
    }
}

const LEVELS: [(&str, &str); 5] = [
    ("Critical", "critical"),
    ("High", "high"),
    ("Medium", "medium"),
    ("Low", "low"),
    ("Unknown", "unknown"),
];

fn security(
    p: &ImagePage,
    scan: Scan,
    report: Option<&VulnerabilityReport>,
    fixable: bool,
    page: usize,
) -> Markup {
    let Some(r) = report else {
        return scan_status(if scan == Scan::Ready {
            Scan::Pending
        } else {
            scan
        });
    };
    let (page, rows) = pager::window(r.findings.len(), page);
    let imported = r
        .data
        .iter()
        .filter_map(|d| d.get("imported_at").and_then(|t| t.as_i64()))
        .max();
    let fixable_s = if fixable { "1" } else { "" };
    html! {
        p #grade {
            "Health grade: " (grade_badge(r.grade.as_deref()))
            @if let Some(drop) = r.next_grade_drop {
                " " span.hint { "(drops on " (crate::format::day(drop)) " unless fixed)" }
            }
        }
        dl #severity-counts {
            @for (label, key) in LEVELS {
                dt { (label) }
                dd data-severity=(key) { (r.counts.get(label).copied().unwrap_or(0)) }
            }
        }
        form #security-filter method="get" {
            (p.keep(Tab::Security))
            input #fixable type="checkbox" name="fixable" value="1" checked[fixable];
            " "
            label for="fixable" { "Fixable only" }
            " "
            button type="submit" { "Apply" }
        }
        p #vulndb-date {
            @match imported {
                Some(t) => { "Vulnerability data imported " time datetime=(rfc3339(t)) { (rfc3339(t)) } "." }
                None => "No vulnerability data has been imported into this registry: nothing is matched.",
            }
        }
        div.table-wrap {
            table #findings {
                thead {
                    tr {
                        th scope="col" { "Vulnerability" }
                        th scope="col" { "Package" }
                        th scope="col" { "Installed" }
                        th scope="col" { "Fixed in" }
                        th scope="col" { "Fixed in tag" }
                        th scope="col" { "Severity" }
                    }
                }
                tbody {
                    @for f in &r.findings[rows] {
                        @let level = format!("{:?}", f.finding.severity.level).to_lowercase();
                        tr.finding data-id=(f.finding.id) data-severity=(level)
                            data-fixable=(f.finding.fixed.is_some()) {
                            td {
                                (f.finding.id)
                                @if !f.finding.aliases.is_empty() {
                                    br; span.aliases { (f.finding.aliases.join(", ")) }
                                }
                                @if let Some(a) = &f.allowed {
                                    br; span.allowed title=(a.reason) { "Accepted" }
                                }
                            }
                            td { (f.finding.package) }
                            td { code { (f.finding.installed) } }
                            td { @if let Some(v) = &f.finding.fixed { code { (v) } } @else { "—" } }
                            td { @if f.fixed_in_tags.is_empty() { "—" } @else { (f.fixed_in_tags.join(", ")) } }
                            td { span class={ "severity severity-" (level) } { (format!("{:?}", f.finding.severity.level)) } }
                        }
                    }
                }
            }
        }
        @if r.findings.is_empty() {
            p.none { @if fixable { "No fixable findings." } @else { "No findings." } }
        }
        (pager::nav(r.findings.len(), PER_PAGE, page, |n| {
            let n = n.to_string();
            p.link(Tab::Security, &[("fixable", fixable_s), ("page", &n)])
        }))
    }
}

#[allow(clippy::too_many_arguments)]
fn packages_tab(
    p: &ImagePage,
    scan: Scan,
    packages: &[Package],
    count: usize,
    q: &str,
    sort: PackageSort,
    page: usize,
    diff: Diff,
) -> Markup {
    if scan != Scan::Ready {
        return scan_status(scan);
    }
    let total = match count {
        1 => "1 package".to_string(),
        n => format!("{n} packages"),
    };
    let header = |label: &str, key: PackageSort| {
        html! {
            th scope="col" aria-sort=[(sort == key).then_some("ascending")] {
                a href=(p.link(Tab::Packages, &[("pq", q), ("sort", key.name())])) { (label) }
            }
        }
    };
    html! {
        form #package-filter method="get" {
            (p.keep(Tab::Packages))
            input type="hidden" name="sort" value=(sort.name());
            label for="package-q" { "Filter packages" }
            " "
            input #package-q name="pq" type="search" value=(q);
            " "
            button type="submit" { "Filter" }
        }
        p #package-total { (total) }
        div.table-wrap {
            table #packages {
                thead {
                    tr {
                        (header("Name", PackageSort::Name))
                        (header("Version", PackageSort::Version))
                        (header("Source", PackageSort::Source))
                        th scope="col" { "Arch" }
                        th scope="col" { "License" }
                    }
                }
                tbody {
                    @for pkg in packages {
                        tr.package data-name=(pkg.name) {
                            td { (pkg.name) }
                            td { code { (pkg.version) } }
                            td { (pkg.source_name.as_deref().unwrap_or("")) }
                            td { (pkg.arch.as_deref().unwrap_or("")) }
                            td { (pkg.license.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        (pager::nav(count, PER_PAGE, page, |n| {
            let n = n.to_string();
            p.link(Tab::Packages, &[("pq", q), ("sort", sort.name()), ("page", &n)])
        }))
        section #package-diff {
            h3 { "Changes since the previous tag" }
            @match diff {
                Diff::NoPrevious => p { "There is no previous tag to compare with." },
                Diff::Unavailable(tag) => p { "The previous tag, " (tag) ", has no inventoried image of this platform to compare with." },
                Diff::Against(tag, d) => {
                    p { "Against " (tag) ": " (d.added) " added, " (d.removed) " removed, " (d.changed) " changed." }
                    (diff_list("added", "Added", d.added, d.first.added.iter().map(|p| (p.name.as_str(), p.version.clone()))))
                    (diff_list("removed", "Removed", d.removed, d.first.removed.iter().map(|p| (p.name.as_str(), p.version.clone()))))
                    (diff_list("changed", "Changed", d.changed, d.first.changed.iter().map(|(a, b)| (b.name.as_str(), format!("{} → {}", a.version, b.version)))))
                }
            }
        }
    }
}

/// One list of the diff (`n` entries): the first [`PER_PAGE`] of `items` and how
/// many more.
fn diff_list<'a>(
    class: &str,
    label: &str,
    n: usize,
    items: impl Iterator<Item = (&'a str, String)>,
) -> Markup {
    html! {
        @if n > 0 {
            h4 { (label) }
            ul class={ "diff-" (class) } {
                @for (name, version) in items.take(PER_PAGE) {
                    li data-name=(name) { (name) " " code { (version) } }
                }
            }
            @if n > PER_PAGE {
                p.more { "and " (n - PER_PAGE) " more" }
            }
        }
    }
}

fn containerfile(scan: Scan, file: Option<&Containerfile>) -> Markup {
    if scan != Scan::Ready {
        return scan_status(scan);
    }
    let Some(cf) = file else {
        return html! { p #containerfile-kind { "This image carries no build file and no history to rebuild one from." } };
    };
    html! {
        @if cf.reconstructed {
            p #containerfile-kind { "Reconstructed from the image history" }
        } @else {
            p #containerfile-kind { "The image's own build file (" (cf.path.as_deref().unwrap_or("unknown path")) ")" }
        }
        pre #containerfile { code { (cf.text) } }
        @if cf.reconstructed {
            h3 { "Steps" }
            div.table-wrap {
                table #steps {
                    thead { tr { th scope="col" { "Instruction" } th scope="col" { "Layer size" } } }
                    tbody {
                        @for s in &cf.steps {
                            tr {
                                td { code { (s.instruction) } }
                                td { @match s.layer_size { Some(n) => (size(n)), None => "—" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn signatures(rows: &[SignatureRow], stored: usize) -> Markup {
    html! {
        @if rows.is_empty() {
            p #no-signatures {
                @if stored == 0 { "This image has no signatures in this registry." }
                @else { "This image has signatures, but none could be read." }
            }
        } @else {
            div.table-wrap {
                table #signatures {
                    thead {
                        tr {
                            th scope="col" { "Kind" }
                            th scope="col" { "Signer" }
                            th scope="col" { "Identity" }
                            th scope="col" { "Verified" }
                        }
                    }
                    tbody {
                        @for s in rows {
                            tr.signature data-verified=(s.verified) {
                                td { (s.kind) }
                                td { @if s.signer.is_empty() { span.none { "unknown" } } @else { (s.signer) } }
                                td {
                                    @if s.identity.is_empty() { span.none { "—" } }
                                    @else { code { (s.identity) } }
                                }
                                td {
                                    @if s.verified { "Verified" } @else { "Not verified" }
                                    @if let Some(r) = &s.reason { br; span.reason { (r) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn sbom(p: &ImagePage) -> Markup {
    let digest = p
        .image
        .map_or(p.manifest.digest.as_str(), |i| i.summary.digest.as_str());
    let base = format!("/repository/{}/manifest/{digest}/sbom", p.repository);
    html! {
        p { "A software bill of materials of this image's packages, made from its inventory:" }
        ul {
            li { a #sbom-spdx href={ (base) "?format=spdx" } download { "SPDX 2.3 (JSON)" } }
            li { a #sbom-cyclonedx href={ (base) "?format=cyclonedx" } download { "CycloneDX 1.5 (JSON)" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{self, HOSTILE};

    fn render(m: &ManifestView, image: usize, tag: Option<&str>, content: Content) -> String {
        let p = ImagePage {
            repository: "team/app",
            host: "reg.example:5000",
            asked_tag: tag,
            tag,
            manifest: m,
            image: m.images.get(image),
            signatures: 0,
            content,
        };
        page_html(&Chrome::default(), &p)
    }

    /// Every tab of a 1,000-package image with 200 findings, as the bench renders them.
    fn every_tab(m: &ManifestView) -> Vec<(Tab, String)> {
        let pk = fixture::packages(1000);
        let report = fixture::report(200);
        let cf = fixture::containerfile(12);
        let diff = fixture::diff(1000);
        let repo = fixture::repository(5);
        let sigs = vec![SignatureRow {
            kind: "simple signing".into(),
            signer: format!("ABCD {HOSTILE}"),
            identity: "reg.example:5000/team/app:1.10.0".into(),
            verified: false,
            reason: Some("no trusted key".into()),
        }];
        let contents = [
            Content::Overview,
            Content::Security {
                scan: Scan::Ready,
                report: Some(&report),
                fixable: false,
                page: 1,
            },
            Content::Packages {
                scan: Scan::Ready,
                packages: &pk[..PER_PAGE.min(pk.len())],
                total: pk.len(),
                q: "",
                sort: PackageSort::Name,
                page: 1,
                diff: Diff::Against("1.9.0", &diff),
            },
            Content::Containerfile {
                scan: Scan::Ready,
                file: Some(&cf),
            },
            Content::Tags(&repo.tags),
            Content::Signatures(&sigs),
            Content::Sbom,
        ];
        contents
            .into_iter()
            .map(|c| (c.tab(), render(m, 0, Some("1.10.0"), c)))
            .collect()
    }

    #[test]
    fn every_tab_renders_its_section_and_escapes_image_data() {
        let m = fixture::manifest(0, 1000);
        let tabs = every_tab(&m);
        assert_eq!(tabs.len(), Tab::ALL.len());
        for (tab, html) in &tabs {
            let section = format!(r#"<section id="tab-{}">"#, tab.name());
            assert!(html.contains(&section), "{tab:?}");
            assert_eq!(
                html.matches("<section id=\"tab-").count(),
                1,
                "only the current tab"
            );
            assert!(
                html.contains(&format!(
                    r#"data-tab="{}" href="?tag=1.10.0&amp;tab={}" aria-current="page""#,
                    tab.name(),
                    tab.name()
                )),
                "{tab:?}: {html}"
            );
            assert!(
                !html.contains("<script>alert"),
                "{tab:?} lets a label through: {html}"
            );
            assert_eq!(html.matches("<h1>").count(), 1);
            assert!(html.contains("<h1>The app</h1>"));
        }
        let get = |t: Tab| &tabs.iter().find(|(x, _)| *x == t).unwrap().1;
        let o = get(Tab::Overview);
        assert!(o.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{o}");
        assert!(o.contains(r#"<dl id="facts">"#) && o.contains("Debian GNU/Linux 12 (bookworm)"));
        assert!(o.contains(&format!(
            r#"<code id="digest">{}</code>"#,
            fixture::digest(0)
        )));
        for id in [
            "pull-podman-tag",
            "pull-docker-tag",
            "pull-skopeo-tag",
            "pull-podman-digest",
            "pull-docker-digest",
            "pull-skopeo-digest",
        ] {
            assert!(
                o.contains(&format!(r#"<code class="pull" id="{id}">"#)),
                "{id}"
            );
        }
        assert!(o.contains(r#"data-copy="podman pull reg.example:5000/team/app:1.10.0""#));
        assert!(o.contains(r#"<table id="labels">"#) && o.contains(r#"<table id="annotations">"#));

        let s = get(Tab::Security);
        assert!(s.contains(r#"<dd data-severity="critical">40</dd>"#), "{s}");
        assert!(
            s.contains(r#"<input id="fixable" type="checkbox" name="fixable" value="1">"#),
            "{s}"
        );
        assert_eq!(s.matches(r#"<tr class="finding""#).count(), 100, "paged");
        assert!(
            s.contains(r#"data-id="CVE-2024-00000" data-severity="critical" data-fixable="true""#),
            "{s}"
        );
        assert!(s.contains(r#"<p id="vulndb-date">"#) && s.contains("2024-02-03T04:05:06Z"));
        assert!(
            s.contains(r#"rel="next" href="?tag=1.10.0&amp;tab=security&amp;page=2""#),
            "{s}"
        );

        let p = get(Tab::Packages);
        assert_eq!(p.matches(r#"<tr class="package""#).count(), 100);
        assert!(p.contains(r#"<p id="package-total">1000 packages</p>"#));
        assert!(p.contains(r#"<input id="package-q" name="pq" type="search""#));
        assert!(p.contains(r#"<section id="package-diff">"#) && p.contains("Against 1.9.0"));
        assert!(
            p.contains(r#"href="?tag=1.10.0&amp;tab=packages&amp;sort=version""#),
            "{p}"
        );

        let c = get(Tab::Containerfile);
        assert!(
            c.contains(r#"<p id="containerfile-kind">Reconstructed from the image history</p>"#)
        );
        assert!(c.contains(r#"<table id="steps">"#) && !c.contains("<script>alert"));
        assert!(get(Tab::Tags).contains(r#"<table id="tags">"#));
        let g = get(Tab::Signatures);
        assert!(
            g.contains(r#"<tr class="signature" data-verified="false">"#),
            "{g}"
        );
        let b = get(Tab::Sbom);
        let spdx = format!(
            r#"id="sbom-spdx" href="/repository/team/app/manifest/{}/sbom?format=spdx" download"#,
            fixture::digest(0)
        );
        assert!(b.contains(&spdx), "{b}");
        assert!(b.contains(r#"id="sbom-cyclonedx""#));
    }

    #[test]
    fn a_package_page_shows_its_rows_in_order_with_pager_and_sort_links() {
        let m = fixture::manifest(0, 250);
        let mut pk = fixture::packages(250);
        pk.reverse();
        // The catalog hands over one page in its order; the page keeps that order.
        let rows = pk[50..100].to_vec();
        let content = |sort, page| Content::Packages {
            scan: Scan::Ready,
            packages: &rows,
            total: 250,
            q: "pkg",
            sort,
            page,
            diff: Diff::NoPrevious,
        };
        let third = render(&m, 0, None, content(PackageSort::Name, 3));
        let names: Vec<&str> = third
            .split(r#"<tr class="package" data-name=""#)
            .skip(1)
            .map(|r| &r[..r.find('"').unwrap()])
            .collect();
        let want: Vec<String> = (150..200).rev().map(|i| format!("pkg-{i:05}")).collect();
        assert_eq!(names, want);
        assert!(third.contains("250 packages"), "{third}");
        assert!(
            third
                .contains(r#"rel="prev" href="?tab=packages&amp;pq=pkg&amp;sort=name&amp;page=2""#),
            "{third}"
        );
        assert!(third.contains("Page 3 of 3") && !third.contains(r#"rel="next""#));
        assert!(third.contains("There is no previous tag"));
        let by_version = render(&m, 0, None, content(PackageSort::Version, 1));
        assert!(
            by_version.contains(
                r#"aria-sort="ascending"><a href="?tab=packages&amp;pq=pkg&amp;sort=version""#
            ),
            "{by_version}"
        );
        assert!(by_version
            .contains(r#"rel="next" href="?tab=packages&amp;pq=pkg&amp;sort=version&amp;page=2""#));
        // No tag: the title names the digest, and tag pull commands are left out.
        let o = render(&fixture::manifest(0, 1), 0, None, Content::Overview);
        assert!(!o.contains("pull-podman-tag") && o.contains("pull-podman-digest"));
    }

    #[test]
    fn an_index_offers_its_platforms_and_keeps_the_choice() {
        let m = fixture::manifest(3, 10);
        let html = render(&m, 1, Some("1.10.0"), Content::Overview);
        let chosen = fixture::digest(101);
        assert!(html.contains(r#"<form id="platform" method="get">"#));
        assert!(html.contains(r#"<label for="platform-select">Platform</label>"#));
        assert!(
            html.contains(&format!(
                r#"<option value="{chosen}" selected>linux/amd64</option>"#
            )),
            "{html}"
        );
        assert!(html.contains(r#"<button id="platform-go" type="submit">Show</button>"#));
        assert!(
            html.contains(&format!(
                r#"href="?tag=1.10.0&amp;tab=security&amp;platform={}""#,
                chosen.replace(':', "%3A")
            )),
            "{html}"
        );
        // An image alone has no selector.
        assert!(
            !render(&fixture::manifest(0, 1), 0, None, Content::Overview)
                .contains("platform-select")
        );
    }

    #[test]
    fn pending_and_failed_scans_say_so() {
        let mut m = fixture::manifest(0, 0);
        m.images[0].summary.status = "pending".into();
        let overview = render(&m, 0, None, Content::Overview);
        assert!(
            overview.contains(r#"<p id="scan-status">This image is being scanned"#),
            "{overview}"
        );
        m.images[0].summary.status = "ok".into();
        assert!(!render(&m, 0, None, Content::Overview).contains("scan-status"));
        let pending = render(
            &m,
            0,
            None,
            Content::Security {
                scan: Scan::Pending,
                report: None,
                fixable: false,
                page: 1,
            },
        );
        assert!(
            pending.contains(r#"<p id="scan-status">This image is being scanned"#),
            "{pending}"
        );
        let failed = render(
            &m,
            0,
            None,
            Content::Packages {
                scan: Scan::Failed("bad <gzip>"),
                packages: &[],
                total: 0,
                q: "",
                sort: PackageSort::Name,
                page: 1,
                diff: Diff::NoPrevious,
            },
        );
        assert!(
            failed.contains("The scan of this image failed: bad &lt;gzip&gt;"),
            "{failed}"
        );
        let none = render(&m, 0, None, Content::Signatures(&[]));
        assert!(none.contains(r#"<p id="no-signatures">"#));
    }
}
