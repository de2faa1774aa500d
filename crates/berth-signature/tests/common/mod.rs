//! What the GnuPG interop tests share: a throw-away GnuPG home driven by the real
//! `gpg`, and a fixed simple-signing payload.
#![allow(dead_code)] // each test binary uses its part

use std::path::Path;
use std::process::{Command, Output, Stdio};

use berth_image::Digest;
use berth_signature::Payload;

pub const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
pub const REFERENCE: &str = "127.0.0.1:5000/test/hello:v1";

/// A throw-away GnuPG home.
pub struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    pub fn new() -> Gpg {
        let found = Command::new("gpg").arg("--version").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "these tests need GnuPG: apt-get install gnupg"
        );
        let home = tempfile::tempdir().unwrap();
        // No passphrase caching: a test of a wrong passphrase must reach the key.
        std::fs::write(
            home.path().join("gpg-agent.conf"),
            "default-cache-ttl 0\nmax-cache-ttl 0\n",
        )
        .unwrap();
        Gpg { home }
    }

    pub fn path(&self) -> &Path {
        self.home.path()
    }

    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new("gpg")
            .arg("--homedir")
            .arg(self.path())
            .args(["--batch", "--no-tty"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn ok(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Generates a key; returns its fingerprint. `extra` goes before the command
    /// (e.g. `--faked-system-time`).
    pub fn gen_key(
        &self,
        uid: &str,
        algo: &str,
        expire: &str,
        passphrase: &str,
        extra: &[&str],
    ) -> String {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["--pinentry-mode", "loopback", "--passphrase", passphrase]);
        args.extend(["--quick-gen-key", uid, algo, "sign", expire]);
        self.ok(&args, b"");
        self.fingerprints(uid).remove(0)
    }

    /// The fingerprints of `uid`'s certificate: the primary key's, then its subkeys'.
    pub fn fingerprints(&self, uid: &str) -> Vec<String> {
        let listing =
            String::from_utf8(self.ok(&["--with-colons", "--list-keys", uid], b"")).unwrap();
        listing
            .lines()
            .filter_map(|l| l.strip_prefix("fpr:::::::::"))
            .map(|f| f.trim_end_matches(':').to_string())
            .collect()
    }

    pub fn export(&self, fpr: &str) -> Vec<u8> {
        self.ok(&["--export", fpr], b"")
    }

    pub fn export_secret(&self, fpr: &str, passphrase: &str) -> Vec<u8> {
        self.ok(
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                passphrase,
                "--armor",
                "--export-secret-keys",
                fpr,
            ],
            b"",
        )
    }

    pub fn sign(&self, fpr: &str, payload: &[u8], extra: &[&str]) -> Vec<u8> {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend([
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--sign",
            "--local-user",
            fpr,
        ]);
        self.ok(&args, payload)
    }
}

impl Drop for Gpg {
    /// Stops the agent gpg started for this home.
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// A skopeo-shaped payload (fixed, so that every call gives the same bytes).
pub fn payload() -> Vec<u8> {
    Payload {
        docker_manifest_digest: Digest::sha256_of(MANIFEST),
        docker_reference: REFERENCE.into(),
        creator: Some("atomic 5.23.1".into()),
        timestamp: Some(1796284204),
    }
    .to_json(berth_signature::Format::Simple)
    .unwrap()
}
