//! Three `berth serve` replicas that share nothing but an S3 bucket (s3s-fs) and a
//! PostgreSQL database, configured by a TOML file, driven by the real tools: podman
//! pushes through one, skopeo reads the same bytes through the others, podman pulls
//! through another and gets the digest it pushed, and skopeo copies through the third
//! into an `oci:` layout (checking every blob's digest as it goes).
//!
//! Run with `cargo test -p berth --test replicas`.

#[path = "interop/support.rs"]
mod support;

use std::fs;

use berth_testenv::{Postgres, S3};
use support::*;

#[test]
fn podman_and_skopeo_across_three_replicas() {
    let mut ctx = Ctx::new("replicas", &["podman", "buildah", "skopeo"]);
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let url = Postgres::shared().database();
    let config = ctx.path("berth.toml");
    fs::write(
        &config,
        format!(
            "metadata = {url:?}\nblob_store = \"s3://{bucket}/replicas\"\n\
             s3_endpoint = {:?}\ns3_access_key_id = {:?}\ns3_secret_access_key = {:?}\n",
            s3.endpoint(),
            S3::ACCESS_KEY,
            S3::SECRET_KEY
        ),
    )
    .unwrap();
    let args = ["--config".to_string(), config.display().to_string()];
    let regs: Vec<String> = (0..3)
        .map(|_| ctx.start_with(ServerKind::Berth, &args))
        .collect();
    let image = ctx.build_busybox("localhost/replicas/busybox:v1");
    let [pf, pv] = ctx.policy_args();
    let at = |i: usize| format!("{}/team/busybox:v1", regs[i]);

    ctx.step("podman push through replica 0");
    let pushed = ctx.push_digest(
        "podman",
        &[
            "push",
            &pf,
            &pv,
            "--tls-verify=false",
            &image,
            &format!("docker://{}", at(0)),
        ],
    );

    ctx.step("skopeo inspect --raw through replicas 1 and 2: the bytes podman pushed");
    for i in [1, 2] {
        let m = Manifest::parse(ctx.raw_manifest(&format!("docker://{}", at(i))));
        assert_eq!(ctx.sha256(&m.raw), pushed, "replica {i}");
        assert_eq!(m.layer_digests().len(), 1, "{}", m.json);
    }

    ctx.step("podman pull through replica 1 into an empty store");
    ctx.podman(&["rmi", "--all", "--force"]).run();
    ctx.podman(&["pull", &pf, &pv, "--tls-verify=false", &at(1)])
        .run();
    let digest = ctx
        .podman(&["image", "inspect", "--format", "{{.Digest}}", &at(1)])
        .run()
        .last_line();
    assert_eq!(digest, pushed);

    ctx.step("skopeo copy through replica 2 into an oci: layout");
    let layout = ctx.p("layout");
    ctx.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}", at(2)),
        &format!("oci:{layout}:v1"),
    ])
    .run();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(ctx.path("layout/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], pushed.as_str(), "{index}");

    ctx.step("no replica keeps a blob on its own disk");
    for (i, reg) in regs.iter().enumerate() {
        let root = ctx.berth_root(reg);
        let blobs = root.join("blobs");
        let files = fs::read_dir(&blobs)
            .map(|d| d.flatten().count())
            .unwrap_or(0);
        assert_eq!(files, 0, "replica {i} has files in {}", blobs.display());
    }
}
