//! Interop with real GnuPG 2.2 and skopeo 1.9.3: signatures each makes verify in the
//! other, and each way a signature can be wrong is refused with its own error.
//! Needs `gpg` (apt-get install gnupg) and `skopeo`.

use std::path::PathBuf;
use std::process::{Command, Output};

use berth_image::Digest;
use berth_signature::openpgp::{self, KeyError};
use berth_signature::simple::{self, SimpleError};
use berth_signature::{
    sign_with_gpg, standalone_verify, verify_simple, GpgError, Keyring, ManifestCheck, Payload,
    PayloadError, VerifyError,
};

mod common;
use common::{payload, Gpg, MANIFEST, REFERENCE};

fn keyring(g: &Gpg, fprs: &[&str]) -> Keyring {
    let mut ring = Keyring::default();
    for f in fprs {
        ring.add_bytes(&g.export(f)).unwrap();
    }
    ring
}

#[test]
fn gpg_signatures_verify_in_berth_rsa_and_ed25519() {
    let g = Gpg::new();
    let rsa = g.gen_key("RSA <rsa@example.com>", "rsa2048", "never", "", &[]);
    let ed = g.gen_key("Ed <ed@example.com>", "ed25519", "never", "", &[]);
    // One keyring with both, binary export; and the armored export reads the same.
    let ring = keyring(&g, &[&rsa, &ed]);
    assert_eq!(ring.fingerprints(), vec![rsa.clone(), ed.clone()]);
    let armored = Keyring::from_bytes(&g.ok(&["--armor", "--export"], b"")).unwrap();
    assert_eq!(armored.fingerprints().len(), 2);
    for fpr in [&rsa, &ed] {
        let sig = g.sign(fpr, &payload(), &[]);
        assert_eq!(sig[0], 0xA3, "gpg writes a compressed message");
        let v = openpgp::verify(&ring, &sig).unwrap();
        assert_eq!(v.payload, payload());
        assert_eq!(&v.fingerprint, fpr);
        assert_eq!(v.key_id, fpr[24..]);
        let s = verify_simple(&ring, &sig, ManifestCheck::Manifest(MANIFEST), |r| {
            r == REFERENCE
        })
        .unwrap();
        assert_eq!(
            s.payload.docker_manifest_digest,
            Digest::sha256_of(MANIFEST)
        );
    }
}

#[test]
fn berth_signatures_verify_in_gpg_with_and_without_passphrase() {
    let g = Gpg::new();
    let rsa = g.gen_key("RSA <rsa@example.com>", "rsa2048", "never", "", &[]);
    let ed = g.gen_key("Pass <pass@example.com>", "ed25519", "never", "s3cret", &[]);
    for (fpr, pass) in [(&rsa, ""), (&ed, "s3cret")] {
        let secret = g.export_secret(fpr, pass);
        let sig = openpgp::sign_with_key(&secret, pass, &payload()).unwrap();
        let out = g.run(&["--status-fd", "2", "--decrypt"], &sig);
        let status = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{status}");
        assert!(
            status.contains(&format!("[GNUPG:] VALIDSIG {fpr}")),
            "{status}"
        );
        assert_eq!(out.stdout, payload());
        // And berth reads its own.
        assert_eq!(
            openpgp::verify(&keyring(&g, &[fpr]), &sig).unwrap().payload,
            payload()
        );
    }
    let secret = g.export_secret(&ed, "s3cret");
    let err = openpgp::sign_with_key(&secret, "wrong", &payload()).unwrap_err();
    assert!(
        matches!(err, KeyError::Passphrase(ref f) if *f == ed),
        "{err}"
    );
    let err = openpgp::sign_with_key(&g.export(&ed), "", &payload()).unwrap_err();
    assert!(matches!(err, KeyError::NoSecretKey), "{err}");
}

#[test]
fn sign_with_gpg_like_skopeo() {
    let g = Gpg::new();
    let ed = g.gen_key("Pass <pass@example.com>", "ed25519", "never", "s3cret", &[]);
    let pass = g.path().join("pass");
    std::fs::write(&pass, "s3cret\n").unwrap();
    let sig = sign_with_gpg(&ed, Some(&pass), &payload(), Some(g.path())).unwrap();
    assert_eq!(
        openpgp::verify(&keyring(&g, &[&ed]), &sig).unwrap().payload,
        payload()
    );

    let err = sign_with_gpg(
        "0123456789ABCDEF0123456789ABCDEF01234567",
        None,
        &payload(),
        Some(g.path()),
    )
    .unwrap_err();
    assert!(matches!(err, GpgError::UnknownKey { .. }), "{err}");
    std::fs::write(&pass, "wrong\n").unwrap();
    let err = sign_with_gpg(&ed, Some(&pass), &payload(), Some(g.path())).unwrap_err();
    assert!(matches!(err, GpgError::Passphrase { .. }), "{err}");
}

