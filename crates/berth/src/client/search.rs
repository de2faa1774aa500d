//! `berth search`, as `podman search` (4.3) does it: `HOST/TERM` searches that
//! registry, a bare TERM every registry in registries.conf's
//! `unqualified-search-registries`. Each registry is asked with
//! [`berth_remote::Registry::search`] (`/v1/search`, else its catalog); `--list-tags`
//! lists one repository's tags instead. Output is podman's: a `NAME DESCRIPTION` table,
//! `--format json` with podman's field names, or a Go template over them.

use anyhow::{bail, Context};
use berth_image::ImageReference;
use berth_remote::{Registry, SearchHit};
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use super::{template, Config, RegistryFlags};

/// Results per registry unless `--limit` says otherwise (podman's default).
const DEFAULT_LIMIT: usize = 25;
/// The largest `--limit` podman accepts (Docker Hub's largest page).
const MAX_LIMIT: usize = 100;
/// Descriptions longer than this are cut (and marked `...`) unless `--no-trunc`.
const DESCRIPTION_WIDTH: usize = 44;
/// Docker Hub, whose one-component names are `library/` ones.
const DOCKER_IO: &str = "docker.io";

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Results per registry (1 to 100)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT)]
    limit: usize,
    /// List the tags of the repository TERM names (columns NAME TAG)
    #[arg(long)]
    list_tags: bool,
    /// Keep results with at least N stars (stars=N), official or automated ones
    /// (is-official[=BOOL], is-automated[=BOOL]); repeatable
    #[arg(long, short = 'f', value_name = "FILTER")]
    filter: Vec<String>,
    /// `json`, or a Go template over .Index .Name .Description .Stars .Official
    /// .Automated .Tag (`table …` adds a header and aligns columns)
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Show descriptions whole
    #[arg(long)]
    no_trunc: bool,
    /// Add docker search's STARS, OFFICIAL and AUTOMATED columns
    #[arg(long)]
    compatible: bool,
    #[command(flatten)]
    registry: RegistryFlags,
    /// [HOST[:PORT]/]TERM: a registry to search, else every registry in
    /// registries.conf's unqualified-search-registries; `HOST/` lists its catalog
    term: String,
}

/// One line of output, with podman's field names (`--format` and JSON use them).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
struct Row {
    index: String,
    name: String,
    description: String,
    stars: u64,
    /// `[OK]` or empty, as podman prints it.
    official: String,
    automated: String,
    tag: String,
}

/// `--list-tags --format json`: podman groups the tags by repository.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagsEntry {
    name: String,
    tags: Vec<String>,
}

/// `--filter`, parsed as podman parses it (a bare `is-official` means true).
#[derive(Debug, Default, PartialEq, Eq)]
struct Filter {
    stars: u64,
    official: Option<bool>,
    automated: Option<bool>,
}

impl Filter {
    fn parse(specs: &[String]) -> anyhow::Result<Filter> {
        let mut f = Filter::default();
        for spec in specs {
            let (key, value) = match spec.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (spec.as_str(), None),
            };
            let flag = |v: Option<&str>| Some(v != Some("false"));
            match key {
                "stars" => {
                    let v = value.with_context(|| {
                        format!("invalid filter {spec:?}, should be stars=<value>")
                    })?;
                    f.stars = v
                        .parse()
                        .with_context(|| format!("invalid filter {spec:?}: stars must be a count"))?;
                }
                "is-official" => f.official = flag(value),
                "is-automated" => f.automated = flag(value),
                _ => bail!(
                    "invalid filter {spec:?}: use stars=N, is-official[=BOOL] or is-automated[=BOOL]"
                ),
            }
        }
        Ok(f)
    }

    fn keeps(&self, hit: &SearchHit) -> bool {
        hit.stars >= self.stars
            && self.official.is_none_or(|o| o == hit.official)
            && self.automated.is_none_or(|a| a == hit.automated)
    }
}

