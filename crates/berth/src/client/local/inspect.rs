//! `berth image inspect` (and `berth inspect NAME` without a transport) and `berth
//! history`: what podman shows of a stored image, from its manifest and config.

use std::time::SystemTime;

use berth_transport::local::{Image, LocalStore};
use clap::Args;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{ago, human_size, open_store, rfc3339};

#[derive(Args, Debug)]
pub struct ImageInspectArgs {
    /// A Go template over the JSON's fields (e.g. '{{.Config.Env}}'), or json
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<String>,
    /// Images: name, ID or ID prefix
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Full IDs and CREATED BY
    #[arg(long)]
    no_trunc: bool,
    /// Only the IDs
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Times as dates rather than "2 hours ago"
    #[arg(long, short = 'H', default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// json, or a Go template over .ID .Created .CreatedBy .Size .Comment
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// The image: name, ID or ID prefix
    image: String,
}

/// `podman image inspect`'s object, field for field and in its order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Inspected {
    id: String,
    digest: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: String,
    comment: String,
    created: String,
    config: Map<String, Value>,
    version: String,
    author: String,
    architecture: String,
    os: String,
    size: u64,
    virtual_size: u64,
    graph_driver: Value,
    #[serde(rename = "RootFS")]
    root_fs: Value,
    labels: Value,
    annotations: Value,
    manifest_type: String,
    user: String,
    history: Value,
    names_history: Vec<String>,
}

fn inspected(store: &LocalStore, img: &Image) -> anyhow::Result<Inspected> {
    let config = store.image_config(&img.id)?;
    let manifest = store.image_manifest(img)?;
    let run = config["config"].as_object().cloned().unwrap_or_default();
    // podman prints these run-config fields, in this order, when set.
    let mut shown = Map::new();
    for key in [
        "User",
        "ExposedPorts",
        "Env",
        "Entrypoint",
        "Cmd",
        "Volumes",
        "WorkingDir",
        "Labels",
        "StopSignal",
        "Healthcheck",
    ] {
        match run.get(key) {
            Some(Value::Null) | None => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(v) => {
                shown.insert(key.to_string(), v.clone());
            }
        }
    }
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Ok(Inspected {
        id: img.id.hex().to_string(),
        digest: img.digest.to_string(),
        repo_tags: img.names.clone(),
        repo_digests: img.repo_digests(),
        parent: String::new(),
        // As podman (libimage): the first history entry's comment; for a Docker
        // image, the config's own `comment`.
        comment: match manifest.media_type == berth_image::media_type::DOCKER_MANIFEST {
            true => text(&config["comment"]),
            false => text(&config["history"][0]["comment"]),
        },
        created: text(&config["created"]),
        version: text(&config["docker_version"]),
        author: text(&config["author"]),
        architecture: text(&config["architecture"]),
        os: text(&config["os"]),
        size: img.size,
        virtual_size: img.size,
        graph_driver: json!({"Name": "berth", "Data": null}),
        root_fs: json!({
            "Type": config["rootfs"]["type"].as_str().unwrap_or("layers"),
            "Layers": config["rootfs"]["diff_ids"],
        }),
        labels: run.get("Labels").cloned().unwrap_or(Value::Null),
        annotations: json!(manifest.annotations.clone().unwrap_or_default()),
        manifest_type: manifest.media_type,
        user: run.get("User").map(text).unwrap_or_default(),
        history: config["history"].clone(),
        names_history: img.names.clone(),
        config: shown,
    })
}

pub fn image_inspect(a: ImageInspectArgs) -> anyhow::Result<()> {
    let store = open_store()?;
    let mut out = Vec::new();
    let mut missing = None;
    for spec in &a.images {
        match store.find(spec) {
            Ok(img) => out.push(inspected(&store, &img)?),
            Err(e) if e.is_not_found() => {
                missing.get_or_insert(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    print_inspected(&out, a.format.as_deref())?;
    podman_missing(missing.map(anyhow::Error::from))
}

/// As podman: what was found is printed (an empty array when nothing was), then the
/// first name that was not, as "inspecting object: …".
pub fn podman_missing(missing: Option<anyhow::Error>) -> anyhow::Result<()> {
    match missing {
        Some(e) => Err(e.context("inspecting object")),
        None => Ok(()),
    }
}

/// Prints inspect objects (images, containers) as podman does: an array of them in
/// Go's JSON with a five-space indent, or with `--format` a template per object.
pub fn print_inspected<T: Serialize>(items: &[T], format: Option<&str>) -> anyhow::Result<()> {
    match format {
        None | Some("json") => println!(
            "{}",
            berth_image::inspect::to_go_json_indented(&items, "     ")
        ),
        Some(template) => {
            for item in items {
                let value = serde_json::to_value(item)?;
                println!("{}", crate::client::template::render(template, &value)?);
            }
        }
    }
    Ok(())
}

pub fn history(a: HistoryArgs) -> anyhow::Result<()> {
    let store = open_store()?;
    let img = store.find(&a.image)?;
    let config = store.image_config(&img.id)?;
    let manifest = store.image_manifest(&img)?;
    // Sizes of the layers, in order; an entry with empty_layer has none.
    let mut layers = manifest.layers.iter().map(|l| l.size);
    let mut entries = Vec::new();
    for h in config["history"].as_array().into_iter().flatten() {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let size = if empty { 0 } else { layers.next().unwrap_or(0) };
        entries.push((h, size));
    }
    entries.reverse();
    let now = SystemTime::now();
    let rows: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(n, (h, size))| {
            let created_text = h["created"].as_str().unwrap_or_default();
            let created = berth_transport::local::unix_of(created_text);
            let by = h["created_by"].as_str().unwrap_or_default();
            let id = match n {
                0 => super::show_id(&img.id, a.no_trunc),
                _ => "<missing>".to_string(),
            };
            json!({
                "id": if n == 0 { img.id.hex().to_string() } else { "<missing>".into() },
                "created": created_text,
                "CreatedBy": by,
                "size": size,
                "comment": h["comment"].as_str().unwrap_or_default(),
                "ID": id,
                "Created": match a.human { true => ago(now, created), false => rfc3339(created) },
                "Size": human_size(*size),
                "Comment": h["comment"].as_str().unwrap_or_default(),
                "ShownBy": match a.no_trunc {
                    true => by.to_string(),
                    false => crate::client::table::truncate(by, 45),
                },
            })
        })
        .collect();
    if a.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    if a.format.as_deref() == Some("json") {
        let keep = ["id", "created", "CreatedBy", "size", "comment"];
        let out: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut m = Map::new();
                for k in keep {
                    if k != "comment" || r[k].as_str().is_some_and(|c| !c.is_empty()) {
                        m.insert(k.to_string(), r[k].clone());
                    }
                }
                Value::Object(m)
            })
            .collect();
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    let template = a.format.clone().unwrap_or_else(|| {
        "table {{.ID}}\t{{.Created}}\t{{.ShownBy}}\t{{.Size}}\t{{.Comment}}".into()
    });
    let out = crate::client::template::render_rows(&template, &rows, |f| match f {
        "ShownBy" | "CreatedBy" => "CREATED BY".into(),
        other => other.to_uppercase(),
    })?;
    print!("{out}");
    Ok(())
}
