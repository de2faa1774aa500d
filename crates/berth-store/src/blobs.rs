//! Content-addressed blob files on the local file system.
//!
//! Layout under the store's root:
//! - `blobs/<algorithm>/<first two hex>/<hex>`: one file per blob, immutable.
//! - `uploads/<id>`: the bytes of an upload session (or of a one-shot upload) while they
//!   arrive. On commit the file is fsynced and renamed into `blobs/`, so a blob path
//!   exists only with verified content, and a crash leaves at most an upload file.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use berth_image::{Algorithm, Digest, Hasher};
use bytes::Bytes;

pub use crate::writer::{BlobWriter, Block, HashState, BLOCK_SIZE};
use crate::{Result, StoreError};

/// Buffer for re-reading a blob from disk (rehashing after a restart).
const READ_BUF: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct BlobStore {
    blobs: PathBuf,
    uploads: PathBuf,
}

impl BlobStore {
    /// Opens (creating if needed) the blob folders under `root`.
    pub fn open(root: &Path) -> Result<BlobStore> {
        let store = BlobStore {
            blobs: root.join("blobs"),
            uploads: root.join("uploads"),
        };
        for dir in [&store.blobs, &store.uploads] {
            fs::create_dir_all(dir)
                .map_err(StoreError::io(format!("creating {}", dir.display())))?;
        }
        Ok(store)
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.blobs
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    /// Opens a stored blob for reading, with its size.
    pub fn open_blob(&self, digest: &Digest) -> Result<Option<(File, u64)>> {
        let path = self.path(digest);
        match File::open(&path) {
            Ok(f) => {
                let len = f
                    .metadata()
                    .map_err(StoreError::io(format!("stat {}", path.display())))?
                    .len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(format!("opening {}", path.display()))(e)),
        }
    }

    /// Bytes `offset..offset + len` of an open blob file as shared memory mapped from
    /// the file, so they can be sent without a copy through a read buffer. The pages
    /// are faulted in here (a blocking call), so that writing them to a socket later
    /// does not wait for the disk.
    pub fn map_range(file: &File, offset: u64, len: usize) -> std::io::Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let page = 4096u64;
        let aligned = offset - offset % page;
        let lead = (offset - aligned) as usize;
        // SAFETY: blob files are immutable. They are written under `uploads/`, renamed
        // into `blobs/` once complete, and never opened for writing again; removal is an
        // unlink, which leaves existing mappings valid. So the mapped bytes cannot
        // change or shrink while they are mapped.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(aligned)
                .len(lead + len)
                .map(file)?
        };
        let _ = map.advise(memmap2::Advice::WillNeed);
        let mut touch = 0u8;
        for i in (0..map.len()).step_by(page as usize) {
            touch ^= map[i];
        }
        std::hint::black_box(touch);
        Ok(Bytes::from_owner(map).slice(lead..))
    }

    /// Is the blob stored? (Its bytes, that is: whether a repository may read it is the
    /// metadata's business.)
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Where upload `id`'s data is written (a reader may follow it as it grows).
    pub fn upload_path(&self, id: &str) -> PathBuf {
        self.uploads.join(id)
    }

    /// Starts a new upload file. `id` must be a name the caller generated (a UUID), never
    /// client input.
    pub fn create_upload(&self, id: &str) -> Result<BlobWriter> {
        let path = self.upload_path(id);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(StoreError::io(format!("creating {}", path.display())))?;
        Ok(BlobWriter::new(path, file, Algorithm::Sha256.hasher(), 0))
    }

    /// Reopens an upload to append to it. `state` is the hash of the bytes written so far
    /// when this process still has it; otherwise (after a restart) the file is read once
    /// to rebuild it. Returns `None` when the upload file is gone.
    pub fn resume_upload(&self, id: &str, state: Option<HashState>) -> Result<Option<BlobWriter>> {
        let path = self.upload_path(id);
        let mut file = match OpenOptions::new().read(true).append(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(format!("opening {}", path.display()))(e)),
        };
        let len = file
            .metadata()
            .map_err(StoreError::io(format!("stat {}", path.display())))?
            .len();
        let hasher = match state {
            Some(s) if s.len == len => s.hasher,
            _ => hash_reader(&mut file, Algorithm::Sha256, &path)?.0,
        };
        Ok(Some(BlobWriter::new(path, file, hasher, len)))
    }

    /// Length of an upload's data so far, `None` if there is no such upload file.
    pub fn upload_len(&self, id: &str) -> Result<Option<u64>> {
        let path = self.upload_path(id);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(format!("stat {}", path.display()))(e)),
        }
    }

    /// How long ago an upload's data last changed, `None` if there is no such file.
    pub fn upload_age(&self, id: &str) -> Option<std::time::Duration> {
        fs::metadata(self.upload_path(id))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
    }

    /// Throws an upload's data away. Missing data is not an error.
    pub fn remove_upload(&self, id: &str) -> Result<()> {
        remove_if_there(&self.upload_path(id))
    }

    /// Names of all upload files, for sweeping ones whose session is gone.
    pub fn upload_ids(&self) -> Result<Vec<String>> {
        let rd = fs::read_dir(&self.uploads).map_err(StoreError::io(format!(
            "listing {}",
            self.uploads.display()
        )))?;
        Ok(rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }

    /// Makes the uploaded bytes the blob `expected`, if they hash to it. The data is
    /// fsynced, then renamed into place, then the folder is fsynced: the blob is visible
    /// only whole. On a mismatch the upload data is removed and nothing is kept.
    pub fn commit(&self, writer: BlobWriter, expected: &Digest) -> Result<u64> {
        let (path, mut file, hasher, len) = writer.into_parts()?;
        let actual = if hasher.algorithm() == expected.algorithm() {
            hasher.finish()
        } else {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(0))
                .map_err(StoreError::io(format!("rewinding {}", path.display())))?;
            hash_reader(&mut file, expected.algorithm(), &path)?
                .0
                .finish()
        };
        if &actual != expected {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        file.sync_all()
            .map_err(StoreError::io(format!("fsync {}", path.display())))?;
        drop(file);
        let dest = self.path(expected);
        if dest.is_file() {
            // Same content is already stored: keep the existing file.
            let _ = fs::remove_file(&path);
            return Ok(len);
        }
        let parent = dest.parent().expect("blob path has a parent");
        fs::create_dir_all(parent)
            .map_err(StoreError::io(format!("creating {}", parent.display())))?;
        fs::rename(&path, &dest).map_err(StoreError::io(format!(
            "renaming {} to {}",
            path.display(),
            dest.display()
        )))?;
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
        Ok(len)
    }

    /// Removes a blob's bytes (for a garbage collector; nothing calls it while a
    /// repository still links the blob).
    pub fn remove_blob(&self, digest: &Digest) -> Result<()> {
        remove_if_there(&self.path(digest))
    }
}

