//! The podman-style commands over the local store: `pull` and `images` (first of
//! issue 5's; the store itself is `berth_transport::local`).

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{bail, Context};
use berth_image::{ImageReference, Platform};
use berth_transport::copy::{copy, CopyOptions};
use berth_transport::local::{ImageRow, LocalStore};
use berth_transport::{ImageName, Place};
use clap::Args;

use super::copy::{check_policy, local_place};
use super::{reference_of, Config, RegistryFlags};

#[derive(Args, Debug)]
pub struct PullArgs {
    /// The local store [default: $BERTH_STORAGE_ROOT, ~/.local/share/containers/berth, or
    /// /var/lib/containers/berth as root]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// For a multi-platform image, which one: OS/ARCH[/VARIANT] [default: this machine's]
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<String>,
    /// Print nothing but the image ID
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Trust policy file [default: ~/.config/containers/policy.json, /etc/containers/policy.json]
    #[arg(long, value_name = "PATH")]
    signature_policy: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryFlags,
    /// The image: NAME[:TAG|@DIGEST] (short names through registries.conf), or
    /// docker://NAME
    image: String,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// The local store [default: $BERTH_STORAGE_ROOT, ~/.local/share/containers/berth, or
    /// /var/lib/containers/berth as root]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Only the image IDs
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Full IDs
    #[arg(long)]
    no_trunc: bool,
    /// A DIGEST column
    #[arg(long)]
    digests: bool,
}

fn store_root(root: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match root {
        Some(r) => r.clone(),
        None => crate::paths::storage_root()?,
    })
}

fn platform(spec: Option<&str>) -> anyhow::Result<Platform> {
    let mut p = berth_image::Platform::this_machine();
    if let Some(s) = spec {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] => (p.os, p.architecture) = (os.to_string(), arch.to_string()),
            [os, arch, v] => {
                (p.os, p.architecture, p.variant) =
                    (os.to_string(), arch.to_string(), Some(v.to_string()))
            }
            _ => bail!("--platform {s:?}: use OS/ARCH[/VARIANT], e.g. linux/arm64"),
        }
    }
    Ok(p)
}

pub fn pull(a: PullArgs) -> anyhow::Result<()> {
    let typed = a.image.trim_start_matches("docker://");
    let r: ImageReference = typed
        .parse()
        .with_context(|| format!("invalid image name {:?}", a.image))?;
    let config = Config::load()?;
    check_policy(
        &config,
        a.signature_policy.as_deref(),
        false,
        &ImageName::Docker(r.clone()),
    )?;
    let root = store_root(&a.root)?;
    let options = CopyOptions {
        all: false,
        platform: platform(a.platform.as_deref())?,
        parallel: 6,
        format: None,
        preserve_digests: true,
        compress: None,
    };
    let progress = super::progress::reporter(a.quiet);
    let id = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let (logical, registry, at) = config.open_for_read(typed, &r, &a.registry).await?;
            let logical = logical.with_default_tag();
            let src = Place::Registry {
                registry: std::sync::Arc::new(registry),
                repo: at.path().as_str().to_string(),
                reference: reference_of(&at),
            };
            let dst = local_place(&root, &logical)?;
            copy(&src, &dst, &options, progress)
                .await
                .with_context(|| format!("pulling {}", logical.name()))?;
            let store = LocalStore::open(&root)?;
            let stored = store.manifest(&logical.name(), &reference_of(&logical))?;
            let m = berth_image::Manifest::parse(stored.media_type.as_deref(), &stored.bytes)?;
            let config = m.config.context("the pulled manifest has no config")?;
            anyhow::Ok(config.digest.hex().to_string())
        })?;
    println!("{id}");
    Ok(())
}

pub fn images(a: ImagesArgs) -> anyhow::Result<()> {
    let store = LocalStore::open(&store_root(&a.root)?)?;
    let rows = store.images()?;
    let id = |r: &ImageRow| -> String {
        let hex = r.config_digest.as_ref().map_or("<none>", |d| d.hex());
        match a.no_trunc {
            true => format!("sha256:{hex}"),
            false => hex.chars().take(12).collect(),
        }
    };
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            let i = id(r);
            if seen.insert(i.clone()) {
                println!("{i}");
            }
        }
        return Ok(());
    }
    let now = SystemTime::now();
    let mut table: Vec<Vec<String>> = vec![{
        let mut h = vec!["REPOSITORY".to_string(), "TAG".into()];
        if a.digests {
            h.push("DIGEST".into());
        }
        h.extend(["IMAGE ID".into(), "CREATED".into(), "SIZE".into()]);
        h
    }];
    for r in &rows {
        let mut line = vec![r.repository.clone(), r.tag.clone()];
        if a.digests {
            line.push(r.manifest_digest.to_string());
        }
        line.push(id(r));
        line.push(
            r.created
                .as_deref()
                .and_then(|c| humantime::parse_rfc3339_weak(c).ok())
                .map_or_else(|| "<unknown>".into(), |t| ago(now, t)),
        );
        line.push(human_size(r.size));
        table.push(line);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|c| table.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    for row in table {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| match c + 1 == widths.len() {
                true => v.clone(),
                false => format!("{v:<w$}", w = widths[c]),
            })
            .collect();
        println!("{}", cells.join("  "));
    }
    Ok(())
}

/// "2 hours ago", as podman (Docker's `units.HumanDuration`) says it.
fn ago(now: SystemTime, then: SystemTime) -> String {
    let s = now.duration_since(then).map(|d| d.as_secs()).unwrap_or(0);
    let (n, unit) = match s {
        0..=59 => return "Less than a minute ago".into(),
        60..=119 => return "About a minute ago".into(),
        120..=3599 => (s / 60, "minutes"),
        3600..=7199 => return "About an hour ago".into(),
        7200..=172_799 => (s / 3600, "hours"),
        172_800..=1_209_599 => (s / 86_400, "days"),
        1_209_600..=5_183_999 => (s / 604_800, "weeks"),
        5_184_000..=63_071_999 => (s / 2_592_000, "months"),
        _ => (s / 31_536_000, "years"),
    };
    format!("{n} {unit} ago")
}

/// Decimal units with three significant digits, as podman prints sizes ("7.62 MB").
fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{v:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text} {}", units[u])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sizes_and_ages_as_podman_prints_them() {
        assert_eq!(human_size(7_620_000), "7.62 MB");
        assert_eq!(human_size(1_234), "1.23 kB");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(123_400_000), "123 MB");
        let now = SystemTime::now();
        assert_eq!(
            ago(now, now - Duration::from_secs(5)),
            "Less than a minute ago"
        );
        assert_eq!(ago(now, now - Duration::from_secs(3 * 3600)), "3 hours ago");
        assert_eq!(
            ago(now, now - Duration::from_secs(3 * 86_400)),
            "3 days ago"
        );
    }
}
