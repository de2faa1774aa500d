//! Signing through gpg-agent directly ([`berth_signature::agent`]), checked against
//! real GnuPG 2.2 and skopeo: the direct path alone (no fallback) makes signatures that
//! gpg, skopeo and berth accept, picks the key gpg picks, and declines, with a reason,
//! what it must leave to gpg. Needs `gpg` and `skopeo`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use berth_image::Digest;
use berth_signature::agent::{sign_with_agent, AgentError};
use berth_signature::{openpgp, sign_with_gpg, standalone_verify, GpgError, Keyring, Payload};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
const REFERENCE: &str = "127.0.0.1:5000/agent/hello:v1";

/// A throw-away GnuPG home whose agent is stopped when dropped.
struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        // No passphrase caching: a protected key must need its passphrase every time.
        std::fs::write(
            dir.path().join("gpg-agent.conf"),
            "default-cache-ttl 0\nmax-cache-ttl 0\n",
        )
        .unwrap();
        Home(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn gpg(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        let mut child = Command::new("gpg")
            .arg("--homedir")
            .arg(self.path())
            .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("these tests need GnuPG: apt-get install gnupg");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `--quick-gen-key`; returns the primary fingerprint.
    fn key(&self, uid: &str, algo: &str, usage: &str, passphrase: &str) -> String {
        self.gpg(
            &[
                "--passphrase",
                passphrase,
                "--quick-gen-key",
                uid,
                algo,
                usage,
                "never",
            ],
            b"",
        );
        self.fingerprints(uid)[0].clone()
    }

    /// Primary, then subkey fingerprints of `uid`'s certificate.
    fn fingerprints(&self, uid: &str) -> Vec<String> {
        let out = self.gpg(&["--with-colons", "--list-keys", uid], b"");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("fpr:::::::::"))
            .map(|f| f.trim_end_matches(':').to_string())
            .collect()
    }

    fn keyring(&self, fpr: &str) -> Keyring {
        Keyring::from_bytes(&self.gpg(&["--export", fpr], b"").stdout).unwrap()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

fn payload() -> Vec<u8> {
    Payload {
        docker_manifest_digest: Digest::sha256_of(MANIFEST),
        docker_reference: REFERENCE.into(),
        creator: Some("berth".into()),
        timestamp: Some(1796284204),
    }
    .to_json(berth_signature::Format::Simple)
    .unwrap()
}

/// `gpg --decrypt` of a signed message: its payload, and the key that signed (from
/// `VALIDSIG`'s first field, the signing key's fingerprint).
fn gpg_reads(home: &Home, signed: &[u8]) -> (Vec<u8>, String) {
    let out = home.gpg(&["--status-fd", "2", "--decrypt"], signed);
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
fn packets(home: &Home, msg: &[u8]) -> Vec<String> {
    let out = home.gpg(&["--list-packets"], msg);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let kinds: Vec<String> = listing
        .lines()
        .filter(|l| l.starts_with(':'))
        .map(String::from)
        .collect();
    assert_eq!(kinds.len(), 4, "{listing}");
    kinds
}

fn skopeo_verifies(home: &Home, fpr: &str, signed: &[u8]) {
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
    let home = Home::new();
    let ed = home.key("Ed <ed@example.com>", "ed25519", "sign", "");
    let rsa = home.key("RSA <rsa@example.com>", "rsa2048", "sign", "");
    for fpr in [&ed, &rsa] {
        let signed = sign_with_agent(fpr, None, &payload(), Some(home.path()))
            .unwrap_or_else(|e| panic!("{fpr}: {e}"));
        assert_eq!(gpg_reads(&home, &signed), (payload(), fpr.clone()));
        skopeo_verifies(&home, fpr, &signed);
        let ring = home.keyring(fpr);
        let v = openpgp::verify(&ring, &signed).unwrap();
        assert_eq!((v.payload, &v.fingerprint), (payload(), fpr));
        standalone_verify(&ring, &signed, MANIFEST, REFERENCE, fpr).unwrap();
        // The message has the key-file signer's shape, packet for packet.
        let secret = home.gpg(&["--passphrase", "", "--export-secret-keys", fpr], b"");
        let by_file = openpgp::sign_with_key(&secret.stdout, "", &payload()).unwrap();
        assert_eq!(packets(&home, &signed), packets(&home, &by_file));
    }
    // A long key ID names the key too.
    let signed = sign_with_agent(&ed[24..], None, &payload(), Some(home.path())).unwrap();
    assert_eq!(gpg_reads(&home, &signed).1, ed);
}

#[test]
fn the_key_gpg_would_choose_signs() {
    let home = Home::new();
    // A certify-only primary with two signing subkeys: gpg signs with the newest.
    let primary = home.key("Sub <sub@example.com>", "ed25519", "cert", "");
    let add = |algo| {
        home.gpg(
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
    let by_gpg = home.gpg(&["--sign", "--local-user", &primary], &payload());
    let gpg_choice = gpg_reads(&home, &by_gpg.stdout).1;
    assert_eq!(gpg_choice, fprs[2]);

    let signed = sign_with_agent(&primary, None, &payload(), Some(home.path())).unwrap();
    assert_eq!(gpg_reads(&home, &signed).1, gpg_choice);
    let v = openpgp::verify(&home.keyring(&primary), &signed).unwrap();
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
    assert!(openpgp::verify(&home.keyring(&primary), &signed).is_ok());

    // Without the newest subkey's secret, gpg and the agent path take the older one.
    let grips = String::from_utf8(
        home.gpg(
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
    let by_gpg = home.gpg(&["--sign", "--local-user", &primary], &payload());
    assert_eq!(gpg_reads(&home, &by_gpg.stdout).1, fprs[1]);
    let signed = sign_with_agent(&primary, None, &payload(), Some(home.path())).unwrap();
    assert_eq!(gpg_reads(&home, &signed).1, fprs[1]);
}

#[test]
fn passphrase_file_and_what_falls_back() {
    let home = Home::new();
    let fpr = home.key("Pass <pass@example.com>", "ed25519", "sign", "s3cret");
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
    // A user ID: gpg resolves those.
    let err = sign_with_agent("pass@example.com", None, &payload(), Some(home.path())).unwrap_err();
    assert!(matches!(err, AgentError::Spec(_)), "{err}");
}

#[test]
fn gnupg1_keyring_and_damaged_keybox() {
    let home = Home::new();
    let fpr = home.key("Old <old@example.com>", "rsa2048", "sign", "");
    // GnuPG 2.2 reads pubring.gpg when there is no pubring.kbx.
    let public = home.gpg(&["--export", &fpr], b"").stdout;
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
    let other = Home::new();
    let fpr = other.key("Cold <cold@example.com>", "ed25519", "sign", "");
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
