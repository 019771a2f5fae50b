//! Progress of long client work (`gen`, `send`, `apply`'s backfills): a bar on a terminal,
//! plain lines (at most one a second, and the last) when stderr is not one.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// One progress display.
pub struct Progress {
    bar: Option<ProgressBar>,
    what: String,
    total: u64,
    pos: u64,
    last_line: Option<Instant>,
}

impl Progress {
    /// Progress over `total` units of `what` (e.g. "events").
    pub fn new(total: u64, what: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:<16} [{bar:30}] {percent:>3}%  {pos}/{len} {msg} ({per_sec}, {eta} left)",
                )
                .expect("valid template")
                .progress_chars("#> "),
            );
            bar.set_message(what.to_string());
            bar
        });
        Self {
            bar,
            what: what.to_string(),
            total,
            pos: 0,
            last_line: None,
        }
    }

    /// Name shown before the bar.
    pub fn prefix(&self, p: &str) {
        if let Some(b) = &self.bar {
            b.set_prefix(p.to_string());
        }
    }

    /// Move to `pos` of the total.
    pub fn set(&mut self, pos: u64) {
        self.pos = pos;
        match &self.bar {
            Some(b) => b.set_position(pos),
            None => {
                let due = self
                    .last_line
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if due || pos >= self.total {
                    eprintln!("{pos}/{} {}", self.total, self.what);
                    self.last_line = Some(Instant::now());
                }
            }
        }
    }

    /// Change the total (a backfill learns its size as it goes).
    pub fn set_total(&mut self, total: u64) {
        self.total = total;
        if let Some(b) = &self.bar {
            b.set_length(total);
        }
    }

    /// Add `n` to the position.
    pub fn inc(&mut self, n: u64) {
        self.set(self.pos + n);
    }

    /// Done: leave the bar (or a final line) on screen.
    pub fn finish(&mut self) {
        match &self.bar {
            Some(b) => b.finish(),
            None => {
                if self.last_line.is_none() || self.pos < self.total {
                    eprintln!("{}/{} {}", self.pos, self.total, self.what);
                }
            }
        }
    }
}