impl crate::BlobBytes for BlobStore {
    fn has(&self, digest: &Digest) -> Result<bool> {
        Ok(self.contains(digest))
    }

    fn remove_blob(&self, digest: &Digest) -> Result<()> {
        BlobStore::remove_blob(self, digest)
    }
}

impl crate::fsck::Checkable for BlobStore {
    /// Listed folder by folder.
    fn stored(&self, each: &mut dyn FnMut(crate::fsck::Stored)) -> Result<()> {
        let list = |dir: &Path| -> Result<Vec<fs::DirEntry>> {
            match fs::read_dir(dir) {
                Ok(rd) => Ok(rd.filter_map(|e| e.ok()).collect()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(StoreError::io(format!("listing {}", dir.display()))(e)),
            }
        };
        let mut found = |path: PathBuf, digest: Option<Digest>| {
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            each(crate::fsck::Stored {
                location: path.display().to_string(),
                digest,
                size,
            })
        };
        for alg in list(&self.blobs)? {
            for prefix in list(&alg.path())? {
                if !prefix.path().is_dir() {
                    found(prefix.path(), None);
                    continue;
                }
                for file in list(&prefix.path())? {
                    let path = file.path();
                    let name = format!(
                        "{}:{}",
                        alg.file_name().to_string_lossy(),
                        file.file_name().to_string_lossy()
                    );
                    let digest = name.parse::<Digest>().ok().filter(|d| self.path(d) == path);
                    found(path, digest);
                }
            }
        }
        Ok(())
    }

    fn rehash(&self, digest: &Digest) -> Result<Option<Digest>> {
        let path = self.path(digest);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(format!("opening {}", path.display()))(e)),
        };
        Ok(Some(
            hash_reader(&mut file, digest.algorithm(), &path)?
                .0
                .finish(),
        ))
    }

    fn remove_stored(&self, location: &str) -> Result<()> {
        // Only what lies under blobs/ (what `stored` lists).
        let path = Path::new(location);
        if !path.starts_with(&self.blobs) {
            return Err(StoreError::Corrupt(format!(
                "{location} is not under {}",
                self.blobs.display()
            )));
        }
        remove_if_there(path)
    }
}

