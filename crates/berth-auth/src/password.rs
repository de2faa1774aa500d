//! Password hashes and secrets.
//!
//! New passwords are hashed with argon2id (PHC strings). bcrypt hashes (`$2y$`, `$2b$`,
//! `$2a$`) are verified too, so that an Apache htpasswd file from docker-registry can be
//! imported as it is. Verifying an unknown user costs the same as verifying a known
//! one, so that the time of an answer does not say whether the user exists.

use std::sync::OnceLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("hashing the password failed: {0}")]
    Hash(String),
    #[error("the password is empty")]
    Empty,
    #[error("htpasswd line {line}: {why}")]
    Htpasswd { line: usize, why: String },
}

/// Hashes `password` with argon2id and a random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `stored` (argon2 PHC or bcrypt). An unreadable hash
/// matches nothing.
pub fn verify(password: &str, stored: &str) -> bool {
    if is_bcrypt(stored) {
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the time of one verification, for a user that does not exist.
pub fn verify_nothing(password: &str) {
    let _ = verify(password, dummy());
}

/// An argon2id hash of nothing anybody knows, made once.
fn dummy() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash("berth-no-such-user").unwrap_or_default())
}

/// How long a refusal takes at least: the time of one argon2id verification,
/// measured once. A bcrypt hash imported from htpasswd (cost 5 to 12) may verify in
/// a few milliseconds, where argon2id takes tens: without a floor, a quick refusal
/// would tell that the account exists (and came from htpasswd).
pub fn refusal_floor() -> std::time::Duration {
    static FLOOR: OnceLock<std::time::Duration> = OnceLock::new();
    *FLOOR.get_or_init(|| {
        let d = dummy();
        let start = std::time::Instant::now();
        let _ = verify("berth-measuring", d);
        start.elapsed()
    })
}

/// Whether `stored` should be hashed again with today's algorithm once the password
/// is known: bcrypt hashes (from htpasswd) become argon2id.
pub fn needs_rehash(stored: &str) -> bool {
    is_bcrypt(stored)
}

fn is_bcrypt(h: &str) -> bool {
    ["$2y$", "$2b$", "$2a$"].iter().any(|p| h.starts_with(p))
}

/// A new random secret for a robot account or a refresh token: 32 bytes, URL-safe
/// base64 (43 characters).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads an Apache htpasswd file: `user:hash` lines, blank lines and `#` comments
/// ignored. Only bcrypt hashes are accepted (as in docker-registry); MD5, SHA-1 and
/// crypt hashes are refused with the line they are on.
pub fn parse_htpasswd(text: &str) -> Result<Vec<(String, String)>, PasswordError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |why: &str| PasswordError::Htpasswd {
            line: i + 1,
            why: why.to_string(),
        };
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| err("expected USER:HASH"))?;
        if !is_bcrypt(hash) {
            return Err(err(
                "only bcrypt hashes ($2y$, made by htpasswd -B) are supported",
            ));
        }
        out.push((user.to_string(), hash.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip() {
        let h = hash("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("s3cret", &h));
        assert!(!verify("s3cret ", &h));
        assert!(!verify("s3cret", "garbage"));
        assert!(hash("").is_err());
    }

    #[test]
    fn htpasswd_bcrypt() {
        // `htpasswd -nbB testuser testpass`
        let file =
            "# migrated\n\ntestuser:$2y$05$GJiQmYRK9Q3VjcWg2OCIqulW2UER/ljCldo0ZWAkgagCBaC1X03Ma\n";
        let users = parse_htpasswd(file).unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].0, "testuser");
        assert!(verify("testpass", &users[0].1));
        assert!(!verify("wrong", &users[0].1));
        let err = parse_htpasswd("x:{SHA}abc").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        assert!(parse_htpasswd("nocolon").is_err());
    }

    #[test]
    fn secrets_are_random() {
        let a = new_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_secret());
    }
}
