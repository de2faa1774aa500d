//! The Containerfile rebuilt from a real history: buildah builds a small image
//! (`bud --layers`, ARG, ENV, LABEL, RUN with a build argument, WORKDIR, COPY, EXPOSE,
//! CMD) on a busybox base, pushes it to an OCI layout, and the steps read back from its
//! config and layers must be the Containerfile's lines with each layer's size.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use berth_inventory::{analyze_layer, squash, ImageHistory};
use serde_json::Value;
use support::require;

const CONTAINERFILE: &str = r#"FROM localhost/inv-base:1
ARG GREETING=hello
ENV APP_HOME=/app PATH=/bin
LABEL org.example.k="v 1"
RUN echo "$GREETING" > /greeting && mkdir -p /app
WORKDIR /app
COPY Containerfile /app/
EXPOSE 8080
CMD ["sh", "-c", "echo hi"]
"#;

struct Buildah<'a> {
    dir: &'a Path,
}

impl Buildah<'_> {
    fn run(&self, args: &[&str]) -> String {
        let d = |p: &str| self.dir.join(p).display().to_string();
        let out = Command::new("buildah")
            .args([
                "--storage-driver",
                "vfs",
                "--root",
                &d("storage"),
                "--runroot",
                &d("run"),
            ])
            .args(args)
            .output()
            .expect("running buildah");
        assert!(
            out.status.success(),
            "buildah {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

#[test]
fn buildah_history_becomes_the_containerfile() {
    require("buildah", "buildah");
    require("runc", "runc");
    require("busybox", "busybox-static");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let policy = dir.join("policy.json");
    fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let policy = policy.display().to_string();
    let b = Buildah { dir };

    // The base: busybox with the applets the build uses.
    let root = dir.join("root");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "mkdir"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let ctr = b.run(&["from", "--signature-policy", &policy, "scratch"]);
    let ctr = ctr.trim();
    b.run(&["copy", ctr, &root.display().to_string(), "/"]);
    b.run(&[
        "commit",
        "-q",
        "--signature-policy",
        &policy,
        ctr,
        "localhost/inv-base:1",
    ]);
    b.run(&["rm", ctr]);
    let base: Value =
        serde_json::from_str(&b.run(&["inspect", "--type", "image", "localhost/inv-base:1"]))
            .unwrap();
    let base_steps = base["OCIv1"]["history"].as_array().unwrap().len();

    let ctx = dir.join("context");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Containerfile"), CONTAINERFILE).unwrap();
    b.run(&[
        "bud",
        "-q",
        "--layers",
        "--signature-policy",
        &policy,
        "--build-arg",
        "GREETING=bonjour",
        "-t",
        "localhost/inv-hist:1",
        &ctx.display().to_string(),
    ]);
    let layout = dir.join("layout");
    b.run(&[
        "push",
        "--signature-policy",
        &policy,
        "localhost/inv-hist:1",
        &format!("oci:{}:hist", layout.display()),
    ]);

    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: Value = serde_json::from_slice(&blob(
        &layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let config = blob(&layout, manifest["config"]["digest"].as_str().unwrap());
    let layers = manifest["layers"].as_array().unwrap();
    let sizes: Vec<u64> = layers.iter().map(|l| l["size"].as_u64().unwrap()).collect();
    let history = ImageHistory::from_config(&config, &sizes).unwrap();
    let arts: Vec<_> = layers
        .iter()
        .map(|l| {
            let data = blob(&layout, l["digest"].as_str().unwrap());
            analyze_layer(std::io::Cursor::new(data), l["mediaType"].as_str().unwrap()).unwrap()
        })
        .collect();
    let inv = squash(&arts, Some(&history));
    let cf = inv.containerfile.expect("a containerfile");
    assert!(cf.reconstructed);
    assert_eq!(cf.steps.len(), history.history.len());

    // This build's steps against the Containerfile's lines (FROM is never recorded).
    let ours = &cf.steps[base_steps..];
    let lines: Vec<&str> = CONTAINERFILE.lines().skip(1).collect();
    assert_eq!(ours.len(), lines.len(), "{:#?}", cf.steps);
    for (step, line) in ours.iter().zip(&lines) {
        let got = step.instruction.as_str();
        match line.split_once(' ').unwrap() {
            // buildah records the argument's name, not its default.
            ("ARG", arg) => assert_eq!(got, format!("ARG {}", arg.split('=').next().unwrap())),
            // The source is recorded by content digest; the destination is kept.
            ("COPY", args) => {
                let dest = args.rsplit(' ').next().unwrap();
                assert!(
                    got.starts_with("COPY file:") && got.ends_with(&format!(" in {dest}")),
                    "{got}"
                );
            }
            _ => assert_eq!(got, *line),
        }
    }
    assert_eq!(cf.text.lines().count(), cf.steps.len());

    // The layer-making steps carry the layers, in order, with their sizes.
    let made: Vec<_> = cf
        .steps
        .iter()
        .filter_map(|s| Some((s.layer_size?, s.diff_id.clone()?)))
        .collect();
    let want: Vec<_> = history
        .layers
        .iter()
        .map(|l| (l.size, l.diff_id.clone()))
        .collect();
    assert_eq!(made, want);
    let layered: Vec<&str> = ours
        .iter()
        .filter(|s| s.layer_size.is_some())
        .map(|s| s.instruction.split(' ').next().unwrap())
        .collect();
    assert_eq!(layered, ["RUN", "COPY"]);
}