/// Removes a file; a missing one is not an error.
fn remove_if_there(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::io(format!("removing {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

/// Hashes a whole reader with a large buffer; returns the hasher and the byte count.
pub(crate) fn hash_reader(r: &mut impl Read, alg: Algorithm, path: &Path) -> Result<(Hasher, u64)> {
    let mut hasher = alg.hasher();
    let mut buf = vec![0u8; READ_BUF];
    let mut total = 0u64;
    loop {
        let n = r
            .read(&mut buf)
            .map_err(StoreError::io(format!("reading {}", path.display())))?;
        if n == 0 {
            return Ok((hasher, total));
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_verifies_and_places() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.create_upload("u1").unwrap();
        w.write(b"hello ").unwrap();
        w.write(b"world").unwrap();
        let d = Digest::sha256_of(b"hello world");
        assert_eq!(store.commit(w, &d).unwrap(), 11);
        assert_eq!(fs::read(store.path(&d)).unwrap(), b"hello world");
        assert_eq!(store.upload_len("u1").unwrap(), None);
    }

    #[test]
    fn mismatch_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.create_upload("u1").unwrap();
        w.write(b"evil").unwrap();
        let d = Digest::sha256_of(b"good");
        assert!(matches!(
            store.commit(w, &d),
            Err(StoreError::DigestMismatch { .. })
        ));
        assert!(!store.contains(&d));
        assert_eq!(store.upload_len("u1").unwrap(), None);
    }

    #[test]
    fn resume_without_state_rehashes() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.create_upload("u1").unwrap();
        w.write(b"part one,").unwrap();
        w.flush().unwrap(); // what a request acknowledged is in the file
        drop(w); // then a crash: the hash state is lost
        let mut w = store.resume_upload("u1", None).unwrap().unwrap();
        assert_eq!(w.len(), 9);
        w.write(b" part two").unwrap();
        let d = Digest::sha256_of(b"part one, part two");
        store.commit(w, &d).unwrap();
        assert!(store.contains(&d));
    }

    #[test]
    fn rollback_drops_bytes_from_file_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.create_upload("u1").unwrap();
        w.write(b"keep").unwrap();
        let snap = w.snapshot();
        w.write(b" drop").unwrap();
        w.rollback(snap).unwrap();
        w.write(b" more").unwrap();
        let d = Digest::sha256_of(b"keep more");
        store.commit(w, &d).unwrap();
        assert_eq!(fs::read(store.path(&d)).unwrap(), b"keep more");
    }

    #[test]
    fn map_range_reads_unaligned_windows() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = store.create_upload("u1").unwrap();
        w.write(&data).unwrap();
        let d = Digest::sha256_of(&data);
        store.commit(w, &d).unwrap();
        let (file, _) = store.open_blob(&d).unwrap().unwrap();
        for (at, n) in [
            (0, 20_000),
            (1, 4096),
            (4095, 2),
            (4096, 100),
            (12_345, 7_655),
        ] {
            let got = BlobStore::map_range(&file, at as u64, n).unwrap();
            assert_eq!(&got[..], &data[at..at + n], "window {at}+{n}");
        }
        assert!(BlobStore::map_range(&file, 7, 0).unwrap().is_empty());
    }

    #[test]
    fn sha512_commit_rehashes() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.create_upload("u1").unwrap();
        w.write(b"abc").unwrap();
        let d = Digest::of(Algorithm::Sha512, b"abc");
        store.commit(w, &d).unwrap();
        assert!(store.path(&d).to_string_lossy().contains("sha512"));
    }
}
