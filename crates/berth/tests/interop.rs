//! Interop tests: berth against the containers tools (buildah, podman,
//! skopeo) and against the reference registry (distribution 2.8,
//! `docker-registry`).
//!
//! The peers are Debian packages (`scripts/install-peers.sh` installs them).
//! A missing peer fails the test; it is never skipped. Run with
//! `cargo test -p berth --test interop -- --test-threads=2`.

#[path = "interop/support.rs"]
mod support;

use std::fs;

use serde_json::Value;
use support::*;

const BUILDAH: &str = "buildah";
const PODMAN: &str = "podman";
const SKOPEO: &str = "skopeo";
const REGISTRY: &str = "docker-registry";
const CURL: &str = "curl";
const SHA256SUM: &str = "sha256sum";

/// buildah builds and pushes; skopeo inspects, lists and copies it back out.
#[test]
fn buildah_push_then_skopeo_reads() {
    let mut ctx = Ctx::new("buildah-push", &[BUILDAH, SKOPEO, CURL, SHA256SUM]);
    let reg = ctx.start(ServerKind::Berth);
    let image = ctx.build_busybox("localhost/test/busybox:v1");
    let dest = format!("docker://{reg}/test/busybox:v1");

    ctx.step("buildah push");
    let [pf, pv] = ctx.policy_args();
    let pushed = ctx.push_digest(
        "buildah",
        &["push", &pf, &pv, "--tls-verify=false", &image, &dest],
    );

    ctx.step("skopeo inspect --raw");
    let manifest = Manifest::parse(ctx.raw_manifest(&dest));
    assert_eq!(ctx.sha256(&manifest.raw), pushed, "digest of inspect --raw");
    assert_eq!(manifest.json["schemaVersion"], 2);
    assert_eq!(manifest.layer_digests().len(), 1, "{}", manifest.json);

    ctx.step("skopeo inspect");
    let info = ctx
        .skopeo(&["inspect", "--tls-verify=false", &dest])
        .run()
        .json();
    assert_eq!(info["Name"], format!("{reg}/test/busybox"), "{info:#}");
    assert_eq!(info["Digest"], pushed.as_str(), "{info:#}");
    assert_eq!(
        strings(&info["Layers"]),
        manifest.layer_digests(),
        "{info:#}"
    );
    assert!(
        strings(&info["RepoTags"]).contains(&"v1".to_string()),
        "{info:#}"
    );

    let formatted = ctx
        .skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &dest,
        ])
        .run()
        .last_line();
    assert_eq!(formatted, pushed);

    ctx.step("skopeo list-tags");
    let tags = ctx
        .skopeo(&[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{reg}/test/busybox"),
        ])
        .run()
        .json();
    assert_eq!(
        tags["Repository"],
        format!("{reg}/test/busybox"),
        "{tags:#}"
    );
    assert_eq!(strings(&tags["Tags"]), vec!["v1".to_string()], "{tags:#}");

    ctx.step("skopeo copy to dir:");
    let out = ctx.path("out");
    ctx.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &dest,
        &format!("dir:{}", out.display()),
    ])
    .run();
    let mut blob_files = Vec::new();
    for entry in std::fs::read_dir(&out).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let digest = ctx.sha256_file(&entry.path());
            assert_eq!(digest, format!("sha256:{name}"), "blob file {name} in dir:");
            blob_files.push(digest);
        }
    }
    blob_files.sort();
    let mut expected_blobs = manifest.blob_digests();
    expected_blobs.sort();
    assert_eq!(blob_files, expected_blobs, "blobs written to dir:");
    let dir_manifest = out.join("manifest.json");
    assert_eq!(std::fs::read(&dir_manifest).unwrap(), manifest.raw);
    let digest_of_copy = ctx
        .skopeo(&["manifest-digest", &dir_manifest.display().to_string()])
        .run()
        .last_line();
    assert_eq!(digest_of_copy, pushed, "skopeo manifest-digest of the copy");

    ctx.step("curl: manifest by tag and digest, blobs");
    ctx.assert_manifest_served(&reg, "test/busybox", "v1", &manifest, &pushed);
    ctx.assert_manifest_served(&reg, "test/busybox", &pushed, &manifest, &pushed);
    ctx.assert_blobs_served(&reg, "test/busybox", &manifest.blob_digests());

    ctx.step("berth exits on SIGTERM; the data survives a restart");
    let reg = ctx.restart(&reg);
    let dest = format!("docker://{reg}/test/busybox:v1");
    assert!(
        ctx.raw_manifest(&dest) == manifest.raw,
        "manifest after restart"
    );
    ctx.assert_manifest_served(&reg, "test/busybox", "v1", &manifest, &pushed);
    ctx.assert_blobs_served(&reg, "test/busybox", &manifest.blob_digests());
}

/// podman push, rmi, pull: same image ID and the registry's digest is the
/// one podman pushed.
#[test]
fn podman_push_pull_roundtrip() {
    let mut ctx = Ctx::new("podman", &[BUILDAH, PODMAN, SKOPEO, SHA256SUM]);
    let reg = ctx.start(ServerKind::Berth);
    let image = ctx.build_busybox("localhost/test/podman:v1");
    let [pf, pv] = ctx.policy_args();

    let id_before = ctx
        .podman(&["image", "inspect", "--format", "{{.Id}}", &image])
        .run()
        .last_line();

    ctx.step("podman push");
    let dest = format!("docker://{reg}/test/podman:v1");
    let pushed = ctx.push_digest(
        "podman",
        &["push", &pf, &pv, "--tls-verify=false", &image, &dest],
    );

    let manifest = Manifest::parse(ctx.raw_manifest(&dest));
    assert_eq!(
        ctx.sha256(&manifest.raw),
        pushed,
        "registry manifest digest"
    );
    assert_eq!(manifest.config_digest(), format!("sha256:{id_before}"));

    ctx.step("podman rmi");
    ctx.podman(&["rmi", &image]).run();
    ctx.podman(&["image", "exists", &image]).run_fail();

    ctx.step("podman pull");
    let pulled = ctx
        .podman(&["pull", &pf, &pv, "--tls-verify=false", &dest])
        .run()
        .last_line();
    assert_eq!(pulled, id_before, "image ID after pull");
    let local = format!("{reg}/test/podman:v1");
    let inspected = ctx
        .podman(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Digest}}",
            &local,
        ])
        .run()
        .last_line();
    assert_eq!(
        inspected,
        format!("{id_before} {pushed}"),
        "podman image inspect"
    );
}

/// distribution -> berth -> berth (another repo) -> distribution keeps every
/// manifest and blob byte-identical, for an OCI and a Docker v2s2 image.
#[test]
fn skopeo_copy_between_berth_and_distribution() {
    let mut ctx = Ctx::new("skopeo-hops", &[BUILDAH, SKOPEO, REGISTRY, CURL, SHA256SUM]);
    let berth = ctx.start(ServerKind::Berth);
    let dist = ctx.start(ServerKind::Distribution);
    let image = ctx.build_busybox("localhost/test/hops:v1");
    let [pf, pv] = ctx.policy_args();

    ctx.step("buildah push to an OCI layout");
    let layout = ctx.path("layout");
    let layout_ref = format!("oci:{}:v1", layout.display());
    ctx.buildah(&["push", &pf, &pv, &image, &layout_ref]).run();
    let layout_digest = oci_layout_digest(&layout);

    for (tag, format) in [("oci", None), ("v2s2", Some("v2s2"))] {
        ctx.step(&format!("{tag}: layout -> distribution"));
        let origin = format!("docker://{dist}/test/src:{tag}");
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        if let Some(format) = format {
            args.extend(["--format", format]);
        }
        args.extend([layout_ref.as_str(), origin.as_str()]);
        ctx.skopeo(&args).run();
        let first = Manifest::parse(ctx.raw_manifest(&origin));
        let digest = ctx.sha256(&first.raw);
        match format {
            None => {
                assert_eq!(digest, layout_digest, "layout -> distribution changed it");
                assert_eq!(first.media_type(), OCI_MANIFEST);
            }
            Some(_) => assert_eq!(first.media_type(), DOCKER_MANIFEST),
        }

        let hops = [
            (origin.clone(), format!("docker://{berth}/test/hops:{tag}")),
            (
                format!("docker://{berth}/test/hops:{tag}"),
                format!("docker://{berth}/test/mounted:{tag}"),
            ),
            (
                format!("docker://{berth}/test/mounted:{tag}"),
                format!("docker://{dist}/test/back:{tag}"),
            ),
        ];
        for (src, dst) in &hops {
            ctx.step(&format!("{tag}: {src} -> {dst}"));
            ctx.skopeo(&[
                "copy",
                "--preserve-digests",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                src,
                dst,
            ])
            .run();
            let copied = Manifest::parse(ctx.raw_manifest(dst));
            assert!(
                copied.raw == first.raw,
                "{dst} differs from {origin}:\n got: {}\nwant: {}",
                String::from_utf8_lossy(&copied.raw),
                String::from_utf8_lossy(&first.raw)
            );
            assert_eq!(ctx.sha256(&copied.raw), digest, "{dst}");
            let info = ctx
                .skopeo(&["inspect", "--tls-verify=false", dst])
                .run()
                .json();
            assert_eq!(info["Digest"], digest.as_str(), "{dst}: {info:#}");
            assert_eq!(strings(&info["Layers"]), first.layer_digests(), "{dst}");
        }

        ctx.assert_blobs_served(&dist, "test/back", &first.blob_digests());

        ctx.step(&format!("{tag}: curl berth"));
        for repo in ["test/hops", "test/mounted"] {
            ctx.assert_manifest_served(&berth, repo, tag, &first, &digest);
            ctx.assert_manifest_served(&berth, repo, &digest, &first, &digest);
            ctx.assert_blobs_served(&berth, repo, &first.blob_digests());
        }
    }
}

