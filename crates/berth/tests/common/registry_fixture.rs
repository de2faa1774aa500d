//! What the catalog tests share: a `berth serve` process on a loopback port with its
//! own data folder, and OCI layouts of images written here (layers from a few files,
//! gzip), to be pushed to it with `berth copy`.
//!
//! Included with `#[path = "common/registry_fixture.rs"] mod registry_fixture;` next to
//! `mod common;` (it uses `common::{BERTH, free_port}`).

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_image::Digest;
use serde_json::{json, Value};

use crate::common::{admin, free_port, BERTH};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A Debian 12 os-release.
pub const DEBIAN_OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n";

/// A dpkg status file of installed packages `(name, version, source)`.
pub fn dpkg_status(packages: &[(&str, &str, Option<&str>)]) -> String {
    packages
        .iter()
        .map(|(name, version, source)| {
            let source = source.map_or(String::new(), |s| format!("Source: {s}\n"));
            format!(
                "Package: {name}\nStatus: install ok installed\nArchitecture: amd64\n{source}Version: {version}\nDescription: {name}\n\n"
            )
        })
        .collect()
}

/// A layer of `files` (`path`, text; parent folders added): `(tar, gzip of it)`.
pub fn layer(files: &[(&str, &str)]) -> (Vec<u8>, Vec<u8>) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut folders: Vec<String> = Vec::new();
    for (path, _) in files {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let dir = format!("{}/", &path[..at + i]);
            if !folders.contains(&dir) {
                folders.push(dir);
            }
            at += i + 1;
        }
    }
    for d in &folders {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        tar.append_data(&mut h, d, std::io::empty()).unwrap();
    }
    for (path, text) in files {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        h.set_mtime(1_700_000_000);
        tar.append_data(&mut h, path, text.as_bytes()).unwrap();
    }
    let plain = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    (plain, gz.finish().unwrap())
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": Digest::sha256_of(bytes).to_string(), "size": bytes.len()})
}

/// Writes (or adds to) an OCI layout at `dir`: one image of `layers` (`(tar, gzip)`)
/// whose config is `config` with `rootfs` filled in, named `tag`. Returns the
/// manifest's digest.
pub fn write_layout(dir: &Path, tag: &str, layers: &[(Vec<u8>, Vec<u8>)], config: Value) -> Digest {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        std::fs::write(blobs.join(Digest::sha256_of(bytes).hex()), bytes).unwrap();
    };
    let mut config = config;
    config["rootfs"] = json!({
        "type": "layers",
        "diff_ids": layers.iter().map(|(raw, _)| Digest::sha256_of(raw).to_string()).collect::<Vec<_>>(),
    });
    let config = serde_json::to_vec(&config).unwrap();
    put(&config);
    for (_, gz) in layers {
        put(gz);
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter().map(|(_, gz)| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", gz)).collect::<Vec<_>>(),
    }))
    .unwrap();
    put(&manifest);
    let mut entry = descriptor(OCI_MANIFEST, &manifest);
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let index_path = dir.join("index.json");
    let mut index: Value = std::fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({"schemaVersion": 2, "manifests": []}));
    index["manifests"].as_array_mut().unwrap().push(entry);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    Digest::sha256_of(&manifest)
}

