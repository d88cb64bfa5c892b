//! Shared by the integration tests: getting a tracer, or saying plainly why not.
// Each test binary compiles its own copy and uses only part of it.
#![allow(dead_code)]

use std::io::Write as _;

use netcopy::kernel::tracer::Tracer;

/// True under CI, where a test that cannot load or attach its programs must fail, not skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Loads the tracer, or returns None after saying why the test skips. Under CI the reason is a
/// failure instead.
pub fn tracer_or_skip(test: &str) -> Option<Tracer> {
    match Tracer::load() {
        // A kernel that refuses a hook still loads the rest; the tests need them all.
        Ok(tracer) if in_ci() && !tracer.missing_hooks().is_empty() => panic!(
            "{test}: hooks refused: {:?}",
            tracer
                .missing_hooks()
                .iter()
                .map(|(h, why)| format!("{}: {why}", h.program))
                .collect::<Vec<_>>()
        ),
        Ok(tracer) => Some(tracer),
        Err(err) if in_ci() => panic!("{test}: cannot load or attach the eBPF programs: {err}"),
        Err(err) => {
            // Straight to stderr, past the test harness's capture, so the skip is visible.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {err}");
            None
        }
    }
}
