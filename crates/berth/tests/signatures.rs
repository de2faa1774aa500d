//! Signatures kept by `berth serve` through the registry signature extension
//! (`X-Registry-Supports-Signatures`), with the real tools: `podman push --sign-by` and
//! `skopeo copy --sign-by` (gpg 2.2 through gpgme) store simple signatures in berth,
//! and `podman pull` / `skopeo copy` under a `signedBy` policy read and verify them
//! from berth, refusing an unsigned image and one signed by another key.
//!
//! Run with `cargo test -p berth --test signatures`.

#[path = "interop/support.rs"]
mod support;

#[path = "interop/gpg.rs"]
mod gpg;

use std::fs;

use gpg::{export_key, gpg_key, GPG};
use serde_json::Value;
use support::*;

/// A policy that rejects everything but `scope`, which needs a signature by `key`.
fn signed_by_policy(ctx: &Ctx, file: &str, scope: &str, key: &str) -> String {
    let policy = serde_json::json!({
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                scope: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": key}]
            }
        }
    });
    fs::write(ctx.path(file), policy.to_string()).unwrap();
    ctx.p(file)
}

fn extension_signatures(ctx: &Ctx, reg: &str, repo: &str, digest: &str) -> Vec<Value> {
    let resp = ctx.http(
        "GET",
        &format!("http://{reg}/extensions/v2/{repo}/signatures/{digest}"),
        None,
    );
    resp.expect_status(200);
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    v["signatures"].as_array().cloned().unwrap_or_default()
}

#[test]
fn podman_and_skopeo_sign_into_berth_and_verify_from_it() {
    let mut ctx = Ctx::new(
        "sig-extension",
        &["podman", "skopeo", "buildah", GPG, "curl"],
    );
    let reg = ctx.start(ServerKind::Berth);
    let fpr = gpg_key(&ctx, "gnupg", "berth signer <signer@example.test>");
    let other = gpg_key(&ctx, "gnupg-other", "someone else <other@example.test>");
    let key = export_key(&ctx, "gnupg", "signer.gpg");
    let other_key = export_key(&ctx, "gnupg-other", "other.gpg");
    let gnupg = ctx.path("gnupg");
    let image = ctx.build_busybox("localhost/sig/busybox:v1");
    let [pf, pv] = ctx.policy_args();

    ctx.step("podman push --sign-by: the signature goes to berth");
    let signed = format!("{reg}/signed/busybox:v1");
    let digest = {
        let file = ctx.p("tmp/pushed-digest");
        ctx.podman(&[
            "push",
            &pf,
            &pv,
            "--tls-verify=false",
            "--sign-by",
            &fpr,
            "--digestfile",
            &file,
            &image,
            &format!("docker://{signed}"),
        ])
        .env("GNUPGHOME", &gnupg)
        .run();
        fs::read_to_string(&file).unwrap().trim().to_string()
    };
    let sigs = extension_signatures(&ctx, &reg, "signed/busybox", &digest);
    assert_eq!(sigs.len(), 1, "{sigs:?}");
    assert!(sigs[0]["name"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{digest}@")));
    // Nothing went to a lookaside folder instead.
    assert!(!ctx.path("home/.local/share/containers/sigstore").exists());

    ctx.step("podman pull under signedBy verifies what berth serves");
    let policy = signed_by_policy(&ctx, "signed.json", &format!("{reg}/signed"), &key);
    ctx.podman(&[
        "pull",
        "--signature-policy",
        &policy,
        "--tls-verify=false",
        &signed,
    ])
    .run();

    ctx.step("skopeo copy under the same policy");
    let skopeo_policy = |policy: &str| {
        vec![
            "--policy".to_string(),
            policy.to_string(),
            "--registries.d".to_string(),
            ctx.p("registries.d"),
        ]
    };
    let mut args = skopeo_policy(&policy);
    args.extend([
        "copy".into(),
        "--src-tls-verify=false".into(),
        format!("docker://{signed}"),
        format!("dir:{}", ctx.p("tmp/signed-dir")),
    ]);
    ctx.cmd("skopeo", &args).run();
    // The signature came along into dir: as signature-1, byte for byte.
    let copied = fs::read(ctx.path("tmp/signed-dir/signature-1")).unwrap();
    use base64::Engine;
    let served = base64::engine::general_purpose::STANDARD
        .decode(sigs[0]["content"].as_str().unwrap())
        .unwrap();
    assert_eq!(copied, served);

    ctx.step("skopeo copy --sign-by adds a second signature");
    ctx.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--sign-by",
        &fpr,
        &format!("docker://{signed}"),
        &format!("docker://{reg}/signed/copy:v1"),
    ])
    .env("GNUPGHOME", &gnupg)
    .run();
    // The one copied from the source and skopeo's own (another timestamp).
    let sigs = extension_signatures(&ctx, &reg, "signed/copy", &digest);
    assert_eq!(sigs.len(), 2, "{sigs:?}");
    let policy_copy = signed_by_policy(&ctx, "copy.json", &format!("{reg}/signed"), &key);
    let mut args = skopeo_policy(&policy_copy);
    args.extend([
        "copy".into(),
        "--src-tls-verify=false".into(),
        format!("docker://{reg}/signed/copy:v1"),
        format!("dir:{}", ctx.p("tmp/copy-dir")),
    ]);
    ctx.cmd("skopeo", &args).run();
    assert!(ctx.path("tmp/copy-dir/signature-2").is_file());

    ctx.step("refused: an unsigned image");
    let unsigned = format!("{reg}/signed/unsigned:v1");
    // The pull above gave the local image its signature: drop it on the way out.
    ctx.podman(&[
        "push",
        &pf,
        &pv,
        "--tls-verify=false",
        "--remove-signatures",
        &image,
        &format!("docker://{unsigned}"),
    ])
    .run();
    let out = ctx
        .podman(&[
            "pull",
            "--signature-policy",
            &policy,
            "--tls-verify=false",
            &unsigned,
        ])
        .run_fail();
    assert!(
        out.stderr
            .contains("A signature was required, but no signature exists"),
        "{}",
        out.stderr
    );

    ctx.step("refused: signed, but not by the trusted key");
    let wrong = signed_by_policy(&ctx, "other.json", &format!("{reg}/signed"), &other_key);
    let out = ctx
        .podman(&[
            "pull",
            "--signature-policy",
            &wrong,
            "--tls-verify=false",
            &signed,
        ])
        .run_fail();
    assert!(
        out.stderr.contains("not trusted") || out.stderr.contains("Invalid GPG signature"),
        "{}",
        out.stderr
    );
    assert_ne!(fpr, other);
}