/// Runs `berth registry --root ROOT ARGS` with `stdin`; fails the test when it fails.
pub fn registry(root: &str, args: &[&str], stdin: &str) {
    let mut all = vec!["--root", root];
    all.extend_from_slice(args);
    let out = admin(&all, stdin);
    assert!(
        out.status.success(),
        "berth registry {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pushes `oci:LAYOUT:tag` to `repo:tag` of `serve` with `berth copy` as `creds`
/// (`extra`: more copy flags, such as `--all` for every platform of an index).
pub fn push_layout(
    serve: &Serve,
    layout: &Path,
    tag: &str,
    repo: &str,
    creds: (&str, &str),
    extra: &[&str],
) {
    let creds = format!("{}:{}", creds.0, creds.1);
    let from = format!("oci:{}:{tag}", layout.display());
    let to = format!("docker://{}/{repo}:{tag}", serve.addr);
    let mut args = vec!["copy"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &from,
        &to,
    ]);
    ok(berth(&args));
}

/// Keeps an opaque simple signature for `repo@digest` through the registry signature
/// extension, as `creds` (the registry stores it as sent; it cannot verify).
pub async fn put_opaque_signature(serve: &Serve, repo: &str, digest: &str, creds: (&str, &str)) {
    let r = reqwest::Client::new()
        .put(format!(
            "{}/extensions/v2/{repo}/signatures/{digest}",
            serve.url
        ))
        .basic_auth(creds.0, Some(creds.1))
        .json(
            &json!({"schemaVersion": 2, "name": format!("{digest}@0123abcd"), "type": "atomic",
                      "content": "c2lnbmF0dXJl"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        201,
        "signature PUT for {repo}@{digest}"
    );
}

/// `berth serve` on a free loopback port over `root`, stopped when dropped.
pub struct Serve {
    child: Child,
    pub addr: String,
    pub url: String,
}

impl Serve {
    /// Starts it with `args` added and waits until `/v2/` answers (200 or 401).
    pub async fn start(root: &Path, args: &[&str]) -> Serve {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(BERTH)
            .env_remove("BERTH_ROOT")
            .args(["serve", "--listen", &addr, "--log-level", "warn", "--root"])
            .arg(root)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("berth serve starts");
        let serve = Serve {
            child,
            url: format!("http://{addr}"),
            addr,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !client
            .get(format!("{}/v2/", serve.url))
            .send()
            .await
            .is_ok_and(|r| matches!(r.status().as_u16(), 200 | 401))
        {
            assert!(Instant::now() < deadline, "berth serve did not answer");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        serve
    }
}

impl Serve {
    /// The server's process id (to read its memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pushes (as `user`) an image whose one layer is not an archive at all, so that
/// its analysis fails; returns its manifest's digest.
pub async fn push_unreadable(serve: &Serve, repo: &str, tag: &str, user: (&str, &str)) -> Digest {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer: &[u8] = b"this is not gzip at all";
    put_image(
        &serve.url,
        repo,
        tag,
        config,
        &[("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
        Some(user),
    )
    .await
}

/// Pushes the config and `layers` (`(media type, bytes)`) as monolithic uploads (or,
/// where the registry only starts a session, a POST and a PUT), then
/// their OCI manifest as `repo:tag` (as `user`, or anonymously); returns the manifest's
/// digest. Every answer must be 201.
pub async fn put_image(
    url: &str,
    repo: &str,
    tag: &str,
    config: &[u8],
    layers: &[(&str, &[u8])],
    user: Option<(&str, &str)>,
) -> Digest {
    let http = reqwest::Client::new();
    let auth = |r: reqwest::RequestBuilder| match user {
        Some((name, password)) => r.basic_auth(name, Some(password)),
        None => r,
    };
    for blob in std::iter::once(config).chain(layers.iter().map(|(_, b)| *b)) {
        let r = auth(http.post(format!(
            "{url}/v2/{repo}/blobs/uploads/?digest={}",
            Digest::sha256_of(blob)
        )))
        .body(blob.to_vec())
        .send()
        .await
        .unwrap();
        // distribution starts a session instead (202): the bytes go in its PUT.
        let r = match r.status().as_u16() {
            202 => {
                let location = r.headers()["location"].to_str().unwrap().to_string();
                let sep = if location.contains('?') { '&' } else { '?' };
                let location = match location.starts_with('/') {
                    true => format!("{url}{location}"),
                    false => location,
                };
                auth(http.put(format!("{location}{sep}digest={}", Digest::sha256_of(blob))))
                    .header("content-type", "application/octet-stream")
                    .body(blob.to_vec())
                    .send()
                    .await
                    .unwrap()
            }
            _ => r,
        };
        assert_eq!(r.status().as_u16(), 201);
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": layers.iter().map(|(t, b)| descriptor(t, b)).collect::<Vec<_>>(),
    }))
    .unwrap();
    let r = auth(http.put(format!("{url}/v2/{repo}/manifests/{tag}")))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    Digest::sha256_of(&manifest)
}

/// A one-layer image of its own for `seed`: its config and a `kib` KiB layer
/// (uncompressed tar media type; the bytes need not be a tar).
pub fn seeded_image(seed: u8, kib: usize) -> (Vec<u8>, Vec<u8>) {
    let layer: Vec<u8> = (0..kib * 1024)
        .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
        .collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}},"config":{{"Labels":{{"seed":"{seed}"}}}}}}"#,
        Digest::sha256_of(&layer)
    )
    .into_bytes();
    (config, layer)
}

/// Runs `berth ARGS` (`BERTH_ROOT` unset).
pub fn berth(args: &[&str]) -> Output {
    Command::new(BERTH)
        .env_remove("BERTH_ROOT")
        .args(args)
        .output()
        .expect("berth runs")
}

/// Its stdout, when it succeeded.
#[track_caller]
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Polls `f` until it says yes (20 s at most).
pub async fn until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of metric `name` (a line `name value`) in the server's `/metrics`.
pub async fn metric(serve: &Serve, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", serve.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

/// `skopeo ARGS`, which must succeed.
pub fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo runs (apt-get install skopeo; scripts/install-peers.sh installs it)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `skopeo copy` of `layout`'s image `tag` to `addr` as `repo:tag` (plain HTTP), as
/// `creds` (`user:password`) when given.
pub fn skopeo_push(layout: &Path, tag: &str, addr: &str, repo: &str, creds: Option<&str>) {
    let from = format!("oci:{}:{tag}", layout.display());
    let to = format!("docker://{addr}/{repo}:{tag}");
    let mut args = vec!["copy", "--dest-tls-verify=false"];
    if let Some(c) = creds {
        args.extend(["--dest-creds", c]);
    }
    args.extend([from.as_str(), to.as_str()]);
    skopeo(&args);
}

/// The bytes of `oci:` layout `dir`'s blob `digest`.
pub fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    std::fs::read(dir.join("blobs/sha256").join(hex))
        .unwrap_or_else(|e| panic!("{digest} in {}: {e}", dir.display()))
}

/// Text that gzip cannot shrink much: a layer of it spans as many upload parts as its
/// length says.
pub fn noise(len: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"0123456789abcdefghijklmnopqrstuv"[(x % 32) as usize])
        })
        .collect()
}