/// A two-platform index pushed by buildah, copied with `skopeo copy --all`
/// berth -> distribution -> berth.
#[test]
fn multi_arch_index() {
    let mut ctx = Ctx::new("multi-arch", &[BUILDAH, SKOPEO, REGISTRY, CURL, SHA256SUM]);
    let berth = ctx.start(ServerKind::Berth);
    let dist = ctx.start(ServerKind::Distribution);

    ctx.step("build amd64 and arm64 images, a manifest list, buildah manifest push --all");
    let dest = format!("docker://{berth}/test/multi:v1");
    let pushed = ctx.push_two_platforms("multi", &dest);

    let index = Manifest::parse(ctx.raw_manifest(&dest));
    assert_eq!(ctx.sha256(&index.raw), pushed, "index digest");
    assert!(
        [OCI_INDEX, DOCKER_LIST].contains(&index.media_type()),
        "{}",
        index.json
    );
    let children = index.children();
    let mut archs: Vec<&str> = children.values().map(|(_, a)| a.as_str()).collect();
    archs.sort();
    assert_eq!(archs, ["amd64", "arm64"], "{}", index.json);
    ctx.assert_manifest_served(&berth, "test/multi", "v1", &index, &pushed);

    ctx.step("curl: every child manifest by digest, and its blobs");
    let mut child_manifests = std::collections::BTreeMap::new();
    for (digest, (media_type, arch)) in &children {
        let url = format!("http://{berth}/v2/test/multi/manifests/{digest}");
        let child = ctx.http("GET", &url, Some(MANIFEST_ACCEPT));
        child
            .expect_status(200)
            .expect_header("content-type", media_type)
            .expect_header("docker-content-digest", digest);
        assert_eq!(ctx.sha256(&child.body), *digest, "{arch} child body");
        let child = Manifest::parse(child.body);
        ctx.assert_blobs_served(&berth, "test/multi", &child.blob_digests());
        child_manifests.insert(arch.clone(), child);
    }

    ctx.step("skopeo resolves the index per platform");
    for (arch, child) in &child_manifests {
        let info = ctx
            .skopeo(&[
                "--override-arch",
                arch,
                "--override-os",
                "linux",
                "inspect",
                "--tls-verify=false",
                &dest,
            ])
            .run()
            .json();
        // skopeo 1.9.3 reports the digest of the index it was given.
        assert_eq!(info["Digest"], pushed.as_str(), "{arch}: {info:#}");
        assert_eq!(info["Architecture"], arch.as_str(), "{arch}: {info:#}");
        assert_eq!(
            strings(&info["Layers"]),
            child.layer_digests(),
            "{arch}: {info:#}"
        );
    }

    let hops = [
        (dest.clone(), format!("docker://{dist}/test/multi:v1")),
        (
            format!("docker://{dist}/test/multi:v1"),
            format!("docker://{berth}/test/multi-copy:v1"),
        ),
    ];
    for (src, dst) in &hops {
        ctx.step(&format!("skopeo copy --all {src} -> {dst}"));
        ctx.skopeo(&[
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            src,
            dst,
        ])
        .run();
        let copied = ctx.raw_manifest(dst);
        assert!(
            copied == index.raw,
            "{dst}: index differs\n got: {}\nwant: {}",
            String::from_utf8_lossy(&copied),
            String::from_utf8_lossy(&index.raw)
        );
    }
    ctx.assert_manifest_served(&berth, "test/multi-copy", "v1", &index, &pushed);
    for (digest, (media_type, _)) in &children {
        let url = format!("http://{berth}/v2/test/multi-copy/manifests/{digest}");
        let child = ctx.http("GET", &url, Some(MANIFEST_ACCEPT));
        child
            .expect_status(200)
            .expect_header("content-type", media_type)
            .expect_header("docker-content-digest", digest);
        assert_eq!(ctx.sha256(&child.body), *digest);
        let child = Manifest::parse(child.body);
        ctx.assert_blobs_served(&berth, "test/multi-copy", &child.blob_digests());
    }
}

/// `skopeo delete` by tag deletes the manifest in that repository only.
#[test]
fn skopeo_delete() {
    let mut ctx = Ctx::new("delete", &[BUILDAH, SKOPEO, CURL, SHA256SUM]);
    let reg = ctx.start(ServerKind::Berth);
    let image = ctx.build_busybox("localhost/test/busybox:v1");
    let [pf, pv] = ctx.policy_args();
    let target = format!("docker://{reg}/test/busybox:v1");
    let other = format!("docker://{reg}/test/other:v1");
    for dest in [&target, &other] {
        ctx.buildah(&["push", &pf, &pv, "--tls-verify=false", &image, dest])
            .run();
    }
    let manifest = Manifest::parse(ctx.raw_manifest(&target));
    let digest = ctx.sha256(&manifest.raw);
    assert_eq!(ctx.sha256(&ctx.raw_manifest(&other)), digest);

    ctx.step("skopeo delete");
    ctx.skopeo(&["delete", "--tls-verify=false", &target]).run();

    ctx.step("skopeo inspect fails");
    let failed = ctx
        .skopeo(&["inspect", "--tls-verify=false", &target])
        .run_fail();
    let error = failed.error_lines().to_ascii_lowercase();
    assert!(
        error.contains("manifest unknown") || error.contains("not found"),
        "skopeo inspect after delete should fail with manifest unknown / not found, got:\n{}",
        failed.error_lines()
    );

    ctx.step("curl: tag and digest are gone");
    for reference in ["v1", digest.as_str()] {
        let url = format!("http://{reg}/v2/test/busybox/manifests/{reference}");
        ctx.http("GET", &url, Some(MANIFEST_ACCEPT))
            .expect_status(404);
        ctx.http("HEAD", &url, Some(MANIFEST_ACCEPT))
            .expect_status(404);
    }

    ctx.step("skopeo list-tags no longer lists v1");
    let listed = ctx
        .skopeo(&[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{reg}/test/busybox"),
        ])
        .run_any();
    if listed.status.success() {
        let tags = listed.json();
        assert!(
            !strings(&tags["Tags"]).contains(&"v1".to_string()),
            "v1 still listed: {tags:#}"
        );
    } else {
        let error = listed.error_lines().to_ascii_lowercase();
        assert!(
            error.contains("name unknown") || error.contains("not found"),
            "list-tags failed, but not with name unknown / not found:\n{}",
            listed.error_lines()
        );
    }

    ctx.step("the other repository is untouched");
    ctx.assert_manifest_served(&reg, "test/other", "v1", &manifest, &digest);
    ctx.assert_blobs_served(&reg, "test/other", &manifest.blob_digests());
}

/// The same image pushed as OCI and as Docker v2s2: each tag keeps its media
/// type, and the server's Content-Type says so.
#[test]
fn oci_and_docker_formats() {
    let mut ctx = Ctx::new("formats", &[BUILDAH, SKOPEO, CURL, SHA256SUM]);
    let reg = ctx.start(ServerKind::Berth);
    let image = ctx.build_busybox("localhost/test/formats:v1");
    let [pf, pv] = ctx.policy_args();

    for (tag, manifest_type, config_type) in [
        ("oci", OCI_MANIFEST, OCI_CONFIG),
        ("v2s2", DOCKER_MANIFEST, DOCKER_CONFIG),
    ] {
        ctx.step(&format!("buildah push --format {tag}"));
        let dest = format!("docker://{reg}/test/formats:{tag}");
        let pushed = ctx.push_digest(
            "buildah",
            &[
                "push",
                &pf,
                &pv,
                "--tls-verify=false",
                "--format",
                tag,
                &image,
                &dest,
            ],
        );
        let manifest = Manifest::parse(ctx.raw_manifest(&dest));
        assert_eq!(ctx.sha256(&manifest.raw), pushed, "{tag}: digest");
        assert_eq!(
            manifest.media_type(),
            manifest_type,
            "{tag}: {}",
            manifest.json
        );
        assert_eq!(
            manifest.json["config"]["mediaType"], config_type,
            "{tag}: {}",
            manifest.json
        );
        ctx.assert_manifest_served(&reg, "test/formats", tag, &manifest, &pushed);
        ctx.assert_manifest_served(&reg, "test/formats", &pushed, &manifest, &pushed);
        ctx.assert_blobs_served(&reg, "test/formats", &manifest.blob_digests());
    }

    let tags = ctx
        .skopeo(&[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{reg}/test/formats"),
        ])
        .run()
        .json();
    let mut listed = strings(&tags["Tags"]);
    listed.sort();
    assert_eq!(listed, ["oci", "v2s2"], "{tags:#}");
}

/// Access control with the real clients: `podman login`/`skopeo login` write
/// `${XDG_RUNTIME_DIR}/containers/auth.json` and then push and pull work through the
/// token flow; after `podman logout` a push is refused; `skopeo copy --dest-creds`
/// works and is refused for a read-only user; anonymous `podman pull` of a public
/// repository needs no login. Accounts are made with `berth registry --root` while
/// the server runs.
#[test]
fn login_push_pull_with_access_control() {
    let mut ctx = Ctx::new("auth", &[BUILDAH, PODMAN, SKOPEO]);
    let reg = ctx.start(ServerKind::Berth);
    let root = ctx.berth_root(&reg).display().to_string();
    ctx.use_default_auth_file();
    let image = ctx.build_busybox("localhost/test/auth:v1");
    let [pf, pv] = ctx.policy_args();
    let auth_file = ctx.path("xdg-run/containers/auth.json");

    ctx.step("berth registry: users, a public repository, a read-only grant");
    for (user, pw) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        ctx.add_registry_user(&root, user, pw);
    }
    ctx.berth(&[
        "registry",
        "--root",
        &root,
        "repo",
        "visibility",
        "alice/pub",
        "public",
    ])
    .run();
    ctx.berth(&[
        "registry",
        "--root",
        &root,
        "grant",
        "bob",
        "read",
        "alice/app",
    ])
    .run();

    ctx.step("push without login is refused");
    let app = format!("docker://{reg}/alice/app:v1");
    let out = ctx
        .podman(&["push", &pf, &pv, "--tls-verify=false", &image, &app])
        .run_fail();
    assert!(
        out.stderr.contains("authentication required") || out.stderr.contains("unauthorized"),
        "{}",
        out.error_lines()
    );

    ctx.step("podman login with a wrong password fails and saves nothing");
    ctx.podman(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "nope",
        &reg,
    ])
    .run_fail();
    assert!(
        !fs::read_to_string(&auth_file)
            .unwrap_or_default()
            .contains(&reg),
        "a failed login wrote credentials"
    );

    ctx.step("podman login writes XDG_RUNTIME_DIR/containers/auth.json");
    ctx.podman(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "alice-pw",
        &reg,
    ])
    .run();
    let saved: Value = serde_json::from_str(&fs::read_to_string(&auth_file).unwrap()).unwrap();
    assert_eq!(saved["auths"][&reg]["auth"], "YWxpY2U6YWxpY2UtcHc="); // alice:alice-pw

    ctx.step("podman push and pull as alice");
    let pushed = ctx.push_digest(
        "podman",
        &["push", &pf, &pv, "--tls-verify=false", &image, &app],
    );
    let public = format!("docker://{reg}/alice/pub:v1");
    ctx.podman(&["push", &pf, &pv, "--tls-verify=false", &image, &public])
        .run();
    ctx.podman(&["rmi", &image]).run();
    ctx.podman(&["pull", &pf, &pv, "--tls-verify=false", &app])
        .run();

    ctx.step("podman logout, then a push is refused");
    ctx.podman(&["logout", &reg]).run();
    let saved = fs::read_to_string(&auth_file).unwrap_or_default();
    assert!(!saved.contains(&reg), "logout left {saved}");
    let local = format!("{reg}/alice/app:v1");
    let again = format!("docker://{reg}/alice/app:v2");
    ctx.podman(&["push", &pf, &pv, "--tls-verify=false", &local, &again])
        .run_fail();

    ctx.step("anonymous pull: public works, private is refused");
    ctx.podman(&["rmi", "-a", "-f"]).run();
    ctx.podman(&["pull", &pf, &pv, "--tls-verify=false", &public])
        .run();
    ctx.podman(&["pull", &pf, &pv, "--tls-verify=false", &app])
        .run_fail();

    ctx.step("skopeo login, inspect, logout");
    ctx.skopeo(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "alice-pw",
        &reg,
    ])
    .run();
    let saved: Value = serde_json::from_str(&fs::read_to_string(&auth_file).unwrap()).unwrap();
    assert_eq!(saved["auths"][&reg]["auth"], "YWxpY2U6YWxpY2UtcHc=");
    let digest = ctx
        .skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &app,
        ])
        .run()
        .last_line();
    assert_eq!(digest, pushed);
    ctx.skopeo(&["logout", &reg]).run();
    ctx.skopeo(&["inspect", "--tls-verify=false", &app])
        .run_fail();

    ctx.step("--username and --password, as skopeo's inspect and list-tags take them");
    let repo = format!("docker://{reg}/alice/app");
    for tool in ["skopeo", "berth"] {
        let run = |args: &[&str]| match tool {
            "skopeo" => ctx.skopeo(args),
            _ => ctx.berth(args),
        };
        let inspect = ["inspect", "--tls-verify=false", "--format", "{{.Digest}}"];
        let account = ["--username", "alice", "--password", "alice-pw"];
        let digest = run(&[&inspect[..], &account, &[app.as_str()]].concat())
            .run()
            .last_line();
        assert_eq!(digest, pushed, "{tool}");
        let tags = run(&[&["list-tags", "--tls-verify=false"][..], &account, &[&repo]].concat())
            .run()
            .json();
        assert!(
            tags["Tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{tool}: {tags}"
        );
        for wrong in [
            &["--username", "alice"][..],
            &["--username", "alice", "--password", "nope"],
            &[
                "--username",
                "alice",
                "--password",
                "alice-pw",
                "--creds",
                "alice:alice-pw",
            ],
        ] {
            let out = run(&[&inspect[..], wrong, &[app.as_str()]].concat()).run_fail();
            assert_eq!(
                out.status.code(),
                Some(1),
                "{tool} {wrong:?}: {}",
                out.error_lines()
            );
        }
    }

    ctx.step("skopeo copy --dest-creds; a read-only user is refused");
    let copy = format!("docker://{reg}/alice/copy:v1");
    ctx.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        "alice:alice-pw",
        "--dest-creds",
        "alice:alice-pw",
        &app,
        &copy,
    ])
    .run();
    let denied = format!("docker://{reg}/alice/by-bob:v1");
    let out = ctx
        .skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            "bob:bob-pw",
            "--dest-creds",
            "bob:bob-pw",
            &app,
            &denied,
        ])
        .run_fail();
    assert!(
        out.stderr.contains("denied") || out.stderr.contains("403 (Forbidden)"),
        "{}",
        out.error_lines()
    );
    let tags = ctx
        .skopeo(&[
            "list-tags",
            "--tls-verify=false",
            "--creds",
            "alice:alice-pw",
            &format!("docker://{reg}/alice/copy"),
        ])
        .run()
        .json();
    assert_eq!(tags["Tags"], serde_json::json!(["v1"]));
    ctx.skopeo(&[
        "list-tags",
        "--tls-verify=false",
        "--creds",
        "alice:alice-pw",
        &format!("docker://{reg}/alice/by-bob"),
    ])
    .run_fail();
}

