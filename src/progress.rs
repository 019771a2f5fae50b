//! Progress of long client work (`gen`, `send`, `apply`'s backfills, `bench`): a bar on a
//! terminal, plain lines (at most one a second, and the last) when stderr is not one.

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
    /// Positions are milliseconds of a fixed duration ([`Progress::timed`]).
    timed: bool,
    msg: String,
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
            timed: false,
            msg: String::new(),
        }
    }

    /// Progress through a fixed `duration` (positions in milliseconds, see [`Progress::set`]),
    /// with a message that says how it goes ([`Progress::message`]).
    pub fn timed(duration: Duration, what: &str) -> Self {
        let total = duration.as_millis() as u64;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{prefix:<16} [{bar:30}] {percent:>3}%  {msg}")
                    .expect("valid template")
                    .progress_chars("#> "),
            );
            bar
        });
        Self {
            bar,
            what: what.to_string(),
            total,
            pos: 0,
            last_line: None,
            timed: true,
            msg: String::new(),
        }
    }

    /// The text shown after the bar (and in each plain line).
    pub fn message(&mut self, msg: String) {
        self.msg = msg;
        if let Some(b) = &self.bar {
            b.set_message(self.timed_text());
        }
    }

    /// A timed progress's time so far, of the whole, and the message.
    fn timed_text(&self) -> String {
        format!(
            "{:.1} of {} s  {}",
            self.pos as f64 / 1000.0,
            self.total / 1000,
            self.msg
        )
    }

    fn line(&self) {
        if self.timed {
            eprintln!("{} {}", self.what, self.timed_text());
        } else {
            eprintln!("{}/{} {}", self.pos, self.total, self.what);
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
            Some(b) => {
                b.set_position(pos);
                if self.timed {
                    b.set_message(self.timed_text());
                }
            }
            None => {
                let due = self
                    .last_line
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if due || pos >= self.total {
                    self.line();
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
                    self.line();
                }
            }
        }
    }
}
