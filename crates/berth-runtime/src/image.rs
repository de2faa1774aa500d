//! Images made here, one layer on top of another image (or of nothing): `commit` (a
//! container's changes), `import` (a file-system tar) and, later, each step of a
//! build. One path for all: pack the layer (gzip, both digests taken as it passes),
//! extend the config (diff ID, history, `--change` instructions), write the manifest.

use std::io::Read;

use berth_containerfile::{Form, Kind};
use berth_image::{media_type as mt, Digest, Platform};
use berth_transport::local::{Image, LocalStore};
use serde_json::{json, Map, Value};

use crate::{Result, RuntimeError};

/// What the new image gets besides its layer.
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    /// `host/path:tag` (already qualified); none leaves the image untagged.
    pub name: Option<String>,
    /// Dockerfile instructions applied to the config (`--change 'CMD ["x"]'`).
    pub changes: Vec<String>,
    /// History comment (`--message`).
    pub message: Option<String>,
    pub author: Option<String>,
    /// History `created_by`.
    pub created_by: String,
    /// Docker v2s2 instead of OCI.
    pub docker_format: bool,
}

/// `import`: a tar of a file system (plain, gzip or zstd) becomes a one-layer image;
/// returns its ID. The tar is checked whole as it is packed: one that is not a whole
/// tar archive, or that goes past `limits`, is an error, and nothing is stored.
pub fn import(
    store: &LocalStore,
    tar: impl Read + Send + 'static,
    opts: &ImageOptions,
    limits: &berth_rootfs::TarLimits,
) -> Result<Digest> {
    let tar = berth_rootfs::decompress(tar).map_err(crate::io("reading the tar"))?;
    let mut sink = store.blob_sink()?;
    let packed = berth_rootfs::pack_checked_layer(tar, &mut sink, limits).map_err(|e| match e {
        berth_rootfs::RootfsError::Malformed(why) => {
            RuntimeError::Invalid(format!("not a valid tar archive: {why}"))
        }
        other => other.into(),
    })?;
    store.commit_blob(sink, &packed.digest)?;
    layer_image(store, None, packed, opts)
}

/// Packs `tar` as a layer on `base` (or alone) and stores the image; returns its ID.
pub fn add_layer(
    store: &LocalStore,
    base: Option<&Image>,
    tar: impl Read,
    opts: &ImageOptions,
) -> Result<Digest> {
    layer_image(store, base, store_layer(store, tar)?, opts)
}

/// The image of `base` (or of nothing) plus a stored layer.
fn layer_image(
    store: &LocalStore,
    base: Option<&Image>,
    packed: berth_rootfs::PackedLayer,
    opts: &ImageOptions,
) -> Result<Digest> {
    let (mut config, mut layers) = match base {
        Some(img) => {
            let config = store.image_config(&img.id)?;
            let m = store.image_manifest(img)?;
            let layers: Vec<(String, Digest, u64)> = m
                .layers
                .iter()
                .map(|l| (l.media_type.clone(), l.digest.clone(), l.size))
                .collect();
            (config, layers)
        }
        None => (empty_config(), Vec::new()),
    };
    layers.push((
        mt::OCI_LAYER_GZIP.to_string(),
        packed.digest.clone(),
        packed.size,
    ));
    let created = crate::rfc3339_now();
    config["created"] = json!(created);
    if let Some(a) = &opts.author {
        config["author"] = json!(a);
    }
    push(
        &mut config["rootfs"]["diff_ids"],
        json!(packed.diff_id.to_string()),
    );
    let created_by = match opts.created_by.is_empty() {
        // An import, in the words docker and podman use for it.
        true => format!("/bin/sh -c #(nop) ADD file:{} in /", packed.diff_id.hex()),
        false => opts.created_by.clone(),
    };
    let mut entry = Map::new();
    entry.insert("created".into(), json!(created));
    entry.insert("created_by".into(), json!(created_by));
    if let Some(a) = &opts.author {
        entry.insert("author".into(), json!(a));
    }
    if let Some(m) = &opts.message {
        entry.insert("comment".into(), json!(m));
    }
    push(&mut config["history"], Value::Object(entry));
    apply_changes(&mut config, &opts.changes)?;
    store_image(store, &config, &layers, opts)
}

/// Packs a layer tar as a gzip blob of the store: its diff ID, digest and size.
pub fn store_layer(store: &LocalStore, tar: impl Read) -> Result<berth_rootfs::PackedLayer> {
    let mut sink = store.blob_sink()?;
    let packed = berth_rootfs::pack_layer(tar, &mut sink)?;
    store.commit_blob(sink, &packed.digest)?;
    Ok(packed)
}

/// A config for an image of nothing yet: this machine's platform.
pub fn empty_config() -> Value {
    let here = Platform::this_machine();
    json!({
        "architecture": here.architecture,
        "os": here.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    })
}

fn push(list: &mut Value, item: Value) {
    match list.as_array_mut() {
        Some(a) => a.push(item),
        None => *list = json!([item]),
    }
}

