//! Signing through gpg-agent directly ([`berth_signature::agent`]), checked against
//! real GnuPG 2.2 and skopeo: the direct path alone (no fallback) makes signatures that
//! gpg, skopeo and berth accept, picks the key gpg picks, and declines, with a reason,
//! what it must leave to gpg. Needs `gpg` and `skopeo`.

use std::process::{Command, Output};

use berth_signature::agent::{sign_with_agent, AgentError};
use berth_signature::{openpgp, sign_with_gpg, standalone_verify, GpgError, Keyring};

mod common;
use common::{payload, Gpg, MANIFEST, REFERENCE};

/// `gpg` with loopback pinentry (the passphrase, if any, on the command line), which
/// must succeed.
fn gpg(home: &Gpg, args: &[&str], stdin: &[u8]) -> Output {
    let mut all = vec!["--pinentry-mode", "loopback"];
    all.extend(args);
    let out = home.run(&all, stdin);
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn keyring(home: &Gpg, fpr: &str) -> Keyring {
    Keyring::from_bytes(&home.export(fpr)).unwrap()
}

/// `gpg --decrypt` of a signed message: its payload, and the key that signed (from
/// `VALIDSIG`'s first field, the signing key's fingerprint).
fn gpg_reads(home: &Gpg, signed: &[u8]) -> (Vec<u8>, String) {
    let out = gpg(home, &["--status-fd", "2", "--decrypt"], signed);
    let status = String::from_utf8_lossy(&out.stderr);
    let signer = status
        .lines()
        .find_map(|l| l.strip_prefix("[GNUPG:] VALIDSIG "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("gpg did not find a valid signature: {status}"))
        .to_string();
    (out.stdout, signer)
}

/// The packets of a message as `gpg --list-packets` names them (kind, algorithms, key).
fn packets(home: &Gpg, msg: &[u8]) -> Vec<String> {
    let out = gpg(home, &["--list-packets"], msg);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let kinds: Vec<String> = listing
        .lines()
        .filter(|l| l.starts_with(':'))
        .map(String::from)
        .collect();
    assert_eq!(kinds.len(), 4, "{listing}");
    kinds
}

fn skopeo_verifies(home: &Gpg, fpr: &str, signed: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, sig) = (dir.path().join("manifest"), dir.path().join("sig"));
    std::fs::write(&manifest, MANIFEST).unwrap();
    std::fs::write(&sig, signed).unwrap();
    let out = Command::new("skopeo")
        .args(["standalone-verify"])
        .arg(&manifest)
        .arg(REFERENCE)
        .arg(fpr)
        .arg(&sig)
        .env("GNUPGHOME", home.path())
        .output()
        .expect("these tests need skopeo");
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn agent_signatures_verify_in_gpg_skopeo_and_berth() {
    let home = Gpg::new();
    let ed = home.gen_key("Ed <ed@example.com>", "ed25519", "never", "", &[]);
    let rsa = home.gen_key("RSA <rsa@example.com>", "rsa2048", "never", "", &[]);
    for fpr in [&ed, &rsa] {
        let signed = sign_with_agent(fpr, None, &payload(), Some(home.path()))
            .unwrap_or_else(|e| panic!("{fpr}: {e}"));
        assert_eq!(gpg_reads(&home, &signed), (payload(), fpr.clone()));
        skopeo_verifies(&home, fpr, &signed);
        let ring = keyring(&home, fpr);
        let v = openpgp::verify(&ring, &signed).unwrap();
        assert_eq!((v.payload, &v.fingerprint), (payload(), fpr));
        standalone_verify(&ring, &signed, MANIFEST, REFERENCE, fpr).unwrap();
        // The message has the key-file signer's shape, packet for packet.
        let secret = gpg(
            &home,
            &["--passphrase", "", "--export-secret-keys", fpr],
            b"",
        );
        let by_file = openpgp::sign_with_key(&secret.stdout, "", &payload()).unwrap();
        assert_eq!(packets(&home, &signed), packets(&home, &by_file));
    }
    // A long key ID names the key too.
    let signed = sign_with_agent(&ed[24..], None, &payload(), Some(home.path())).unwrap();
    assert_eq!(gpg_reads(&home, &signed).1, ed);
}

#[test]
fn the_key_gpg_would_choose_signs() {
    let home = Gpg::new();
    // A certify-only primary with two signing subkeys: gpg signs with the newest.
    let uid = "Sub <sub@example.com>";
    let quick = [
        "--passphrase",
        "",
        "--quick-gen-key",
        uid,
        "ed25519",
        "cert",
        "never",
    ];
    gpg(&home, &quick, b"");
    let primary = home.fingerprints(uid).remove(0);
    let add = |algo| {
        gpg(
            &home,
            &[
                "--passphrase",
                "",
                "--quick-add-key",
                &primary,
                algo,
                "sign",
            ],
            b"",
        )
    };
    add("ed25519");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    add("rsa2048");
    let fprs = home.fingerprints(&primary);
    assert_eq!(fprs.len(), 3);
    let by_gpg = gpg(&home, &["--sign", "--local-user", &primary], &payload());
    let gpg_choice = gpg_reads(&home, &by_gpg.stdout).1;
    assert_eq!(gpg_choice, fprs[2]);

    let signed = sign_with_agent(&primary, None, &payload(), Some(home.path())).unwrap();
    assert_eq!(gpg_reads(&home, &signed).1, gpg_choice);
    let v = openpgp::verify(&keyring(&home, &primary), &signed).unwrap();
    assert_eq!(
        (&v.fingerprint, &v.signing_fingerprint),
        (&primary, &fprs[2])
    );

    // `!` forces a key: the older subkey.
    let exact = format!("{}!", fprs[1]);
    let signed = sign_with_agent(&exact, None, &payload(), Some(home.path())).unwrap();
    assert_eq!(gpg_reads(&home, &signed).1, fprs[1]);
    // The primary may not sign; forcing it is gpg's to refuse.
    let err =
        sign_with_agent(&format!("{primary}!"), None, &payload(), Some(home.path())).unwrap_err();
    assert!(matches!(err, AgentError::Unsure { .. }), "{err}");
    // A subkey without `!`: left to gpg, which still signs.
    let err = sign_with_agent(&fprs[1], None, &payload(), Some(home.path())).unwrap_err();
    assert!(matches!(err, AgentError::Unsure { .. }), "{err}");
    let signed = sign_with_gpg(&fprs[1], None, &payload(), Some(home.path())).unwrap();
    assert!(openpgp::verify(&keyring(&home, &primary), &signed).is_ok());

    // Without the newest subkey's secret, gpg and the agent path take the older one.
    let grips = String::from_utf8(
        gpg(
            &home,
            &["--with-colons", "--with-keygrip", "--list-secret-keys"],
            b"",
        )
        .stdout,
    )
    .unwrap();
    let newest_grip = grips
        .lines()
        .filter_map(|l| l.strip_prefix("grp:::::::::"))
        .map(|g| g.trim_end_matches(':'))
        .nth(2)
        .unwrap()
        .to_string();
    std::fs::remove_file(
        home.path()
            .join("private-keys-v1.d")
            .join(format!("{newest_grip}.key")),
    )
    .unwrap();
    let by_gpg = gpg(&home, &["--sign", "--local-user", &primary], &payload());
    assert_eq!(gpg_reads(&home, &by_gpg.stdout).1, fprs[1]);
    let signed = sign_with_agent(&primary, None, &payload(), Some(home.path())).unwrap();
    assert_eq!(gpg_reads(&home, &signed).1, fprs[1]);
}

#[test]
fn passphrase_file_and_what_falls_back() {
    let home = Gpg::new();
    let fpr = home.gen_key("Pass <pass@example.com>", "ed25519", "never", "s3cret", &[]);
    let pass = home.path().join("pass");
    std::fs::write(&pass, "s3cret\nignored second line\n").unwrap();
    let signed = sign_with_agent(&fpr, Some(&pass), &payload(), Some(home.path())).unwrap();
    assert_eq!(gpg_reads(&home, &signed), (payload(), fpr.clone()));
    skopeo_verifies(&home, &fpr, &signed);

    // No passphrase: a pinentry would be needed, which this path never opens.
    let err = sign_with_agent(&fpr, None, &payload(), Some(home.path())).unwrap_err();
    assert!(matches!(err, AgentError::NeedsPinentry(_)), "{err}");
    // A wrong one: the agent refuses, and gpg (the fallback) names the reason.
    std::fs::write(&pass, "wrong\n").unwrap();
    let err = sign_with_agent(&fpr, Some(&pass), &payload(), Some(home.path())).unwrap_err();
    assert!(matches!(err, AgentError::Assuan(_)), "{err}");
    let err = sign_with_gpg(&fpr, Some(&pass), &payload(), Some(home.path())).unwrap_err();
    assert!(matches!(err, GpgError::Passphrase { .. }), "{err}");

    // An unknown key: not found here, and UnknownKey from gpg.
    let unknown = "0123456789ABCDEF0123456789ABCDEF01234567";
    let err = sign_with_agent(unknown, None, &payload(), Some(home.path())).unwrap_err();
    assert!(matches!(err, AgentError::NotFound(_)), "{err}");
    let err = sign_with_gpg(unknown, None, &payload(), Some(home.path())).unwrap_err();
    assert!(matches!(err, GpgError::UnknownKey { .. }), "{err}");
    // gpg.conf options that change gpg's signature (here its hash) leave it to gpg.
    std::fs::write(&pass, "s3cret\n").unwrap();
    let conf = home.path().join("gpg.conf");
    std::fs::write(&conf, "# mine\nkeyid-format long\ndigest-algo SHA512\n").unwrap();
    let err = sign_with_agent(&fpr, Some(&pass), &payload(), Some(home.path())).unwrap_err();
    assert!(
        err.to_string().contains("gpg.conf sets digest-algo"),
        "{err}"
    );
    let signed = sign_with_gpg(&fpr, Some(&pass), &payload(), Some(home.path())).unwrap();
    assert!(
        String::from_utf8_lossy(&gpg(&home, &["--list-packets"], &signed).stdout)
            .contains("digest algo 10")
    );
    std::fs::write(&conf, "keyid-format long\n").unwrap();
    sign_with_agent(&fpr, Some(&pass), &payload(), Some(home.path())).unwrap();

    // A user ID: gpg resolves those.
    let err = sign_with_agent("pass@example.com", None, &payload(), Some(home.path())).unwrap_err();
    assert!(matches!(err, AgentError::Spec(_)), "{err}");
}

#[test]
fn gnupg1_keyring_and_damaged_keybox() {
    let home = Gpg::new();
    let fpr = home.gen_key("Old <old@example.com>", "rsa2048", "never", "", &[]);
    // GnuPG 2.2 reads pubring.gpg when there is no pubring.kbx.
    let public = gpg(&home, &["--export", &fpr], b"").stdout;
    std::fs::write(home.path().join("pubring.gpg"), &public).unwrap();
    std::fs::remove_file(home.path().join("pubring.kbx")).unwrap();
    let signed = sign_with_agent(&fpr, None, &payload(), Some(home.path())).unwrap();
    assert_eq!(gpg_reads(&home, &signed).1, fpr);

    // A damaged keybox: an error here, never a panic; gpg's answer stands.
    std::fs::remove_file(home.path().join("pubring.gpg")).unwrap();
    for damaged in [
        &b"\x00\x00\x00\x20\x01\x01"[..],
        &[0xFF; 64],
        b"\x00\x00\x00",
    ] {
        std::fs::write(home.path().join("pubring.kbx"), damaged).unwrap();
        let err = sign_with_agent(&fpr, None, &payload(), Some(home.path())).unwrap_err();
        assert!(matches!(err, AgentError::Keybox(_)), "{err}");
        assert!(sign_with_gpg(&fpr, None, &payload(), Some(home.path())).is_err());
    }

    // No agent running and no socket: declined, and gpg (which starts one) signs.
    let other = Gpg::new();
    let fpr = other.gen_key("Cold <cold@example.com>", "ed25519", "never", "", &[]);
    Command::new("gpgconf")
        .arg("--homedir")
        .arg(other.path())
        .args(["--kill", "gpg-agent"])
        .output()
        .unwrap();
    let err = sign_with_agent(&fpr, None, &payload(), Some(other.path())).unwrap_err();
    assert!(
        matches!(err, AgentError::NoSocket(_) | AgentError::Assuan(_)),
        "{err}"
    );
    let signed = sign_with_gpg(&fpr, None, &payload(), Some(other.path())).unwrap();
    assert_eq!(gpg_reads(&other, &signed).1, fpr);
}
