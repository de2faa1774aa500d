//! Slowing down password guessing.
//!
//! Failed logins are counted over a sliding window three ways: per address and
//! account (one address guessing one account's password), per address over distinct
//! accounts (one address trying a few passwords on many accounts), and per account
//! from anywhere (a campaign from many addresses). Past a threshold that key is locked
//! out for a while, doubling with each lockout in a row up to a ceiling, and a locked
//! login is refused before its password is checked (no argon2 run, no answer to learn
//! from). Behind a proxy every client has one address: a client failing on its own
//! account (a robot with an expired secret) then locks out only that account from
//! there, not everyone, and a success clears only its own account's failures, so a
//! guesser holding an account cannot reset the count by signing in between guesses.
//! Token requests are also rate-limited per address (a token bucket), since each may
//! carry a password.
//!
//! Accounts are kept as a keyed hash of the name typed (any length, any bytes), so a
//! flood of made-up names costs a few bytes each. Counting is in memory, per process:
//! replicas count separately (each still bounds what one guesser gets per second). The
//! lockouts it starts are also kept in the directory's database by the caller
//! (`AuthStore::share_lockouts`), so that they hold on every replica and across a
//! restart.

use std::collections::HashMap;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// The thresholds. `Default` is what berth serve uses.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Failures from one address for one account within `window` that lock that
    /// account out from that address.
    pub failures_per_source: u32,
    /// Distinct accounts one address failed to log in as within `window` that lock
    /// the address out.
    pub accounts_per_source: u32,
    /// Failures for one account within `window`, from anywhere, that lock it out.
    pub failures_per_account: u32,
    pub window: Duration,
    /// The first lockout; each one that follows within `window` of its end doubles.
    pub lockout: Duration,
    pub max_lockout: Duration,
    /// Token requests per second one address may make on average, and in a burst.
    pub token_rate: f64,
    pub token_burst: f64,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            failures_per_source: 10,
            accounts_per_source: 10,
            failures_per_account: 50,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(15 * 60),
            token_rate: 100.0,
            token_burst: 500.0,
        }
    }
}

/// Who was locked out by a failure, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lockout {
    Account {
        name: String,
        for_: Duration,
    },
    Source {
        address: String,
        for_: Duration,
    },
    /// One account from one address ([`Lockout::pair_name`] names it for sharing).
    Pair {
        name: String,
        address: String,
        for_: Duration,
    },
}

impl Lockout {
    /// How a lockout of `account` from `address` is named where replicas share them:
    /// the address and a digest of the name (bounded, whatever was typed).
    pub fn pair_name(account: &str, address: &str) -> String {
        let d = Sha256::digest(account.as_bytes());
        let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{address} {hex}")
    }
}