/// `berth image trust set|show` against `podman image trust` 4.3.1 doing the same, on
/// copies of one policy file: the files stay byte-identical and every view matches
/// (podman reads key identities with `gpg2`, given here as a link to gpg).
#[test]
fn image_trust_matches_podman() {
    let ctx = Ctx::new("trust", &["podman", GPG]);
    gpg_key(&ctx, "gnupg", "berth signer <signer@example.test>");
    let key = export_key(&ctx, "gnupg", "signer.gpg");
    fs::create_dir_all(ctx.path("bin")).unwrap();
    std::os::unix::fs::symlink(
        which(GPG).unwrap_or_else(|| panic!("gpg not on PATH")),
        ctx.path("bin/gpg2"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        ctx.p("bin"),
        std::env::var("PATH").unwrap_or_default()
    );
    fs::create_dir_all(ctx.path("rd")).unwrap();
    fs::write(
        ctx.path("rd/a.yaml"),
        "docker:\n  example.com:\n    lookaside: https://la.example.com\ndefault-docker:\n  sigstore: file:///var/sig\n",
    )
    .unwrap();
    let start = r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"q.io":[{"type":"sigstoreSigned","keyPath":"/k.pub","signedIdentity":{"type":"matchRepository"}}]}}}"#;
    for who in ["podman", "berth"] {
        fs::write(ctx.path(&format!("{who}.json")), start).unwrap();
    }
    let tool = |who: &str, args: &[&str]| {
        let policy = ctx.p(&format!("{who}.json"));
        let mut all: Vec<String> = vec!["image".into(), "trust".into()];
        all.push(args[0].into());
        all.extend(["--policypath".into(), policy]);
        if args[0] == "show" {
            all.extend(["--registrypath".into(), ctx.p("rd")]);
        }
        all.extend(args[1..].iter().map(|a| a.to_string()));
        let run = if who == "podman" {
            ctx.cmd("podman", &all)
        } else {
            ctx.berth(&all)
        };
        run.env("PATH", &path).run_any()
    };
    let both = |args: &[&str]| {
        let (p, b) = (tool("podman", args), tool("berth", args));
        assert_eq!(b.status.code(), p.status.code(), "{args:?}: {}", b.stderr);
        assert_eq!(b.stdout, p.stdout, "{args:?}");
        assert_eq!(b.stderr.trim(), p.stderr.trim(), "{args:?}");
        let files = (
            fs::read(ctx.path("podman.json")).unwrap(),
            fs::read(ctx.path("berth.json")).unwrap(),
        );
        assert_eq!(
            String::from_utf8_lossy(&files.1),
            String::from_utf8_lossy(&files.0),
            "{args:?}"
        );
    };
    both(&["set", "-t", "reject", "quay.io/foo"]);
    both(&["set", "-f", &key, "example.com/app"]);
    both(&["set", "-t", "signedBy", "-f", &key, "-f", &key, "docker.io"]);
    both(&["set", "--type", "sigstoreSigned", "-f", "/c.pub", "q.io"]);
    both(&["set", "-t", "accept", "default"]);
    both(&["set", "-t", "signedBy", "other.io"]);
    both(&["set", "-t", "bogus", "other.io"]);
    both(&["set", "-t", "reject", "-f", &key, "other.io"]);
    both(&["show"]);
    both(&["show", "-n"]);
    both(&["show", "--json"]);
    both(&["show", "--raw"]);
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
