//! `berth standalone-sign`, `standalone-verify` and `generate-sigstore-key` against
//! skopeo 1.9.3 and gpg 2.2: what either signs, the other verifies, and the refusals
//! say what skopeo says.
//!
//! Run with `cargo test -p berth --test standalone_signatures`.

#[path = "interop/support.rs"]
mod support;

#[path = "interop/gpg.rs"]
mod gpg;

use std::fs;

use gpg::{export_key, gpg_key, GPG};
use support::*;

#[test]
fn standalone_sign_and_verify_both_ways_with_skopeo() {
    let ctx = Ctx::new("standalone", &["skopeo", GPG]);
    let fpr = gpg_key(&ctx, "gnupg", "berth signer <signer@example.test>");
    let key = export_key(&ctx, "gnupg", "signer.gpg");
    let other = gpg_key(&ctx, "gnupg-other", "other <other@example.test>");
    let other_key = export_key(&ctx, "gnupg-other", "other.gpg");
    let home = ctx.path("gnupg");
    fs::write(ctx.path("m.json"), br#"{"schemaVersion":2,"layers":[]}"#).unwrap();
    fs::write(ctx.path("m2.json"), br#"{"schemaVersion":2}"#).unwrap();
    let (m, m2) = (ctx.p("m.json"), ctx.p("m2.json"));
    let reference = "registry.example.test/team/app:v1";
    let digest = ctx.sha256(&fs::read(ctx.path("m.json")).unwrap());

    ctx.step("berth signs with gpg's keyring, skopeo verifies");
    let by_berth = ctx.p("by-berth.sig");
    ctx.berth(&["standalone-sign", &m, reference, &fpr, "-o", &by_berth])
        .env("GNUPGHOME", &home)
        .run();
    let out = ctx
        .skopeo(&["standalone-verify", &m, reference, &fpr, &by_berth])
        .env("GNUPGHOME", &home)
        .run();
    assert_eq!(
        out.stdout.trim(),
        format!("Signature verified, digest {digest}")
    );

    ctx.step("skopeo signs, berth verifies with the key file, and with the keyring");
    let by_skopeo = ctx.p("by-skopeo.sig");
    ctx.skopeo(&["standalone-sign", &m, reference, &fpr, "-o", &by_skopeo])
        .env("GNUPGHOME", &home)
        .run();
    let out = ctx
        .berth(&[
            "standalone-verify",
            "--public-key-file",
            &key,
            &m,
            reference,
            &fpr,
            &by_skopeo,
        ])
        .run();
    assert_eq!(
        out.stdout.trim(),
        format!("Signature verified, digest {digest}")
    );
    let out = ctx
        .berth(&[
            "standalone-verify",
            &m,
            reference,
            &fpr.to_lowercase(),
            &by_skopeo,
        ])
        .env("GNUPGHOME", &home)
        .run();
    assert_eq!(
        out.stdout.trim(),
        format!("Signature verified, digest {digest}")
    );

    ctx.step("berth signs with an armored secret key file, no gpg involved");
    let secret = ctx
        .cmd(GPG, &["--batch", "--armor", "--export-secret-keys", &fpr])
        .env("GNUPGHOME", &home)
        .run();
    fs::write(ctx.path("secret.asc"), &secret.stdout_bytes).unwrap();
    let by_file = ctx.p("by-file.sig");
    ctx.berth(&[
        "standalone-sign",
        "--key-file",
        &ctx.p("secret.asc"),
        &m,
        reference,
        &fpr,
        "-o",
        &by_file,
    ])
    .env("PATH", "/nonexistent")
    .run();
    ctx.skopeo(&["standalone-verify", &m, reference, &fpr, &by_file])
        .env("GNUPGHOME", &home)
        .run();
    let out = ctx
        .berth(&[
            "standalone-sign",
            "--key-file",
            &ctx.p("secret.asc"),
            &m,
            reference,
            &other,
            "-o",
            &ctx.p("nope.sig"),
        ])
        .run_fail();
    assert!(
        out.stderr.contains("holds no key with fingerprint"),
        "{}",
        out.stderr
    );
    assert!(!ctx.path("nope.sig").exists());

    ctx.step("refusals: the same words as skopeo's, exit 1, one line");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![m.clone(), "registry.example.test/team/app:v2".into(), fpr.clone(), by_skopeo.clone()],
            "Docker reference registry.example.test/team/app:v1 does not match registry.example.test/team/app:v2",
        ),
        (
            vec![m2.clone(), reference.into(), fpr.clone(), by_skopeo.clone()],
            "does not match",
        ),
        (
            vec![m.clone(), reference.into(), other.clone(), by_skopeo.clone()],
            "does not match expected fingerprint",
        ),
    ];
    for (args, words) in cases {
        let mut b: Vec<String> = vec![
            "standalone-verify".into(),
            "--public-key-file".into(),
            key.clone(),
            "--public-key-file".into(),
            other_key.clone(),
        ];
        b.extend(args.iter().cloned());
        let ours = ctx.berth(&b).run_fail();
        let mut s: Vec<String> = vec!["standalone-verify".into()];
        s.extend(args.iter().cloned());
        let theirs = ctx.skopeo(&s).env("GNUPGHOME", &home).run_fail();
        assert_eq!(ours.status.code(), Some(1));
        assert_eq!(ours.stderr.trim().lines().count(), 1, "{}", ours.stderr);
        assert!(
            ours.stderr.contains("Error verifying signature: "),
            "{}",
            ours.stderr
        );
        assert!(ours.stderr.contains(words), "berth: {}", ours.stderr);
        assert!(theirs.stderr.contains(words), "skopeo: {}", theirs.stderr);
    }
    // A signature by a key that is not given: refused, whatever skopeo's keyring holds.
    let out = ctx
        .berth(&[
            "standalone-verify",
            "--public-key-file",
            &other_key,
            &m,
            reference,
            &fpr,
            &by_skopeo,
        ])
        .run_fail();
    assert!(
        out.stderr.contains("Error verifying signature: "),
        "{}",
        out.stderr
    );
    // Tampered signature bytes and garbage.
    let mut bytes = fs::read(&by_skopeo).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x40;
    fs::write(ctx.path("tampered.sig"), &bytes).unwrap();
    fs::write(ctx.path("garbage.sig"), b"not a signature").unwrap();
    for sig in ["tampered.sig", "garbage.sig"] {
        let out = ctx
            .berth(&[
                "standalone-verify",
                "--public-key-file",
                &key,
                &m,
                reference,
                &fpr,
                &ctx.p(sig),
            ])
            .run_fail();
        assert!(
            out.stderr.contains("Error verifying signature: "),
            "{sig}: {}",
            out.stderr
        );
    }
}

