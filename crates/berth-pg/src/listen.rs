//! One connection that `LISTEN`s on a channel, on a thread of its own: how a replica
//! hears what the others changed in the database they share. A notification is
//! delivered only to the connections listening when its transaction commits, so a
//! listener that reconnects says so ([`Heard::Listening`] again), and whoever keeps
//! state from the notifications brings it up to date by other means then.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::Target;

/// What the listener tells its caller.
pub enum Heard<'a> {
    /// Listening, the first time or after the connection broke: what was notified in
    /// between is lost.
    Listening,
    /// A notification's payload.
    Message(&'a str),
    /// The connection could not be made, or broke; tried again with back-off.
    Deaf(&'a postgres::Error),
}

/// The running listener; dropping it stops the thread (within a quarter second).
pub struct Listener {
    stop: Arc<AtomicBool>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// How long the thread waits for a notification before it looks at `stop`.
const POLL: Duration = Duration::from_millis(250);

/// Starts a thread named `thread` that listens on `channel` (an identifier, written
/// into the `LISTEN` statement) and calls `on` with what it hears.
pub fn listen(
    target: Target,
    channel: &'static str,
    thread: &str,
    mut on: impl FnMut(Heard<'_>) + Send + 'static,
) -> std::io::Result<Listener> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            let mut backoff = Duration::from_millis(100);
            while !stopped.load(Ordering::Acquire) {
                let connected = target.connect().and_then(|mut c| {
                    c.batch_execute(&format!("LISTEN {channel}"))?;
                    Ok(c)
                });
                let mut client = match connected {
                    Ok(c) => c,
                    Err(e) => {
                        on(Heard::Deaf(&e));
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                };
                backoff = Duration::from_millis(100);
                on(Heard::Listening);
                let broke = 'connection: loop {
                    if stopped.load(Ordering::Acquire) {
                        return;
                    }
                    let mut notifications = client.notifications();
                    let mut it = notifications.timeout_iter(POLL);
                    loop {
                        match postgres::fallible_iterator::FallibleIterator::next(&mut it) {
                            Ok(Some(n)) => on(Heard::Message(n.payload())),
                            Ok(None) => break,
                            Err(e) => break 'connection e,
                        }
                    }
                    drop(it);
                    drop(notifications);
                    if client.is_closed() {
                        // Reading the closed connection gives the reason.
                        match client.batch_execute("") {
                            Err(e) => break 'connection e,
                            Ok(()) => continue,
                        }
                    }
                };
                on(Heard::Deaf(&broke));
            }
        })?;
    Ok(Listener { stop })
}
