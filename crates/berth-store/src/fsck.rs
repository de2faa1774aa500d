//! Checking the store against itself: every blob file (or object, in a bucket)
//! re-hashed (streaming), every blob row checked for its file, every file checked for
//! a row; each problem reported with what it affects. Repair removes only what is
//! broken or unused: rows whose file is missing or corrupt (with the links to them),
//! corrupt files, and files that no row names (removed through the
//! collector's fence, so a file that an upload is linking right now is never lost
//! silently). A good blob that a row names is never touched; a bucket that stops
//! answering stops the check. Corrupt means the bytes were read and hash to another
//! digest (a short or changed file); a file that could not be read (permission denied,
//! an I/O error) says nothing about its bytes, so it is reported as unreadable and
//! never repaired: repair used to delete it and every row and link of its digest. A whole file with no row whose upload noted its commit
//! is an upload under way (or one a crash cut off, which the registry's next start
//! removes): counted, not a problem.

use std::collections::HashSet;

use berth_image::Digest;

use crate::meta::{BlobUsers, MetaStore};
use crate::{BlobBytes, Result};

/// What fsck needs of a blob store beyond the collector's [`BlobBytes`]: everything
/// stored listed, and each blob read back through its hash. Files on disk
/// ([`crate::BlobStore`]) and objects in a bucket ([`crate::ObjectBlobs`]).
pub trait Checkable: BlobBytes {
    /// Every file (object) where blobs are kept, with the digest its name says (`None`
    /// for a name that is not a blob's).
    fn stored(&self, each: &mut dyn FnMut(Stored)) -> Result<()>;
    /// The digest the stored bytes of `digest` have, read streaming; `None` when they
    /// are gone (removed while fsck looked: the collector).
    fn rehash(&self, digest: &Digest) -> Result<Option<Digest>>;
    /// Removes a file (object) that [`Checkable::stored`] listed with no digest.
    fn remove_stored(&self, location: &str) -> Result<()>;
}

/// One file (object) where blobs are kept.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its path, or its key in the bucket.
    pub location: String,
    pub digest: Option<Digest>,
    pub size: u64,
}

/// One thing wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file's bytes, read to the end, hash to another digest.
    Corrupt { digest: Digest, reason: String },
    /// The file could not be read through (permission denied, an I/O error): nothing
    /// is known of its bytes, so repair leaves it and its rows for an operator.
    Unreadable { digest: Digest, reason: String },
    /// A row names a blob whose file is not there.
    MissingFile { digest: Digest },
    /// A file (object) under `blobs/` that no row names.
    OrphanFile {
        location: String,
        digest: Option<Digest>,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Corrupt { digest, reason } => write!(f, "blob {digest} is corrupt: {reason}"),
            Problem::Unreadable { digest, reason } => {
                write!(
                    f,
                    "blob {digest} could not be read (left as it is): {reason}"
                )
            }
            Problem::MissingFile { digest } => write!(f, "blob {digest} has no file"),
            Problem::OrphanFile { location, .. } => {
                write!(f, "file {location} is named by no blob row")
            }
        }
    }
}

/// A problem with what it affects and whether repair fixed it.
#[derive(Debug, Clone)]
pub struct Finding {
    pub problem: Problem,
    pub affects: BlobUsers,
    pub repaired: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub files_checked: u64,
    pub bytes_checked: u64,
    pub rows_checked: u64,
    /// Whole files with no row whose upload noted its commit
    /// ([`MetaStore::begin_blob_commit`]): an upload under way, or one a crash cut
    /// off, which the registry's next start removes. Not a problem.
    pub commits_under_way: u64,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Problems that are still there.
    pub fn remaining(&self) -> usize {
        self.findings.iter().filter(|f| !f.repaired).count()
    }
}

/// What re-reading one file found.
enum Verdict {
    /// Its bytes hash to its digest.
    Good,
    /// Its bytes hash to another digest: the reason.
    Corrupt(String),
    /// It could not be read through: the error.
    Unreadable(String),
}

/// What [`check`] does with what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reports it.
    Check,
    /// Fixes what may be fixed (see the module doc), unless most blob rows have no
    /// file ([`crate::StoreError::MostFilesMissing`]).
    Repair,
    /// Fixes it even when most blob rows have no file: they are known to be lost.
    RepairLostFiles,
}