/// Pulls `repo:tag` from the registry at `addr` with skopeo into `dir/back-TAG` and
/// checks that the manifest (`pushed`) and every blob it names are the bytes of
/// `layout`; returns the blobs' digests.
pub fn pull_matches(
    addr: &str,
    repo: &str,
    tag: &str,
    dir: &Path,
    layout: &Path,
    pushed: &str,
) -> Vec<String> {
    pull_matches_as(addr, repo, tag, dir, layout, pushed, None)
}

/// [`pull_matches`] as `creds` (`user:password`) when given.
pub fn pull_matches_as(
    addr: &str,
    repo: &str,
    tag: &str,
    dir: &Path,
    layout: &Path,
    pushed: &str,
    creds: Option<&str>,
) -> Vec<String> {
    let back = dir.join(format!("back-{tag}"));
    let _ = std::fs::remove_dir_all(&back);
    let from = format!("docker://{addr}/{repo}:{tag}");
    let to = format!("oci:{}:{tag}", back.display());
    let mut args = vec!["copy", "--src-tls-verify=false"];
    if let Some(c) = creds {
        args.extend(["--src-creds", c]);
    }
    args.extend([from.as_str(), to.as_str()]);
    skopeo(&args);
    let manifest = layout_blob(&back, pushed);
    assert_eq!(manifest, layout_blob(layout, pushed), "the manifest");
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    let digests: Vec<String> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&m["config"]])
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    for d in &digests {
        assert_eq!(layout_blob(&back, d), layout_blob(layout, d), "{d}");
    }
    digests
}
