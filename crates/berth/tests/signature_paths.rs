//! Where signatures live on the client side, with the real tools on the same inputs:
//! berth signs (`--sign-by` through gpg, `--sign-by-key` with no gpg) into `berth
//! serve` (the signature extension), into docker-registry (a `file://` lookaside from
//! registries.d) and into `dir:`, and skopeo 1.9.3 and podman 4.3.1 verify each by a
//! `signedBy` policy; skopeo signs, and berth verifies under policy on copy and pull,
//! from a `file://` and an `http://` lookaside (python's http.server) and from `dir:`;
//! every refusal about reading (tampered signature bytes, another key, a wrong
//! identity, a signature for another digest, a rejecting policy) copies and pulls
//! nothing, as skopeo refuses the same input. sigstore is tested against berth itself:
//! Debian's skopeo 1.9.3 has sigstore signing disabled.
//!
//! Run with `cargo test -p berth --test signature_paths`.

#[path = "interop/support.rs"]
mod support;

#[path = "interop/gpg.rs"]
mod gpg;

use std::fs;
use std::path::Path;

use gpg::{export_key, gpg_key, GPG};
use serde_json::{json, Value};
use support::*;

/// registries.d for berth and podman (`$HOME/.config/containers/registries.d`) and for
/// skopeo (`--registries.d`, as the harness passes it).
fn registries_d(ctx: &Ctx, yaml: &str) {
    for dir in ["registries.d", "home/.config/containers/registries.d"] {
        fs::create_dir_all(ctx.path(dir)).unwrap();
        fs::write(ctx.path(dir).join("e1.yaml"), yaml).unwrap();
    }
}

fn write_policy(ctx: &Ctx, file: &str, policy: Value) -> String {
    fs::write(ctx.path(file), policy.to_string()).unwrap();
    ctx.p(file)
}

fn signed_by(key: &str) -> Value {
    json!([{"type": "signedBy", "keyType": "GPGKeys", "keyPath": key}])
}

fn signed_by_as(key: &str, reference: &str) -> Value {
    json!([{"type": "signedBy", "keyType": "GPGKeys", "keyPath": key,
            "signedIdentity": {"type": "exactReference", "dockerReference": reference}}])
}

/// The armored secret key of a GnuPG home (no passphrase), as `--sign-by-key` takes it.
fn export_secret(ctx: &Ctx, home: &str, file: &str) -> String {
    let out = ctx
        .cmd(
            GPG,
            &[
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--armor",
                "--export-secret-keys",
            ],
        )
        .env("GNUPGHOME", ctx.path(home))
        .run();
    assert!(out.stdout.contains("PRIVATE KEY BLOCK"), "{}", out.stdout);
    fs::write(ctx.path(file), &out.stdout_bytes).unwrap();
    ctx.p(file)
}

/// skopeo under `policy` (the harness's `ctx.skopeo` is `--insecure-policy`).
fn skopeo_with<'a>(ctx: &'a Ctx, policy: &str, args: &[&str]) -> Run<'a> {
    let mut all: Vec<String> = vec![
        "--policy".into(),
        policy.into(),
        "--registries.d".into(),
        ctx.p("registries.d"),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    ctx.cmd("skopeo", &all)
}

/// `berth copy` to a registry with `flags` (the signing ones), with the test's GnuPG
/// home `gnupg` (where there is one); its output and the digest it wrote.
fn copy_into(ctx: &Ctx, flags: &[&str], src: &str, dst: &str) -> (Output, String) {
    let file = ctx.fresh("digest");
    let file_arg = file.display().to_string();
    let mut args = vec![
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--digestfile",
        &file_arg,
    ];
    args.extend(flags);
    args.extend([src, dst]);
    let out = ctx.berth(&args).env("GNUPGHOME", ctx.path("gnupg")).run();
    (out, digest_of(&file))
}

fn digest_of(path: &Path) -> String {
    fs::read_to_string(path).unwrap().trim().to_string()
}

fn extension_count(ctx: &Ctx, reg: &str, repo: &str, digest: &str) -> usize {
    let resp = ctx.http(
        "GET",
        &format!("http://{reg}/extensions/v2/{repo}/signatures/{digest}"),
        None,
    );
    resp.expect_status(200);
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    v["signatures"].as_array().map_or(0, Vec::len)
}

/// A podman-built busybox image as a `dir:` folder; returns its path.
fn plain_image(ctx: &Ctx, name: &str) -> String {
    let image = ctx.build_busybox(&format!("localhost/e1/{name}:v1"));
    let [pf, pv] = ctx.policy_args();
    let dir = ctx.p(&format!("tmp/{name}"));
    ctx.podman(&["push", &pf, &pv, &image, &format!("dir:{dir}")])
        .run();
    dir
}

