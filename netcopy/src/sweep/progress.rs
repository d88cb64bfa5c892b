//! The sweep's progress: one state, two views. On a terminal, an indicatif bar; on any other
//! stderr (a log file, a pipe), a plain line like cargo's and pip's, with runs done, total,
//! elapsed time and ETA, at most every [`PLAIN_EVERY`]. Both are updated between experiments
//! only, never inside a measured window, so a line comes at least every 10 s as long as each
//! experiment is shorter than 5 s (every preset's are well under 2 s).

use std::{
    cell::Cell,
    io::IsTerminal as _,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The shortest time between two plain lines.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    /// The state of both views (position, length, message, rate); drawn only on a terminal.
    bar: ProgressBar,
    /// When the last plain line was printed; None on a terminal (no plain lines).
    last_line: Option<Cell<Instant>>,
}

/// `1:05`, or `1:02:03` past an hour.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s / 3600 {
        0 => format!("{}:{:02}", s / 60, s % 60),
        h => format!("{h}:{:02}:{:02}", s / 60 % 60, s % 60),
    }
}

/// The plain line: `sweep: 12/164 runs, 0:35 elapsed, eta 7:40 (a3 stream 16KiB x1 rep 2)`.
pub fn plain_line(
    done: u64,
    total: u64,
    elapsed: Duration,
    eta: Option<Duration>,
    what: &str,
) -> String {
    let eta = eta.map_or("unknown".to_owned(), clock);
    let mut line = format!(
        "sweep: {done}/{total} runs, {} elapsed, eta {eta}",
        clock(elapsed)
    );
    if !what.is_empty() {
        line.push_str(&format!(" ({what})"));
    }
    line
}

impl Progress {
    /// Progress over `total` runs (more may be added), drawn as a bar when stderr is a
    /// terminal and as plain lines otherwise.
    pub fn new(total: usize) -> Self {
        Self::to(total, std::io::stderr().is_terminal())
    }

    fn to(total: usize, terminal: bool) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let last_line = if terminal {
            None
        } else {
            bar.set_draw_target(ProgressDrawTarget::hidden());
            Some(Cell::new(Instant::now()))
        };
        let progress = Self { bar, last_line };
        progress.print_line(true);
        progress
    }

    /// The plain line for the current state.
    pub fn line(&self) -> String {
        let done = self.bar.position();
        let eta = (done > 0).then(|| self.bar.eta());
        plain_line(
            done,
            self.bar.length().unwrap_or(done),
            self.bar.elapsed(),
            eta,
            &self.bar.message(),
        )
    }

    /// Prints the plain line when stderr is not a terminal and PLAIN_EVERY has passed (or
    /// `now`).
    fn print_line(&self, now: bool) {
        let Some(last) = &self.last_line else {
            return;
        };
        if now || last.get().elapsed() >= PLAIN_EVERY {
            last.set(Instant::now());
            eprintln!("{}", self.line());
        }
    }

    /// One more run than planned.
    pub fn inc_length(&self, n: u64) {
        self.bar.inc_length(n);
    }

    /// What runs next.
    pub fn set_message(&self, what: String) {
        self.bar.set_message(what);
    }

    /// One run done.
    pub fn inc(&self) {
        self.bar.inc(1);
        self.print_line(false);
    }

    /// Runs `f` (which prints) with the bar out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// The last plain line, then the bar cleared.
    pub fn finish(&self) {
        self.print_line(true);
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_line_states_done_total_elapsed_and_eta() {
        assert_eq!(
            plain_line(
                12,
                164,
                Duration::from_secs(35),
                Some(Duration::from_secs(460)),
                "a3 stream 16KiB x1 rep 2"
            ),
            "sweep: 12/164 runs, 0:35 elapsed, eta 7:40 (a3 stream 16KiB x1 rep 2)"
        );
        assert_eq!(
            plain_line(0, 3, Duration::from_secs(3725), None, ""),
            "sweep: 0/3 runs, 1:02:05 elapsed, eta unknown"
        );
    }

    /// The plain view reads the bar's own state: one code path for both.
    #[test]
    fn the_plain_view_follows_the_bar() {
        let p = Progress::to(4, false);
        p.set_message("a1 stream 1KiB x1 rep 1".to_owned());
        p.inc();
        p.inc_length(1);
        let line = p.line();
        assert!(
            line.starts_with("sweep: 1/5 runs, 0:00 elapsed, eta "),
            "{line}"
        );
        assert!(line.ends_with(" (a1 stream 1KiB x1 rep 1)"), "{line}");
    }
}
