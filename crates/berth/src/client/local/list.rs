//! `berth images` (`berth image ls`): podman's table, filters, sort orders, templates
//! and JSON.

use std::time::SystemTime;

use anyhow::{bail, Context};
use berth_transport::local::{repository_of, Image};
use clap::Args;
use serde_json::{json, Value};

use super::{ago, human_size, open_store, rfc3339, show_id};

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Every image, also those only a manifest list names
    #[arg(long, short = 'a')]
    all: bool,
    /// Only the image IDs
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Full IDs
    #[arg(long)]
    no_trunc: bool,
    /// A DIGEST column
    #[arg(long)]
    digests: bool,
    /// No header line
    #[arg(long, short = 'n')]
    noheading: bool,
    /// Only images that match: dangling=true|false, reference=PATTERN, label=KEY[=VALUE],
    /// before=IMAGE, since=IMAGE, id=ID (repeatable; all must match)
    #[arg(long, short = 'f', value_name = "FILTER")]
    filter: Vec<String>,
    /// json, or a Go template over .ID .Repository .Tag .Digest .CreatedSince .CreatedAt
    /// .Size .Labels (prefix `table` for a header)
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Order: created (newest first), id, repository, size or tag
    #[arg(long, default_value = "created", value_parser = ["created", "id", "repository", "size", "tag"])]
    sort: String,
    /// Only images of this name (as a reference filter)
    repository: Option<String>,
}

/// One line of the table: an image under one of its names (or none).
struct Row<'a> {
    image: &'a Image,
    repository: String,
    tag: String,
}

pub fn run(a: ImagesArgs) -> anyhow::Result<()> {
    let store = open_store()?;
    let all = store.images()?;
    let mut filters: Vec<Filter> = a
        .filter
        .iter()
        .map(|f| Filter::parse(f, &all))
        .collect::<anyhow::Result<_>>()?;
    if let Some(r) = &a.repository {
        filters.push(Filter::Reference(r.clone()));
    }
    let images: Vec<&Image> = all
        .iter()
        .filter(|i| a.all || !i.names.is_empty() || !i.in_list)
        .filter(|i| filters.iter().all(|f| f.matches(i)))
        .collect();
    let now = SystemTime::now();
    if a.quiet {
        for i in &images {
            println!("{}", show_id(&i.id, a.no_trunc));
        }
        return Ok(());
    }
    let mut rows: Vec<Row> = Vec::new();
    for image in &images {
        let reference = filters.iter().find_map(|f| match f {
            Filter::Reference(p) => Some(p.as_str()),
            _ => None,
        });
        if image.names.is_empty() {
            rows.push(Row {
                image,
                repository: "<none>".into(),
                tag: "<none>".into(),
            });
        }
        for name in &image.names {
            if reference.is_some_and(|p| !reference_matches(p, name)) {
                continue;
            }
            let repo = repository_of(name);
            rows.push(Row {
                image,
                repository: repo.to_string(),
                tag: name.get(repo.len() + 1..).unwrap_or("").to_string(),
            });
        }
    }
    if a.format.as_deref() == Some("json") {
        // One object per row, as podman 4.3 prints it: an image with two names twice.
        let out: Vec<Value> = rows.iter().map(|r| json_of(r.image)).collect();
        println!("{}", berth_image::inspect::to_go_json(&out));
        return Ok(());
    }
    match a.sort.as_str() {
        "id" => rows.sort_by(|x, y| x.image.id.hex().cmp(y.image.id.hex())),
        "repository" => rows.sort_by(|x, y| x.repository.cmp(&y.repository)),
        "tag" => rows.sort_by(|x, y| x.tag.cmp(&y.tag)),
        "size" => rows.sort_by_key(|r| r.image.size),
        _ => {}
    }
    let values: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "ID": show_id(&r.image.id, a.no_trunc),
                "Id": r.image.id.hex(),
                "Repository": r.repository,
                "Tag": r.tag,
                "Digest": r.image.digest.to_string(),
                "CreatedSince": ago(now, r.image.created),
                "CreatedAt": rfc3339(r.image.created),
                "Created": r.image.created,
                "Size": human_size(r.image.size),
                "VirtualSize": human_size(r.image.size),
                "Labels": r.image.labels,
                "Names": r.image.names,
                "Dangling": r.image.is_dangling(),
                "Containers": r.image.containers,
                "ReadOnly": false,
            })
        })
        .collect();
    let template = match &a.format {
        Some(f) => f.clone(),
        None => {
            let digest = if a.digests { "{{.Digest}}\t" } else { "" };
            format!(
                "table {{{{.Repository}}}}\t{{{{.Tag}}}}\t{digest}{{{{.ID}}}}\t{{{{.CreatedSince}}}}\t{{{{.Size}}}}"
            )
        }
    };
    let mut out = crate::client::template::render_rows(&template, &values, header)?;
    if a.noheading && template.starts_with("table") {
        out = out
            .split_once('\n')
            .map_or(String::new(), |(_, rest)| rest.to_string());
    }
    print!("{out}");
    Ok(())
}

