//! The observer's own run time, from the kernel's per-program statistics. They add two clock
//! reads to every program run (a1 at 256 B on one CPU: traced/untraced 0.80 without them,
//! 0.66 with them), so a traced experiment turns them on over its warmup only: the window its
//! speed figures come from runs without them.

use std::{os::fd::OwnedFd, time::Duration};

use super::Tracer;
use crate::{
    error::{Error, Result},
    workload::RunTimeClock,
};

/// Turns on the kernel's per-program run-time statistics (`BPF_ENABLE_STATS`) for as long as
/// the returned handle lives.
pub fn enable_run_stats() -> Result<OwnedFd> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| Error::io("enabling BPF run-time statistics", std::io::Error::other(e)))
}

impl Tracer {
    /// Measures the programs' run time in every traced experiment's warmup, if this process
    /// may turn the statistics on (they need CAP_SYS_ADMIN): tried once here.
    pub fn time_programs(&mut self) -> Result<()> {
        drop(enable_run_stats()?);
        self.time_runs = true;
        Ok(())
    }

    /// Every program's total run time since load (it grows only while statistics are on).
    fn total_run_time(&self) -> Duration {
        self.program_stats().iter().map(|(_, _, t)| *t).sum()
    }
}

impl RunTimeClock for Tracer {
    fn start(&self) -> Option<Duration> {
        if !self.time_runs {
            return None;
        }
        *self.run_stats.borrow_mut() = Some(enable_run_stats().ok()?);
        Some(self.total_run_time())
    }

    fn stop(&self) -> Option<Duration> {
        let on = self.run_stats.borrow_mut().take()?;
        let total = self.total_run_time();
        drop(on);
        Some(total)
    }
}