/// `berth inspect`, `list-tags`, `manifest-digest` and `delete` print what skopeo
/// prints for the same images (single and multi-platform); `berth login` and
/// `podman login` share auth.json both ways; a missing image exits 2 as in skopeo.
#[test]
fn client_commands_match_skopeo() {
    let mut ctx = Ctx::new("client", &[BUILDAH, PODMAN, SKOPEO]);
    let reg = ctx.start(ServerKind::Berth);
    let root = ctx.berth_root(&reg).display().to_string();
    let [pf, pv] = ctx.policy_args();
    let image = ctx.build_busybox("localhost/test/cli:v1");
    for tag in ["v1", "v2"] {
        ctx.buildah(&[
            "push",
            &pf,
            &pv,
            "--tls-verify=false",
            &image,
            &format!("docker://{reg}/test/cli:{tag}"),
        ])
        .run();
    }
    let multi = format!("docker://{reg}/test/multi:v1");
    ctx.push_two_platforms("cli", &multi);

    let both = |args: &[&str]| {
        let mut b = vec![args[0], "--tls-verify=false"];
        b.extend(&args[1..]);
        let berth = ctx.berth(&b).run();
        let skopeo = ctx.skopeo(&b).run();
        (berth, skopeo)
    };
    let app = format!("docker://{reg}/test/cli:v1");
    for target in [app.as_str(), multi.as_str()] {
        ctx.step(&format!("inspect {target}"));
        let (b, s) = both(&["inspect", target]);
        let mut bj = b.json();
        let sj = s.json();
        let platforms = bj.as_object_mut().unwrap().remove("Platforms");
        // skopeo 1.10 added LayersData; 1.9.3, the peer here, does not print it.
        let layers_data = bj.as_object_mut().unwrap().remove("LayersData").unwrap();
        let data_digests: Vec<&serde_json::Value> = layers_data
            .as_array()
            .unwrap()
            .iter()
            .map(|l| &l["Digest"])
            .collect();
        let layers: Vec<&serde_json::Value> = bj["Layers"].as_array().unwrap().iter().collect();
        assert_eq!(data_digests, layers);
        assert_eq!(bj, sj, "berth:\n{}\nskopeo:\n{}", b.stdout, s.stdout);
        assert_eq!(platforms.is_some(), target == multi, "{}", b.stdout);
        let (b, s) = both(&["inspect", "--raw", target]);
        assert_eq!(b.stdout_bytes, s.stdout_bytes, "--raw");
        let (b, s) = both(&["inspect", "--raw", "--config", target]);
        assert_eq!(b.stdout_bytes, s.stdout_bytes, "--raw --config");
        let format = "{{.Digest}} {{.Architecture}} {{range .RepoTags}}{{.}},{{end}} {{.Labels}} {{index .Labels \"io.buildah.version\"}}";
        let (b, s) = both(&["inspect", "--format", format, target]);
        assert_eq!(b.stdout, s.stdout, "--format");
        // `json` came to skopeo's templates after 1.9.3; berth has it.
        let b = ctx
            .berth(&[
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{json .RepoTags}}",
                target,
            ])
            .run();
        let tags = serde_json::to_string(&sj["RepoTags"]).unwrap();
        assert_eq!(b.stdout.trim(), tags);
        let (b, s) = both(&["inspect", "--no-tags", target]);
        assert_eq!(b.json()["RepoTags"], s.json()["RepoTags"], "--no-tags");
    }
    ctx.step("inspect --override-arch arm64 of the index");
    let (b, s) = both(&["inspect", "--override-arch", "arm64", &multi]);
    assert_eq!(b.json()["Architecture"], "arm64");
    assert_eq!(b.json()["Layers"], s.json()["Layers"]);

    ctx.step("list-tags and manifest-digest");
    let repo = format!("docker://{reg}/test/cli");
    let (b, s) = both(&["list-tags", &repo]);
    assert_eq!(b.json(), s.json());
    assert_eq!(b.stdout, s.stdout, "list-tags formatting");
    let raw = ctx
        .berth(&["inspect", "--tls-verify=false", "--raw", &app])
        .run();
    let file = ctx.path("manifest.json");
    fs::write(&file, &raw.stdout_bytes).unwrap();
    let f = file.display().to_string();
    let b = ctx.berth(&["manifest-digest", &f]).run();
    let s = ctx.skopeo(&["manifest-digest", &f]).run();
    assert_eq!(b.stdout, s.stdout);

    ctx.step("a bare name is a local image, as podman inspect reads it: 125 when unknown");
    let out = ctx.berth(&["inspect", "just-a-name"]).run_any();
    assert_eq!(out.status.code(), Some(125), "{}", out.stderr);
    // podman 4.3.1's words (inspect looks for containers too).
    assert_eq!(
        out.stderr.trim(),
        "Error: inspecting object: no such object: \"just-a-name\""
    );
    ctx.step("errors: missing image exits 2, bad names exit 1 with one line");
    let missing = format!("docker://{reg}/test/cli:nope");
    let out = ctx
        .berth(&["inspect", "--tls-verify=false", &missing])
        .run_any();
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    // skopeo 1.9.3 answers 1 here ("best effort"); berth always says 2 for "not found".
    for bad in ["nope://x/y", "docker:x/y", "docker://UPPER/Case"] {
        let out = ctx.berth(&["inspect", bad]).run_any();
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim_end().lines().count(),
            1,
            "{bad}: {}",
            out.stderr
        );
    }

    ctx.step("delete of a tag removes that tag alone on berth (which deletes tags)");
    let v2 = format!("docker://{reg}/test/cli:v2");
    ctx.berth(&["delete", "--tls-verify=false", &v2]).run();
    ctx.skopeo(&["inspect", "--tls-verify=false", &v2])
        .run_fail();
    let out = ctx.berth(&["inspect", "--tls-verify=false", &v2]).run_any();
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let out = ctx.berth(&["inspect", "--tls-verify=false", &app]).run();
    assert_eq!(
        out.json()["RepoTags"],
        serde_json::json!(["v1"]),
        "v1 stays"
    );
    let out = ctx.berth(&["delete", "--tls-verify=false", &v2]).run_any();
    assert_eq!(
        out.status.code(),
        Some(2),
        "deleting it again: {}",
        out.stderr
    );

    ctx.step("login: berth writes what skopeo reads, podman writes what berth reads");
    ctx.berth(&[
        "registry",
        "--root",
        &root,
        "user",
        "add",
        "alice",
        "--superuser",
        "--password-stdin",
    ])
    .stdin(b"alice-pw\n")
    .run();
    let out = ctx
        .berth(&[
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "-p",
            "wrong",
            &reg,
        ])
        .run_any();
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    ctx.berth(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "alice-pw",
        &reg,
    ])
    .run();
    let got = ctx.skopeo(&["login", "--get-login", &reg]).run();
    assert_eq!(got.last_line(), "alice");
    let mine = format!("docker://{reg}/alice/app:v1");
    ctx.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &multi,
        &mine,
    ])
    .run();
    ctx.berth(&["logout", &reg]).run();
    let out = ctx
        .berth(&["inspect", "--tls-verify=false", &mine])
        .run_any();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a logged-out inspect of a private image: {}",
        out.stderr
    );
    ctx.podman(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "alice-pw",
        &reg,
    ])
    .run();
    let b = ctx.berth(&["inspect", "--tls-verify=false", &mine]).run();
    assert_eq!(b.json()["RepoTags"], serde_json::json!(["v1"]));
    let tags = ctx
        .berth(&[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{reg}/alice/app"),
        ])
        .run();
    assert_eq!(tags.json()["Tags"], serde_json::json!(["v1"]));
}

