//! Signing with the user's own `gpg`, as skopeo does through gpgme: the key stays in
//! the user's keyring (or agent, or smartcard) and berth never sees it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum GpgError {
    #[error("gpg is not installed (apt-get install gnupg): {0}")]
    Missing(std::io::Error),
    #[error("running gpg: {0}")]
    Io(std::io::Error),
    #[error("signing with key {fingerprint}: no such secret key in the GnuPG keyring")]
    UnknownKey { fingerprint: String },
    #[error("signing with key {fingerprint}: bad passphrase")]
    Passphrase { fingerprint: String },
    #[error("gpg failed to sign with key {fingerprint}: {message}")]
    Failed {
        fingerprint: String,
        message: String,
    },
}

/// Signs `payload` with the secret key `fingerprint` from the GnuPG home `gnupg_home`
/// (default: gpg's own, `$GNUPGHOME` or `~/.gnupg`). With `passphrase_file`, the
/// passphrase is read from it (loopback pinentry, as `--sign-passphrase-file` does);
/// without, gpg asks its agent. Returns the signed message (binary, payload inline).
///
/// The agent is asked directly first ([`crate::agent`]), which spares gpg's start-up;
/// whenever that path cannot sign exactly as gpg would, gpg is run.
pub fn sign_with_gpg(
    fingerprint: &str,
    passphrase_file: Option<&Path>,
    payload: &[u8],
    gnupg_home: Option<&Path>,
) -> Result<Vec<u8>, GpgError> {
    match crate::agent::sign_with_agent(fingerprint, passphrase_file, payload, gnupg_home) {
        Ok(signed) => Ok(signed),
        Err(_) => spawn_gpg(fingerprint, passphrase_file, payload, gnupg_home),
    }
}

/// `gpg --sign`, run as a process: the path that handles every case.
fn spawn_gpg(
    fingerprint: &str,
    passphrase_file: Option<&Path>,
    payload: &[u8],
    gnupg_home: Option<&Path>,
) -> Result<Vec<u8>, GpgError> {
    let mut cmd = Command::new("gpg");
    cmd.args([
        "--batch",
        "--no-tty",
        "--quiet",
        "--sign",
        "--local-user",
        fingerprint,
    ]);
    if let Some(home) = gnupg_home {
        cmd.arg("--homedir").arg(home);
    }
    if let Some(f) = passphrase_file {
        cmd.args(["--pinentry-mode", "loopback", "--passphrase-file"])
            .arg(f);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => GpgError::Missing(e),
        _ => GpgError::Io(e),
    })?;
    // Written from a thread so that a large payload cannot deadlock against gpg's output.
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| GpgError::Io(std::io::Error::other("gpg's standard input is not a pipe")))?;
    let input = payload.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(GpgError::Io)?;
    let written = writer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("writing to gpg panicked")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || out.stdout.is_empty() {
        let fingerprint = fingerprint.to_string();
        if stderr.contains("No secret key") || stderr.contains("secret key not available") {
            return Err(GpgError::UnknownKey { fingerprint });
        }
        if stderr.contains("Bad passphrase") || stderr.contains("bad passphrase") {
            return Err(GpgError::Passphrase { fingerprint });
        }
        let message = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .trim_start_matches("gpg: ")
            .to_string();
        return Err(GpgError::Failed {
            fingerprint,
            message,
        });
    }
    written.map_err(GpgError::Io)?;
    Ok(out.stdout)
}