/// Column titles as podman prints them.
fn header(field: &str) -> String {
    match field {
        "ID" | "Id" => "IMAGE ID".into(),
        "CreatedSince" | "CreatedAt" | "Created" => "CREATED".into(),
        "VirtualSize" => "SIZE".into(),
        other => other.to_uppercase(),
    }
}

/// `podman images --format json`, key for key.
fn json_of(i: &Image) -> Value {
    json!({
        "Id": i.id.hex(),
        "ParentId": "",
        "RepoTags": if i.names.is_empty() { Value::Null } else { json!(i.names) },
        "RepoDigests": i.repo_digests(),
        "Size": i.size,
        "SharedSize": 0,
        "VirtualSize": i.size,
        "Labels": if i.labels.is_empty() { Value::Null } else { json!(i.labels) },
        "Containers": i.containers,
        "Names": if i.names.is_empty() { Value::Null } else { json!(i.names) },
        "Digest": i.digest.to_string(),
        "History": if i.names.is_empty() { Value::Null } else { json!(i.names) },
        "Created": i.created,
        "CreatedAt": rfc3339(i.created),
    })
}

enum Filter {
    Dangling(bool),
    Reference(String),
    Label(String, Option<String>),
    /// Created before (true) or after this many seconds.
    Created(bool, i64),
    Id(String),
}

impl Filter {
    fn parse(spec: &str, all: &[Image]) -> anyhow::Result<Filter> {
        let (key, value) = spec
            .split_once('=')
            .with_context(|| format!("--filter {spec:?}: use KEY=VALUE"))?;
        let created_of = |v: &str| -> anyhow::Result<i64> {
            let store = open_store()?;
            let found = store.find(v)?;
            Ok(all
                .iter()
                .find(|i| i.id == found.id)
                .map_or(found.created, |i| i.created))
        };
        Ok(match key {
            "dangling" => match value {
                "true" => Filter::Dangling(true),
                "false" => Filter::Dangling(false),
                _ => bail!("--filter dangling={value}: use true or false"),
            },
            "reference" => Filter::Reference(value.to_string()),
            "label" => match value.split_once('=') {
                Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
                None => Filter::Label(value.to_string(), None),
            },
            "before" => Filter::Created(true, created_of(value)?),
            "since" | "after" => Filter::Created(false, created_of(value)?),
            "id" => Filter::Id(value.trim_start_matches("sha256:").to_string()),
            other => bail!(
                "--filter {other}: not supported (dangling, reference, label, before, since, id)"
            ),
        })
    }

    fn matches(&self, i: &Image) -> bool {
        match self {
            Filter::Dangling(d) => i.is_dangling() == *d,
            Filter::Reference(p) => i.names.iter().any(|n| reference_matches(p, n)),
            Filter::Label(k, v) => i
                .labels
                .get(k)
                .is_some_and(|have| v.as_ref().is_none_or(|want| want == have)),
            Filter::Created(true, t) => i.created < *t,
            Filter::Created(false, t) => i.created > *t,
            Filter::Id(prefix) => i.id.hex().starts_with(prefix.as_str()),
        }
    }
}

/// podman's `reference=` filter: a glob over the full name (`host/path:tag`), or over
/// its last path components, with `:tag` optional in the pattern.
fn reference_matches(pattern: &str, name: &str) -> bool {
    let repo = repository_of(name);
    let pattern_has_tag = repository_of(pattern).len() != pattern.len();
    let subject = if pattern_has_tag { name } else { repo };
    let mut candidates = vec![subject];
    let mut rest = subject;
    while let Some(i) = rest.find('/') {
        rest = &rest[i + 1..];
        candidates.push(rest);
    }
    candidates
        .iter()
        .any(|c| glob(pattern.as_bytes(), c.as_bytes()))
}

/// `*` (not crossing `/`), `?` and literal bytes, as Go's `path.Match`.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&p[1..], s) || (s.first().is_some_and(|&c| c != b'/') && glob(p, &s[1..]))
        }
        (Some(b'?'), Some(&c)) if c != b'/' => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter_as_podman() {
        let n = "docker.io/library/alpine:3.19";
        assert!(reference_matches("alpine", n));
        assert!(reference_matches("alpine:3.19", n));
        assert!(!reference_matches("alpine:3.20", n));
        assert!(reference_matches("docker.io/library/alpine", n));
        assert!(reference_matches("*/alpine", n));
        assert!(reference_matches("alp*", n));
        assert!(!reference_matches("busybox", n));
        assert!(reference_matches(
            "localhost:5000/x:*",
            "localhost:5000/x:v1"
        ));
    }
}
