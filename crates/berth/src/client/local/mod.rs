//! The podman-style commands over the local store (`berth_transport::local`): pull,
//! push, images, image inspect, history, tag, untag, rmi, image prune, save, load.
//! What podman prints, these print: same columns, same JSON keys, same messages for
//! an unknown image.

pub mod archive;
pub mod inspect;
pub mod list;
pub mod pull;
pub mod push;
pub mod remove;

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context};
use berth_image::{Digest, ImageReference};
use berth_transport::local::{Image, LocalStore};
use berth_transport::Place;

/// Exit status of podman for an error of its own (an unknown image, say).
pub const PODMAN_ERROR: u8 = 125;

/// The tar limits of import, load and layer application: the defaults, or
/// `BERTH_TAR_MAX_BYTES`, `BERTH_TAR_MAX_ENTRIES` and `BERTH_TAR_MAX_PATH` when set.
pub fn tar_limits() -> anyhow::Result<berth_runtime::TarLimits> {
    berth_runtime::TarLimits::from_vars(|k| {
        std::env::var_os(k).map(|v| v.to_string_lossy().into_owned())
    })
    .map_err(anyhow::Error::msg)
}

/// The store at `--root`, `$BERTH_STORAGE_ROOT` or the default place.
pub fn open_store() -> anyhow::Result<Arc<LocalStore>> {
    let root = crate::paths::storage_root()?;
    LocalStore::open(&root).with_context(|| format!("opening the local store {}", root.display()))
}

/// A new name as podman writes it: `localhost/` before a name without a registry
/// (`foo` -> `localhost/foo:latest`), `docker.io/library/` rules for docker.io
/// ([`ImageReference::parse_local`], the one rule `local:` names follow too).
pub fn qualify(name: &str) -> anyhow::Result<String> {
    let r = ImageReference::parse_local(name)
        .with_context(|| format!("invalid image name {name:?}"))?;
    if r.digest().is_some() {
        bail!("{name}: a name to give an image cannot have a digest");
    }
    Ok(format!(
        "{}:{}",
        r.name(),
        r.tag().map_or("latest", |t| t.as_str())
    ))
}

/// The place to read image `img` from for a copy: by its first name, else by digest.
pub fn image_place(store: &Arc<LocalStore>, img: &Image) -> Place {
    let (repo, reference) = match img.names.first() {
        Some(name) => {
            let repo = berth_transport::local::repository_of(name);
            (repo.to_string(), name[repo.len() + 1..].to_string())
        }
        None => ("localhost/unnamed".to_string(), img.digest.to_string()),
    };
    Place::Local {
        store: store.clone(),
        repo,
        reference,
    }
}

/// An image ID as podman shows it: 12 hex digits, or all 64 with `--no-trunc`
/// (prefixed `sha256:` in tables, as podman does).
pub fn show_id(id: &Digest, no_trunc: bool) -> String {
    match no_trunc {
        true => id.to_string(),
        false => id.hex().chars().take(12).collect(),
    }
}

/// Seconds since the epoch, as RFC 3339 to the second (`CreatedAt`-style).
pub fn rfc3339(unix: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// "2 hours ago", as podman (go-units' `HumanDuration`) says it: seconds and
/// minutes cut down, hours rounded to the nearest (2 h 53 min is "3 hours"), days,
/// weeks and months counted from the rounded hours, years from the whole ones.
pub fn ago(now: SystemTime, unix: i64) -> String {
    let then = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    let s = now.duration_since(then).map(|d| d.as_secs()).unwrap_or(0);
    // math.Round: halves away from zero.
    let hours = (s + 1800) / 3600;
    let (n, unit) = match (s, s / 60, hours) {
        (0, ..) => return "Less than a second ago".into(),
        (1, ..) => return "1 second ago".into(),
        (2..=59, ..) => (s, "seconds"),
        (_, 1, _) => return "About a minute ago".into(),
        (_, 2..=59, _) => (s / 60, "minutes"),
        (.., 1) => return "About an hour ago".into(),
        (.., 2..=47) => (hours, "hours"),
        (.., 48..=335) => (hours / 24, "days"),
        (.., 336..=1439) => (hours / 24 / 7, "weeks"),
        (.., 1440..=17_519) => (hours / 24 / 30, "months"),
        _ => (s / 3600 / 24 / 365, "years"),
    };
    format!("{n} {unit} ago")
}

/// Decimal units with three significant digits, as podman prints sizes ("7.62 MB").
pub fn human_size(bytes: u64) -> String {
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

/// A runtime for the commands that talk to registries or stream blobs.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_as_podman_prints_them() {
        assert_eq!(human_size(7_620_000), "7.62 MB");
        assert_eq!(human_size(1_234), "1.23 kB");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(123_400_000), "123 MB");
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        assert_eq!(ago(now, 1_000_000), "Less than a second ago");
        assert_eq!(ago(now, 999_995), "5 seconds ago");
        assert_eq!(ago(now, 1_000_000 - 3 * 3600), "3 hours ago");
        assert_eq!(ago(now, 1_000_000 - 3 * 86_400), "3 days ago");
        // Hours round (go-units uses math.Round), minutes do not.
        let before = |h: u64, m: u64| 1_000_000 - (h * 3600 + m * 60) as i64;
        assert_eq!(ago(now, before(2, 53)), "3 hours ago");
        assert_eq!(ago(now, before(2, 29)), "2 hours ago");
        assert_eq!(ago(now, before(1, 29)), "About an hour ago");
        assert_eq!(ago(now, before(0, 59)), "59 minutes ago");
        assert_eq!(ago(now, before(1, 30)), "2 hours ago");
        assert_eq!(ago(now, before(47, 30)), "2 days ago");
        assert_eq!(ago(now, before(0, 1)), "About a minute ago");
    }

    #[test]
    fn new_names_as_podman_qualifies_them() {
        assert_eq!(qualify("foo").unwrap(), "localhost/foo:latest");
        assert_eq!(qualify("a/b:v1").unwrap(), "localhost/a/b:v1");
        assert_eq!(
            qualify("127.0.0.1:5000/x/y:z").unwrap(),
            "127.0.0.1:5000/x/y:z"
        );
        assert_eq!(qualify("localhost/t").unwrap(), "localhost/t:latest");
        assert!(qualify("Bad Name").is_err());
    }
}
