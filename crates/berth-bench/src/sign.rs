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

/// Pulls of one small image compared under `insecureAcceptAnything` and under a
/// `signedBy` policy that must fetch and verify its signature.
const POLICY_PULLS: usize = 100;

/// `policy_pull_images_per_s`: `berth copy --policy FILE docker://… dir:…` of a small
/// signed image, `POLICY_PULLS` times under a `signedBy` policy (left) and under
/// `insecureAcceptAnything` (right), interleaved in batches of ten so that the machine's
/// load falls on both alike. The target: verifying costs at most 10% of the pull rate.
pub fn policy_pull_phase(
    env: &Env,
    table: &mut Table,
    source: &Server,
    image: &SmallImage,
    reps: usize,
) -> Result<()> {
    table.notes.push(
        "policy_pull_*: both columns berth: `berth copy` of a small signed image from berth \
         serve into a fresh dir:, under a signedBy policy (left; the signature fetched through \
         the registry extension and verified) and under insecureAcceptAnything (right)"
            .into(),
    );
    let gnupg = env.run.join("policy-gnupg");
    let key_file = env.run.join("policy-key.asc");
    let fpr = make_key(&gnupg, &key_file)?;
    let public = env.run.join("policy-key.gpg");
    let out = Command::new("gpg")
        .args(["--batch", "--export", &fpr])
        .env("GNUPGHOME", &gnupg)
        .output()
        .context("gpg --export")?;
    fs::write(&public, &out.stdout)?;
    let reg = format!("127.0.0.1:{}", source.port);
    let signed = format!("docker://{reg}/bench/policy:v1");
    let home = env.run.join("homes/policy");
    let _ = fs::remove_dir_all(&home);
    fs::create_dir_all(&home)?;
    let key = key_file.display().to_string();
    run_tool_with(
        env,
        Tool::Berth,
        "copy",
        &[
            "--quiet",
            "--sign-by-key",
            &key,
            &format!("docker://{reg}/{}:{}", crate::SMALL_REPO, image.tag),
            &signed,
        ],
        &home,
        &[],
    )?;
    let accept = env.run.join("policy-accept.json");
    fs::write(
        &accept,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )?;
    let signed_by = env.run.join("policy-signed.json");
    fs::write(
        &signed_by,
        serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {format!("{reg}/bench"): [
                {"type": "signedBy", "keyType": "GPGKeys", "keyPath": public.display().to_string()}
            ]}}
        })
        .to_string(),
    )?;
    let scratch = env.run.join("policy-dirs");
    for rep in 1..=reps {
        let mut seconds = [0.0f64; 2];
        for batch in 0..POLICY_PULLS / 10 {
            for (i, policy) in [&signed_by, &accept].into_iter().enumerate() {
                let _ = fs::remove_dir_all(&scratch);
                fs::create_dir_all(&scratch)?;
                let p = policy.display().to_string();
                let t0 = std::time::Instant::now();
                for n in 0..10 {
                    let dest = format!("dir:{}/{batch}-{n}", scratch.display());
                    run_policy_copy(env, &p, &signed, &dest, &home)?;
                }
                seconds[i] += t0.elapsed().as_secs_f64();
            }
        }
        let [with_sig, without] = seconds.map(|s| POLICY_PULLS as f64 / s);
        progress(&format!(
            "policy_pull rep {rep}: signedBy {with_sig:.1}/s, insecureAcceptAnything {without:.1}/s"
        ));
        table.add("policy_pull_images_per_s", true, with_sig);
        table.add("policy_pull_images_per_s", false, without);
    }
    Ok(())
}

/// One `berth copy --policy P SRC DEST` (no `--insecure-policy`: the policy decides).
fn run_policy_copy(env: &Env, policy: &str, from: &str, to: &str, home: &Path) -> Result<()> {
    let log = env.run.join("berth-policy-copy.log");
    let out = fs::File::create(&log)?;
    let mut cmd = Command::new(&env.berth);
    cmd.args([
        "copy",
        "--quiet",
        "--policy",
        policy,
        "--src-tls-verify=false",
    ])
    .args([from, to])
    .env("HOME", home)
    .stdin(Stdio::null())
    .stdout(out.try_clone()?)
    .stderr(out);
    crate::client::timed(&mut cmd, &log, "berth copy --policy", "build berth first")?;
    Ok(())
}
