//! Signing images already in a registry: `berth copy --sign-by` (GnuPG, as skopeo) and
//! `berth copy --sign-by-key` (an armored key file, no GnuPG) side by side with
//! `skopeo copy --sign-by` (1.9.3, GnuPG through gpgme), each copying every one of 200
//! small images from one repository of a berth instance to another with a signature,
//! which the registry keeps through its signature extension. One process per image for
//! both tools, as a CI job signing what it pushed would run them.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::client::{run_tool_with, Tool};
use crate::data::SmallImage;
use crate::progress;
use crate::report::Table;
use crate::server::{Env, Server};

/// A GnuPG home with one passphrase-less ed25519 signing key; its fingerprint, and the
/// secret key exported armored to `key_file`.
fn make_key(gnupg: &Path, key_file: &Path) -> Result<String> {
    let _ = fs::remove_dir_all(gnupg);
    fs::create_dir_all(gnupg)?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(gnupg, fs::Permissions::from_mode(0o700))?;
    let gpg = |args: &[&str]| -> Result<std::process::Output> {
        let out = Command::new("gpg")
            .args(["--batch", "--quiet"])
            .args(args)
            .env("GNUPGHOME", gnupg)
            .stdin(Stdio::null())
            .output()
            .context("running gpg (install it: apt-get install -y gnupg)")?;
        if !out.status.success() {
            bail!("gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(out)
    };
    gpg(&[
        "--passphrase",
        "",
        "--quick-gen-key",
        "berth bench <bench@example.test>",
        "ed25519",
        "sign",
        "never",
    ])?;
    let listing = gpg(&["--with-colons", "--list-secret-keys"])?;
    let text = String::from_utf8_lossy(&listing.stdout);
    let fpr = text
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .and_then(|rest| rest.split(':').find(|f| f.len() == 40))
        .context("gpg listed no fingerprint")?
        .to_string();
    let secret = gpg(&["--armor", "--export-secret-keys", &fpr])?;
    fs::write(key_file, &secret.stdout)?;
    Ok(fpr)
}

/// The ways of signing compared: a row id, the tool, and its signing flags.
fn variants<'a>(fpr: &'a str, key_file: &'a str) -> [(&'static str, Tool, Vec<&'a str>); 3] {
    [
        ("sign_200_images_per_s", Tool::Berth, vec!["--sign-by", fpr]),
        (
            "sign_200_keyfile_images_per_s",
            Tool::Berth,
            vec!["--sign-by-key", key_file],
        ),
        ("skopeo", Tool::Skopeo, vec!["--sign-by", fpr]),
    ]
}

/// `sign_200_images_per_s` (berth `--sign-by` / skopeo `--sign-by`) and
/// `sign_200_keyfile_images_per_s` (berth `--sign-by-key` / the same skopeo run).
pub fn sign_phase(
    env: &Env,
    table: &mut Table,
    source: &Server,
    images: &[SmallImage],
    reps: usize,
) -> Result<()> {
    table.notes.push(
        "sign_200_*: both columns are clients: left `berth copy --sign-by FPR` (gpg) or \
         `--sign-by-key FILE` (no gpg), right `skopeo copy --sign-by FPR` (1.9.3, gpgme); \
         200 small images copied one process each between two repositories of one berth \
         instance, each signature stored through the registry signature extension"
            .into(),
    );
    let gnupg = env.run.join("sign-gnupg");
    let key_file = env.run.join("sign-key.asc");
    let fpr = make_key(&gnupg, &key_file)?;
    let key_path = key_file.display().to_string();
    let reg = format!("127.0.0.1:{}", source.port);
    for rep in 1..=reps {
        let mut skopeo_rate = None;
        let mut berth_rates = Vec::new();
        for (row, tool, flags) in variants(&fpr, &key_path) {
            let home = env.run.join(format!("homes/sign-{row}-{rep}"));
            let _ = fs::remove_dir_all(&home);
            fs::create_dir_all(&home)?;
            let t0 = std::time::Instant::now();
            let mut failed = None;
            for img in images {
                let from = format!("docker://{reg}/{}:{}", crate::SMALL_REPO, img.tag);
                let to = format!(
                    "docker://{reg}/bench/signed-{}-{rep}:{}",
                    tool.name(),
                    img.tag
                );
                let mut args: Vec<&str> = vec!["--quiet"];
                args.extend(&flags);
                args.extend([from.as_str(), to.as_str()]);
                if let Err(e) =
                    run_tool_with(env, tool, "copy", &args, &home, &[("GNUPGHOME", &gnupg)])
                {
                    failed = Some(e);
                    break;
                }
            }
            if let Some(e) = failed {
                table.error("sign_200_images_per_s", tool.name(), format!("{e:#}"));
                continue;
            }
            let rate = images.len() as f64 / t0.elapsed().as_secs_f64();
            progress(&format!("sign_200 rep {rep} {row}: {rate:.1} images/s"));
            match tool {
                Tool::Skopeo => skopeo_rate = Some(rate),
                Tool::Berth => berth_rates.push((row, rate)),
            }
        }
        for (row, rate) in berth_rates {
            table.add(row, true, rate);
            if let Some(s) = skopeo_rate {
                table.add(row, false, s);
            }
        }
    }
    Ok(())
}