/// `berth copy` between registries (berth, docker-registry) and OCI layouts: skopeo
/// reads what berth writes and the reverse, digests unchanged; a second copy skips
/// what is there; a blob served with the wrong digest fails the copy and leaves no
/// manifest; policy.json is enforced.
#[test]
fn copy_between_registries_and_layouts() {
    let mut ctx = Ctx::new("copy", &[BUILDAH, SKOPEO, REGISTRY]);
    let berth = ctx.start(ServerKind::Berth);
    let dist = ctx.start(ServerKind::Distribution);
    let [pf, pv] = ctx.policy_args();
    let policy = ctx.p("policy.json");
    let image = ctx.build_busybox("localhost/test/copy:v1");
    let src = format!("docker://{berth}/test/src:v1");
    ctx.buildah(&["push", &pf, &pv, "--tls-verify=false", &image, &src])
        .run();
    let raw = |name: &str| {
        ctx.skopeo(&["inspect", "--tls-verify=false", "--raw", name])
            .run()
            .stdout_bytes
    };
    let copy = |from: &str, to: &str, extra: &[&str]| {
        let mut args = vec![
            "copy",
            "--policy",
            policy.as_str(),
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ];
        args.extend(extra);
        args.extend([from, to]);
        ctx.berth(&args).run()
    };
    let original = raw(&src);

    ctx.step("berth -> berth (mount), berth -> docker-registry");
    let out = copy(&src, &format!("docker://{berth}/test/dst:v1"), &[]);
    assert!(out.stderr.contains("mounted"), "{}", out.stderr);
    assert_eq!(raw(&format!("docker://{berth}/test/dst:v1")), original);
    let in_dist = format!("docker://{dist}/test/copy:v1");
    copy(&src, &in_dist, &[]);
    assert_eq!(raw(&in_dist), original);
    let again = copy(&src, &in_dist, &[]);
    assert!(
        again.stderr.contains("skipped: already exists"),
        "{}",
        again.stderr
    );
    ctx.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &in_dist,
        &format!("dir:{}", ctx.p("from-dist")),
    ])
    .run();

    ctx.step("berth -> oci: layout that skopeo reads; skopeo -> oci: layout that berth reads");
    let layout = format!("oci:{}:v1", ctx.p("layout"));
    let digestfile = ctx.p("digest");
    copy(&src, &layout, &["--digestfile", &digestfile]);
    assert_eq!(
        ctx.skopeo(&["inspect", "--raw", &layout])
            .run()
            .stdout_bytes,
        original
    );
    assert_eq!(
        fs::read_to_string(&digestfile).unwrap(),
        ctx.sha256(&original)
    );
    let back = format!("docker://{berth}/test/from-berth-layout:v1");
    ctx.skopeo(&["copy", "--dest-tls-verify=false", &layout, &back])
        .run();
    assert_eq!(raw(&back), original);
    let skopeo_layout = format!("oci:{}:v2", ctx.p("skopeo-layout"));
    ctx.skopeo(&["copy", "--src-tls-verify=false", &src, &skopeo_layout])
        .run();
    let written = ctx
        .skopeo(&["inspect", "--raw", &skopeo_layout])
        .run()
        .stdout_bytes;
    let again_in_berth = format!("docker://{berth}/test/from-skopeo-layout:v2");
    copy(&skopeo_layout, &again_in_berth, &[]);
    assert_eq!(raw(&again_in_berth), written);

    ctx.step("dir: berth writes what skopeo reads, and reads what skopeo wrote");
    let dir = format!("dir:{}", ctx.p("berth-dir"));
    copy(&src, &dir, &[]);
    assert_eq!(
        ctx.skopeo(&["inspect", "--raw", &dir]).run().stdout_bytes,
        original
    );
    assert_eq!(
        fs::read_to_string(ctx.path("berth-dir/version")).unwrap(),
        "Directory Transport Version: 1.1\n"
    );
    let from_dir = format!("docker://{dist}/test/from-berth-dir:v1");
    ctx.skopeo(&["copy", "--dest-tls-verify=false", &dir, &from_dir])
        .run();
    assert_eq!(raw(&from_dir), original);
    let skopeo_dir = format!("dir:{}", ctx.p("from-dist"));
    let from_skopeo_dir = format!("docker://{berth}/test/from-skopeo-dir:v1");
    copy(&skopeo_dir, &from_skopeo_dir, &[]);
    assert_eq!(raw(&from_skopeo_dir), original);

    ctx.step("oci-archive: berth writes what skopeo reads, and reads what skopeo wrote");
    let archive = format!("oci-archive:{}:v1", ctx.p("berth.tar"));
    copy(&src, &archive, &[]);
    assert_eq!(
        ctx.skopeo(&["inspect", "--raw", &archive])
            .run()
            .stdout_bytes,
        original
    );
    let from_archive = format!("docker://{dist}/test/from-berth-archive:v1");
    ctx.skopeo(&["copy", "--dest-tls-verify=false", &archive, &from_archive])
        .run();
    assert_eq!(raw(&from_archive), original);
    let skopeo_archive = format!("oci-archive:{}:v3", ctx.p("skopeo.tar"));
    ctx.skopeo(&["copy", "--src-tls-verify=false", &src, &skopeo_archive])
        .run();
    let written = ctx
        .skopeo(&["inspect", "--raw", &skopeo_archive])
        .run()
        .stdout_bytes;
    let back = format!("docker://{berth}/test/from-skopeo-archive:v3");
    copy(&skopeo_archive, &back, &[]);
    assert_eq!(raw(&back), written);
    assert!(
        fs::read_dir(ctx.path("")).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".berth-oci-archive")),
        "a temporary layout was left behind"
    );

    ctx.step("docker-archive: berth writes what skopeo reads, and reads what skopeo wrote");
    let config_digest = src_config_digest(&original);
    let da = format!(
        "docker-archive:{}:localhost/test/da:v1",
        ctx.p("berth-da.tar")
    );
    copy(&src, &da, &[]);
    let seen = ctx
        .skopeo(&["inspect", "--raw", "--config", &da])
        .run()
        .stdout_bytes;
    assert_eq!(ctx.sha256(&seen), config_digest, "the config is kept as is");
    let diff_ids = |config: &[u8]| -> Value {
        serde_json::from_slice::<Value>(config).unwrap()["rootfs"]["diff_ids"].clone()
    };
    let from_da = format!("docker://{dist}/test/from-berth-da:v1");
    ctx.skopeo(&["copy", "--dest-tls-verify=false", &da, &from_da])
        .run();
    let skopeo_da = format!(
        "docker-archive:{}:localhost/test/sda:v1",
        ctx.p("skopeo-da.tar")
    );
    ctx.skopeo(&["copy", "--src-tls-verify=false", &src, &skopeo_da])
        .run();
    let from_skopeo_da = format!("docker://{berth}/test/from-skopeo-da:v1");
    copy(&skopeo_da, &from_skopeo_da, &[]);
    let back_config = ctx
        .skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            "--config",
            &from_skopeo_da,
        ])
        .run()
        .stdout_bytes;
    assert_eq!(ctx.sha256(&back_config), config_digest);
    assert_eq!(diff_ids(&back_config), diff_ids(&seen));

    for tar in ["berth-da.tar", "skopeo-da.tar"] {
        let name = format!("docker-archive:{}", ctx.p(tar));
        let b = ctx.berth(&["list-tags", &name]).run();
        let s = ctx.skopeo(&["list-tags", &name]).run();
        assert_eq!(b.stdout, s.stdout, "list-tags {tar}");
    }

    ctx.step("the chain berth -> docker-registry -> berth -> oci-archive -> docker-archive -> dir keeps the image");
    let hop1 = format!("docker://{dist}/test/chain:v1");
    let hop2 = format!("docker://{berth}/test/chain:v1");
    let hop3 = format!("oci-archive:{}:v1", ctx.p("chain.tar"));
    let hop4 = format!(
        "docker-archive:{}:localhost/test/chain:v1",
        ctx.p("chain-da.tar")
    );
    let hop5 = format!("dir:{}", ctx.p("chain-dir"));
    copy(&src, &hop1, &[]);
    copy(&hop1, &hop2, &[]);
    copy(&hop2, &hop3, &[]);
    assert_eq!(raw(&hop2), original);
    assert_eq!(
        ctx.skopeo(&["inspect", "--raw", &hop3]).run().stdout_bytes,
        original
    );
    copy(&hop3, &hop4, &[]);
    copy(&hop4, &hop5, &[]);
    // A docker archive keeps layers uncompressed: the manifest is a new one, the image
    // (config, so its ID, and the uncompressed layers) is the same.
    let end_config = ctx
        .skopeo(&["inspect", "--raw", "--config", &hop5])
        .run()
        .stdout_bytes;
    assert_eq!(ctx.sha256(&end_config), config_digest);
    let end: Value =
        serde_json::from_slice(&ctx.skopeo(&["inspect", "--raw", &hop5]).run().stdout_bytes)
            .unwrap();
    let end_layers: Vec<Value> = end["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    assert_eq!(Value::Array(end_layers), diff_ids(&end_config));

    ctx.step("delete of a tag on docker-registry (no tag deletes) deletes the manifest");
    let out = ctx.berth(&["delete", "--tls-verify=false", &hop1]).run();
    assert!(
        out.stderr.contains("does not delete tags"),
        "{}",
        out.stderr
    );
    ctx.skopeo(&["inspect", "--tls-verify=false", &hop1])
        .run_fail();

    ctx.step("multi-platform: --all copies the index and every image");
    let multi = format!("docker://{berth}/test/multi:v1");
    ctx.push_two_platforms("copy", &multi);
    let multi_dist = format!("docker://{dist}/test/multi:v1");
    copy(&multi, &multi_dist, &["--all"]);
    let index = raw(&multi_dist);
    assert_eq!(index, raw(&multi));
    let parsed: Value = serde_json::from_slice(&index).unwrap();
    for child in parsed["manifests"].as_array().unwrap() {
        let d = child["digest"].as_str().unwrap();
        ctx.skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{dist}/test/multi@{d}"),
        ])
        .run();
    }
    // Without --all: this machine's image alone, under the tag.
    let single = format!("docker://{dist}/test/multi-one:v1");
    copy(&multi, &single, &["--override-arch", "arm64"]);
    let one: Value = serde_json::from_slice(&raw(&single)).unwrap();
    assert!(one.get("layers").is_some(), "{one}");

    ctx.step("--format v2s2 / oci convert as skopeo does, and say the digest changed");
    let src_json: Value = serde_json::from_slice(&original).unwrap();
    let to = |fmt: &str| {
        if fmt == "v2s2" {
            "application/vnd.docker.distribution.manifest.v2+json"
        } else {
            "application/vnd.oci.image.manifest.v1+json"
        }
    };
    for fmt in ["v2s2", "oci"] {
        let by_berth = format!("docker://{dist}/test/berth-{fmt}:v1");
        let out = copy(&src, &by_berth, &["--format", fmt]);
        let by_skopeo = format!("docker://{dist}/test/skopeo-{fmt}:v1");
        ctx.skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--format",
            fmt,
            &src,
            &by_skopeo,
        ])
        .run();
        let b: Value = serde_json::from_slice(&raw(&by_berth)).unwrap();
        let s: Value = serde_json::from_slice(&raw(&by_skopeo)).unwrap();
        assert_eq!(b["mediaType"], to(fmt), "{b}");
        assert_eq!(b["mediaType"], s["mediaType"]);
        let layers = |v: &Value| -> Vec<(Value, Value)> {
            v["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| (l["mediaType"].clone(), l["digest"].clone()))
                .collect()
        };
        assert_eq!(layers(&b), layers(&s), "layers after --format {fmt}");
        if src_json["mediaType"] == to(fmt) {
            assert_eq!(raw(&by_berth), original, "no conversion needed");
        } else {
            assert!(
                out.stderr.contains("Manifest digest changed"),
                "{}",
                out.stderr
            );
            if fmt == "v2s2" {
                // OCI -> v2s2 keeps the config byte-identical.
                assert_eq!(b["config"]["digest"], src_json["config"]["digest"]);
            }
        }
        // Readable as an image by skopeo (the config is fetched and parsed).
        ctx.skopeo(&["inspect", "--tls-verify=false", &by_berth])
            .run();
    }
    let out = ctx
        .berth(&[
            "copy",
            "--policy",
            &policy,
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--format",
            if src_json["mediaType"] == to("oci") {
                "v2s2"
            } else {
                "oci"
            },
            "--preserve-digests",
            &src,
            &format!("docker://{dist}/test/preserved:v1"),
        ])
        .run_fail();
    assert!(out.stderr.contains("preserve-digests"), "{}", out.stderr);
    let all_v2s2 = format!("docker://{dist}/test/multi-v2s2:v1");
    copy(&multi, &all_v2s2, &["--all", "--format", "v2s2"]);
    let list: Value = serde_json::from_slice(&raw(&all_v2s2)).unwrap();
    assert_eq!(
        list["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    for child in list["manifests"].as_array().unwrap() {
        assert_eq!(child["mediaType"], to("v2s2"));
        let d = child["digest"].as_str().unwrap();
        let m: Value = serde_json::from_slice(
            &ctx.skopeo(&[
                "inspect",
                "--tls-verify=false",
                "--raw",
                &format!("docker://{dist}/test/multi-v2s2@{d}"),
            ])
            .run()
            .stdout_bytes,
        )
        .unwrap();
        assert_eq!(m["mediaType"], to("v2s2"));
    }

    ctx.step("--dest-compress-format zstd then gzip: new layer digests, same content");
    let zst = format!("oci:{}:zst", ctx.p("zst-layout"));
    let out = copy(
        &src,
        &zst,
        &["--format", "oci", "--dest-compress-format", "zstd"],
    );
    assert!(out.stderr.contains("Recompressing blob"), "{}", out.stderr);
    let zm: Value =
        serde_json::from_slice(&ctx.skopeo(&["inspect", "--raw", &zst]).run().stdout_bytes)
            .unwrap();
    for l in zm["layers"].as_array().unwrap() {
        assert_eq!(
            l["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
            "{zm}"
        );
    }
    // skopeo reads the zstd layers (it decompresses them to verify nothing, so copy
    // them somewhere that needs their content: a docker archive, which berth checks
    // against the config's diff IDs).
    let zst_in_dist = format!("docker://{dist}/test/zstd:v1");
    ctx.skopeo(&["copy", "--dest-tls-verify=false", &zst, &zst_in_dist])
        .run();
    let checked = format!(
        "docker-archive:{}:localhost/test/zst:v1",
        ctx.p("zst-da.tar")
    );
    copy(&zst_in_dist, &checked, &[]);
    let gz = format!("oci:{}:gz", ctx.p("gz-layout"));
    copy(&zst, &gz, &["--dest-compress-format", "gzip"]);
    let gm: Value =
        serde_json::from_slice(&ctx.skopeo(&["inspect", "--raw", &gz]).run().stdout_bytes).unwrap();
    assert_eq!(
        gm["config"]["digest"], zm["config"]["digest"],
        "the config does not change"
    );
    copy(
        &gz,
        &format!("docker-archive:{}:localhost/test/gz:v1", ctx.p("gz-da.tar")),
        &[],
    );
    let out = ctx
        .berth(&[
            "copy",
            "--policy",
            &policy,
            "--format",
            "v2s2",
            "--dest-compress-format",
            "zstd",
            &zst,
            &format!("oci:{}:x", ctx.p("never")),
        ])
        .run_fail();
    assert!(out.stderr.contains("zstd"), "{}", out.stderr);

    ctx.step("policy.json: reject refuses, --insecure-policy overrides");
    let reject = ctx.p("reject.json");
    fs::write(&reject, r#"{"default":[{"type":"reject"}]}"#).unwrap();
    let out = ctx
        .berth(&[
            "copy",
            "--policy",
            &reject,
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &src,
            &format!("docker://{dist}/test/refused:v1"),
        ])
        .run_fail();
    assert!(out.stderr.contains("trust policy"), "{}", out.stderr);
    ctx.skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{dist}/test/refused:v1"),
    ])
    .run_fail();

    ctx.step("corrupt layouts fail with one line and write nothing");
    let corrupt = ctx.path("corrupt-layout");
    copy(&src, &format!("oci:{}:v1", corrupt.display()), &[]);
    let index = corrupt.join("index.json");
    let good_index = fs::read(&index).unwrap();
    let target = format!("docker://{dist}/test/from-corrupt:v1");
    let attempt = |what: &str| {
        let out = ctx
            .berth(&[
                "copy",
                "--quiet",
                "--policy",
                &policy,
                "--dest-tls-verify=false",
                &format!("oci:{}:v1", corrupt.display()),
                &target,
            ])
            .run_any();
        assert_ne!(out.status.code(), Some(0), "{what}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim_end().lines().count(),
            1,
            "{what}: {}",
            out.stderr
        );
        ctx.skopeo(&["inspect", "--tls-verify=false", &target])
            .run_fail();
    };
    fs::write(&index, b"{not json").unwrap();
    attempt("index.json is not JSON");
    fs::write(&index, br#"{"schemaVersion":2}"#).unwrap();
    attempt("index.json has no manifests");
    fs::write(&index, &good_index).unwrap();
    let m: Value = serde_json::from_slice(&original).unwrap();
    let layer_hex = m["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let blob = corrupt.join("blobs/sha256").join(&layer_hex);
    let good_blob = fs::read(&blob).unwrap();
    fs::write(&blob, b"truncated").unwrap();
    attempt("a layer blob does not match its digest");
    fs::remove_file(&blob).unwrap();
    attempt("a layer blob is missing");
    // A link to a file of the user's is only bytes of the wrong digest; a FIFO is no
    // blob (it hung the copy). A link to the right bytes is a blob, as Bazel's
    // rules_oci writes them.
    let secret = ctx.path("secret.txt");
    fs::write(&secret, b"SECRET").unwrap();
    std::os::unix::fs::symlink(&secret, &blob).unwrap();
    attempt("a layer blob is a link to another file");
    fs::remove_file(&blob).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&blob)
        .status()
        .unwrap();
    assert!(made.success());
    attempt("a layer blob is a FIFO");
    fs::remove_file(&blob).unwrap();
    // Recompressed on the way, a layer is stored under the digest of what comes out:
    // what went in must still be the descriptor's (it was not checked at all).
    let mut other = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut other, b"ATTACKER CONTENT").unwrap();
    fs::write(&blob, other.finish().unwrap()).unwrap();
    let recompressed = ctx.path("recompressed");
    let out = ctx
        .berth(&[
            "copy",
            "--policy",
            &policy,
            "--dest-compress-format",
            "zstd",
            &format!("oci:{}:v1", corrupt.display()),
            &format!("oci:{}:v1", recompressed.display()),
        ])
        .run_fail();
    assert!(out.stderr.contains("content has digest"), "{}", out.stderr);
    assert!(!recompressed.join("index.json").exists());
    fs::remove_file(&blob).unwrap();
    let elsewhere = ctx.path("layer-elsewhere");
    fs::write(&elsewhere, &good_blob).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &blob).unwrap();
    copy(&format!("oci:{}:v1", corrupt.display()), &target, &[]);

    ctx.step("a blob served with the wrong digest fails the copy; no manifest is written");
    let m: Value = serde_json::from_slice(&original).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    let hex = layer.trim_start_matches("sha256:");
    let file = ctx
        .berth_root(&berth)
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    let mut bytes = fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&file, &bytes).unwrap();
    let bad = format!("docker://{dist}/test/corrupt:v1");
    let out = ctx
        .berth(&[
            "copy",
            "--policy",
            &policy,
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &src,
            &bad,
        ])
        .run_fail();
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    ctx.skopeo(&["inspect", "--tls-verify=false", &bad])
        .run_fail();
    let out = ctx
        .berth(&[
            "copy",
            "--policy",
            &policy,
            "--src-tls-verify=false",
            &src,
            &format!("oci:{}:bad", ctx.p("bad-layout")),
        ])
        .run_fail();
    assert!(out.stderr.contains("digest"), "{}", out.stderr);
    assert!(!ctx.path("bad-layout/index.json").exists());

    ctx.step("bad names and missing images");
    let out = ctx.berth(&["copy", "nope:x", &bad]).run_fail();
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    let out = ctx
        .berth(&[
            "copy",
            "--policy",
            &policy,
            "--src-tls-verify=false",
            &format!("docker://{berth}/test/none:v1"),
            &format!("oci:{}:x", ctx.p("none")),
        ])
        .run_any();
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
}

