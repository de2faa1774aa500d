//! Slowing down password guessing.
//!
//! Failed logins are counted per account and per source address over a sliding
//! window; past a threshold the account (or the address) is locked out for a while,
//! doubling with each lockout in a row up to a ceiling, and a locked login is refused
//! before its password is checked (no argon2 run, no answer to learn from). An
//! account's threshold is higher than an address's: one guesser from one address locks
//! only itself out, and a user is locked out of their own account only by a guessing
//! campaign from many addresses. Token requests are also rate-limited per address
//! (a token bucket), since each may carry a password.
//!
//! Counting is in memory, per process: replicas count separately (each still bounds
//! what one guesser gets per second). The lockouts it starts are also kept in the
//! directory's database by the caller (`AuthStore::share_lockouts`), so that they
//! hold on every replica and across a restart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The thresholds. `Default` is what berth serve uses.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Failures from one address within `window` that lock the address out.
    pub failures_per_source: u32,
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
    Account { name: String, for_: Duration },
    Source { address: String, for_: Duration },
}

/// Most keys tracked at once; beyond it the quiet ones are forgotten first, so that a
/// flood of made-up names cannot grow memory without bound.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Default)]
struct Counter {
    /// Failures inside the window, oldest first, with the account each named (an
    /// address's; an account's own name none).
    failures: Vec<(Instant, String)>,
    locked_until: Option<Instant>,
    /// Lockouts in a row (resets when a window passes without one).
    strikes: u32,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<String, Counter>,
    sources: HashMap<String, Counter>,
    buckets: HashMap<String, Bucket>,
}

/// The login and token-request limits of one running registry.
#[derive(Debug, Default)]
pub struct Limits {
    config: LimitsConfig,
    state: Mutex<State>,
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Limits {
        Limits {
            config,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(wait)` when `account` or `source` is locked out at `now`.
    pub fn check_login(&self, account: &str, source: &str, now: Instant) -> Result<(), Duration> {
        let st = self.state();
        let wait = |c: Option<&Counter>| {
            c.and_then(|c| c.locked_until)
                .and_then(|t| t.checked_duration_since(now))
                .filter(|d| !d.is_zero())
        };
        match wait(st.sources.get(source)).max(wait(st.accounts.get(account))) {
            Some(d) => Err(d),
            None => Ok(()),
        }
    }

    /// Counts a failed login; the lockouts it starts, if any.
    pub fn record_failure(&self, account: &str, source: &str, now: Instant) -> Vec<Lockout> {
        let c = &self.config;
        let mut st = self.state();
        let mut out = Vec::new();
        if let Some(d) = bump(
            &mut st.sources,
            source,
            account,
            now,
            c.failures_per_source,
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
                account,
                "",
                now,
                c.failures_per_account,
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

    /// A successful login clears the address's failures for that account (a user who
    /// mistyped is not held to them), but not those for other accounts: a guesser
    /// holding one account of their own would otherwise reset the count with a login
    /// after every few guesses. The account's failures stay too: a guesser elsewhere
    /// still counts.
    pub fn record_success(&self, account: &str, source: &str) {
        let mut st = self.state();
        if let Some(c) = st.sources.get_mut(source) {
            c.failures.retain(|(_, a)| a != account);
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

/// Adds a failure for `key`; the lockout it starts when it reaches `threshold`.
fn bump(
    map: &mut HashMap<String, Counter>,
    key: &str,
    account: &str,
    now: Instant,
    threshold: u32,
    c: &LimitsConfig,
) -> Option<Duration> {
    if map.len() >= MAX_TRACKED && !map.contains_key(key) {
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
    let counter = map.entry(key.to_string()).or_default();
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
    counter.failures.push((now, account.to_string()));
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
            failures_per_account: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(10),
            max_lockout: Duration::from_secs(25),
            token_rate: 2.0,
            token_burst: 4.0,
        })
    }

    #[test]
    fn an_address_is_locked_out_after_its_failures_then_longer_each_time() {
        let l = limits();
        let t0 = Instant::now();
        assert!(l.record_failure("alice", "a", t0).is_empty());
        assert!(l.record_failure("alice", "a", t0).is_empty());
        assert_eq!(
            l.record_failure("alice", "a", t0),
            [Lockout::Source {
                address: "a".into(),
                for_: Duration::from_secs(10)
            }]
        );
        assert_eq!(
            l.check_login("alice", "a", t0),
            Err(Duration::from_secs(10))
        );
        // Another address may still try the same account.
        assert_eq!(l.check_login("alice", "b", t0), Ok(()));
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(l.check_login("alice", "a", t1), Ok(()));
        for _ in 0..2 {
            assert!(l.record_failure("bob", "a", t1).is_empty());
        }
        // Second lockout in a row: twice as long; the third hits the ceiling.
        assert_eq!(
            l.record_failure("bob", "a", t1),
            [Lockout::Source {
                address: "a".into(),
                for_: Duration::from_secs(20)
            }]
        );
        let t2 = t1 + Duration::from_secs(21);
        for _ in 0..2 {
            l.record_failure("carol", "a", t2);
        }
        assert_eq!(
            l.record_failure("carol", "a", t2),
            [Lockout::Source {
                address: "a".into(),
                for_: Duration::from_secs(25)
            }]
        );
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
    fn failures_age_out_of_the_window_and_success_clears_an_address() {
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
        // Guesses at bob, and a login as the guesser's own account between them.
        l.record_failure("bob", "a", t);
        l.record_failure("carol", "a", t);
        l.record_success("mallory", "a");
        assert_eq!(
            l.record_failure("bob", "a", t),
            [Lockout::Source {
                address: "a".into(),
                for_: Duration::from_secs(10)
            }]
        );
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