pub fn run(a: SearchArgs) -> anyhow::Result<()> {
    if a.limit == 0 || a.limit > MAX_LIMIT {
        bail!(
            "--limit {} is outside the range of [1, {MAX_LIMIT}]",
            a.limit
        );
    }
    if a.list_tags && !a.filter.is_empty() {
        bail!("filters are not applicable to list tags result");
    }
    let filter = Filter::parse(&a.filter)?;
    let config = Config::load()?;
    let (hosts, term) = match split_registry(&a.term) {
        Some((host, term)) => (vec![host.to_string()], term),
        None => {
            let hosts = config.registries.unqualified_search_registries().to_vec();
            if hosts.is_empty() {
                bail!(
                    "no registry to search for {:?}: name one (HOST/{}) or set \
                     unqualified-search-registries in registries.conf",
                    a.term,
                    a.term
                );
            }
            (hosts, a.term.as_str())
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let answers = runtime.block_on(futures_util::future::join_all(hosts.iter().map(|host| {
        let (config, a, filter) = (&config, &a, &filter);
        async move {
            if a.list_tags {
                list_tags(config, host, term, a).await
            } else {
                search(config, host, term, a, filter).await
            }
        }
    })));
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (host, answer) in hosts.iter().zip(answers) {
        match answer {
            Ok(r) => rows.extend(r),
            Err(e) => failures.push(e.context(format!("searching {host}"))),
        }
    }
    // As podman: a registry that fails does not hide what the others found; it is an
    // error only when nothing was found.
    if rows.is_empty() && !failures.is_empty() {
        if failures.len() == 1 {
            return Err(failures.remove(0));
        }
        let all: Vec<String> = failures.iter().map(|e| format!("{e:#}")).collect();
        bail!("{}", all.join("; "));
    }
    for e in &failures {
        eprintln!("berth: warning: {e:#}");
    }
    print!("{}", render(&a, &rows)?);
    Ok(())
}

/// `HOST[:PORT]/TERM` -> the registry and the term. The part before the first `/` is a
/// registry when it looks like a host, as image names tell them apart (a dot, a port,
/// or `localhost`); otherwise the whole TERM is a term (`library/alpine`).
fn split_registry(term: &str) -> Option<(&str, &str)> {
    let (host, rest) = term.split_once('/')?;
    (host.contains('.') || host.contains(':') || host == "localhost").then_some((host, rest))
}

/// The reference `HOST/REPOSITORY` whose registries.conf entry and credentials a
/// search of `host` uses: `Config` opens registries for an image. The TERM names the
/// repository when it can (podman's `--list-tags` looks it up the same way);
/// otherwise the registry's own entry and credentials are what match.
fn reference_on(host: &str, term: &str) -> anyhow::Result<ImageReference> {
    let parsed = |s: String| {
        s.parse::<ImageReference>()
            .ok()
            .filter(|r| r.domain() == host)
    };
    parsed(format!("{host}/{term}"))
        .or_else(|| parsed(format!("{host}/search")))
        .with_context(|| format!("{host:?} is not a registry name"))
}

/// Opens `host` through the user's configuration (credentials, `insecure`, `blocked`,
/// certs.d), as every other command reaches a registry.
fn open(
    config: &Config,
    host: &str,
    term: &str,
    flags: &RegistryFlags,
) -> anyhow::Result<Registry> {
    config.registry(&reference_on(host, term)?, flags)
}

async fn search(
    config: &Config,
    host: &str,
    term: &str,
    a: &SearchArgs,
    filter: &Filter,
) -> anyhow::Result<Vec<Row>> {
    // Docker Hub does not find `library/x` by that name; podman (and docker) search
    // for `x` instead.
    let term = match host {
        DOCKER_IO => term.strip_prefix("library/").unwrap_or(term),
        _ => term,
    };
    let registry = open(config, host, term, &a.registry)?;
    let mut hits = registry.search(term, a.limit).await?;
    // Docker Hub sorts by stars; a catalog does not know them. Stable, so catalog
    // order stays.
    hits.sort_by_key(|h| std::cmp::Reverse(h.stars));
    Ok(hits
        .into_iter()
        .take(a.limit)
        .filter(|h| filter.keeps(h))
        .map(|h| Row {
            index: host.to_string(),
            name: match host {
                DOCKER_IO if !h.name.contains('/') => format!("{DOCKER_IO}/library/{}", h.name),
                _ => format!("{host}/{}", h.name),
            },
            description: description(&h.description, a.no_trunc),
            stars: h.stars,
            official: ok(h.official),
            automated: ok(h.automated),
            tag: String::new(),
        })
        .collect())
}

/// `--list-tags`: TERM is a repository; its first `--limit` tags.
async fn list_tags(
    config: &Config,
    host: &str,
    term: &str,
    a: &SearchArgs,
) -> anyhow::Result<Vec<Row>> {
    let r: ImageReference = format!("{host}/{term}")
        .parse()
        .with_context(|| format!("--list-tags needs a repository name; {term:?} is not one"))?;
    let registry = config.registry(&r, &a.registry)?;
    let tags = registry.tags(r.path().as_str()).await?;
    Ok(tags
        .into_iter()
        .take(a.limit)
        .map(|tag| Row {
            index: host.to_string(),
            name: r.name(),
            description: String::new(),
            stars: 0,
            official: String::new(),
            automated: String::new(),
            tag,
        })
        .collect())
}

/// One line, cut to [`DESCRIPTION_WIDTH`] characters and `...` unless `whole`.
fn description(text: &str, whole: bool) -> String {
    let text = text.replace('\n', " ");
    if whole || text.chars().count() <= DESCRIPTION_WIDTH {
        return text;
    }
    let mut cut: String = text.chars().take(DESCRIPTION_WIDTH).collect();
    cut.push_str("...");
    cut
}

fn ok(b: bool) -> String {
    if b { "[OK]" } else { "" }.to_string()
}

/// The output: JSON, the user's template, or podman's default table. Nothing at all
/// when nothing was found, as podman prints.
fn render(a: &SearchArgs, rows: &[Row]) -> anyhow::Result<String> {
    if rows.is_empty() {
        return Ok(String::new());
    }
    if a.format.as_deref().is_some_and(|f| f.trim() == "json") {
        let mut out = if a.list_tags {
            json_pretty(&group_tags(rows))?
        } else {
            json_pretty(&rows)?
        };
        out.push('\n');
        return Ok(out);
    }
    let default = match (a.list_tags, a.compatible) {
        (true, _) => "table {{.Name}}\t{{.Tag}}",
        (false, true) => {
            "table {{.Name}}\t{{.Description}}\t{{.Stars}}\t{{.Official}}\t{{.Automated}}"
        }
        (false, false) => "table {{.Name}}\t{{.Description}}",
    };
    let format = a.format.as_deref().unwrap_or(default);
    let data: Vec<Value> = rows
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    template::render_rows(format, &data, |field| field.to_uppercase())
}

/// Tags of the same repository together, in the order first seen.
fn group_tags(rows: &[Row]) -> Vec<TagsEntry> {
    let mut out: Vec<TagsEntry> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|e| e.name == r.name) {
            Some(e) => e.tags.push(r.tag.clone()),
            None => out.push(TagsEntry {
                name: r.name.clone(),
                tags: vec![r.tag.clone()],
            }),
        }
    }
    out
}

