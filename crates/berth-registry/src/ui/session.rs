//! Web sessions: a random 256-bit id in the `berth_session` cookie, and on the
//! server a map from it to the account and the session's CSRF token.
//!
//! Kept in memory, not in `auth.db`: a session costs nothing to create or check, a
//! restart signs everyone out (acceptable for pages; clients use tokens), and a
//! stolen database holds no live session. Bounded: at most [`MAX_SESSIONS`]; past
//! that the expired ones go, then the longest idle; at most [`MAX_PER_ACCOUNT`] of one
//! account, so that one account signing in again and again cannot sign everyone else
//! out. A session idle for [`IDLE`] ends, and any after [`MAX_AGE`].
//!
//! A session holds its account's [`stamp`] from when it began: a password change, or
//! the account deleted (and perhaps made again under the same name), ends it at the
//! next request, on every replica (the stamp is read from the shared directory).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A session unused this long has ended.
pub(crate) const IDLE: Duration = Duration::from_secs(12 * 3600);
/// The longest a session lasts, however busy.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most sessions kept at once, and of one account.
pub(crate) const MAX_SESSIONS: usize = 10_000;
pub(crate) const MAX_PER_ACCOUNT: usize = 64;

/// What binds a session to the account it began with: a digest of the account's
/// password hash (salted, so an account made again under the name has another), or
/// `None` for a name that cannot sign in.
pub(crate) fn stamp(dir: &berth_auth::Directory, user: &str) -> Option<String> {
    let account = dir
        .account(user)
        .filter(|a| a.kind != berth_auth::AccountKind::Organization)?;
    account.password_hash.as_deref().map(stamp_of)
}

/// The stamp of a password hash.
pub(crate) fn stamp_of(hash: &str) -> String {
    berth_image::Digest::sha256_of(hash.as_bytes()).hex()[..32].to_string()
}

/// The stamp of `user` read from the database itself, past the directory's snapshot:
/// a sign-in that replaced an imported bcrypt hash may not be in the snapshot yet.
pub(crate) fn fresh_stamp(
    store: &berth_auth::AuthStore,
    user: &str,
) -> Result<Option<String>, berth_auth::StoreError> {
    Ok(store.password_hash(user)?.as_deref().map(stamp_of))
}

/// A random 256-bit value as 64 hex digits: session ids and CSRF tokens.
pub(crate) fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` has the shape [`token`] gives (checked before any lookup).
pub(crate) fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One signed-in visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub user: String,
    /// The account's [`stamp`] when the session began.
    pub stamp: String,
    /// Every POST form of this session carries it.
    pub csrf: String,
}

struct Entry {
    session: Session,
    started: Instant,
    seen: Instant,
}

impl Entry {
    fn ended(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.seen) >= IDLE
            || now.saturating_duration_since(self.started) >= MAX_AGE
    }
}

#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    /// Starts a session for `user` (whose [`stamp`] is `stamp`): its id (for the
    /// cookie) and the session.
    pub(crate) fn create(&self, user: &str, stamp: &str) -> (String, Session) {
        self.create_at(user, stamp, Instant::now())
    }

    fn create_at(&self, user: &str, stamp: &str, now: Instant) -> (String, Session) {
        let id = token();
        let session = Session {
            user: user.to_string(),
            stamp: stamp.to_string(),
            csrf: token(),
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let longest_idle = |map: &HashMap<String, Entry>, of: Option<&str>| {
            map.iter()
                .filter(|(_, e)| of.is_none_or(|u| e.session.user == u))
                .min_by_key(|(_, e)| e.seen)
                .map(|(k, _)| k.clone())
        };
        if map.values().filter(|e| e.session.user == user).count() >= MAX_PER_ACCOUNT {
            if let Some(k) = longest_idle(&map, Some(user)) {
                map.remove(&k);
            }
        }
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, e| !e.ended(now));
        }
        if map.len() >= MAX_SESSIONS {
            if let Some(k) = longest_idle(&map, None) {
                map.remove(&k);
            }
        }
        map.insert(
            id.clone(),
            Entry {
                session: session.clone(),
                started: now,
                seen: now,
            },
        );
        (id, session)
    }

    /// The session of cookie value `id`, when it is live; using it keeps it alive.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        self.get_at(id, Instant::now())
    }

    fn get_at(&self, id: &str, now: Instant) -> Option<Session> {
        if !is_token(id) {
            return None;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.get_mut(id)?;
        if entry.ended(now) {
            map.remove(id);
            return None;
        }
        entry.seen = now;
        Some(entry.session.clone())
    }

    /// Ends a session (sign-out).
    pub(crate) fn end(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_random_bits() {
        let (a, b) = (token(), token());
        assert!(is_token(&a) && is_token(&b));
        assert_ne!(a, b);
        assert!(!is_token("abc") && !is_token(&"g".repeat(64)));
    }

    #[test]
    fn sessions_live_while_used_and_end_after_idle_time_or_sign_out() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let (id, session) = s.create_at("alice", "st", t0);
        assert_eq!(session.user, "alice");
        assert_ne!(session.csrf, id);
        let later = t0 + IDLE - Duration::from_secs(1);
        assert_eq!(s.get_at(&id, later), Some(session.clone()));
        // Used at `later`: alive until `later + IDLE`.
        assert_eq!(
            s.get_at(&id, later + IDLE - Duration::from_secs(1)),
            Some(session)
        );
        assert_eq!(s.get_at(&id, later + IDLE * 2), None);
        assert_eq!(s.len(), 0, "an expired session is removed");
        let (id, _) = s.create("bob", "st");
        s.end(&id);
        assert_eq!(s.get(&id), None);
        assert_eq!(s.get("not a token"), None);
    }

    #[test]
    fn the_count_is_bounded_and_the_longest_idle_goes_first() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let (first, _) = s.create_at("u0", "st", t0);
        for i in 1..MAX_SESSIONS {
            s.create_at(&format!("u{i}"), "st", t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        let late = t0 + Duration::from_secs(60);
        let (newest, _) = s.create_at("late", "st", late);
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.get_at(&newest, late).is_some());
        assert!(
            s.get_at(&first, late).is_none(),
            "the longest idle was dropped"
        );
    }

    #[test]
    fn one_account_holds_a_bounded_share_and_a_session_a_bounded_age() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let (alice, _) = s.create_at("alice", "st", t0);
        let (first, _) = s.create_at("mallory", "st", t0);
        for i in 1..=MAX_PER_ACCOUNT {
            s.create_at("mallory", "st", t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(s.len(), MAX_PER_ACCOUNT + 1);
        assert!(s.get_at(&first, t0).is_none(), "mallory's oldest went");
        // Used every hour, a session still ends at its maximum age.
        let mut t = t0;
        while t < t0 + MAX_AGE - Duration::from_secs(3600) {
            t += Duration::from_secs(3600);
            assert!(s.get_at(&alice, t).is_some());
        }
        assert!(s.get_at(&alice, t0 + MAX_AGE).is_none());
    }
}
