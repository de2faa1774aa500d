//! Progress on stderr: a bar per blob (indicatif) when stderr is a terminal, plain
//! lines otherwise (one when a blob starts, then one every few seconds while a large
//! one is going, and one when it is done), nothing with `--quiet`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_image::Digest;
use berth_transport::copy::{Progress, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// How often a plain line reports a blob still going.
const EVERY: Duration = Duration::from_secs(5);

/// The reporter for this terminal.
pub fn reporter(quiet: bool) -> Progress {
    if quiet {
        Arc::new(Quiet)
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bars::default())
    } else {
        Arc::new(Lines::default())
    }
}

struct Quiet;

impl Reporter for Quiet {
    fn line(&self, _: &str) {}
}

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

/// A blob going: its size, what it is (`blob`, `config`), when it started, when a line
/// last said so.
struct Going {
    size: u64,
    what: String,
    started: Instant,
    last: Instant,
}

#[derive(Default)]
struct Lines {
    going: Mutex<HashMap<Digest, Going>>,
}

impl Reporter for Lines {
    fn line(&self, text: &str) {
        eprintln!("{text}");
    }

    fn blob_start(&self, d: &Digest, size: u64, what: &str) {
        if let Ok(mut g) = self.going.lock() {
            let now = Instant::now();
            let what = what.to_string();
            g.insert(
                d.clone(),
                Going {
                    size,
                    what,
                    started: now,
                    last: now,
                },
            );
        }
    }

    fn blob_progress(&self, d: &Digest, sent: u64) {
        let Ok(mut g) = self.going.lock() else { return };
        if let Some(b) = g.get_mut(d) {
            if b.last.elapsed() >= EVERY {
                b.last = Instant::now();
                eprintln!(
                    "Copying {} {}: {} / {} MiB",
                    b.what,
                    short(d),
                    sent >> 20,
                    b.size >> 20
                );
            }
        }
    }

    fn blob_end(&self, d: &Digest) {
        let Ok(mut g) = self.going.lock() else { return };
        if let Some(b) = g.remove(d) {
            let secs = b.started.elapsed().as_secs_f64();
            eprintln!(
                "Copied {} {}: {} MiB in {secs:.1} s",
                b.what,
                short(d),
                b.size >> 20
            );
        }
    }
}

#[derive(Default)]
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Reporter for Bars {
    fn line(&self, text: &str) {
        // Above the bars, without tearing them.
        let _ = self.multi.println(text);
    }

    fn blob_start(&self, d: &Digest, size: u64, what: &str) {
        let bar = self.multi.add(ProgressBar::new(size));
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{what} {}", short(d)));
        if let Ok(mut b) = self.bars.lock() {
            b.insert(d.clone(), bar);
        }
    }

    fn blob_progress(&self, d: &Digest, sent: u64) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(d).cloned()) {
            bar.set_position(sent);
        }
    }

    fn blob_end(&self, d: &Digest) {
        if let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(d)) {
            bar.finish();
        }
    }
}