/// Checks the store and, as `mode` says, repairs it.
pub fn check(meta: &dyn MetaStore, blobs: &dyn Checkable, mode: Mode) -> Result<Report> {
    let repair = mode != Mode::Check;
    let mut report = Report::default();
    let rows = meta.all_blobs()?;
    let named: HashSet<&Digest> = rows.iter().map(|(d, _)| d).collect();
    let noted: HashSet<Digest> = meta
        .open_blob_commits()?
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    // Asked again in the transaction that forgets a row (a blob whose file cannot be
    // looked at is taken to be there).
    let no_file = |d: &Digest| !blobs.has(d).unwrap_or(true);
    let mut files: Vec<Stored> = Vec::new();
    blobs.stored(&mut |f| files.push(f))?;
    if mode == Mode::Repair {
        let listed: HashSet<&Digest> = files.iter().filter_map(|f| f.digest.as_ref()).collect();
        let missing = rows.iter().filter(|(d, _)| !listed.contains(d)).count();
        if rows.len() >= 2 && missing * 2 > rows.len() {
            return Err(crate::StoreError::MostFilesMissing {
                missing,
                rows: rows.len(),
            });
        }
    }
    let mut seen: HashSet<Digest> = HashSet::new();
    for Stored {
        location,
        digest,
        size,
    } in files
    {
        report.files_checked += 1;
        let Some(digest) = digest else {
            let repaired = repair && blobs.remove_stored(&location).is_ok();
            report.findings.push(Finding {
                problem: Problem::OrphanFile {
                    location,
                    digest: None,
                },
                affects: BlobUsers::default(),
                repaired,
            });
            continue;
        };
        let verdict = match blobs.rehash(&digest) {
            Ok(Some(actual)) if actual == digest => Verdict::Good,
            Ok(Some(actual)) => Verdict::Corrupt(format!("its bytes have digest {actual}")),
            // Removed while we looked (the collector): not a problem.
            Ok(None) => continue,
            // A bucket that does not answer says nothing about the blob: stop, rather
            // than call a good blob unreadable.
            Err(e) if e.is_unreachable() => return Err(e),
            Err(e) => Verdict::Unreadable(e.to_string()),
        };
        if matches!(verdict, Verdict::Good) {
            report.bytes_checked += size;
        }
        let has_row = named.contains(&digest);
        seen.insert(digest.clone());
        let problem = match (verdict, has_row) {
            (Verdict::Good, true) => continue,
            (Verdict::Good, false) if noted.contains(&digest) => {
                report.commits_under_way += 1;
                continue;
            }
            (Verdict::Corrupt(reason), _) => Problem::Corrupt {
                digest: digest.clone(),
                reason,
            },
            (Verdict::Unreadable(reason), _) => Problem::Unreadable {
                digest: digest.clone(),
                reason,
            },
            (Verdict::Good, false) => Problem::OrphanFile {
                location,
                digest: Some(digest.clone()),
            },
        };
        let affects = meta.blob_users(&digest)?;
        let repaired = repair
            && match &problem {
                Problem::Corrupt { .. } => {
                    blobs.remove_blob(&digest)?;
                    meta.forget_blobs(std::slice::from_ref(&digest), &no_file)?;
                    true
                }
                // Maybe good bytes behind a passing fault: never removed.
                Problem::Unreadable { .. } => false,
                Problem::MissingFile { .. } | Problem::OrphanFile { .. } => {
                    // Through the collector's fence: only while no row names it.
                    crate::gc::remove_unnamed_files(meta, blobs, std::slice::from_ref(&digest))?;
                    !blobs.has(&digest)?
                }
            };
        report.findings.push(Finding {
            problem,
            affects,
            repaired,
        });
    }
    for (digest, _) in &rows {
        report.rows_checked += 1;
        if seen.contains(digest) || blobs.has(digest)? {
            continue;
        }
        let affects = meta.blob_users(digest)?;
        let repaired = repair && {
            meta.forget_blobs(std::slice::from_ref(digest), &no_file)?;
            !blobs.has(digest)?
        };
        report.findings.push(Finding {
            problem: Problem::MissingFile {
                digest: digest.clone(),
            },
            affects,
            repaired,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bucket that lists one blob and then stops answering; removing anything from it
    /// is a failure of the test.
    struct Unreachable(Digest);

    impl BlobBytes for Unreachable {
        fn has(&self, _: &Digest) -> Result<bool> {
            Err(down())
        }
        fn remove_blob(&self, d: &Digest) -> Result<()> {
            panic!("fsck removed {d} from a store that did not answer")
        }
    }

    impl Checkable for Unreachable {
        fn stored(&self, each: &mut dyn FnMut(Stored)) -> Result<()> {
            each(Stored {
                location: format!("blobs/sha256/{}", self.0.hex()),
                digest: Some(self.0.clone()),
                size: 5,
            });
            Ok(())
        }
        fn rehash(&self, _: &Digest) -> Result<Option<Digest>> {
            Err(down())
        }
        fn remove_stored(&self, location: &str) -> Result<()> {
            panic!("fsck removed {location} from a store that did not answer")
        }
    }

    fn down() -> crate::StoreError {
        crate::StoreError::Object {
            context: "reading a blob".into(),
            source: Box::new(object_store::Error::Generic {
                store: "S3",
                source: "connection refused".into(),
            }),
        }
    }

    /// Files on a disk that fails to read one blob (`EACCES`, `EIO`): removing anything
    /// is a failure of the test.
    struct FailingDisk(Digest, std::io::ErrorKind);

    impl BlobBytes for FailingDisk {
        fn has(&self, _: &Digest) -> Result<bool> {
            Ok(true)
        }
        fn remove_blob(&self, d: &Digest) -> Result<()> {
            panic!("fsck removed {d}, which it could not read")
        }
    }

    impl Checkable for FailingDisk {
        fn stored(&self, each: &mut dyn FnMut(Stored)) -> Result<()> {
            each(Stored {
                location: format!("blobs/sha256/{}", self.0.hex()),
                digest: Some(self.0.clone()),
                size: 5,
            });
            Ok(())
        }
        fn rehash(&self, _: &Digest) -> Result<Option<Digest>> {
            Err(crate::StoreError::io("reading blobs/sha256/…")(
                std::io::Error::from(self.1),
            ))
        }
        fn remove_stored(&self, location: &str) -> Result<()> {
            panic!("fsck removed {location}, which it could not read")
        }
    }

    /// An I/O error while re-hashing is not corruption: it is reported as such, and
    /// repair keeps the file, its row and its links (it used to delete all three).
    #[test]
    fn a_file_that_cannot_be_read_is_reported_and_never_repaired_away() {
        for kind in [
            std::io::ErrorKind::PermissionDenied,
            std::io::ErrorKind::Interrupted,
            std::io::ErrorKind::Other,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let meta = crate::SqliteMeta::open(&dir.path().join("meta.db")).unwrap();
            let d = Digest::sha256_of(b"hello");
            meta.link_blob("app", &d, 5, &|| true).unwrap();
            let report = check(&meta, &FailingDisk(d.clone(), kind), Mode::Repair).unwrap();
            assert_eq!(report.findings.len(), 1, "{kind:?}: {:?}", report.findings);
            let f = &report.findings[0];
            assert!(
                matches!(&f.problem, Problem::Unreadable { digest, .. } if *digest == d),
                "{kind:?}: {:?}",
                f.problem
            );
            assert!(!f.repaired, "{kind:?}");
            assert_eq!(report.remaining(), 1);
            assert_eq!(f.affects.repositories, vec!["app".to_string()]);
            assert!(f.problem.to_string().contains("could not be read"));
            assert!(
                meta.blob_known(&d).unwrap().is_some(),
                "{kind:?}: the row stays"
            );
            assert_eq!(
                meta.blob_in_repo("app", &d).unwrap(),
                Some(5),
                "the link stays"
            );
        }
    }

    /// A store with no file at all, until its file of one blob lands: after fsck's
    /// first look (a push of that blob in between).
    struct Landing {
        digest: Digest,
        looks: std::sync::atomic::AtomicUsize,
    }

    impl BlobBytes for Landing {
        fn has(&self, d: &Digest) -> Result<bool> {
            let n = self.looks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(*d == self.digest && n > 0)
        }
        fn remove_blob(&self, d: &Digest) -> Result<()> {
            panic!("fsck removed {d}, a row without a file")
        }
    }

    impl Checkable for Landing {
        fn stored(&self, _: &mut dyn FnMut(Stored)) -> Result<()> {
            Ok(())
        }
        fn rehash(&self, _: &Digest) -> Result<Option<Digest>> {
            Ok(None)
        }
        fn remove_stored(&self, location: &str) -> Result<()> {
            panic!("fsck removed {location}, listed by nothing")
        }
    }

    /// Repair forgets a row whose file is missing only if the file is still missing
    /// in its write transaction: a push of the blob that landed since fsck looked
    /// keeps its row and its link.
    #[test]
    fn a_file_that_lands_after_the_look_keeps_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let meta = crate::SqliteMeta::open(&dir.path().join("meta.db")).unwrap();
        let d = Digest::sha256_of(b"hello");
        meta.link_blob("app", &d, 5, &|| true).unwrap();
        let store = Landing {
            digest: d.clone(),
            looks: Default::default(),
        };
        let report = check(&meta, &store, Mode::Repair).unwrap();
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert!(matches!(
            report.findings[0].problem,
            Problem::MissingFile { .. }
        ));
        assert!(!report.findings[0].repaired);
        assert_eq!(
            meta.blob_in_repo("app", &d).unwrap(),
            Some(5),
            "the link went"
        );
        // Still missing in the transaction: the row goes (this store lists nothing,
        // so every row looks missing: lost files, as the caller says).
        let gone = Digest::sha256_of(b"gone");
        meta.link_blob("app", &gone, 4, &|| true).unwrap();
        let report = check(&meta, &store, Mode::RepairLostFiles).unwrap();
        let f = report
            .findings
            .iter()
            .find(|f| f.problem.to_string().contains(&gone.to_string()));
        assert!(f.is_some_and(|f| f.repaired), "{:?}", report.findings);
        assert_eq!(meta.blob_known(&gone).unwrap(), None);
    }

    #[test]
    fn a_store_that_stops_answering_stops_the_check_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let meta = crate::SqliteMeta::open(&dir.path().join("meta.db")).unwrap();
        let d = Digest::sha256_of(b"hello");
        meta.link_blob("app", &d, 5, &|| true).unwrap();
        let e = check(&meta, &Unreachable(d.clone()), Mode::Repair).unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        assert!(meta.blob_known(&d).unwrap().is_some(), "the row stays");
    }
}