/// `berth sync` copies every tag of a repository where `skopeo sync` puts them, and a
/// second run copies nothing.
#[test]
fn sync_a_repository() {
    let mut ctx = Ctx::new("sync", &[BUILDAH, SKOPEO, REGISTRY]);
    let berth = ctx.start(ServerKind::Berth);
    let dist = ctx.start(ServerKind::Distribution);
    let [pf, pv] = ctx.policy_args();
    let image = ctx.build_busybox("localhost/test/sync:v1");
    for tag in ["v1", "v2", "v3"] {
        ctx.buildah(&[
            "push",
            &pf,
            &pv,
            "--tls-verify=false",
            &image,
            &format!("docker://{berth}/test/src:{tag}"),
        ])
        .run();
    }
    let sync = |extra: &[&str], dest: &str| {
        let mut args = vec![
            "sync",
            "--src",
            "docker",
            "--dest",
            "docker",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ];
        args.extend(extra);
        let src = format!("{berth}/test/src");
        args.extend([src.as_str(), dest]);
        ctx.berth(&args).run()
    };
    let insecure = ["--insecure-policy"];
    let out = sync(&insecure, &format!("{dist}/mirror"));
    assert!(
        out.stderr.contains("3 images copied, 0 already there"),
        "{}",
        out.stderr
    );
    let again = sync(&insecure, &format!("{dist}/mirror"));
    assert!(
        again.stderr.contains("0 images copied, 3 already there"),
        "{}",
        again.stderr
    );
    ctx.skopeo(&[
        "sync",
        "--src",
        "docker",
        "--dest",
        "docker",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("{berth}/test/src"),
        &format!("{dist}/by-skopeo"),
    ])
    .run();
    // -f converts as skopeo's sync does (the same config and layers);
    // --preserve-digests refuses to.
    for (tool, dest) in [("skopeo", "v2s2-by-skopeo"), ("berth", "v2s2-by-berth")] {
        let mut args = vec!["sync", "-s", "docker", "-d", "docker", "-f", "v2s2"];
        args.extend(["--src-tls-verify=false", "--dest-tls-verify=false"]);
        let src = format!("{berth}/test/src:v1");
        let dest = format!("{dist}/{dest}");
        let refused = [&args[..], &["--preserve-digests", src.as_str(), &dest]].concat();
        args.extend([src.as_str(), &dest]);
        match tool {
            // skopeo writes the source's manifest unchanged where -f and
            // --preserve-digests disagree ("hoping for the best"); berth's copy and
            // sync refuse, as for copy above.
            "skopeo" => {
                ctx.skopeo(&args).run();
            }
            _ => {
                let refused = ctx
                    .berth(&[&["sync", "--insecure-policy"][..], &refused[1..]].concat())
                    .run_fail();
                assert!(refused.stderr.contains("digest"), "{}", refused.stderr);
                ctx.berth(&[&["sync", "--insecure-policy"][..], &args[1..]].concat())
                    .run();
            }
        }
    }
    let inspect = |repo: &str, what: &str| {
        ctx.skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{dist}/{repo}/src:v1"),
        ])
        .run()
        .json()[what]
            .clone()
    };
    assert_eq!(
        inspect("v2s2-by-berth", "mediaType"),
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        inspect("v2s2-by-berth", "config"),
        inspect("v2s2-by-skopeo", "config")
    );
    assert_eq!(
        inspect("v2s2-by-berth", "layers"),
        inspect("v2s2-by-skopeo", "layers")
    );
    let tags = |repo: &str| {
        ctx.skopeo(&[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{dist}/{repo}"),
        ])
        .run()
        .json()["Tags"]
            .clone()
    };
    assert_eq!(tags("mirror/src"), tags("by-skopeo/src"));
    assert_eq!(tags("mirror/src"), serde_json::json!(["v1", "v2", "v3"]));
    for tag in ["v1", "v2", "v3"] {
        let digest = |repo: &str| {
            ctx.skopeo(&[
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Digest}}",
                &format!("docker://{dist}/{repo}/src:{tag}"),
            ])
            .run()
            .last_line()
        };
        assert_eq!(digest("mirror"), digest("by-skopeo"));
    }
    // To folders, named as skopeo names them.
    let to_dir = |tool: &str, dest: &str| {
        let src = format!("{berth}/test/src");
        let args = [
            "sync",
            "--src",
            "docker",
            "--dest",
            "dir",
            "--src-tls-verify=false",
            src.as_str(),
            dest,
        ];
        match tool {
            "berth" => ctx
                .berth(&[&["sync", "--insecure-policy"][..], &args[1..]].concat())
                .run(),
            _ => ctx.skopeo(&args).run(),
        }
    };
    to_dir("berth", &ctx.p("dir-berth"));
    to_dir("skopeo", &ctx.p("dir-skopeo"));
    let names = |d: &str| {
        let mut v: Vec<String> = fs::read_dir(ctx.path(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("dir-berth"), names("dir-skopeo"));
    for n in names("dir-berth") {
        let b = ctx
            .skopeo(&[
                "inspect",
                "--raw",
                &format!("dir:{}", ctx.path("dir-berth").join(&n).display()),
            ])
            .run();
        let s = ctx
            .skopeo(&[
                "inspect",
                "--raw",
                &format!("dir:{}", ctx.path("dir-skopeo").join(&n).display()),
            ])
            .run();
        assert_eq!(b.stdout_bytes, s.stdout_bytes, "{n}");
    }
    let again = to_dir("berth", &ctx.p("dir-berth"));
    assert!(again.stderr.contains("3 already there"), "{}", again.stderr);

    // Back from a folder, where skopeo puts it.
    let folder = ctx.path("dir-berth").join("src:v2").display().to_string();
    let from_dir = |tool: &str, dest: &str| {
        let args = [
            "sync",
            "--src",
            "dir",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
            folder.as_str(),
            dest,
        ];
        match tool {
            "berth" => ctx
                .berth(&[&["sync", "--insecure-policy"][..], &args[1..]].concat())
                .run(),
            _ => ctx.skopeo(&args).run(),
        }
    };
    from_dir("berth", &format!("{dist}/back-berth"));
    from_dir("skopeo", &format!("{dist}/back-skopeo"));
    assert_eq!(tags("back-berth/src"), tags("back-skopeo/src"));
    assert_eq!(tags("back-berth/src"), serde_json::json!(["v2"]));

    // A YAML list of images, as skopeo sync reads it.
    let yaml = ctx.path("sync.yaml");
    fs::write(
        &yaml,
        format!(
            "{berth}:\n  images:\n    test/src: [\"v1\"]\n  images-by-tag-regex:\n    test/src: ^v[3]$\n  tls-verify: false\n"
        ),
    )
    .unwrap();
    let y = yaml.display().to_string();
    let out = ctx
        .berth(&[
            "sync",
            "--insecure-policy",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
            &y,
            &format!("{dist}/from-yaml"),
        ])
        .run();
    assert!(out.stderr.contains("2 images copied"), "{}", out.stderr);
    ctx.skopeo(&[
        "sync",
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        &y,
        &format!("{dist}/from-yaml-skopeo"),
    ])
    .run();
    assert_eq!(tags("from-yaml/src"), tags("from-yaml-skopeo/src"));
    assert_eq!(tags("from-yaml/src"), serde_json::json!(["v1", "v3"]));

    // One tag, scoped.
    let out = sync(
        &["--insecure-policy", "--scoped"],
        &format!("{dist}/scoped"),
    );
    assert!(out.stderr.contains("3 images copied"), "{}", out.stderr);
    let scoped = format!("scoped/{}/test/src", berth.replace(':', "-"));
    assert_eq!(tags(&scoped), serde_json::json!(["v1", "v2", "v3"]));
}

/// registries.conf on reads: a mirror serves when the registry is down, a short name
/// resolves through `unqualified-search-registries`, a blocked registry is refused.
#[test]
fn registries_conf_mirrors_short_names_and_blocks() {
    let mut ctx = Ctx::new("regconf", &[BUILDAH, SKOPEO]);
    let berth = ctx.start(ServerKind::Berth);
    let [pf, pv] = ctx.policy_args();
    let image = ctx.build_busybox("localhost/test/regconf:v1");
    ctx.buildah(&[
        "push",
        &pf,
        &pv,
        "--tls-verify=false",
        &image,
        &format!("docker://{berth}/test/app:v1"),
    ])
    .run();
    // Nothing listens on the primary's port.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    fs::write(
        ctx.path("registries.conf"),
        format!(
            "unqualified-search-registries = [\"{berth}\"]\n\
             short-name-mode = \"permissive\"\n\
             [[registry]]\nprefix = \"{down}\"\nlocation = \"{down}\"\ninsecure = true\n\
             [[registry.mirror]]\nlocation = \"{berth}\"\ninsecure = true\n\
             [[registry]]\nprefix = \"{berth}/blocked\"\nlocation = \"{berth}/blocked\"\nblocked = true\n"
        ),
    )
    .unwrap();
    let policy = ctx.p("policy.json");

    ctx.step("a mirror serves while the registry is down");
    let via_mirror = format!("docker://{down}/test/app:v1");
    let out = ctx.berth(&["inspect", "--no-tags", &via_mirror]).run();
    assert_eq!(out.json()["Name"], format!("{down}/test/app"));
    ctx.berth(&[
        "copy",
        "--policy",
        &policy,
        &via_mirror,
        &format!("oci:{}:v1", ctx.p("from-mirror")),
    ])
    .run();

    ctx.step("a short name resolves through unqualified-search-registries");
    let out = ctx
        .berth(&[
            "inspect",
            "--tls-verify=false",
            "--no-tags",
            "docker://test/app:v1",
        ])
        .run();
    assert_eq!(out.json()["Name"], format!("{berth}/test/app"));

    ctx.step("copy judges a short name by the name it resolves to, as c/image does");
    for (accepted, at_berth, at_docker_io) in [
        (false, "reject", "insecureAcceptAnything"),
        (true, "insecureAcceptAnything", "reject"),
    ] {
        let policy = ctx.path(&format!("short-{accepted}.json"));
        let rules = serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {
                berth.as_str(): [{"type": at_berth}],
                "docker.io": [{"type": at_docker_io}],
            }},
        });
        fs::write(&policy, rules.to_string()).unwrap();
        let run = ctx.berth(&[
            "copy",
            "--policy",
            &policy.display().to_string(),
            "--src-tls-verify=false",
            "docker://test/app:v1",
            &format!("oci:{}:v1", ctx.p(&format!("short-{accepted}"))),
        ]);
        if accepted {
            run.run();
        } else {
            let out = run.run_fail();
            assert!(out.stderr.contains("rejected"), "{}", out.stderr);
        }
    }

    ctx.step("a blocked registry is refused");
    let out = ctx
        .berth(&[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{berth}/blocked/app:v1"),
        ])
        .run_fail();
    assert!(out.stderr.contains("blocked"), "{}", out.stderr);
}

