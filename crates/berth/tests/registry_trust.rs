//! A registry that requires signatures, with the real tools: `berth registry trust`
//! on the data folder of a running `berth serve`, then podman 4.3.1 (gpg 2.2 through
//! gpgme). An image pushed unsigned cannot be pulled, and podman says why (`denied:`
//! and berth's message); pushed with `--sign-by`, it can.
//!
//! Run with `cargo test -p berth --test registry_trust`.

#[path = "interop/support.rs"]
mod support;

#[path = "interop/gpg.rs"]
mod gpg;

use std::fs;

use gpg::{export_key, gpg_key, GPG};
use support::*;

#[test]
fn podman_pulls_from_a_namespace_that_requires_signatures_only_what_was_signed() {
    let mut ctx = Ctx::new("registry-trust", &["podman", "buildah", GPG]);
    let reg = ctx.start(ServerKind::Berth);
    let root = ctx.berth_root(&reg);
    let root = root.to_str().unwrap();
    let fpr = gpg_key(&ctx, "gnupg", "berth signer <signer@example.test>");
    let key = export_key(&ctx, "gnupg", "signer.gpg");
    let gnupg = ctx.path("gnupg");
    let image = ctx.build_busybox("localhost/trust/busybox:v1");
    let [pf, pv] = ctx.policy_args();
    // `berth registry --root ROOT trust ARGS`, beside the running server.
    let trust = |args: &[&str]| {
        let mut all = vec!["registry", "--root", root, "trust"];
        all.extend_from_slice(args);
        ctx.berth(&all)
    };

    ctx.step("berth registry trust set: keys that do not parse are refused");
    fs::write(ctx.path("junk.gpg"), b"not a key").unwrap();
    let out = trust(&["set", "trusted", "--gpg-key"]).run_fail();
    assert!(out.stderr.contains("--gpg-key"), "{}", out.stderr);
    let junk = ctx.p("junk.gpg");
    let out = trust(&["set", "trusted", "--gpg-key", &junk]).run_fail();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("GPG key 1: "), "{}", out.stderr);
    let out = trust(&["show", "trusted"]).run_fail();
    assert!(
        out.stderr.contains("no trust setting applies to trusted"),
        "{}",
        out.stderr
    );

    ctx.step("the running server takes the namespace's setting at once");
    trust(&["set", "trusted", "--gpg-key", &key]).run();
    let shown = trust(&["show", "trusted/busybox"]).run().json();
    assert_eq!(shown["name"], "trusted");
    assert_eq!(shown["required"], true);
    assert_eq!(shown["gpg_fingerprints"], serde_json::json!([fpr]));

    ctx.step("podman push without signing works; podman pull is denied, with the reason");
    let unsigned = format!("{reg}/trusted/busybox:unsigned");
    ctx.podman(&[
        "push",
        &pf,
        &pv,
        "--tls-verify=false",
        &image,
        &format!("docker://{unsigned}"),
    ])
    .run();
    let tags = ctx.http(
        "GET",
        &format!("http://{reg}/v2/trusted/busybox/tags/list"),
        None,
    );
    tags.expect_status(200);
    assert!(String::from_utf8_lossy(&tags.body).contains("unsigned"));
    let out = ctx
        .podman(&["pull", &pf, &pv, "--tls-verify=false", &unsigned])
        .run_fail();
    ctx.step(&format!("podman said: {}", out.error_lines()));
    assert!(out.stderr.contains("denied"), "{}", out.stderr);
    assert!(
        out.stderr.contains("is not signed by a key trusted trusts"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("trusted/busybox@sha256:"),
        "{}",
        out.stderr
    );
    // berth's own client says why too (the reason is the error's `message`).
    let out = ctx
        .berth(&["pull", "--tls-verify=false", &unsigned])
        .run_fail();
    assert!(
        out.stderr.contains("is not signed by a key trusted trusts"),
        "{}",
        out.stderr
    );

    ctx.step("podman push --sign-by, then podman pull works");
    let signed = format!("{reg}/trusted/signed:v1");
    ctx.podman(&[
        "push",
        &pf,
        &pv,
        "--tls-verify=false",
        "--sign-by",
        &fpr,
        &image,
        &format!("docker://{signed}"),
    ])
    .env("GNUPGHOME", &gnupg)
    .run();
    ctx.podman(&["pull", &pf, &pv, "--tls-verify=false", &signed])
        .run();

    ctx.step("a repository of another namespace is not held back; unset lifts the rule");
    let elsewhere = format!("{reg}/other/busybox:v1");
    // The pull above gave the local image its signature: leave it behind.
    ctx.podman(&[
        "push",
        &pf,
        &pv,
        "--tls-verify=false",
        "--remove-signatures",
        &image,
        &format!("docker://{elsewhere}"),
    ])
    .run();
    ctx.podman(&["pull", &pf, &pv, "--tls-verify=false", &elsewhere])
        .run();
    trust(&["unset", "trusted"]).run();
    ctx.podman(&["pull", &pf, &pv, "--tls-verify=false", &unsigned])
        .run();

    ctx.step("over --url: a sigstore key set by a superuser, shown, refused to a user");
    let (url, pass) = (format!("http://{reg}"), ctx.p("pass"));
    fs::write(ctx.path("pass"), "pw\n").unwrap();
    ctx.berth(&[
        "generate-sigstore-key",
        "--output-prefix",
        &ctx.p("cosign"),
        "--passphrase-file",
        &pass,
    ])
    .run();
    for (user, superuser) in [("root", true), ("bob", false)] {
        let mut args = vec![
            "registry",
            "--root",
            root,
            "user",
            "add",
            user,
            "--password-stdin",
        ];
        if superuser {
            args.push("--superuser");
        }
        ctx.berth(&args).stdin(b"pw\n").run();
    }
    let remote = |creds: &str, args: &[&str]| {
        let mut all = vec!["registry", "--url", &url, "--creds", creds, "trust"];
        all.extend_from_slice(args);
        ctx.berth(&all)
    };
    let pem = ctx.p("cosign.pub");
    let out = remote("bob:pw", &["set", "other", "--sigstore-key", &pem]).run_fail();
    assert!(out.stderr.contains("403"), "{}", out.stderr);
    remote("root:pw", &["set", "other", "--sigstore-key", &pem]).run();
    let shown = remote("root:pw", &["show", "other/busybox"]).run().json();
    assert_eq!(shown["name"], "other");
    assert_eq!(
        shown["sigstore_keys"][0].as_str().unwrap(),
        fs::read_to_string(ctx.path("cosign.pub")).unwrap()
    );
    remote("root:pw", &["unset", "other"]).run();
    let out = remote("root:pw", &["show", "other"]).run_fail();
    assert!(
        out.stderr.contains("no trust setting applies to other"),
        "{}",
        out.stderr
    );
}