/// A simple signature of MANIFEST as REFERENCE made by berth with `fpr`'s exported
/// secret key (no gpg involved in signing).
fn berth_signs(g: &Gpg, fpr: &str) -> Vec<u8> {
    let secret = g.export_secret(fpr, "");
    simple::sign(
        &secret,
        "",
        &Digest::sha256_of(MANIFEST),
        REFERENCE,
        "berth",
    )
    .unwrap()
}

fn skopeo(g: &Gpg, args: &[&str]) -> Output {
    Command::new("skopeo")
        .args(args)
        .env("GNUPGHOME", g.path())
        .output()
        .expect("these tests need skopeo")
}

#[test]
fn skopeo_standalone_sign_and_verify_both_ways() {
    let g = Gpg::new();
    let ed = g.gen_key("Ed <ed@example.com>", "ed25519", "never", "", &[]);
    let rsa = g.gen_key("RSA <rsa@example.com>", "rsa2048", "never", "", &[]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let ring = keyring(&g, &[&ed, &rsa]);
    let m = manifest.to_str().unwrap();

    for fpr in [&ed, &rsa] {
        // skopeo signs, berth verifies.
        let out_path = dir.path().join(format!("skopeo-{fpr}.sig"));
        let out = skopeo(
            &g,
            &[
                "standalone-sign",
                m,
                REFERENCE,
                fpr,
                "-o",
                out_path.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sig = std::fs::read(&out_path).unwrap();
        let digest = standalone_verify(&ring, &sig, MANIFEST, REFERENCE, fpr).unwrap();
        assert_eq!(digest, Digest::sha256_of(MANIFEST));
        let p = Payload::parse(
            &openpgp::verify(&ring, &sig).unwrap().payload,
            berth_signature::Format::Simple,
        )
        .unwrap();
        assert_eq!(p.creator.as_deref(), Some("atomic 5.23.1"));
        // The bytes skopeo signed are the bytes berth writes for the same content.
        let ours = p.to_json(berth_signature::Format::Simple).unwrap();
        assert_eq!(ours, openpgp::verify(&ring, &sig).unwrap().payload);

        // berth signs (no gpg), skopeo verifies.
        let sig = berth_signs(&g, fpr);
        let sig_path = dir.path().join(format!("berth-{fpr}.sig"));
        std::fs::write(&sig_path, &sig).unwrap();
        let out = skopeo(
            &g,
            &[
                "standalone-verify",
                m,
                REFERENCE,
                fpr,
                sig_path.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("Signature verified"));
    }

    // standalone-verify's own refusals.
    let sig = berth_signs(&g, &ed);
    assert!(matches!(
        standalone_verify(&ring, &sig, MANIFEST, REFERENCE, &rsa),
        Err(SimpleError::Fingerprint { .. })
    ));
    assert!(matches!(
        standalone_verify(&ring, &sig, MANIFEST, "127.0.0.1:5000/test/hello:v2", &ed),
        Err(SimpleError::Reference { .. })
    ));
    assert!(matches!(
        standalone_verify(&ring, &sig, b"{}", REFERENCE, &ed),
        Err(SimpleError::Digest(_))
    ));
}

/// Flips one bit at `at` (from the end when negative).
fn flip(bytes: &[u8], at: isize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let i = if at < 0 {
        b.len() - at.unsigned_abs()
    } else {
        at as usize
    };
    b[i] ^= 0x01;
    b
}

#[test]
fn tampered_payload_and_signature_bytes_refused() {
    let g = Gpg::new();
    let ed = g.gen_key("Ed <ed@example.com>", "ed25519", "never", "", &[]);
    let ring = keyring(&g, &[&ed]);
    // Uncompressed, so that the payload's bytes are in the blob as they are.
    let sig = g.sign(&ed, &payload(), &["--compress-algo", "none"]);
    let at = sig
        .windows(8)
        .position(|w| w == b"critical")
        .expect("payload inline") as isize;
    let err = openpgp::verify(&ring, &flip(&sig, at)).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
    // The last bytes are the signature's own value.
    let err = openpgp::verify(&ring, &flip(&sig, -3)).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
    // Not a signed message at all.
    assert!(matches!(
        openpgp::verify(&ring, b"not pgp"),
        Err(VerifyError::Malformed(_))
    ));
    let literal = g.ok(&["--store"], &payload());
    assert_eq!(
        openpgp::verify(&ring, &literal),
        Err(VerifyError::NotSigned)
    );
}

#[test]
fn another_key_refused() {
    let g = Gpg::new();
    let a = g.gen_key("A <a@example.com>", "ed25519", "never", "", &[]);
    let b = g.gen_key("B <b@example.com>", "ed25519", "never", "", &[]);
    let sig = g.sign(&a, &payload(), &[]);
    let err = openpgp::verify(&keyring(&g, &[&b]), &sig).unwrap_err();
    assert_eq!(
        err,
        VerifyError::UnknownSigner {
            key_id: a[24..].to_string()
        }
    );
}

#[test]
fn expired_key_refused() {
    let g = Gpg::new();
    // Made and used two days ago, valid for one.
    let then = (std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86400))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let fake = ["--faked-system-time", &format!("{then}!")];
    let old = g.gen_key("Old <old@example.com>", "ed25519", "1d", "", &fake);
    let sig = g.sign(&old, &payload(), &fake);
    let ring = keyring(&g, &[&old]);
    let err = openpgp::verify(&ring, &sig).unwrap_err();
    assert!(
        matches!(err, VerifyError::KeyExpired { ref fingerprint, .. } if *fingerprint == old),
        "{err}"
    );
    // Before it expired, the same signature verified.
    let before =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(then.parse::<u64>().unwrap() + 3600);
    assert!(openpgp::verify_at(&ring, &sig, before).is_ok());
}

/// `--faked-system-time` values: two days ago plus `offset` seconds.
fn faked_times() -> impl Fn(u64) -> String {
    let then = (std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86400))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    move |offset| format!("{}!", then + offset)
}

/// `sig` by `k` is refused: `k` expired.
fn assert_expired(g: &Gpg, k: &str, sig: &[u8]) {
    let err = openpgp::verify(&keyring(g, &[k]), sig).unwrap_err();
    assert!(
        matches!(err, VerifyError::KeyExpired { ref fingerprint, .. } if fingerprint == k),
        "{err}"
    );
}

/// A user ID revoked later carries no expiry: it must not lift the key's (its newest
/// self-signature was the revocation, and the key's expiry was read from it).
#[test]
fn a_revoked_user_id_does_not_lift_the_keys_expiry() {
    let g = Gpg::new();
    let at = faked_times();
    let (t0, t1, t2, t3) = (at(0), at(60), at(120), at(180));
    let k = g.gen_key(
        "E <e@example.com>",
        "ed25519",
        "1d",
        "",
        &["--faked-system-time", &t0],
    );
    g.ok(
        &[
            "--faked-system-time",
            &t1,
            "--quick-add-uid",
            &k,
            "Old <old@example.com>",
        ],
        b"",
    );
    g.ok(
        &[
            "--faked-system-time",
            &t2,
            "--quick-revuid",
            &k,
            "Old <old@example.com>",
        ],
        b"",
    );
    let sig = g.sign(&k, &payload(), &["--faked-system-time", &t3]);
    assert_expired(&g, &k, &sig);
}

/// A direct-key signature that says neither expiry nor flags (gpg's `addrevoker`
/// makes one) leaves them to the user ID's self-signature, as gpg reads them: it had
/// been the newest self-signature, so the key never expired.
#[test]
fn a_designated_revoker_does_not_lift_the_keys_expiry() {
    let g = Gpg::new();
    let at = faked_times();
    let (t0, t1, t2) = (at(0), at(60), at(120));
    let k = g.gen_key(
        "E <e@example.com>",
        "ed25519",
        "1d",
        "",
        &["--faked-system-time", &t0],
    );
    let revoker = g.gen_key(
        "R <r@example.com>",
        "ed25519",
        "never",
        "",
        &["--faked-system-time", &t0],
    );
    g.ok(
        &[
            "--faked-system-time",
            &t1,
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--command-fd",
            "0",
            "--edit-key",
            &k,
        ],
        format!("addrevoker\n{revoker}\ny\nsave\n").as_bytes(),
    );
    let sig = g.sign(&k, &payload(), &["--faked-system-time", &t2]);
    assert_expired(&g, &k, &sig);
}

/// gpg refuses MD5 data signatures ("signatures using the MD5 algorithm are
/// rejected"), and so does berth; SHA-1 ones gpg 2.2 still accepts, and so does berth.
#[test]
fn md5_signatures_refused_sha1_accepted() {
    let g = Gpg::new();
    let k = g.gen_key("R <r@example.com>", "rsa2048", "never", "", &[]);
    let ring = keyring(&g, &[&k]);
    let md5 = g.sign(&k, &payload(), &["--digest-algo", "MD5"]);
    let err = openpgp::verify(&ring, &md5).unwrap_err();
    assert!(matches!(err, VerifyError::WeakHash(_)), "{err}");
    let sha1 = g.sign(&k, &payload(), &["--digest-algo", "SHA1"]);
    assert_eq!(openpgp::verify(&ring, &sha1).unwrap().payload, payload());
}

#[test]
fn revoked_key_refused() {
    let g = Gpg::new();
    let k = g.gen_key("Rev <rev@example.com>", "ed25519", "never", "", &[]);
    let sig = g.sign(&k, &payload(), &[]);
    assert!(openpgp::verify(&keyring(&g, &[&k]), &sig).is_ok());
    // gpg keeps a revocation certificate for each new key, its armor line "escaped" with
    // a leading ':' so that it is not imported by accident.
    let rev: PathBuf = g.path().join(format!("openpgp-revocs.d/{k}.rev"));
    let cert = std::fs::read_to_string(rev)
        .unwrap()
        .replace(":-----BEGIN", "-----BEGIN");
    g.ok(&["--import"], cert.as_bytes());
    let err = openpgp::verify(&keyring(&g, &[&k]), &sig).unwrap_err();
    assert_eq!(err, VerifyError::KeyRevoked { fingerprint: k });
}

#[test]
fn wrong_digest_and_unknown_critical_member_refused() {
    let g = Gpg::new();
    let k = g.gen_key("K <k@example.com>", "ed25519", "never", "", &[]);
    let ring = keyring(&g, &[&k]);
    let sig = g.sign(&k, &payload(), &[]);
    let other = Digest::sha256_of(b"another manifest");
    let err = verify_simple(&ring, &sig, ManifestCheck::Digest(&other), |_| true).unwrap_err();
    assert!(matches!(err, SimpleError::Digest(_)), "{err}");
    let err = verify_simple(&ring, &sig, ManifestCheck::Manifest(b"{}"), |_| true).unwrap_err();
    assert!(matches!(err, SimpleError::Digest(_)), "{err}");
    let err = verify_simple(&ring, &sig, ManifestCheck::Manifest(MANIFEST), |_| false).unwrap_err();
    assert_eq!(err, SimpleError::Identity(REFERENCE.into()));

    let p = String::from_utf8(payload())
        .unwrap()
        .replace(r#""type":"#, r#""extra":1,"type":"#);
    let sig = g.sign(&k, p.as_bytes(), &[]);
    let err = verify_simple(&ring, &sig, ManifestCheck::Manifest(MANIFEST), |_| true).unwrap_err();
    assert!(
        matches!(err, SimpleError::Payload(PayloadError::Invalid(ref m)) if m.contains("extra")),
        "{err}"
    );
}

#[test]
fn signing_subkeys_both_ways() {
    let g = Gpg::new();
    // A certify-only primary with an ed25519 signing subkey, as careful users set up.
    g.ok(
        &[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Sub <sub@example.com>",
            "ed25519",
            "cert",
            "never",
        ],
        b"",
    );
    let listing = |args: &[&str]| String::from_utf8(g.ok(args, b"")).unwrap();
    let fprs: Vec<String> = listing(&["--with-colons", "--list-keys", "sub@example.com"])
        .lines()
        .filter_map(|l| l.strip_prefix("fpr:::::::::"))
        .map(|f| f.trim_end_matches(':').to_string())
        .collect();
    let primary = fprs[0].clone();
    g.ok(
        &[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-add-key",
            &primary,
            "ed25519",
            "sign",
            "never",
        ],
        b"",
    );
    let sub = listing(&["--with-colons", "--list-keys", &primary])
        .lines()
        .filter_map(|l| l.strip_prefix("fpr:::::::::"))
        .map(|f| f.trim_end_matches(':').to_string())
        .nth(1)
        .expect("a subkey");
    let ring = keyring(&g, &[&primary]);

    // gpg signs with the subkey; berth names the certificate and the subkey.
    let sig = g.sign(&format!("{sub}!"), &payload(), &[]);
    let v = openpgp::verify(&ring, &sig).unwrap();
    assert_eq!(
        (v.fingerprint.as_str(), v.signing_fingerprint.as_str()),
        (primary.as_str(), sub.as_str())
    );
    assert_eq!(v.key_id, sub[24..]);

    // berth signs with the same secret key: the primary may not sign, so the subkey does.
    let sig = openpgp::sign_with_key(&g.export_secret(&primary, ""), "", &payload()).unwrap();
    let out = g.run(&["--status-fd", "2", "--decrypt"], &sig);
    let status = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.contains(&format!("[GNUPG:] VALIDSIG {sub}")),
        "{status}"
    );
}