/// Most keys tracked at once; beyond it the quiet ones are forgotten first, so that a
/// flood of made-up names cannot grow memory without bound.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Default)]
struct Counter {
    /// Failures inside the window, oldest first, with the account each was for (an
    /// address's counter counts distinct accounts; the others count failures).
    failures: Vec<(Instant, u64)>,
    locked_until: Option<Instant>,
    /// Lockouts in a row (resets when a window passes without one).
    strikes: u32,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What a counter counts toward its threshold.
#[derive(Clone, Copy)]
enum Count {
    Failures,
    DistinctAccounts,
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<u64, Counter>,
    sources: HashMap<String, Counter>,
    pairs: HashMap<(String, u64), Counter>,
    buckets: HashMap<String, Bucket>,
}

/// The login and token-request limits of one running registry.
#[derive(Debug, Default)]
pub struct Limits {
    config: LimitsConfig,
    state: Mutex<State>,
    /// Keys the account hashes: names typed cannot be chosen to collide.
    keys: std::collections::hash_map::RandomState,
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Limits {
        Limits {
            config,
            state: Mutex::new(State::default()),
            keys: Default::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn account_key(&self, account: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.keys, account)
    }

    /// `Err(wait)` when `account`, `source`, or `account` from `source` is locked out
    /// at `now`.
    pub fn check_login(&self, account: &str, source: &str, now: Instant) -> Result<(), Duration> {
        let key = self.account_key(account);
        let st = self.state();
        let wait = |c: Option<&Counter>| {
            c.and_then(|c| c.locked_until)
                .and_then(|t| t.checked_duration_since(now))
                .filter(|d| !d.is_zero())
        };
        let longest = wait(st.sources.get(source))
            .max(wait(st.accounts.get(&key)))
            .max(wait(st.pairs.get(&(source.to_string(), key))));
        match longest {
            Some(d) => Err(d),
            None => Ok(()),
        }
    }

    /// Counts a failed login; the lockouts it starts, if any.
    pub fn record_failure(&self, account: &str, source: &str, now: Instant) -> Vec<Lockout> {
        let c = &self.config;
        let key = self.account_key(account);
        let mut st = self.state();
        let mut out = Vec::new();
        let pair = (source.to_string(), key);
        if let Some(d) = bump(
            &mut st.pairs,
            pair,
            key,
            now,
            c.failures_per_source,
            Count::Failures,
            c,
        ) {
            out.push(Lockout::Pair {
                name: account.to_string(),
                address: source.to_string(),
                for_: d,
            });
        }
        let counted = Count::DistinctAccounts;
        if let Some(d) = bump(
            &mut st.sources,
            source.to_string(),
            key,
            now,
            c.accounts_per_source,
            counted,
            c,
        ) {
            out.push(Lockout::Source {
                address: source.to_string(),
                for_: d,
            });
        }
        if !account.is_empty() {
            if let Some(d) = bump(
                &mut st.accounts,
                key,
                key,
                now,
                c.failures_per_account,
                Count::Failures,
                c,
            ) {
                out.push(Lockout::Account {
                    name: account.to_string(),
                    for_: d,
                });
            }
        }
        out
    }

    /// A successful login clears its own account's failures from its address (a user
    /// who mistyped is not held to them), and no other account's: a guesser holding an
    /// account of their own would otherwise reset the count with a login after every
    /// few guesses. The account's failures from anywhere stay too: a guesser elsewhere
    /// still counts.
    pub fn record_success(&self, account: &str, source: &str) {
        let key = self.account_key(account);
        let mut st = self.state();
        st.pairs.remove(&(source.to_string(), key));
        if let Some(c) = st.sources.get_mut(source) {
            c.failures.retain(|(_, a)| *a != key);
        }
    }

    /// Takes one token request from `source`'s bucket; `Err(wait)` when it is empty.
    pub fn token_request(&self, source: &str, now: Instant) -> Result<(), Duration> {
        let (rate, burst) = (self.config.token_rate, self.config.token_burst);
        let mut st = self.state();
        if st.buckets.len() >= MAX_TRACKED && !st.buckets.contains_key(source) {
            // Full buckets carry no information: forget them.
            st.buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            if st.buckets.len() >= MAX_TRACKED {
                st.buckets.clear();
            }
        }
        let b = st.buckets.entry(source.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

/// Adds a failure (for the account of hash `account`) to `key`'s counter; the lockout
/// it starts when what it counts reaches `threshold`.
fn bump<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Counter>,
    key: K,
    account: u64,
    now: Instant,
    threshold: u32,
    count: Count,
    c: &LimitsConfig,
) -> Option<Duration> {
    if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
        map.retain(|_, v| {
            v.locked_until.is_some_and(|t| t > now)
                || v.failures
                    .last()
                    .is_some_and(|(t, _)| now.saturating_duration_since(*t) < c.window)
        });
        if map.len() >= MAX_TRACKED {
            // Still full of live entries: drop the ones that are not locked.
            map.retain(|_, v| v.locked_until.is_some_and(|t| t > now));
        }
    }
    let counter = map.entry(key).or_default();
    counter
        .failures
        .retain(|(t, _)| now.saturating_duration_since(*t) < c.window);
    if let Some(until) = counter.locked_until {
        if until > now {
            // Already locked (a check raced with the lockout): nothing new.
            return None;
        }
        if now.saturating_duration_since(until) > c.window {
            counter.strikes = 0;
        }
        counter.locked_until = None;
    }
    match count {
        Count::Failures => counter.failures.push((now, account)),
        // An address's failures are kept one per account: what counts is how many.
        Count::DistinctAccounts => {
            counter.failures.retain(|(_, a)| *a != account);
            counter.failures.push((now, account));
        }
    }
    if counter.failures.len() < threshold as usize {
        return None;
    }
    let factor = 2u32.saturating_pow(counter.strikes.min(16));
    let d = c.lockout.saturating_mul(factor).min(c.max_lockout);
    counter.strikes += 1;
    counter.failures.clear();
    counter.locked_until = Some(now + d);
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::new(LimitsConfig {
            failures_per_source: 3,
            accounts_per_source: 3,
            failures_per_account: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(10),
            max_lockout: Duration::from_secs(25),
            token_rate: 2.0,
            token_burst: 4.0,
        })
    }

    fn pair(name: &str, address: &str, secs: u64) -> Lockout {
        Lockout::Pair {
            name: name.into(),
            address: address.into(),
            for_: Duration::from_secs(secs),
        }
    }

    #[test]
    fn one_account_from_one_address_is_locked_out_then_longer_each_time() {
        let l = limits();
        let t0 = Instant::now();
        assert!(l.record_failure("alice", "a", t0).is_empty());
        assert!(l.record_failure("alice", "a", t0).is_empty());
        assert_eq!(l.record_failure("alice", "a", t0), [pair("alice", "a", 10)]);
        assert_eq!(
            l.check_login("alice", "a", t0),
            Err(Duration::from_secs(10))
        );
        // Another address may still try the account, and the address another account
        // (behind a proxy, one client failing does not lock everyone out).
        assert_eq!(l.check_login("alice", "b", t0), Ok(()));
        assert_eq!(l.check_login("bob", "a", t0), Ok(()));
        // Second lockout in a row: twice as long; the third hits the ceiling.
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(l.check_login("alice", "a", t1), Ok(()));
        l.record_failure("alice", "a", t1);
        l.record_failure("alice", "a", t1);
        assert_eq!(l.record_failure("alice", "a", t1), [pair("alice", "a", 20)]);
        let t2 = t1 + Duration::from_secs(21);
        l.record_failure("alice", "a", t2);
        l.record_failure("alice", "a", t2);
        assert_eq!(l.record_failure("alice", "a", t2), [pair("alice", "a", 25)]);
    }

    #[test]
    fn an_address_failing_for_many_accounts_is_locked_out() {
        let l = limits();
        let t = Instant::now();
        // The same account again counts once toward the address's distinct accounts.
        for name in ["alice", "alice", "bob"] {
            assert!(l.record_failure(name, "a", t).is_empty(), "{name}");
        }
        assert_eq!(
            l.record_failure("carol", "a", t),
            [Lockout::Source {
                address: "a".into(),
                for_: Duration::from_secs(10)
            }]
        );
        assert!(l.check_login("dave", "a", t).is_err());
        assert_eq!(l.check_login("dave", "b", t), Ok(()));
    }

    #[test]
    fn an_account_is_locked_out_by_failures_from_many_addresses() {
        let l = limits();
        let t = Instant::now();
        for (i, src) in ["a", "b", "c", "d"].iter().enumerate() {
            assert!(l.record_failure("alice", src, t).is_empty(), "{i}");
        }
        assert_eq!(
            l.record_failure("alice", "e", t),
            [Lockout::Account {
                name: "alice".into(),
                for_: Duration::from_secs(10)
            }]
        );
        assert!(l.check_login("alice", "z", t).is_err());
        assert_eq!(l.check_login("bob", "z", t), Ok(()));
    }

    #[test]
    fn failures_age_out_of_the_window_and_success_clears_its_own() {
        let l = limits();
        let t = Instant::now();
        l.record_failure("alice", "a", t);
        l.record_failure("alice", "a", t);
        // The window has passed: these two no longer count.
        let later = t + Duration::from_secs(61);
        assert!(l.record_failure("alice", "a", later).is_empty());
        assert!(l.record_failure("alice", "a", later).is_empty());
        l.record_success("alice", "a");
        assert!(l.record_failure("alice", "a", later).is_empty());
        assert_eq!(l.check_login("alice", "a", later), Ok(()));
    }

    #[test]
    fn a_login_clears_an_addresss_failures_for_its_account_alone() {
        let l = limits();
        let t = Instant::now();
        // Guesses at bob and carol, and a login as the guesser's own account between.
        l.record_failure("bob", "a", t);
        l.record_failure("carol", "a", t);
        l.record_success("mallory", "a");
        assert_eq!(
            l.record_failure("dave", "a", t),
            [Lockout::Source {
                address: "a".into(),
                for_: Duration::from_secs(10)
            }]
        );
    }

    #[test]
    fn pairs_are_named_for_sharing_by_a_bounded_digest() {
        let long = "x".repeat(12_000);
        let name = Lockout::pair_name(&long, "10.0.0.1");
        assert_eq!(name.len(), "10.0.0.1 ".len() + 16);
        assert_eq!(name, Lockout::pair_name(&long, "10.0.0.1"));
        assert_ne!(name, Lockout::pair_name("y", "10.0.0.1"));
    }

    #[test]
    fn token_requests_are_a_bucket_per_address() {
        let l = limits();
        let t = Instant::now();
        for _ in 0..4 {
            assert_eq!(l.token_request("a", t), Ok(()));
        }
        let wait = l.token_request("a", t).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(l.token_request("b", t), Ok(()));
        assert_eq!(l.token_request("a", t + Duration::from_millis(500)), Ok(()));
    }
}