/// berth as a pull-through cache that podman and skopeo use unchanged, as the
/// registries.conf mirror of a docker-registry: pulls come through berth, which keeps
/// what they fetched and goes on serving it once the upstream is gone.
#[test]
fn podman_and_skopeo_pull_through_a_berth_mirror() {
    let mut ctx = Ctx::new("pull-through", &[BUILDAH, PODMAN, SKOPEO, REGISTRY]);
    let upstream = ctx.start(ServerKind::Distribution);
    let [pf, pv] = ctx.policy_args();
    let image = ctx.build_busybox("localhost/test/cached:v1");
    let pushed = ctx.push_digest(
        "buildah",
        &[
            "push",
            &pf,
            &pv,
            "--tls-verify=false",
            &image,
            &format!("docker://{upstream}/lib/app:v1"),
        ],
    );
    let config = ctx.path("berth-proxy.toml");
    fs::write(
        &config,
        format!("[[proxy]]\nprefix = \"upstream\"\nurl = \"http://{upstream}\"\n"),
    )
    .unwrap();
    let berth = ctx.start_with(
        ServerKind::Berth,
        &["--config".into(), config.display().to_string()],
    );
    fs::write(
        ctx.path("registries.conf"),
        format!(
            "[[registry]]\nprefix = \"{upstream}\"\nlocation = \"{upstream}\"\ninsecure = true\n\
             [[registry.mirror]]\nlocation = \"{berth}/upstream\"\ninsecure = true\n"
        ),
    )
    .unwrap();

    ctx.step("skopeo and podman pull through the mirror");
    let source = format!("{upstream}/lib/app:v1");
    let copy = |ctx: &Ctx, to: &str| {
        ctx.skopeo(&[
            "copy",
            &format!("docker://{source}"),
            &format!("oci:{}:v1", ctx.p(to)),
        ])
        .run();
        let index: Value =
            serde_json::from_slice(&fs::read(ctx.path(&format!("{to}/index.json"))).unwrap())
                .unwrap();
        assert_eq!(index["manifests"][0]["digest"], pushed.as_str(), "{to}");
    };
    copy(&ctx, "first");
    let id = ctx.podman(&["pull", &pf, &pv, &source]).run().last_line();
    let cached = ctx.http(
        "GET",
        &format!("http://{berth}/v2/upstream/lib/app/manifests/v1"),
        Some(MANIFEST_ACCEPT),
    );
    cached.expect_status(200);
    assert_eq!(
        ctx.sha256(&cached.body),
        pushed,
        "berth cached the pushed manifest"
    );

    ctx.step("with the upstream gone, skopeo and podman still pull through berth");
    ctx.stop(&upstream);
    copy(&ctx, "second");
    ctx.podman(&["rmi", &source]).run();
    let again = ctx.podman(&["pull", &pf, &pv, &source]).run().last_line();
    assert_eq!(again, id, "the image pulled from the cache");
}

/// The config digest a manifest names.
fn src_config_digest(manifest: &[u8]) -> String {
    let v: Value = serde_json::from_slice(manifest).unwrap();
    v["config"]["digest"].as_str().unwrap().to_string()
}

/// The first podman-style commands over the local store: `berth pull` stores an image
/// and prints podman's image ID for it; `berth images` lists it; `local:` names it for
/// `copy`, byte-identical.
#[test]
fn pull_into_the_local_store() {
    let mut ctx = Ctx::new("local", &[BUILDAH, PODMAN, SKOPEO]);
    let reg = ctx.start(ServerKind::Berth);
    let [pf, pv] = ctx.policy_args();
    let image = ctx.build_busybox("localhost/test/local:v1");
    let remote = format!("docker://{reg}/test/local:v1");
    ctx.buildah(&["push", &pf, &pv, "--tls-verify=false", &image, &remote])
        .run();
    let store = ctx.p("berth-store");
    let policy = ctx.p("policy.json");
    let name = format!("{reg}/test/local:v1");
    let out = ctx
        .berth(&[
            "pull",
            "--root",
            &store,
            "--signature-policy",
            &policy,
            "--tls-verify=false",
            &name,
        ])
        .run();
    let id = out.last_line();
    ctx.podman(&["pull", &pf, &pv, "--tls-verify=false", &remote])
        .run();
    let podman_id = ctx
        .podman(&["image", "inspect", "--format", "{{.Id}}", &name])
        .run()
        .last_line();
    assert_eq!(id, podman_id, "image ID");
    let listed = ctx.berth(&["images", "--root", &store]).run();
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY"), "{}", listed.stdout);
    assert!(
        lines[1].starts_with(&format!("{reg}/test/local ")),
        "{}",
        listed.stdout
    );
    assert!(lines[1].contains(&id[..12]), "{}", listed.stdout);
    let q = ctx.berth(&["images", "--root", &store, "-q"]).run();
    assert_eq!(q.last_line(), &id[..12]);
    // Pulling again stores nothing new and gives the same ID.
    let again = ctx
        .berth(&[
            "pull",
            "--root",
            &store,
            "--signature-policy",
            &policy,
            "--tls-verify=false",
            &name,
        ])
        .run();
    assert_eq!(again.last_line(), id);
    // The store is a place for copy too.
    let layout = format!("oci:{}:v1", ctx.p("from-local"));
    ctx.cmd(
        env!("CARGO_BIN_EXE_berth"),
        &[
            "copy",
            "--insecure-policy",
            &format!("local:{name}"),
            &layout,
        ],
    )
    .env("BERTH_STORAGE_ROOT", &store)
    .run();
    let original = ctx
        .skopeo(&["inspect", "--tls-verify=false", "--raw", &remote])
        .run()
        .stdout_bytes;
    assert_eq!(
        ctx.skopeo(&["inspect", "--raw", &layout])
            .run()
            .stdout_bytes,
        original
    );
    // A missing image: exit 125, as podman.
    let out = ctx
        .berth(&[
            "pull",
            "--root",
            &store,
            "--signature-policy",
            &policy,
            "--tls-verify=false",
            &format!("{reg}/test/none:v1"),
        ])
        .run_any();
    // podman's status for any error of its own.
    assert_eq!(out.status.code(), Some(125), "{}", out.stderr);
}

