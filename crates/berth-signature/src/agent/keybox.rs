//! GnuPG's public keyring, read without gpg: `pubring.kbx` (the keybox GnuPG 2.1+
//! writes) or, when there is none, a GnuPG 1 `pubring.gpg` (keyblocks one after the
//! other). Only the keyblocks holding a wanted key are returned, as OpenPGP bytes.
//!
//! A keybox is a series of blobs, each `u32 length` (big-endian, counting itself),
//! `u8 type`, `u8 version`, ...; the first is the header (type 1, magic `KBXf` at
//! offset 8). An OpenPGP blob (type 2) holds, at fixed offsets, the keyblock's
//! offset and length within the blob (u32 at 8 and 12), the number of keys (u16 at 16)
//! and the size of each key's entry (u16 at 18); in version 1 blobs each entry starts
//! with the key's 20-byte fingerprint, so a key is found without parsing any keyblock.
//! Every length and offset is checked against what was read: a damaged or hostile file
//! is an error, never a panic or a large allocation.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::Path;

use pgp::types::KeyDetails;

use super::KeySpec;
use crate::openpgp::Keyring;

/// No OpenPGP keyblock is anywhere near this large; it bounds each read.
const MAX_BLOB: usize = 16 << 20;
/// A GnuPG 1 keyring is parsed whole; larger ones are left to gpg.
const MAX_LEGACY_RING: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum KeyboxError {
    #[error("no public keyring (pubring.kbx or pubring.gpg) in {0}")]
    Missing(String),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: damaged keybox: {reason}")]
    Damaged { path: String, reason: String },
    #[error("{0}: the keyring is larger than this reader takes")]
    TooLarge(String),
}

