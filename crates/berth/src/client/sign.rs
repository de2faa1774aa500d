//! `berth standalone-sign`, `standalone-verify` and `generate-sigstore-key`: skopeo's
//! commands for signatures as files, over berth-signature. Signing by fingerprint uses
//! the user's GnuPG as skopeo does; `--key-file` signs with an armored secret key and no
//! GnuPG; verifying is pure Rust, with the keys of `--public-key-file` (or, as skopeo
//! 1.9.3 reads the user's keyring, the key `gpg --export` gives for the fingerprint).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use berth_image::Digest;
use berth_signature::{sigstore, simple, Keyring};
use clap::Args;

/// Who made a signature, in its `optional.creator` member.
pub(crate) fn creator() -> String {
    format!("berth {}", env!("CARGO_PKG_VERSION"))
}

#[derive(Args)]
pub struct StandaloneSignArgs {
    /// The manifest file to sign.
    manifest: PathBuf,
    /// The image reference the signature claims (`registry/repo:tag`).
    docker_reference: String,
    /// The signing key's fingerprint (in the GnuPG keyring, or of --key-file).
    key_fingerprint: String,
    /// Where to write the signature.
    #[arg(short = 'o', long = "output", value_name = "SIGNATURE")]
    output: PathBuf,
    /// A file holding the key's passphrase.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Sign with this armored OpenPGP secret key instead of GnuPG's keyring.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct StandaloneVerifyArgs {
    /// The manifest file the signature is for.
    manifest: PathBuf,
    /// The image reference the signature must claim.
    docker_reference: String,
    /// The fingerprint of the key that must have signed.
    key_fingerprint: String,
    /// The signature file.
    signature: PathBuf,
    /// The public keys to verify with (binary or armored); without it, the key
    /// `gpg --export FINGERPRINT` gives, as skopeo reads the user's keyring.
    #[arg(long, value_name = "FILE")]
    public_key_file: Vec<PathBuf>,
}

#[derive(Args)]
pub struct GenerateSigstoreKeyArgs {
    /// Writes PREFIX.pub and PREFIX.private.
    #[arg(long, value_name = "PREFIX")]
    output_prefix: PathBuf,
    /// A file holding the passphrase that seals the private key (else it is asked for).
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

pub fn standalone_sign(args: StandaloneSignArgs) -> anyhow::Result<()> {
    let manifest = read(&args.manifest)?;
    let digest = Digest::sha256_of(&manifest);
    let signature = match &args.key_file {
        Some(key_file) => {
            let key = read(key_file)?;
            let ring = Keyring::from_bytes(&key)
                .with_context(|| format!("reading {}", key_file.display()))?;
            if !ring
                .fingerprints()
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&args.key_fingerprint))
            {
                bail!(
                    "{} holds no key with fingerprint {}",
                    key_file.display(),
                    args.key_fingerprint
                );
            }
            let passphrase = match &args.passphrase_file {
                Some(p) => passphrase_from(p)?,
                None => String::new(),
            };
            simple::sign(
                &key,
                &passphrase,
                &digest,
                &args.docker_reference,
                &creator(),
            )
            .context("Error creating signature")?
        }
        None => {
            let payload =
                berth_signature::Payload::new(digest, args.docker_reference.as_str(), creator())
                    .to_json(berth_signature::Format::Simple)?;
            berth_signature::sign_with_gpg(
                &args.key_fingerprint,
                args.passphrase_file.as_deref(),
                &payload,
                None,
            )
            .context("Error creating signature")?
        }
    };
    write_file(&args.output, &signature, 0o644)
        .with_context(|| format!("Error writing signature to {}", args.output.display()))
}

pub fn standalone_verify(args: StandaloneVerifyArgs) -> anyhow::Result<()> {
    let manifest = read(&args.manifest)?;
    let signature = read(&args.signature)?;
    let mut keys = Keyring::default();
    if args.public_key_file.is_empty() {
        keys.add_bytes(&gpg_export(&args.key_fingerprint)?)
            .context("reading the key gpg exported")?;
    }
    for f in &args.public_key_file {
        keys.add_bytes(&read(f)?)
            .with_context(|| format!("reading {}", f.display()))?;
    }
    let digest = simple::standalone_verify(
        &keys,
        &signature,
        &manifest,
        &args.docker_reference,
        &args.key_fingerprint,
    )
    .context("Error verifying signature")?;
    println!("Signature verified, digest {digest}");
    Ok(())
}

pub fn generate_sigstore_key(args: GenerateSigstoreKeyArgs) -> anyhow::Result<()> {
    let prefix = args.output_prefix.display().to_string();
    let (private, public) = (
        PathBuf::from(format!("{prefix}.private")),
        PathBuf::from(format!("{prefix}.pub")),
    );
    for p in [&private, &public] {
        if p.exists() {
            bail!(
                "Refusing to overwrite existing {:?}",
                p.display().to_string()
            );
        }
    }
    let passphrase = match &args.passphrase_file {
        Some(p) => passphrase_from(p)?,
        None => {
            let first =
                rpassword::prompt_password(format!("Passphrase for key {}: ", private.display()))?;
            let again = rpassword::prompt_password("Repeat passphrase: ")?;
            if first != again {
                bail!("Passphrases do not match");
            }
            first
        }
    };
    let pair = sigstore::generate_key_pair(passphrase.as_bytes())?;
    write_file(&private, pair.private_pem.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", private.display()))?;
    write_file(&public, pair.public_pem.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", public.display()))?;
    println!(
        "Key written to {:?} and {:?}",
        private.display().to_string(),
        public.display().to_string()
    );
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// A passphrase file's first line, as containers/image reads it.
pub(crate) fn passphrase_from(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading passphrase file {}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// The public key of `fingerprint` from the user's GnuPG keyring.
fn gpg_export(fingerprint: &str) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("gpg")
        .args(["--batch", "--export", fingerprint])
        .output()
        .context(
            "running gpg to read the key from the keyring (install gnupg, or give --public-key-file)",
        )?;
    if !out.status.success() || out.stdout.is_empty() {
        bail!("no public key {fingerprint} in the GnuPG keyring (give --public-key-file)");
    }
    Ok(out.stdout)
}

/// Writes a whole file beside its final name, then renames it: a signature or a key is
/// there whole or not at all.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}
