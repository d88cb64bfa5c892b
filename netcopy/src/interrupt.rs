//! Ctrl-C, SIGTERM and SIGHUP (a closed terminal): noted, never acted on inside a signal handler. The coordinator stops the
//! experiment in progress at its next look, the sweep keeps every finished row, and the normal
//! drop order then detaches the programs and removes the namespaces.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

static REQUESTED: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    REQUESTED.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Routes SIGINT, SIGTERM and SIGHUP to the flag. A second signal of any of them ends the
/// process at once (the kernel still detaches every program and frees every namespace on exit).
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(flag()))?;
        signal_hook::flag::register(signal, Arc::clone(flag()))?;
    }
    Ok(())
}

/// Whether the user asked netcopy to stop.
pub fn requested() -> bool {
    flag().load(Ordering::Relaxed)
}

/// Sleeps for `d`, waking early when a stop is requested. Returns false if it woke early.
pub fn sleep(d: Duration) -> bool {
    sleep_unless(d, || false)
}

/// Sleeps for `d`, waking early when a stop is requested or `stop()` says so. Returns false
/// if it woke early.
pub fn sleep_unless(d: Duration, stop: impl Fn() -> bool) -> bool {
    let end = Instant::now() + d;
    loop {
        if requested() || stop() {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}