/// The first column of a table's data rows (podman's and berth's `search` tables).
fn first_column(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The `NAME TAG` rows of `search --list-tags`.
fn name_tag_rows(table: &str) -> Vec<(String, String)> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cells = l.split_whitespace();
            Some((cells.next()?.to_string(), cells.next()?.to_string()))
        })
        .collect()
}

/// `berth search` finds what `podman search` (4.3.1) finds: on berth through its
/// `/v1/search`, on docker-registry (which has none) through the catalog; the same
/// names with `--limit`, the same tags with `--list-tags`, the same JSON.
#[test]
fn search_matches_podman() {
    let mut ctx = Ctx::new("search", &[BUILDAH, PODMAN, SKOPEO, REGISTRY]);
    let berth = ctx.start(ServerKind::Berth);
    let dist = ctx.start(ServerKind::Distribution);
    let [pf, pv] = ctx.policy_args();
    let image = ctx.build_busybox("localhost/test/search:v1");
    for reg in [&berth, &dist] {
        for target in [
            "test/search-alpha:v1",
            "test/search-alpha:v2",
            "test/search-alpha:v3",
            "test/search-beta:v1",
            "other/gamma:v1",
        ] {
            ctx.buildah(&[
                "push",
                &pf,
                &pv,
                "--tls-verify=false",
                &image,
                &format!("docker://{reg}/{target}"),
            ])
            .run();
        }
    }
    let search = |tool: &str, args: &[&str]| {
        let mut all = vec!["search", "--tls-verify=false"];
        all.extend_from_slice(args);
        match tool {
            PODMAN => ctx.podman(&all).run().stdout,
            _ => ctx.berth(&all).run().stdout,
        }
    };
    for reg in [&berth, &dist] {
        ctx.step(&format!("search {reg}"));
        let term = format!("{reg}/search");
        let podman = search(PODMAN, &[&term]);
        let ours = search("berth", &[&term]);
        let names = first_column(&podman);
        assert_eq!(
            names,
            [
                format!("{reg}/test/search-alpha"),
                format!("{reg}/test/search-beta")
            ],
            "podman:\n{podman}"
        );
        assert_eq!(
            first_column(&ours),
            names,
            "berth:\n{ours}\npodman:\n{podman}"
        );
        assert!(ours.starts_with("NAME"), "{ours}");

        ctx.step(&format!("search --limit 1 {reg}"));
        let podman = search(PODMAN, &["--limit", "1", &term]);
        let ours = search("berth", &["--limit", "1", &term]);
        assert_eq!(first_column(&podman).len(), 1, "{podman}");
        assert_eq!(first_column(&ours), first_column(&podman), "{ours}");

        ctx.step(&format!("search --format json {reg}"));
        let podman = search(PODMAN, &["--format", "json", &term]);
        let ours = search("berth", &["--format", "json", &term]);
        assert_eq!(
            serde_json::from_str::<Value>(&ours).unwrap(),
            serde_json::from_str::<Value>(&podman).unwrap(),
            "berth:\n{ours}\npodman:\n{podman}"
        );

        ctx.step(&format!("search --format {reg}"));
        let format = "{{.Index}} {{.Name}}";
        let podman = search(PODMAN, &["--format", format, &term]);
        let ours = search("berth", &["--format", format, &term]);
        assert_eq!(ours, podman);

        ctx.step(&format!("search --list-tags {reg}"));
        let repo = format!("{reg}/test/search-alpha");
        let podman = search(PODMAN, &["--list-tags", &repo]);
        let ours = search("berth", &["--list-tags", &repo]);
        let rows = name_tag_rows(&podman);
        assert_eq!(rows.len(), 3, "{podman}");
        assert_eq!(
            name_tag_rows(&ours),
            rows,
            "berth:\n{ours}\npodman:\n{podman}"
        );
        assert!(ours.starts_with("NAME"), "{ours}");
        let podman = search(PODMAN, &["--list-tags", "--limit", "2", &repo]);
        let ours = search("berth", &["--list-tags", "--limit", "2", &repo]);
        assert_eq!(name_tag_rows(&podman).len(), 2, "{podman}");
        assert_eq!(name_tag_rows(&ours), name_tag_rows(&podman));
        let podman = search(PODMAN, &["--list-tags", "--format", "json", &repo]);
        let ours = search("berth", &["--list-tags", "--format", "json", &repo]);
        assert_eq!(
            serde_json::from_str::<Value>(&ours).unwrap(),
            serde_json::from_str::<Value>(&podman).unwrap(),
            "berth:\n{ours}\npodman:\n{podman}"
        );
    }

    ctx.step("terms match case-insensitively, on the catalog too");
    // podman 4.3.1 filters the catalog case-sensitively (so finds nothing on
    // docker-registry here) while berth's server matches case-insensitively; berth
    // matches the same way on both.
    for reg in [&berth, &dist] {
        assert_eq!(
            first_column(&search("berth", &[&format!("{reg}/SEARCH-A")])),
            [format!("{reg}/test/search-alpha")]
        );
    }

    ctx.step("an empty term lists the catalog");
    let all = format!("{berth}/");
    assert_eq!(
        first_column(&search("berth", &[&all])),
        first_column(&search(PODMAN, &[&all]))
    );

    ctx.step("a bare term searches unqualified-search-registries");
    fs::write(
        ctx.path("registries.conf"),
        format!("unqualified-search-registries = [\"{berth}\", \"{dist}\"]\n"),
    )
    .unwrap();
    let podman = search(PODMAN, &["gamma"]);
    let ours = search("berth", &["gamma"]);
    assert_eq!(
        first_column(&podman),
        [
            format!("{berth}/other/gamma"),
            format!("{dist}/other/gamma")
        ],
        "{podman}"
    );
    assert_eq!(first_column(&ours), first_column(&podman), "{ours}");
}

