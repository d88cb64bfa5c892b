//! The sweep's progress: one state, two views. On a terminal, an indicatif bar, drawn between
//! experiments only; on any other stderr (a log file, a pipe), a plain line like cargo's and
//! pip's, with runs done, total, elapsed time and ETA: after a run when [`PLAIN_EVERY`] has
//! passed, and from a waiting thread when an experiment holds the sweep for [`PLAIN_AT_LEAST`]
//! (that thread wakes only then, at most once per interval).

use std::{
    io::IsTerminal as _,
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// The shortest time between two plain lines printed after runs.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// The longest time without a plain line, whatever an experiment takes.
pub const PLAIN_AT_LEAST: Duration = Duration::from_secs(9);

/// When the last plain line went out, and whether the sweep is over.
struct Lines {
    last: Instant,
    done: bool,
}

/// The plain view: the shared clock of its lines and the thread that keeps them coming.
struct Plain {
    lines: Arc<(Mutex<Lines>, Condvar)>,
    waiter: Option<JoinHandle<()>>,
}

pub struct Progress {
    /// The state of both views (position, length, message, rate); drawn only on a terminal.
    bar: ProgressBar,
    /// None on a terminal.
    plain: Option<Plain>,
}

/// `1:05`, or `1:02:03` past an hour.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s / 3600 {
        0 => format!("{}:{:02}", s / 60, s % 60),
        h => format!("{h}:{:02}:{:02}", s / 60 % 60, s % 60),
    }
}

/// The time left at the average pace so far: steadier than a recent rate when one
/// experiment holds the sweep. None before the first run ends.
pub fn eta(done: u64, total: u64, elapsed: Duration) -> Option<Duration> {
    (done > 0).then(|| elapsed.mul_f64(total.saturating_sub(done) as f64 / done as f64))
}

/// `eta`, as both views show it.
fn show_eta(done: u64, total: u64, elapsed: Duration) -> String {
    eta(done, total, elapsed).map_or("unknown".to_owned(), clock)
}

/// The plain line: `sweep: 12/164 runs, 0:36 elapsed, eta 7:36 (a3 stream 16KiB x1 rep 2)`.
pub fn plain_line(done: u64, total: u64, elapsed: Duration, what: &str) -> String {
    let mut line = format!(
        "sweep: {done}/{total} runs, {} elapsed, eta {}",
        clock(elapsed),
        show_eta(done, total, elapsed)
    );
    if !what.is_empty() {
        line.push_str(&format!(" ({what})"));
    }
    line
}

/// The plain line for `bar`'s state.
fn line_of(bar: &ProgressBar) -> String {
    let done = bar.position();
    plain_line(
        done,
        bar.length().unwrap_or(done),
        bar.elapsed(),
        &bar.message(),
    )
}

/// Prints a line whenever PLAIN_AT_LEAST passes without one, until the sweep is over.
fn keep_lines_coming(bar: ProgressBar, lines: Arc<(Mutex<Lines>, Condvar)>) {
    let (state, wake) = &*lines;
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    while !st.done {
        let due = st.last + PLAIN_AT_LEAST;
        let now = Instant::now();
        if now >= due {
            st.last = now;
            eprintln!("{}", line_of(&bar));
            continue;
        }
        st = wake
            .wait_timeout(st, due - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
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
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} (eta {average_eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key(
                    "average_eta",
                    |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let total = s.len().unwrap_or(s.pos());
                        let _ = w.write_str(&show_eta(s.pos(), total, s.elapsed()));
                    },
                ),
        );
        let plain = (!terminal).then(|| {
            bar.set_draw_target(ProgressDrawTarget::hidden());
            let lines = Arc::new((
                Mutex::new(Lines {
                    last: Instant::now(),
                    done: false,
                }),
                Condvar::new(),
            ));
            let (bar, shared) = (bar.clone(), Arc::clone(&lines));
            let waiter = std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || keep_lines_coming(bar, shared))
                .ok();
            Plain { lines, waiter }
        });
        let progress = Self { bar, plain };
        progress.print_line(true);
        progress
    }

    /// The plain line for the current state.
    pub fn line(&self) -> String {
        line_of(&self.bar)
    }

    /// Prints the plain line when stderr is not a terminal and PLAIN_EVERY has passed (or
    /// `now`).
    fn print_line(&self, now: bool) {
        let Some(plain) = &self.plain else {
            return;
        };
        let mut st = plain.lines.0.lock().unwrap_or_else(|e| e.into_inner());
        if now || st.last.elapsed() >= PLAIN_EVERY {
            st.last = Instant::now();
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

impl Drop for Progress {
    /// Stops the waiting thread on every way out of the sweep.
    fn drop(&mut self) {
        if let Some(plain) = &mut self.plain {
            let (state, wake) = &*plain.lines;
            state.lock().unwrap_or_else(|e| e.into_inner()).done = true;
            wake.notify_all();
            if let Some(waiter) = plain.waiter.take() {
                let _ = waiter.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_line_states_done_total_elapsed_and_eta() {
        assert_eq!(
            plain_line(12, 164, Duration::from_secs(36), "a3 stream 16KiB x1 rep 2"),
            "sweep: 12/164 runs, 0:36 elapsed, eta 7:36 (a3 stream 16KiB x1 rep 2)"
        );
        assert_eq!(
            plain_line(0, 3, Duration::from_secs(3725), ""),
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