/// The keyblocks in the keyring of `home` that hold a key matching `want`.
pub fn find(home: &Path, want: &KeySpec) -> Result<Vec<Vec<u8>>, KeyboxError> {
    let kbx = home.join("pubring.kbx");
    match File::open(&kbx) {
        Ok(f) => return scan(BufReader::new(f), want, &kbx.display().to_string()),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(source) => {
            return Err(KeyboxError::Io {
                path: kbx.display().to_string(),
                source,
            })
        }
    }
    let legacy = home.join("pubring.gpg");
    let path = legacy.display().to_string();
    let io = |source| KeyboxError::Io {
        path: path.clone(),
        source,
    };
    let f = match File::open(&legacy) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(KeyboxError::Missing(home.display().to_string()))
        }
        Err(e) => return Err(io(e)),
    };
    let mut bytes = Vec::new();
    f.take(MAX_LEGACY_RING + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_LEGACY_RING {
        return Err(KeyboxError::TooLarge(path));
    }
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    // Whole-ring parse: one keyblock per certificate is not recoverable from rpgp, so
    // the matching certificate is re-serialized (its packets, trust packets dropped).
    let ring = Keyring::from_bytes(&bytes).map_err(|e| KeyboxError::Damaged {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for cert in ring.certs() {
        if cert_holds(cert, want) {
            let mut block = Vec::new();
            pgp::ser::Serialize::to_writer(cert, &mut block).map_err(|e| KeyboxError::Damaged {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            out.push(block);
        }
    }
    Ok(out)
}

/// Reads a keybox blob by blob (bounded memory) and returns the matching keyblocks.
pub fn scan(mut r: impl Read, want: &KeySpec, path: &str) -> Result<Vec<Vec<u8>>, KeyboxError> {
    let damaged = |reason: &str| KeyboxError::Damaged {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let mut out = Vec::new();
    let mut first = true;
    loop {
        let mut len = [0u8; 4];
        match read_full(&mut r, &mut len) {
            Ok(0) if !first => return Ok(out),
            Ok(0) => return Err(damaged("empty file")),
            Ok(4) => {}
            Ok(_) => return Err(damaged("truncated blob length")),
            Err(source) => {
                return Err(KeyboxError::Io {
                    path: path.to_string(),
                    source,
                })
            }
        }
        let len = u32::from_be_bytes(len) as usize;
        if len < 6 {
            return Err(damaged("blob shorter than its header"));
        }
        if len > MAX_BLOB {
            return Err(damaged("blob length beyond any keyblock"));
        }
        let mut blob = vec![0u8; len];
        blob[..4].copy_from_slice(&(len as u32).to_be_bytes());
        match read_full(&mut r, &mut blob[4..]) {
            Ok(n) if n == len - 4 => {}
            Ok(_) => return Err(damaged("truncated blob")),
            Err(source) => {
                return Err(KeyboxError::Io {
                    path: path.to_string(),
                    source,
                })
            }
        }
        let typ = blob[4];
        if first {
            if typ != 1 || blob.get(8..12) != Some(b"KBXf") {
                return Err(damaged("no keybox header"));
            }
            first = false;
            continue;
        }
        if typ != 2 {
            continue; // empty (0), X.509 (3), or a type this reader does not know
        }
        if let Some(block) = openpgp_blob(&blob, want).map_err(&damaged)? {
            out.push(block);
        }
    }
}

/// The keyblock of an OpenPGP blob when it holds a key matching `want`.
fn openpgp_blob(blob: &[u8], want: &KeySpec) -> Result<Option<Vec<u8>>, &'static str> {
    let u32_at = |o: usize| {
        blob.get(o..o + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or("blob header truncated")
    };
    let u16_at = |o: usize| {
        blob.get(o..o + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .ok_or("blob header truncated")
    };
    let (off, len) = (u32_at(8)?, u32_at(12)?);
    let keyblock = off
        .checked_add(len)
        .and_then(|end| blob.get(off..end))
        .ok_or("keyblock outside its blob")?;
    let (nkeys, info) = (u16_at(16)?, u16_at(18)?);
    if blob[5] == 1 && info >= 20 {
        // Version 1: each key entry starts with its 20-byte fingerprint.
        let mut hit = false;
        for i in 0..nkeys {
            let at = 20 + i * info;
            let fpr = blob.get(at..at + 20).ok_or("key table outside its blob")?;
            hit |= want.matches(fpr);
        }
        return Ok(hit.then(|| keyblock.to_vec()));
    }
    // Other versions: parse the keyblock itself.
    let Ok(ring) = Keyring::from_bytes(keyblock) else {
        return Ok(None); // gpg skips keyblocks it cannot parse, too
    };
    Ok(ring
        .certs()
        .iter()
        .any(|c| cert_holds(c, want))
        .then(|| keyblock.to_vec()))
}

fn cert_holds(cert: &pgp::composed::SignedPublicKey, want: &KeySpec) -> bool {
    want.matches(cert.primary_key.fingerprint().as_bytes())
        || cert
            .public_subkeys
            .iter()
            .any(|s| want.matches(s.key.fingerprint().as_bytes()))
}

/// Like `read_exact`, but says how much was read at end of file.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        let mut h = vec![0, 0, 0, 32, 1, 1, 0, 0];
        h.extend(b"KBXf");
        h.resize(32, 0);
        h
    }

    fn spec() -> KeySpec {
        KeySpec::parse("0123456789ABCDEF0123456789ABCDEF01234567").unwrap()
    }

    /// A version 1 OpenPGP blob naming `fpr`, with `keyblock` and the given offsets.
    fn blob(fpr: [u8; 20], keyblock: &[u8], off: Option<u32>, len: Option<u32>) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0, 2, 1, 0, 0];
        let start = 20 + 28 + 4; // header, one key entry, padding
        b.extend(off.unwrap_or(start).to_be_bytes());
        b.extend(len.unwrap_or(keyblock.len() as u32).to_be_bytes());
        b.extend(1u16.to_be_bytes());
        b.extend(28u16.to_be_bytes());
        b.extend(fpr);
        b.extend([0u8; 8]);
        b.extend([0u8; 4]);
        b.extend(keyblock);
        let n = b.len() as u32;
        b[..4].copy_from_slice(&n.to_be_bytes());
        b
    }

    const FPR: [u8; 20] = [
        0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD,
        0xEF, 0x01, 0x23, 0x45, 0x67,
    ];

    #[test]
    fn finds_by_fingerprint_in_the_key_table() {
        let mut file = header();
        file.extend(blob([9; 20], b"other", None, None));
        file.extend(blob(FPR, b"mine", None, None));
        let found = scan(&file[..], &spec(), "t").unwrap();
        assert_eq!(found, vec![b"mine".to_vec()]);
        // A long key ID matches the fingerprint's tail.
        let by_id = KeySpec::parse("89ABCDEF01234567").unwrap();
        assert_eq!(scan(&file[..], &by_id, "t").unwrap().len(), 1);
        assert!(scan(&header()[..], &spec(), "t").unwrap().is_empty());
    }

    #[test]
    fn hostile_files_are_errors() {
        let mut cases: Vec<Vec<u8>> = vec![Vec::new(), b"KBX".to_vec(), vec![0xFF; 64]];
        // Giant blob length.
        let mut giant = header();
        giant.extend([0xFF, 0xFF, 0xFF, 0xF0, 2, 1]);
        cases.push(giant);
        // Truncated blob.
        let mut cut = header();
        cut.extend(&blob(FPR, b"mine", None, None)[..30]);
        cases.push(cut);
        // Keyblock offset and length pointing outside the blob, and overflowing.
        for (off, len) in [(4000, 4), (52, 4000), (u32::MAX, 2), (52, u32::MAX)] {
            let mut f = header();
            f.extend(blob(FPR, b"mine", Some(off), Some(len)));
            cases.push(f);
        }
        // A key table larger than the blob.
        let mut table = header();
        let mut b = blob(FPR, b"mine", None, None);
        b[16..18].copy_from_slice(&60000u16.to_be_bytes());
        table.extend(b);
        cases.push(table);
        // Header blob without magic.
        let mut nomagic = header();
        nomagic[8..12].copy_from_slice(b"XXXX");
        cases.push(nomagic);
        for (i, c) in cases.iter().enumerate() {
            assert!(scan(&c[..], &spec(), "t").is_err(), "case {i} accepted");
        }
    }
}