#[test]
fn berth_signs_and_skopeo_and_podman_verify() {
    let mut ctx = Ctx::new(
        "sig-berth-signs",
        &["podman", "skopeo", "buildah", GPG, "curl"],
    );
    let reg = ctx.start(ServerKind::Berth);
    let dist = ctx.start(ServerKind::Distribution);
    let fpr = gpg_key(&ctx, "gnupg", "berth signer <signer@example.test>");
    gpg_key(&ctx, "gnupg-other", "someone else <other@example.test>");
    let key = export_key(&ctx, "gnupg", "signer.gpg");
    let other_key = export_key(&ctx, "gnupg-other", "other.gpg");
    let secret = export_secret(&ctx, "gnupg", "signer.asc");
    let gnupg = ctx.path("gnupg");
    let la = ctx.path("lookaside");
    registries_d(
        &ctx,
        &format!("default-docker:\n  lookaside: file://{}\n", la.display()),
    );
    let plain = plain_image(&ctx, "plain");

    ctx.step("berth copy --sign-by (gpg) into berth serve: the extension keeps it");
    let to_berth = format!("{reg}/e1/app:v1");
    let (out, d1) = copy_into(
        &ctx,
        &["--sign-by", &fpr],
        &format!("dir:{plain}"),
        &format!("docker://{to_berth}"),
    );
    for line in [
        "Checking if image destination supports signatures",
        "Signing manifest using simple signing",
        "Storing signatures",
    ] {
        assert!(out.stderr.contains(line), "{line}: {}", out.stderr);
    }
    assert_eq!(extension_count(&ctx, &reg, "e1/app", &d1), 1);
    assert!(!la.exists(), "nothing goes to the lookaside");

    ctx.step("berth copy --sign-by-key (no gpg) into docker-registry: the file lookaside");
    let to_dist = format!("{dist}/e1/app:v1");
    // The key file signs (rpgp; no gpg involved).
    let (_, d2) = copy_into(
        &ctx,
        &["--sign-by-key", &secret],
        &format!("dir:{plain}"),
        &format!("docker://{to_dist}"),
    );
    let hex = d2.trim_start_matches("sha256:");
    assert!(la
        .join(format!("e1/app@sha256={hex}/signature-1"))
        .is_file());

    ctx.step("berth copy --sign-by --sign-identity into dir:");
    let signed_dir = ctx.p("tmp/signed-dir");
    let claimed = format!("{dist}/e1/app:v1");
    ctx.berth(&[
        "copy",
        "--sign-by",
        &fpr,
        "--sign-identity",
        &claimed,
        &format!("dir:{plain}"),
        &format!("dir:{signed_dir}"),
    ])
    .env("GNUPGHOME", &gnupg)
    .run();
    assert!(ctx.path("tmp/signed-dir/signature-1").is_file());
    // No identity to claim for a dir: destination without --sign-identity.
    let out = ctx
        .berth(&[
            "copy",
            "--sign-by",
            &fpr,
            &format!("dir:{plain}"),
            &format!("dir:{}", ctx.p("tmp/no-identity")),
        ])
        .env("GNUPGHOME", &gnupg)
        .run_fail();
    assert!(
        out.stderr
            .contains("Cannot determine canonical Docker reference"),
        "{}",
        out.stderr
    );
    assert!(!ctx.path("tmp/no-identity").exists());

    ctx.step("skopeo and podman verify each by signedBy");
    let policy = write_policy(
        &ctx,
        "signed.json",
        json!({
            "default": [{"type": "reject"}],
            "transports": {
                "docker": {format!("{reg}/e1"): signed_by(&key), format!("{dist}/e1"): signed_by(&key)},
                "dir": {"": signed_by_as(&key, &claimed)}
            }
        }),
    );
    for (n, src) in [
        format!("docker://{to_berth}"),
        format!("docker://{to_dist}"),
        format!("dir:{signed_dir}"),
    ]
    .iter()
    .enumerate()
    {
        let dest = format!("dir:{}", ctx.p(&format!("tmp/skopeo-{n}")));
        skopeo_with(
            &ctx,
            &policy,
            &["copy", "--src-tls-verify=false", src, &dest],
        )
        .run();
    }
    for image in [&to_berth, &to_dist] {
        ctx.podman(&[
            "pull",
            "--signature-policy",
            &policy,
            "--tls-verify=false",
            image,
        ])
        .run();
    }

    ctx.step("another key: skopeo and berth both refuse");
    let other = write_policy(
        &ctx,
        "other.json",
        json!({"default": [{"type": "reject"}],
               "transports": {"docker": {format!("{reg}/e1"): signed_by(&other_key)}}}),
    );
    let src = format!("docker://{to_berth}");
    skopeo_with(
        &ctx,
        &other,
        &[
            "copy",
            "--src-tls-verify=false",
            &src,
            &format!("dir:{}", ctx.p("tmp/refused-s")),
        ],
    )
    .run_fail();
    let out = ctx
        .berth(&[
            "copy",
            "--policy",
            &other,
            "--src-tls-verify=false",
            &src,
            &format!("dir:{}", ctx.p("tmp/refused-b")),
        ])
        .run_fail();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.contains("Source image rejected"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("transports.docker[\"{reg}/e1\"]")),
        "{}",
        out.stderr
    );
    assert!(!ctx.path("tmp/refused-b").exists());
}