#[test]
fn generate_sigstore_key_writes_a_pair_that_signs_and_verifies() {
    let ctx = Ctx::new("sigstore-key", &[]);
    fs::write(ctx.path("pass"), "s3cret\n").unwrap();
    let prefix = ctx.p("k");
    let out = ctx
        .berth(&[
            "generate-sigstore-key",
            "--output-prefix",
            &prefix,
            "--passphrase-file",
            &ctx.p("pass"),
        ])
        .run();
    assert_eq!(
        out.stdout.trim(),
        format!("Key written to \"{prefix}.private\" and \"{prefix}.pub\"")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(format!("{prefix}.private"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let private = fs::read(format!("{prefix}.private")).unwrap();
    let public = fs::read(format!("{prefix}.pub")).unwrap();
    assert!(String::from_utf8_lossy(&private)
        .starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    assert!(String::from_utf8_lossy(&public).starts_with("-----BEGIN PUBLIC KEY-----"));
    // The pair works, and only with the passphrase.
    let key = berth_signature::sigstore::PrivateKey::from_pem(&private, b"s3cret").unwrap();
    assert!(berth_signature::sigstore::PrivateKey::from_pem(&private, b"wrong").is_err());
    let pubkey = berth_signature::sigstore::PublicKey::from_pem(&public).unwrap();
    let digest: berth_image::Digest =
        "sha256:0000000000000000000000000000000000000000000000000000000000000000"
            .parse()
            .unwrap();
    let (payload, sig) =
        berth_signature::sigstore::sign_image(&key, &digest, "q.example/a:v1", "t").unwrap();
    berth_signature::sigstore::verify(&[pubkey], &payload, &sig).unwrap();
    // Never over existing keys.
    let out = ctx
        .berth(&[
            "generate-sigstore-key",
            "--output-prefix",
            &prefix,
            "--passphrase-file",
            &ctx.p("pass"),
        ])
        .run_fail();
    assert!(
        out.stderr.contains("Refusing to overwrite"),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read(format!("{prefix}.private")).unwrap(), private);
}
