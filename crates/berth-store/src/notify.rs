//! How [`crate::PgMeta`] tells the other replicas what changed: a `NOTIFY` on one
//! channel in the write transaction itself, so it is delivered when, and only when,
//! the change commits, and heard by every process that listens (a replica serving,
//! or none while an admin command runs). The payload is one line, `ORIGIN KIND
//! REPOSITORY DIGEST` (digest `-` when there is none); `ORIGIN` is random per
//! process, so a replica skips what it said itself (it has acted on it already).
//! Repository names and digests never hold a space.

use std::sync::mpsc;
use std::time::Duration;

use berth_image::Digest;

use crate::meta::{MetaChange, Watch, Watched};
use crate::{Result, StoreError};

/// The channel (an identifier: it is written into `LISTEN`).
pub(crate) const CHANNEL: &str = "berth_meta";
/// How long [`watch`] waits for its first `LISTEN` before it returns anyway.
const FIRST_LISTEN: Duration = Duration::from_secs(5);

/// A process's origin: random, so that replicas on different machines differ.
pub(crate) fn new_origin() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// The payload announcing `change` from `origin`.
pub(crate) fn encode(origin: u64, change: &MetaChange) -> String {
    let (kind, repository, digest) = match change {
        MetaChange::ManifestStored { repository, digest } => ("put", repository, Some(digest)),
        MetaChange::ManifestDeleted { repository, digest } => ("del", repository, Some(digest)),
        MetaChange::TagDeleted { repository } => ("untag", repository, None),
        MetaChange::Signed { repository } => ("sig", repository, None),
        MetaChange::SignaturesDeleted { repository } => ("unsig", repository, None),
    };
    let digest = digest.map_or_else(|| "-".to_string(), Digest::to_string);
    format!("{origin:016x} {kind} {repository} {digest}")
}

/// The origin and change in `payload`; `None` for one this build does not know (a
/// newer replica's), which is skipped.
pub(crate) fn decode(payload: &str) -> Option<(u64, MetaChange)> {
    let mut words = payload.split(' ');
    let origin = u64::from_str_radix(words.next()?, 16).ok()?;
    let kind = words.next()?;
    let repository = words.next()?.to_string();
    let digest = words.next()?;
    if words.next().is_some() {
        return None;
    }
    let digest = || digest.parse::<Digest>().ok();
    let change = match kind {
        "put" => MetaChange::ManifestStored {
            repository,
            digest: digest()?,
        },
        "del" => MetaChange::ManifestDeleted {
            repository,
            digest: digest()?,
        },
        "untag" => MetaChange::TagDeleted { repository },
        "sig" => MetaChange::Signed { repository },
        "unsig" => MetaChange::SignaturesDeleted { repository },
        _ => return None,
    };
    Some((origin, change))
}

/// Listens on `target` and calls `on` with every change whose origin is not
/// `origin`, and with [`Watched::Missed`] each time the listener connects again.
/// Returns once the first `LISTEN` is in place (or failed: then the first
/// reconnection reports `Missed`).
pub(crate) fn watch(
    target: berth_pg::Target,
    origin: u64,
    mut on: Box<dyn FnMut(Watched) + Send>,
) -> Result<Watch> {
    let (first, listening) = mpsc::sync_channel::<()>(1);
    let mut connected_before = false;
    let mut warned = false;
    let listener = berth_pg::listen(target, CHANNEL, "berth-meta-listen", move |heard| {
        match heard {
            berth_pg::Heard::Listening => {
                if connected_before {
                    tracing::info!("listening for other replicas' changes again");
                    on(Watched::Missed);
                }
                connected_before = true;
                warned = false;
                let _ = first.try_send(());
            }
            berth_pg::Heard::Message(payload) => match decode(payload) {
                Some((from, _)) if from == origin => {}
                Some((_, change)) => on(Watched::Change(change)),
                None => tracing::debug!(payload, "a change notification this build cannot read"),
            },
            berth_pg::Heard::Deaf(e) => {
                // Whatever is missed now is reported at the next `Listening`.
                connected_before = true;
                if !warned {
                    tracing::warn!(error = %berth_pg::message(e),
                        "cannot listen for other replicas' changes; trying again");
                    warned = true;
                }
                let _ = first.try_send(());
            }
        }
    })
    .map_err(|source| StoreError::Io {
        context: "starting a thread listening for other replicas' changes".into(),
        source,
    })?;
    let _ = listening.recv_timeout(FIRST_LISTEN);
    Ok(Watch::new(listener))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reads_back_as_written() {
        let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        for change in [
            MetaChange::ManifestStored {
                repository: "team/app".into(),
                digest: d.clone(),
            },
            MetaChange::ManifestDeleted {
                repository: "a/b/c".into(),
                digest: d,
            },
            MetaChange::TagDeleted {
                repository: "x".into(),
            },
            MetaChange::Signed {
                repository: "team/app".into(),
            },
            MetaChange::SignaturesDeleted {
                repository: "team/app".into(),
            },
        ] {
            let payload = encode(0xfeed, &change);
            assert_eq!(decode(&payload), Some((0xfeed, change)), "{payload}");
        }
    }

    #[test]
    fn an_unknown_or_malformed_payload_is_skipped() {
        for p in [
            "",
            "zz put a sha256:00",
            "00000000000000ff gone team/app -",
            "00000000000000ff put team/app -",
            "00000000000000ff put team/app sha256:00",
            "00000000000000ff sig team/app - extra",
        ] {
            assert_eq!(decode(p), None, "{p:?}");
        }
    }
}
