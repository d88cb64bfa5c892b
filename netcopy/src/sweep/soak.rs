//! The soak test: the grid again and again in one process, memory watched.

use std::time::{Duration, Instant};

use super::{Ended, Grid, Target, run};
use crate::{error::Result, kernel::tracer::Tracer, netpath::Network, output::ResultsDir, remote};

/// [`run`], pass after pass, until `until` has passed since `started`, the sweep fails or
/// netcopy is interrupted: the soak test (`cargo xtask soak` watches what `after_pass`
/// prints). Only the last pass's rows stay in `ended.rows`; the files keep them all.
#[allow(clippy::too_many_arguments)]
pub fn soak(
    grid: &Grid,
    remote: &mut Option<remote::Client>,
    network: &Network,
    mut tracer: Option<&mut Tracer>,
    out: &mut ResultsDir,
    ended: &mut Ended,
    (started, until): (Instant, Duration),
    mut after_pass: impl FnMut(u32),
) -> Result<()> {
    for pass in 1.. {
        ended.rows.clear();
        run(
            grid,
            Target::of(remote, network),
            tracer.as_deref_mut(),
            out,
            ended,
        )?;
        after_pass(pass);
        if ended.interrupted || started.elapsed() >= until {
            break;
        }
    }
    Ok(())
}

/// This process's resident memory, KiB (0 when /proc cannot say).
pub fn resident_kib() -> u64 {
    procfs::process::Process::myself()
        .and_then(|p| p.status())
        .ok()
        .and_then(|s| s.vmrss)
        .unwrap_or(0)
}