/// Writes the config blob and the manifest (OCI or v2s2, layer media types to match),
/// named as asked. Returns the image ID.
pub fn store_image(
    store: &LocalStore,
    config: &Value,
    layers: &[(String, Digest, u64)],
    opts: &ImageOptions,
) -> Result<Digest> {
    let config_bytes =
        serde_json::to_vec(config).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
    let id = store.put_blob_bytes(&config_bytes)?;
    let (manifest_type, config_type) = match opts.docker_format {
        true => (mt::DOCKER_MANIFEST, mt::DOCKER_CONFIG),
        false => (mt::OCI_MANIFEST, mt::OCI_CONFIG),
    };
    let layers: Vec<Value> = layers
        .iter()
        .map(|(media_type, digest, size)| {
            json!({
                "mediaType": layer_type(media_type, opts.docker_format),
                "digest": digest.to_string(),
                "size": size,
            })
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": id.to_string(), "size": config_bytes.len()},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
    let (repo, tag) = match &opts.name {
        Some(name) => {
            let repo = berth_transport::local::repository_of(name);
            (repo.to_string(), Some(name[repo.len() + 1..].to_string()))
        }
        None => ("localhost/unnamed".to_string(), None),
    };
    store.put_manifest(&repo, tag.as_deref(), &bytes, manifest_type)?;
    Ok(id)
}

/// A layer's media type in the manifest format written.
fn layer_type(media_type: &str, docker: bool) -> String {
    let gzip = media_type.ends_with("gzip");
    let zstd = media_type.ends_with("zstd");
    match (docker, gzip, zstd) {
        (true, true, _) => mt::DOCKER_LAYER_GZIP.to_string(),
        (false, true, _) => mt::OCI_LAYER_GZIP.to_string(),
        _ => media_type.to_string(),
    }
}

/// Applies `--change` instructions to a config.
pub fn apply_changes(config: &mut Value, changes: &[String]) -> Result<()> {
    for change in changes {
        let text = format!("FROM scratch\n{change}\n");
        let parsed = berth_containerfile::parse(&text, "--change")
            .map_err(|e| RuntimeError::Invalid(format!("--change {change:?}: {}", e.message)))?;
        for stage in &parsed.stages {
            for i in &stage.instructions {
                if !apply_instruction(config, &i.kind, &default_shell(config)) {
                    return Err(RuntimeError::Invalid(format!(
                        "--change {change:?}: only CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, \
                         ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR change a config"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A JSON list of strings (Env, Cmd, …); anything else is empty.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The shell a shell-form instruction runs under: the config's `Shell`, else
/// `/bin/sh -c`.
pub fn default_shell(config: &Value) -> Vec<String> {
    let shell = strings(&config["config"]["Shell"]);
    match shell.is_empty() {
        true => vec!["/bin/sh".into(), "-c".into()],
        false => shell,
    }
}

/// A command as a config holds it: exec form as is, shell form under `shell`.
pub fn command(form: &Form, shell: &[String]) -> Vec<String> {
    match form {
        Form::Exec(args) => args.clone(),
        Form::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
    }
}

/// Applies one config-only instruction (CMD, ENTRYPOINT, ENV, …) to a config, as
/// buildah does; `false` for an instruction that is not one.
pub fn apply_instruction(config: &mut Value, kind: &Kind, shell: &[String]) -> bool {
    if !config["config"].is_object() {
        config["config"] = json!({});
    }
    let run = &mut config["config"];
    match kind {
        Kind::Cmd(f) => run["Cmd"] = json!(command(f, shell)),
        Kind::Entrypoint(f) => {
            run["Entrypoint"] = json!(command(f, shell));
        }
        Kind::Env(pairs) => {
            let mut env = strings(&run["Env"]);
            for (k, v) in pairs {
                // In its place when it is there, as buildah keeps the order.
                let key = |e: &String| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) == k;
                let new = format!("{k}={v}");
                match env.iter().position(key) {
                    Some(at) => {
                        env[at] = new;
                        let mut n = at + 1;
                        while n < env.len() {
                            if key(&env[n]) {
                                env.remove(n);
                            } else {
                                n += 1;
                            }
                        }
                    }
                    None => env.push(new),
                }
            }
            run["Env"] = json!(env);
        }
        Kind::Label(pairs) => {
            if !run["Labels"].is_object() {
                run["Labels"] = json!({});
            }
            for (k, v) in pairs {
                run["Labels"][k] = json!(v);
            }
        }
        Kind::Expose(ports) => {
            if !run["ExposedPorts"].is_object() {
                run["ExposedPorts"] = json!({});
            }
            for p in ports {
                let p = if p.contains('/') {
                    p.clone()
                } else {
                    format!("{p}/tcp")
                };
                run["ExposedPorts"][p] = json!({});
            }
        }
        Kind::User(u) => run["User"] = json!(u),
        Kind::Workdir(w) => {
            let base = run["WorkingDir"].as_str().unwrap_or("/").to_string();
            let joined = if w.starts_with('/') {
                w.clone()
            } else {
                format!("{}/{w}", base.trim_end_matches('/'))
            };
            run["WorkingDir"] = json!(joined);
        }
        Kind::Volume(vs) => {
            if !run["Volumes"].is_object() {
                run["Volumes"] = json!({});
            }
            for v in vs {
                run["Volumes"][v] = json!({});
            }
        }
        Kind::StopSignal(s) => run["StopSignal"] = json!(s),
        Kind::Shell(s) => run["Shell"] = json!(s),
        Kind::Onbuild(i) => push(&mut run["OnBuild"], json!(i.text)),
        _ => return false,
    }
    true
}