/// JSON indented by four spaces, as podman's `--format json` prints.
fn json_pretty<T: Serialize>(v: &T) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser)?;
    Ok(String::from_utf8(out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_part_is_a_host() {
        assert_eq!(
            split_registry("127.0.0.1:5000/app"),
            Some(("127.0.0.1:5000", "app"))
        );
        assert_eq!(split_registry("quay.io/"), Some(("quay.io", "")));
        assert_eq!(split_registry("localhost/a/b"), Some(("localhost", "a/b")));
        assert_eq!(split_registry("library/alpine"), None);
        assert_eq!(split_registry("alpine"), None);
    }

    #[test]
    fn filters_as_podman_parses_them() {
        let f = Filter::parse(&["stars=3".into(), "is-official".into()]).unwrap();
        assert_eq!(
            f,
            Filter {
                stars: 3,
                official: Some(true),
                automated: None
            }
        );
        let hit = |stars, official| SearchHit {
            stars,
            official,
            ..SearchHit::default()
        };
        assert!(f.keeps(&hit(3, true)));
        assert!(!f.keeps(&hit(2, true)));
        assert!(!f.keeps(&hit(5, false)));
        let f = Filter::parse(&["is-automated=false".into()]).unwrap();
        assert_eq!(f.automated, Some(false));
        for bad in ["stars", "stars=x", "size=1"] {
            assert!(Filter::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn descriptions_are_cut_at_44_characters() {
        let long = "a".repeat(50);
        assert_eq!(description(&long, false), format!("{}...", "a".repeat(44)));
        assert_eq!(description(&long, true), long);
        assert_eq!(description("two\nlines", false), "two lines");
    }

    #[test]
    fn tags_group_by_repository_in_order() {
        let row = |name: &str, tag: &str| Row {
            index: "h".into(),
            name: name.into(),
            description: String::new(),
            stars: 0,
            official: String::new(),
            automated: String::new(),
            tag: tag.into(),
        };
        let g = group_tags(&[row("h/a", "1"), row("h/b", "x"), row("h/a", "2")]);
        assert_eq!(g.len(), 2);
        assert_eq!(
            (g[0].name.as_str(), g[0].tags.clone()),
            ("h/a", vec!["1".to_string(), "2".into()])
        );
    }
}