/// Reads the image `src` under `policy` with berth and with skopeo: both accept, or
/// both refuse and berth copies nothing and says `why`.
/// `berth copy` of `image` under `policy`, with a registries.d folder whose default
/// lookaside is the file folder `lookaside` (under the test's folder); it must fail.
fn copy_through_lookaside(ctx: &Ctx, policy: &str, image: &str, lookaside: &str) -> Output {
    let dir = ctx.path(&format!("{lookaside}.d"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("l.yaml"),
        format!(
            "default-docker:\n  lookaside: file://{}\n",
            ctx.p(lookaside)
        ),
    )
    .unwrap();
    ctx.berth(&[
        "copy",
        "--policy",
        policy,
        "--registries.d",
        &dir.display().to_string(),
        "--src-tls-verify=false",
        &format!("docker://{image}"),
        &format!("dir:{}", ctx.p(&format!("tmp/{lookaside}-out"))),
    ])
    .run_fail()
}

fn both_decide(ctx: &Ctx, policy: &str, src: &str, accept: bool, why: &str) {
    let dest = ctx.fresh("out");
    let sdest = ctx.fresh("skopeo-out");
    let args = |d: &Path| {
        vec![
            "copy".to_string(),
            "--src-tls-verify=false".to_string(),
            src.to_string(),
            format!("dir:{}", d.display()),
        ]
    };
    let mut b: Vec<String> = vec!["copy".into(), "--policy".into(), policy.into()];
    b.extend(args(&dest).into_iter().skip(1));
    let s = args(&sdest);
    let s: Vec<&str> = s.iter().map(String::as_str).collect();
    if accept {
        ctx.berth(&b).run();
        skopeo_with(ctx, policy, &s).run();
        assert!(dest.join("manifest.json").is_file());
    } else {
        let out = ctx.berth(&b).run_fail();
        assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
        assert!(out.stderr.contains(why), "{why}: {}", out.stderr);
        assert!(!dest.exists(), "{src}: something was copied");
        skopeo_with(ctx, policy, &s).run_fail();
    }
}

#[test]
fn skopeo_signs_and_berth_verifies_on_copy_and_pull() {
    let mut ctx = Ctx::new(
        "sig-berth-verifies",
        &["podman", "skopeo", "buildah", GPG, "python3"],
    );
    let dist = ctx.start(ServerKind::Distribution);
    let fpr = gpg_key(&ctx, "gnupg", "skopeo signer <signer@example.test>");
    gpg_key(&ctx, "gnupg-other", "someone else <other@example.test>");
    let key = export_key(&ctx, "gnupg", "signer.gpg");
    let other_key = export_key(&ctx, "gnupg-other", "other.gpg");
    let gnupg = ctx.path("gnupg");
    let la = ctx.path("lookaside");
    let file_la = format!("default-docker:\n  lookaside: file://{}\n", la.display());
    registries_d(&ctx, &file_la);
    let plain = plain_image(&ctx, "plain");

    ctx.step("skopeo copy --sign-by into docker-registry (file lookaside) and dir:");
    let image = format!("{dist}/e1/app:v1");
    ctx.skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--sign-by",
        &fpr,
        &format!("dir:{plain}"),
        &format!("docker://{image}"),
    ])
    .env("GNUPGHOME", &gnupg)
    .run();
    let sdir = ctx.p("tmp/sdir");
    ctx.skopeo(&[
        "copy",
        "--sign-by",
        &fpr,
        "--sign-identity",
        &image,
        &format!("dir:{plain}"),
        &format!("dir:{sdir}"),
    ])
    .env("GNUPGHOME", &gnupg)
    .run();
    let policy = write_policy(
        &ctx,
        "signed.json",
        json!({"default": [{"type": "reject"}],
               "transports": {"docker": {format!("{dist}/e1"): signed_by(&key)},
                              "dir": {"": signed_by_as(&key, &image)}}}),
    );

    ctx.step("accepted: from the file lookaside and from dir:");
    both_decide(&ctx, &policy, &format!("docker://{image}"), true, "");
    both_decide(&ctx, &policy, &format!("dir:{sdir}"), true, "");

    ctx.step("--registries.d: a folder naming another lookaside, with no signature in it");
    let out = copy_through_lookaside(&ctx, &policy, &image, "nowhere");
    assert!(out.stderr.contains("no signature exists"), "{}", out.stderr);

    ctx.step("refused: a lookaside that holds more signatures than c/image reads (128)");
    let first = walk_files(&la)
        .into_iter()
        .find(|p| p.ends_with("signature-1"))
        .expect("skopeo's signature in the lookaside");
    let at = first.parent().unwrap().strip_prefix(&la).unwrap();
    let many = ctx.path("many-la").join(at);
    fs::create_dir_all(&many).unwrap();
    for i in 1..=129 {
        fs::copy(&first, many.join(format!("signature-{i}"))).unwrap();
    }
    let out = copy_through_lookaside(&ctx, &policy, &image, "many-la");
    assert!(
        out.stderr
            .contains("128 signatures, assuming that's unreasonable"),
        "{}",
        out.stderr
    );

    ctx.step("accepted: from an http lookaside (python3 -m http.server)");
    let port = berth_testenv::free_port().unwrap();
    let mut web = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(&la)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "http.server did not start");
    registries_d(
        &ctx,
        &format!("default-docker:\n  lookaside: http://127.0.0.1:{port}\n"),
    );
    both_decide(&ctx, &policy, &format!("docker://{image}"), true, "");
    let _ = web.kill();
    let _ = web.wait();
    registries_d(&ctx, &file_la);

    ctx.step("inspect --signatures: each signature and the policy's verdict on it");
    let listing = |policy: &str| {
        ctx.berth(&[
            "inspect",
            "--signatures",
            "--policy",
            policy,
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .run()
        .json()
    };
    let v = listing(&policy);
    assert_eq!(v["Signatures"][0]["Type"], "simple", "{v}");
    assert_eq!(v["Signatures"][0]["Verified"], true, "{v}");
    let v = listing(&ctx.p("policy.json"));
    assert_eq!(v["Signatures"][0]["Verified"], false, "{v}");
    let reason = v["Signatures"][0]["Reason"].as_str().unwrap_or_default();
    assert!(reason.contains("requires no signature"), "{v}");

    ctx.step("berth pull verifies, keeps the signature, and push copies it out");
    ctx.berth(&[
        "pull",
        "--signature-policy",
        &policy,
        "--tls-verify=false",
        &image,
    ])
    .run();
    let pushed = ctx.p("tmp/pushed");
    ctx.berth(&["push", &image, &format!("dir:{pushed}")]).run();
    let hex = ctx.sha256(&fs::read(ctx.path("tmp/pushed/manifest.json")).unwrap());
    let hex = hex.trim_start_matches("sha256:");
    assert_eq!(
        fs::read(ctx.path("tmp/pushed/signature-1")).unwrap(),
        fs::read(la.join(format!("e1/app@sha256={hex}/signature-1"))).unwrap()
    );
    ctx.step("refused: tampered signature bytes, in dir: and in the lookaside");
    let tampered = ctx.p("tmp/tampered");
    copy_dir(&ctx.path("tmp/sdir"), Path::new(&tampered));
    let sig = Path::new(&tampered).join("signature-1");
    let mut bytes = fs::read(&sig).unwrap();
    // Near the end, not the last byte: gpg compresses with raw deflate (no checksum),
    // whose last byte may hold padding bits after the end-of-block code; flipping only
    // those changes nothing, and skopeo rightly accepted such a "tampered" signature
    // now and then.
    let near_end = bytes.len() - 8;
    bytes[near_end] ^= 0x55;
    fs::write(&sig, &bytes).unwrap();
    both_decide(
        &ctx,
        &policy,
        &format!("dir:{tampered}"),
        false,
        "Source image rejected",
    );
    let payload = ctx.p("tmp/payload");
    copy_dir(&ctx.path("tmp/sdir"), Path::new(&payload));
    let sig = Path::new(&payload).join("signature-1");
    let mut bytes = fs::read(&sig).unwrap();
    let middle = bytes.len() / 3;
    bytes[middle] ^= 0x55;
    fs::write(&sig, &bytes).unwrap();
    both_decide(
        &ctx,
        &policy,
        &format!("dir:{payload}"),
        false,
        "Source image rejected",
    );

    ctx.step("refused: another key, a wrong identity, a rejecting policy");
    let other = write_policy(
        &ctx,
        "other.json",
        json!({"default": [{"type": "reject"}],
               "transports": {"docker": {format!("{dist}/e1"): signed_by(&other_key)},
                              "dir": {"": signed_by_as(&other_key, &image)}}}),
    );
    both_decide(
        &ctx,
        &other,
        &format!("docker://{image}"),
        false,
        "Source image rejected",
    );
    both_decide(
        &ctx,
        &other,
        &format!("dir:{sdir}"),
        false,
        "Source image rejected",
    );
    let v = ctx
        .berth(&[
            "inspect",
            "--signatures",
            "--policy",
            &other,
            &format!("dir:{sdir}"),
        ])
        .run()
        .json();
    assert_eq!(v["Signatures"][0]["Verified"], false, "{v}");
    let wrong = write_policy(
        &ctx,
        "wrong.json",
        json!({"default": [{"type": "reject"}],
               "transports": {"dir": {"": signed_by_as(&key, &format!("{dist}/e1/other:v1"))}}}),
    );
    both_decide(
        &ctx,
        &wrong,
        &format!("dir:{sdir}"),
        false,
        "is not accepted",
    );
    let reject = write_policy(
        &ctx,
        "reject.json",
        json!({"default": [{"type": "reject"}]}),
    );
    both_decide(
        &ctx,
        &reject,
        &format!("dir:{sdir}"),
        false,
        "rejected by policy",
    );

    ctx.step("refused: a signature for another digest");
    let moved = ctx.p("tmp/moved");
    // The other format: another manifest, another digest.
    let manifest = fs::read_to_string(Path::new(&plain).join("manifest.json")).unwrap();
    let other_format = match manifest.contains(OCI_MANIFEST) {
        true => "v2s2",
        false => "oci",
    };
    ctx.berth(&[
        "copy",
        "--format",
        other_format,
        &format!("dir:{plain}"),
        &format!("dir:{moved}"),
    ])
    .run();
    fs::copy(
        ctx.path("tmp/sdir/signature-1"),
        Path::new(&moved).join("signature-1"),
    )
    .unwrap();
    both_decide(
        &ctx,
        &policy,
        &format!("dir:{moved}"),
        false,
        "does not match",
    );

    ctx.step("refused pull: nothing is stored, exit 125");
    ctx.berth(&["rmi", &image]).run();
    let out = ctx
        .berth(&[
            "pull",
            "--signature-policy",
            &other,
            "--tls-verify=false",
            &image,
        ])
        .run_fail();
    assert_eq!(out.status.code(), Some(125), "{}", out.stderr);
    assert!(
        out.stderr.contains("Source image rejected"),
        "{}",
        out.stderr
    );
    let listed = ctx.berth(&["images", "--format", "{{.Repository}}"]).run();
    assert!(!listed.stdout.contains("e1/app"), "{}", listed.stdout);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn sigstore_signatures_as_attachments() {
    let mut ctx = Ctx::new("sig-sigstore", &["podman", "buildah", "curl"]);
    let reg = ctx.start(ServerKind::Berth);
    registries_d(
        &ctx,
        &format!("docker:\n  {reg}:\n    use-sigstore-attachments: true\n"),
    );
    fs::write(ctx.path("pw"), "secret\n").unwrap();
    for prefix in ["k", "other"] {
        ctx.berth(&[
            "generate-sigstore-key",
            "--output-prefix",
            &ctx.p(prefix),
            "--passphrase-file",
            &ctx.p("pw"),
        ])
        .run();
    }
    let plain = plain_image(&ctx, "plain");

    ctx.step("berth copy --sign-by-sigstore-private-key: a sha256-<hex>.sig attachment");
    let image = format!("{reg}/e1/sig:v1");
    let (key, pw) = (ctx.p("k.private"), ctx.p("pw"));
    let (out, digest) = copy_into(
        &ctx,
        &[
            "--sign-by-sigstore-private-key",
            &key,
            "--sign-passphrase-file",
            &pw,
        ],
        &format!("dir:{plain}"),
        &format!("docker://{image}"),
    );
    assert!(
        out.stderr
            .contains("Signing manifest using a sigstore signature"),
        "{}",
        out.stderr
    );
    let tag = digest.replace(':', "-") + ".sig";
    let att = ctx.http(
        "GET",
        &format!("http://{reg}/v2/e1/sig/manifests/{tag}"),
        Some(MANIFEST_ACCEPT),
    );
    att.expect_status(200);
    let m: Value = serde_json::from_slice(&att.body).unwrap();
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    assert!(m["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"].is_string());

    let sigstore = |key: &str| {
        json!({"default": [{"type": "reject"}],
               "transports": {"docker": {format!("{reg}/e1"): [{"type": "sigstoreSigned", "keyPath": ctx.p(key)}]}}})
    };
    let policy = write_policy(&ctx, "sigstore.json", sigstore("k.pub"));
    let other = write_policy(&ctx, "other.json", sigstore("other.pub"));

    ctx.step("verified by sigstoreSigned; copied along with the image");
    let copy = format!("{reg}/e1/copy:v1");
    ctx.berth(&[
        "copy",
        "--policy",
        &policy,
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{image}"),
        &format!("docker://{copy}"),
    ])
    .run();
    ctx.http(
        "GET",
        &format!("http://{reg}/v2/e1/copy/manifests/{tag}"),
        Some(MANIFEST_ACCEPT),
    )
    .expect_status(200);
    // The copy claims the name it was signed for, so it is pulled under that name.
    ctx.berth(&[
        "pull",
        "--signature-policy",
        &policy,
        "--tls-verify=false",
        &image,
    ])
    .run();
    let out = ctx
        .berth(&[
            "pull",
            "--signature-policy",
            &policy,
            "--tls-verify=false",
            &copy,
        ])
        .run_fail();
    assert!(out.stderr.contains("is not accepted"), "{}", out.stderr);

    ctx.step("refused: another key; nothing copied");
    let out = ctx
        .berth(&[
            "copy",
            "--policy",
            &other,
            "--src-tls-verify=false",
            &format!("docker://{image}"),
            &format!("dir:{}", ctx.p("tmp/refused")),
        ])
        .run_fail();
    assert!(
        out.stderr.contains("Source image rejected"),
        "{}",
        out.stderr
    );
    assert!(!ctx.path("tmp/refused").exists());

    ctx.step("oci: cannot keep signatures; --remove-signatures copies without them");
    let out = ctx
        .berth(&[
            "copy",
            "--policy",
            &policy,
            "--src-tls-verify=false",
            &format!("docker://{image}"),
            &format!("oci:{}:v1", ctx.p("tmp/layout")),
        ])
        .run_fail();
    assert!(
        out.stderr
            .contains("Pushing signatures for OCI images is not supported"),
        "{}",
        out.stderr
    );
    assert!(!ctx.path("tmp/layout/index.json").exists());
    ctx.berth(&[
        "copy",
        "--policy",
        &policy,
        "--remove-signatures",
        "--src-tls-verify=false",
        &format!("docker://{image}"),
        &format!("oci:{}:v1", ctx.p("tmp/layout")),
    ])
    .run();
}

/// The pulls of `create`, `run` and `build`'s FROM, and `sync`, decide by the policy
/// too: an unsigned image under `signedBy` is refused and nothing is stored or synced;
/// a signed one goes, with its signature (sync brings it to the mirror).
#[test]
fn create_build_and_sync_obey_the_policy() {
    let mut ctx = Ctx::new("sig-paths", &["podman", "buildah", GPG, "curl"]);
    let reg = ctx.start(ServerKind::Berth);
    let fpr = gpg_key(&ctx, "gnupg", "berth signer <signer@example.test>");
    let key = export_key(&ctx, "gnupg", "signer.gpg");
    let gnupg = ctx.path("gnupg");
    let plain = plain_image(&ctx, "plain");
    let (signed, unsigned) = (
        format!("{reg}/e1/signed:v1"),
        format!("{reg}/e1/unsigned:v1"),
    );
    for (image, sign) in [(&signed, true), (&unsigned, false)] {
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        if sign {
            args.extend(["--sign-by", &fpr]);
        }
        let (src, dst) = (format!("dir:{plain}"), format!("docker://{image}"));
        args.extend([src.as_str(), dst.as_str()]);
        ctx.berth(&args).env("GNUPGHOME", &gnupg).run();
    }
    let policy = write_policy(
        &ctx,
        "signed.json",
        json!({"default": [{"type": "reject"}],
               "transports": {"docker": {format!("{reg}/e1"): signed_by(&key)}}}),
    );

    ctx.step("create: refused unsigned (125, nothing stored), accepted signed");
    let create = |image: &str| {
        ctx.berth(&[
            "create",
            "--signature-policy",
            &policy,
            "--tls-verify=false",
            image,
        ])
    };
    let out = create(&unsigned).run_fail();
    assert_eq!(out.status.code(), Some(125), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("A signature was required, but no signature exists"),
        "{}",
        out.stderr
    );
    create(&signed).run();
    let listed = ctx
        .berth(&["images", "--format", "{{.Repository}}"])
        .run()
        .stdout;
    assert!(listed.contains("e1/signed"), "{listed}");
    assert!(!listed.contains("e1/unsigned"), "{listed}");

    ctx.step("push --sign-by: the stored signature and a new one go out");
    let pushed = format!("{reg}/e1/pushed:v1");
    ctx.berth(&[
        "push",
        "--tls-verify=false",
        "--sign-by",
        &fpr,
        "--digestfile",
        &ctx.p("tmp/pushed-digest"),
        &signed,
        &pushed,
    ])
    .env("GNUPGHOME", &gnupg)
    .run();
    let digest = digest_of(&ctx.path("tmp/pushed-digest"));
    assert_eq!(extension_count(&ctx, &reg, "e1/pushed", &digest), 2);
    ctx.podman(&[
        "pull",
        "--signature-policy",
        &policy,
        "--tls-verify=false",
        &pushed,
    ])
    .run();

    ctx.step("build: FROM an unsigned image is refused");
    fs::create_dir_all(ctx.path("ctx")).unwrap();
    fs::write(ctx.path("ctx/Containerfile"), format!("FROM {unsigned}\n")).unwrap();
    let out = ctx
        .berth(&[
            "build",
            "--signature-policy",
            &policy,
            "--tls-verify=false",
            "-t",
            "localhost/e1/built:v1",
            &ctx.p("ctx"),
        ])
        .run_fail();
    assert!(
        out.stderr.contains("Source image rejected"),
        "{}",
        out.stderr
    );

    ctx.step("sync: the signed image and its signature to the mirror; unsigned refused");
    ctx.berth(&[
        "sync",
        "--src",
        "docker",
        "--dest",
        "docker",
        "--policy",
        &policy,
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &signed,
        &format!("{reg}/mirror"),
    ])
    .run();
    let digest = ctx
        .http(
            "HEAD",
            &format!("http://{reg}/v2/mirror/signed/manifests/v1"),
            Some(MANIFEST_ACCEPT),
        )
        .header("docker-content-digest")
        .unwrap()
        .to_string();
    assert_eq!(extension_count(&ctx, &reg, "mirror/signed", &digest), 1);
    let out = ctx
        .berth(&[
            "sync",
            "--src",
            "docker",
            "--dest",
            "docker",
            "--policy",
            &policy,
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &unsigned,
            &format!("{reg}/mirror"),
        ])
        .run_fail();
    assert!(
        out.stderr.contains("Source image rejected"),
        "{}",
        out.stderr
    );
    ctx.http(
        "HEAD",
        &format!("http://{reg}/v2/mirror/unsigned/manifests/v1"),
        Some(MANIFEST_ACCEPT),
    )
    .expect_status(404);
}

/// OCI 1.1 referrers go with the image between two berth registries (both answer the
/// referrers API), are left with `--referrers=false`, and a registry without the API
/// (docker-registry) is named on stderr.
#[test]
fn referrers_follow_the_image() {
    let mut ctx = Ctx::new("referrers", &["podman", "buildah", "curl"]);
    let reg = ctx.start(ServerKind::Berth);
    let dist = ctx.start(ServerKind::Distribution);
    let plain = plain_image(&ctx, "plain");
    let (_, digest) = copy_into(
        &ctx,
        &[],
        &format!("dir:{plain}"),
        &format!("docker://{reg}/e1/app:v1"),
    );
    let subject = fs::read(Path::new(&plain).join("manifest.json")).unwrap();
    let subject_type: Value = serde_json::from_slice(&subject).unwrap();

    ctx.step("an SBOM artifact whose subject is the image, pushed by digest");
    let art = ctx.path("tmp/art");
    fs::create_dir_all(&art).unwrap();
    let put = |bytes: &[u8]| {
        let d = ctx.sha256(bytes);
        fs::write(art.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        d
    };
    let (config, layer) = (put(b"{}"), put(b"sbom: busybox\n"));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "text/plain", "digest": layer, "size": 14}],
        "subject": {"mediaType": subject_type["mediaType"].as_str().unwrap_or(OCI_MANIFEST),
                    "digest": digest, "size": subject.len()}
    })
    .to_string();
    fs::write(art.join("manifest.json"), &manifest).unwrap();
    fs::write(art.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    let art_digest = ctx.sha256(manifest.as_bytes());
    ctx.berth(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("dir:{}", art.display()),
        &format!("docker://{reg}/e1/app@{art_digest}"),
    ])
    .run();
    let referrers = |repo: &str| -> Vec<String> {
        let r = ctx.http(
            "GET",
            &format!("http://{reg}/v2/{repo}/referrers/{digest}"),
            None,
        );
        r.expect_status(200);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        v["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["digest"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(referrers("e1/app"), std::slice::from_ref(&art_digest));

    ctx.step("copied along, and said so");
    let copy = |dest: &str, extra: &[&str]| {
        let mut args = vec!["copy", "--src-tls-verify=false", "--dest-tls-verify=false"];
        args.extend(extra);
        let (src, dst) = (
            format!("docker://{reg}/e1/app:v1"),
            format!("docker://{dest}"),
        );
        args.extend([src.as_str(), dst.as_str()]);
        ctx.berth(&args).run()
    };
    let out = copy(&format!("{reg}/e1/copy:v1"), &[]);
    assert!(
        out.stderr.contains(&format!(
            "Copying referrer {art_digest} (application/vnd.example.sbom)"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Copied 1 referrers"), "{}", out.stderr);
    assert_eq!(referrers("e1/copy"), std::slice::from_ref(&art_digest));

    ctx.step("a copy within one registry asks /v2/ once and goes straight to the manifest");
    let requests = |route: &str, method: &str| -> u64 {
        let r = ctx.http("GET", &format!("http://{reg}/metrics"), None);
        r.expect_status(200);
        let prefix = format!("berth_http_requests_total{{route=\"{route}\",method=\"{method}\",");
        String::from_utf8_lossy(&r.body)
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let counts = || {
        [
            requests("base", "GET"),
            requests("manifest_get", "HEAD"),
            requests("referrers", "GET"),
        ]
    };
    let before = counts();
    copy(&format!("{reg}/e1/again:v1"), &[]);
    let after = counts();
    assert_eq!(after[0] - before[0], 1, "pings of one registry by one copy");
    assert_eq!(after[1] - before[1], 0, "manifest HEADs before the GET");
    assert!(after[2] > before[2], "the referrers were listed");

    ctx.step("a converted manifest has none of the source's referrers: none asked for");
    let other = match subject_type["mediaType"].as_str() {
        Some(OCI_MANIFEST) | None => "v2s2",
        Some(_) => "oci",
    };
    let out = copy(&format!("{reg}/e1/docker:v1"), &["--format", other]);
    assert!(!out.stderr.contains("referrer"), "{}", out.stderr);
    assert_eq!(requests("referrers", "GET"), after[2]);
    assert!(referrers("e1/docker").is_empty());

    ctx.step("--referrers=false leaves them; docker-registry has no referrers API");
    copy(&format!("{reg}/e1/bare:v1"), &["--referrers=false"]);
    assert!(referrers("e1/bare").is_empty());
    let out = copy(&format!("{dist}/e1/app:v1"), &[]);
    assert!(
        out.stderr.contains("does not answer the referrers API"),
        "{}",
        out.stderr
    );
}

/// A multi-platform image, as containers/image decides it: a pull takes the image for
/// the platform, and the policy wants that image signed (a signature of the index alone
/// is refused, by podman as by berth); with `--all` the index and each image carry
/// their own signatures, into `dir:` too (`<hex>.signature-N`).
#[test]
fn multi_platform_images_are_decided_per_image() {
    let mut ctx = Ctx::new("sig-multi", &["podman", "skopeo", "buildah", GPG, "curl"]);
    let reg = ctx.start(ServerKind::Berth);
    let fpr = gpg_key(&ctx, "gnupg", "berth signer <signer@example.test>");
    let key = export_key(&ctx, "gnupg", "signer.gpg");
    let gnupg = ctx.path("gnupg");
    let list = format!("{reg}/e1/multi:v1");
    let index_digest = ctx.push_two_platforms("multi", &format!("docker://{list}"));
    let policy = write_policy(
        &ctx,
        "signed.json",
        json!({"default": [{"type": "reject"}],
               "transports": {"docker": {format!("{reg}/e1"): signed_by(&key)}}}),
    );

    ctx.step("only the index signed: podman and berth both refuse the pull");
    let signed_list = format!("{reg}/e1/signed-list:v1");
    ctx.berth(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--sign-by",
        &fpr,
        &format!("docker://{list}"),
        &format!("docker://{signed_list}"),
    ])
    .env("GNUPGHOME", &gnupg)
    .run();
    assert_eq!(
        extension_count(&ctx, &reg, "e1/signed-list", &index_digest),
        1
    );
    let pull = |tool: &str, image: &str| {
        let args = [
            "pull",
            "--signature-policy",
            &policy,
            "--tls-verify=false",
            "--arch",
            "amd64",
            image,
        ];
        match tool {
            "podman" => ctx.podman(&args),
            _ => ctx.berth(&[
                "pull",
                "--signature-policy",
                &policy,
                "--tls-verify=false",
                "--platform",
                "linux/amd64",
                image,
            ]),
        }
    };
    let out = pull("podman", &signed_list).run_fail();
    assert!(out.stderr.contains("no signature exists"), "{}", out.stderr);
    let out = pull("berth", &signed_list).run_fail();
    assert!(out.stderr.contains("no signature exists"), "{}", out.stderr);

    ctx.step("each image signed too: both pull it");
    let index: Value = serde_json::from_slice(
        &ctx.raw_manifest(&format!("docker://{reg}/e1/signed-list@{index_digest}")),
    )
    .unwrap();
    for child in index["manifests"].as_array().unwrap() {
        let at = format!("{reg}/e1/signed-list@{}", child["digest"].as_str().unwrap());
        ctx.berth(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--sign-by",
            &fpr,
            // The name it is pulled by: matchRepoDigestOrExact wants the tag.
            "--sign-identity",
            &signed_list,
            &format!("docker://{at}"),
            &format!("docker://{at}"),
        ])
        .env("GNUPGHOME", &gnupg)
        .run();
    }
    pull("podman", &signed_list).run();
    pull("berth", &signed_list).run();

    ctx.step("--all into dir: the index's signature-1 and each image's <hex>.signature-1");
    let out_dir = ctx.path("tmp/multi-dir");
    ctx.berth(&[
        "copy",
        "--all",
        "--policy",
        &policy,
        "--src-tls-verify=false",
        &format!("docker://{signed_list}"),
        &format!("dir:{}", out_dir.display()),
    ])
    .run();
    assert!(out_dir.join("signature-1").is_file());
    for child in index["manifests"].as_array().unwrap() {
        let hex = child["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        assert!(
            out_dir.join(format!("{hex}.signature-1")).is_file(),
            "{hex}"
        );
    }
    // skopeo reads the same folder under the same kind of policy.
    let dir_policy = write_policy(
        &ctx,
        "dir.json",
        json!({"default": [{"type": "reject"}],
               "transports": {"dir": {"": signed_by_as(&key, &signed_list)}}}),
    );
    skopeo_with(
        &ctx,
        &dir_policy,
        &[
            "copy",
            "--all",
            &format!("dir:{}", out_dir.display()),
            &format!("dir:{}", ctx.p("tmp/skopeo-multi")),
        ],
    )
    .run();
}