/// Issue 17 (1, 2): what `berth copy` writes, skopeo reads. `--all` with recompression
/// rewrites the index with the new children (in a layout and in a registry); a Docker
/// image copied into `oci:` or `oci-archive:` (from `docker-archive:`, `dir:` or a v2s2
/// registry image) becomes an OCI image with gzip layers and skopeo's own config bytes.
#[test]
fn copy_writes_what_skopeo_reads() {
    let mut ctx = Ctx::new("copy-oci", &[BUILDAH, SKOPEO]);
    let berth = ctx.start(ServerKind::Berth);
    let [pf, pv] = ctx.policy_args();
    let policy = ctx.p("policy.json");
    let copy = |extra: &[&str], from: &str, to: &str| {
        let mut args = vec![
            "copy",
            "--policy",
            policy.as_str(),
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ];
        args.extend(extra);
        args.extend([from, to]);
        ctx.berth(&args).run()
    };
    let raw = |name: &str| {
        ctx.skopeo(&["inspect", "--tls-verify=false", "--raw", name])
            .run()
            .stdout_bytes
    };

    ctx.step("a two-platform index in berth's registry");
    let multi = format!("docker://{berth}/test/multi:v1");
    ctx.push_two_platforms("multi", &multi);

    ctx.step("pull --arch picks a platform, as --platform and podman's --arch do");
    let name = format!("{berth}/test/multi:v1");
    let id_of = |flags: &[&str]| {
        let mut args = vec!["pull", "-q", "--tls-verify=false"];
        args.extend_from_slice(flags);
        args.push(&name);
        ctx.berth(&args).run().last_line()
    };
    let by_arch = id_of(&["--arch", "arm64"]);
    assert_eq!(by_arch, id_of(&["--platform", "linux/arm64"]));
    assert_ne!(by_arch, id_of(&["--arch", "amd64"]));
    let arch = ctx
        .berth(&[
            "image",
            "inspect",
            "--format",
            "{{.Architecture}}",
            &by_arch,
        ])
        .run()
        .last_line();
    assert_eq!(arch, "arm64");

    ctx.step("copy --all --dest-compress-format zstd to oci: and to a registry");
    let layout = format!("oci:{}:v1", ctx.p("zstd-layout"));
    let in_registry = format!("docker://{berth}/test/multi-zstd:v1");
    for dest in [&layout, &in_registry] {
        let out = copy(&["--all", "--dest-compress-format", "zstd"], &multi, dest);
        let index = Manifest::parse(raw(dest));
        assert!(
            out.stderr.contains("Manifest list digest changed"),
            "{}",
            out.stderr
        );
        assert_eq!(index.children().len(), 2, "{}", index.json);
        for arch in ["amd64", "arm64"] {
            let info = ctx
                .skopeo(&[
                    "--override-arch",
                    arch,
                    "--override-os",
                    "linux",
                    "inspect",
                    "--tls-verify=false",
                    dest,
                ])
                .run()
                .json();
            assert_eq!(info["Architecture"], arch, "{dest}: {info:#}");
        }
        // skopeo 1.9.3 shows no layer types: its copy of every image shows them.
        let dir = ctx.fresh("zstd-dir");
        ctx.skopeo(&[
            "copy",
            "--all",
            "--src-tls-verify=false",
            dest,
            &format!("dir:{}", dir.display()),
        ])
        .run();
        for (digest, _) in index.children() {
            let hex = digest.trim_start_matches("sha256:");
            let child =
                Manifest::parse(fs::read(dir.join(format!("{hex}.manifest.json"))).unwrap());
            assert!(
                child.json["layers"][0]["mediaType"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("+zstd")),
                "{dest}: {}",
                child.json
            );
        }
    }

    ctx.step("Docker images into oci: and oci-archive: become OCI images");
    let image = ctx.build_busybox("localhost/test/docker:v1");
    let v2s2 = format!("docker://{berth}/test/docker:v1");
    ctx.buildah(&[
        "push",
        &pf,
        &pv,
        "--tls-verify=false",
        "--format",
        "v2s2",
        &image,
        &v2s2,
    ])
    .run();
    let da = format!("docker-archive:{}", ctx.p("docker.tar"));
    let dir = format!("dir:{}", ctx.p("docker-dir"));
    for d in [&da, &dir] {
        ctx.skopeo(&["copy", "--src-tls-verify=false", &v2s2, d])
            .run();
    }
    ctx.step("--preserve-digests: no conversion into oci:, plain layers kept in dir:");
    let layout = format!("oci:{}:v1", ctx.p("preserved"));
    let out = ctx
        .berth(&[
            "copy",
            "--policy",
            &policy,
            "--preserve-digests",
            &da,
            &layout,
        ])
        .run_fail();
    assert!(out.stderr.contains("--preserve-digests"), "{}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    let kept = format!("dir:{}", ctx.p("preserved-dir"));
    copy(&["--preserve-digests"], &da, &kept);
    // berth's own view of the archive: skopeo's calls its plain layers gzip ones.
    let archived = ctx.berth(&["inspect", "--raw", &da]).run().stdout_bytes;
    assert_eq!(raw(&kept), archived);

    for (n, source) in [&v2s2, &da, &dir].into_iter().enumerate() {
        for kind in ["oci", "oci-archive"] {
            let name = |who: &str| match kind {
                "oci" => format!("oci:{}:v1", ctx.p(&format!("{who}-oci-{n}"))),
                _ => format!("oci-archive:{}:v1", ctx.p(&format!("{who}-{n}.tar"))),
            };
            let (ours, theirs) = (name("berth"), name("skopeo"));
            let out = copy(&[], source, &ours);
            ctx.skopeo(&["copy", "--src-tls-verify=false", source, &theirs])
                .run();
            let (b, s) = (Manifest::parse(raw(&ours)), Manifest::parse(raw(&theirs)));
            assert_eq!(
                b.media_type(),
                OCI_MANIFEST,
                "{source} -> {ours}: {}",
                b.json
            );
            assert_eq!(
                b.json["layers"][0]["mediaType"], s.json["layers"][0]["mediaType"],
                "{source} -> {ours}: {}",
                b.json
            );
            let config = |name: &str| {
                ctx.skopeo(&["inspect", "--raw", "--config", name])
                    .run()
                    .stdout_bytes
            };
            assert_eq!(config(&ours), config(&theirs), "{source} -> {ours}: config");
            // Progress names the config as skopeo does, and its change once.
            let new_config = b.json["config"]["digest"].as_str().unwrap();
            assert!(
                out.stderr.contains(&format!("Copying config {new_config}")),
                "{}",
                out.stderr
            );
            let changed = Manifest::parse(raw(source)).config_digest() != new_config;
            assert_eq!(
                out.stderr.matches("Config digest changed").count(),
                usize::from(changed),
                "{}",
                out.stderr
            );
            if source == &v2s2 {
                // Its layers are gzip already: nothing of skopeo's differs.
                assert_eq!(b.raw, s.raw, "{source} -> {ours}");
            }
            let back = format!("docker://{berth}/test/back-{n}-{kind}:v1");
            ctx.skopeo(&["copy", "--dest-tls-verify=false", &ours, &back])
                .run();
        }
    }
}

/// Issue 17 (7): `berth inspect` reads every transport skopeo reads, with skopeo's
/// output (`--raw`, `--config`, `--raw --config` byte for byte), and `local:` in the
/// same shape; `local:NAME` without a registry is `localhost/NAME`, as podman names it.
#[test]
fn inspect_every_transport_as_skopeo() {
    let mut ctx = Ctx::new("inspect", &[BUILDAH, SKOPEO]);
    let reg = ctx.start(ServerKind::Berth);
    let [pf, pv] = ctx.policy_args();
    let policy = ctx.p("policy.json");
    let image = ctx.build_busybox("localhost/test/inspect:v1");
    let multi = format!("docker://{reg}/test/multi:v1");
    ctx.push_two_platforms("inspect", &multi);
    let mut targets = Vec::new();
    for format in ["oci", "v2s2"] {
        let pushed = format!("docker://{reg}/test/inspect:{format}");
        ctx.buildah(&[
            "push",
            &pf,
            &pv,
            "--tls-verify=false",
            "--format",
            format,
            &image,
            &pushed,
        ])
        .run();
        for name in [
            format!("oci:{}:{format}", ctx.p("layout")),
            format!("oci-archive:{}", ctx.p(&format!("{format}.tar"))),
            format!("dir:{}", ctx.p(&format!("dir-{format}"))),
            format!("docker-archive:{}", ctx.p(&format!("docker-{format}.tar"))),
        ] {
            ctx.skopeo(&["copy", "--src-tls-verify=false", &pushed, &name])
                .run();
            targets.push(name);
        }
    }
    let index = format!("oci:{}:multi", ctx.p("layout"));
    ctx.skopeo(&["copy", "--all", "--src-tls-verify=false", &multi, &index])
        .run();
    targets.push(index);

    for target in &targets {
        ctx.step(&format!("inspect {target}"));
        let both = |flags: &[&str]| {
            let mut args = vec!["inspect"];
            args.extend(flags);
            args.push(target);
            (ctx.berth(&args).run(), ctx.skopeo(&args).run())
        };
        let (b, s) = both(&[]);
        let (mut bj, mut sj) = (b.json(), s.json());
        // skopeo 1.10 added LayersData (and berth has it); 1.9.3 does not print it.
        bj.as_object_mut().unwrap().remove("LayersData");
        bj.as_object_mut().unwrap().remove("Platforms");
        if target.starts_with("docker-archive:") {
            // containers/image presents the archive's plain layers as gzip ones, so its
            // made-up manifest (and digest) is not berth's: everything else is the same.
            bj.as_object_mut().unwrap().remove("Digest");
            sj.as_object_mut().unwrap().remove("Digest");
        } else {
            let (b, s) = both(&["--raw"]);
            assert_eq!(b.stdout_bytes, s.stdout_bytes, "{target} --raw");
        }
        assert_eq!(
            bj, sj,
            "{target}\nberth:\n{}\nskopeo:\n{}",
            b.stdout, s.stdout
        );
        for flags in [&["--config"][..], &["--raw", "--config"]] {
            let (b, s) = both(flags);
            assert_eq!(b.stdout, s.stdout, "{target} {flags:?}");
        }
    }

    ctx.step("local: images, named as podman names them");
    let docker_archive = format!("docker-archive:{}", ctx.p("docker-v2s2.tar"));
    ctx.berth(&[
        "copy",
        "--policy",
        &policy,
        &docker_archive,
        "local:inspect/app",
    ])
    .run();
    let local = ctx.berth(&["inspect", "local:inspect/app"]).run().json();
    let archived = ctx.berth(&["inspect", &docker_archive]).run().json();
    assert_eq!(local["Name"], "localhost/inspect/app", "{local:#}");
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let mut shape = keys(&archived);
    shape.insert(0, "Name".into());
    assert_eq!(keys(&local), shape, "{local:#}");
    assert_eq!(local["Layers"], archived["Layers"], "{local:#}");
    let full = ctx
        .berth(&["inspect", "local:localhost/inspect/app:latest"])
        .run()
        .json();
    assert_eq!(full, local);
    let missing = ctx.berth(&["inspect", "local:inspect/none"]).run_fail();
    assert_eq!(missing.status.code(), Some(2), "{}", missing.stderr);
}

/// Issue 17 (11): skopeo's copy flags people reach for first, side by side with
/// skopeo 1.9.3: per-side auth files and usernames, `--additional-tag`,
/// `--dest-compress-level`, `--remove-signatures`.
#[test]
fn copy_flags_as_skopeo() {
    let mut ctx = Ctx::new("copy-flags", &[BUILDAH, SKOPEO]);
    let reg = ctx.start(ServerKind::Berth);
    let root = ctx.berth_root(&reg).display().to_string();
    let [pf, pv] = ctx.policy_args();
    let policy = ctx.p("policy.json");
    for (user, pw) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        ctx.add_registry_user(&root, user, pw);
    }
    let image = ctx.build_busybox("localhost/test/flags:v1");
    let app = format!("docker://{reg}/alice/app:v1");
    ctx.buildah(&[
        "push",
        &pf,
        &pv,
        "--tls-verify=false",
        "--creds",
        "alice:alice-pw",
        &image,
        &app,
    ])
    .run();
    let berth_copy = |extra: &[&str]| {
        let mut args = vec![
            "copy",
            "--policy",
            policy.as_str(),
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ];
        args.extend(extra);
        ctx.berth(&args)
    };

    ctx.step("--src-authfile and --dest-authfile: one account per side");
    let (src_auth, dest_auth) = (ctx.p("src-auth.json"), ctx.p("dest-auth.json"));
    for (file, user) in [(&src_auth, "alice"), (&dest_auth, "bob")] {
        ctx.skopeo(&[
            "login",
            "--tls-verify=false",
            "--authfile",
            file,
            "-u",
            user,
            "-p",
            &format!("{user}-pw"),
            &reg,
        ])
        .run();
    }
    let to_bob = format!("docker://{reg}/bob/app:v1");
    berth_copy(&[&app, &to_bob]).run_fail();
    for tool in ["berth", "skopeo"] {
        let dest = format!("docker://{reg}/bob/{tool}-authfile:v1");
        let args = [
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-authfile",
            &src_auth,
            "--dest-authfile",
            &dest_auth,
            &app,
            &dest,
        ];
        match tool {
            "berth" => ctx.berth(&args).run(),
            _ => ctx.skopeo(&args).run(),
        };
        ctx.skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "bob:bob-pw",
            &dest,
        ])
        .run();
    }

    ctx.step("--src-username/--src-password, --dest-username/--dest-password");
    for tool in ["berth", "skopeo"] {
        let dest = format!("docker://{reg}/bob/{tool}-username:v1");
        let args = [
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-username",
            "alice",
            "--src-password",
            "alice-pw",
            "--dest-username",
            "bob",
            "--dest-password",
            "bob-pw",
            &app,
            &dest,
        ];
        match tool {
            "berth" => ctx.berth(&args).run(),
            _ => ctx.skopeo(&args).run(),
        };
    }
    let wrong = berth_copy(&[
        "--src-username",
        "alice",
        "--src-password",
        "nope",
        &app,
        &format!("dir:{}", ctx.p("never")),
    ])
    .run_fail();
    assert_eq!(wrong.stderr.trim().lines().count(), 1, "{}", wrong.stderr);

    ctx.step("--additional-tag names the image in a docker archive as skopeo does");
    let creds = ["--src-creds", "alice:alice-pw"];
    let repo_tags = |tar: &str| -> Value {
        let out = ctx.cmd("tar", &["-xOf", tar, "manifest.json"]).run();
        serde_json::from_slice::<Value>(&out.stdout_bytes).unwrap()[0]["RepoTags"].clone()
    };
    let tagged = |tool: &str| {
        let tar = ctx.p(&format!("{tool}-tags.tar"));
        let dest = format!("docker-archive:{tar}:bar");
        let mut args = vec!["copy", "--src-tls-verify=false"];
        args.extend(creds);
        args.extend([
            "--additional-tag",
            "foo:v2",
            "--additional-tag",
            "quay.io/a/b:c",
            &app,
            &dest,
        ]);
        match tool {
            "berth" => ctx.berth(&args).run(),
            _ => ctx.skopeo(&args).run(),
        };
        repo_tags(&tar)
    };
    assert_eq!(tagged("berth"), tagged("skopeo"));
    assert_eq!(
        tagged("berth"),
        serde_json::json!([
            "docker.io/library/bar:latest",
            "docker.io/library/foo:v2",
            "quay.io/a/b:c"
        ])
    );

    ctx.step("--dest-compress-level: zstd 19 packs smaller than 1; out of range is refused");
    let layer_size = |level: &str| {
        let dest = format!("oci:{}:v1", ctx.p(&format!("level-{level}")));
        let mut args = creds.to_vec();
        args.extend([
            "--dest-compress-format",
            "zstd",
            "--dest-compress-level",
            level,
            "--remove-signatures",
            &app,
            &dest,
        ]);
        berth_copy(&args).run();
        let m = Manifest::parse(ctx.skopeo(&["inspect", "--raw", &dest]).run().stdout_bytes);
        m.json["layers"][0]["size"].as_u64().unwrap()
    };
    assert!(layer_size("19") < layer_size("1"));
    let out = berth_copy(&[
        "--dest-compress-level",
        "12",
        &app,
        &format!("oci:{}:v1", ctx.p("level-12")),
    ])
    .run_fail();
    assert!(out.stderr.contains("out of range"), "{}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
}
