//! The grid and its scheduler. Every grid point gets one traced run for the kernel's accounting
//! and untraced timing runs for its speed figures, repeated until the 95 % confidence interval
//! of the point's primary figure is narrow enough (or its repetitions or the time budget run
//! out). Timing runs go in rounds over the points still short of their goal (first twice the
//! target's width, then the target), so every point's repetitions are spread over the whole
//! run and a slow minute of the machine is shared out instead of landing on one point. Each experiment is isolated (fresh connections on a port
//! the kernel picks, nothing shared but the tracer) and each row is written the moment it
//! exists.

use std::time::{Duration, Instant};

use crate::{
    error::{Error, Result},
    experiment::Observer,
    interrupt,
    kernel::tracer::Tracer,
    netpath::{MAX_DATAGRAM, NetPath, Network},
    output::ResultsDir,
    placement::{Placement, Policy},
    remote,
    row::Row,
    units::format_size,
    workload::{Config, Mode, Prepared, Workload},
};

/// Which runs of a point are traced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracing {
    /// One traced run per point for the accounting; every timing run untraced.
    Accounting,
    /// Every run traced (the speed figures then carry the observer's cost).
    Every,
    /// Nothing traced (no root needed; the kernel columns stay empty).
    Never,
}

/// When a point has had enough timing runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence {
    /// Half-width of the 95 % interval of the primary figure, % of its mean.
    pub target_pct: f64,
    /// Timing runs every point gets, converged or not.
    pub min_reps: u32,
    /// Timing runs after which a point stops, converged or not.
    pub max_reps: u32,
    /// Past this much time from the sweep's start, no further round begins beyond the
    /// first `min_reps`; points still short of the target are reported as not converged.
    pub budget: Option<Duration>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Grid {
    pub modes: Vec<Mode>,
    pub sizes: Vec<usize>,
    pub threads: Vec<usize>,
    pub workloads: Vec<Workload>,
    pub duration: Duration,
    pub warmup: Duration,
    pub net_path: NetPath,
    pub placement: Placement,
    pub busy_poll: bool,
    pub zerocopy_receive: bool,
    /// After the grid, one traced zero-copy receive experiment per mode (stream, 16 KiB or
    /// the largest size below it, one connection), for the report's verdict on it.
    pub probe_zero_copy_receive: bool,
    pub confidence: Confidence,
    pub tracing: Tracing,
}

impl Grid {
    /// `cargo xtask run`'s grid: the assignment's sizes and threads plus 64 KiB, both
    /// workloads, every mode; each point to ±5 %, then ±2.5 %, at 95 % confidence where the
    /// 8-minute budget allows, so the whole job stays within 10 minutes on 2 cores.
    pub fn default_run() -> Self {
        Self {
            modes: Mode::ALL.to_vec(),
            sizes: vec![256, 1 << 10, 4 << 10, 16 << 10, 64 << 10],
            threads: vec![1, 2, 4, 8],
            workloads: Workload::ALL.to_vec(),
            // A short window and a warmup that lets TCP's buffers settle: on this kind of VM
            // runs differ mostly from one to the next, so more short runs narrow an interval
            // faster than fewer long ones.
            duration: Duration::from_millis(200),
            warmup: Duration::from_millis(150),
            net_path: NetPath::Loopback,
            placement: Placement::on_this_machine(Policy::default())
                .unwrap_or_else(|_| Placement::unpinned()),
            busy_poll: false,
            zerocopy_receive: false,
            probe_zero_copy_receive: true,
            confidence: Confidence {
                target_pct: 2.5,
                min_reps: 3,
                // Runs on this kind of VM spread by 5-15 % (the host's load, not netcopy's:
                // CPU busy time stays flat while throughput moves), so ±5 % takes up to ~24.
                max_reps: 24,
                budget: Some(Duration::from_secs(480)),
            },
            tracing: Tracing::Accounting,
        }
    }

    /// A small grid that finishes within a minute: every mode, both workloads, two sizes and
    /// two thread counts.
    pub fn quick() -> Self {
        let default = Self::default_run();
        Self {
            sizes: vec![1 << 10, 16 << 10],
            threads: vec![1, 4],
            duration: Duration::from_millis(150),
            warmup: Duration::from_millis(100),
            confidence: Confidence {
                max_reps: 8,
                budget: Some(Duration::from_secs(45)),
                ..default.confidence
            },
            ..default
        }
    }

    /// The workloads and sizes the path can carry, and a note for each kind it cannot.
    fn carried(&self) -> (Vec<Workload>, Vec<usize>, Vec<Mode>, Vec<String>) {
        let mut notes = Vec::new();
        let modes: Vec<Mode> = self
            .modes
            .iter()
            .copied()
            .filter(|m| !(self.net_path.is_sink() && *m == Mode::A5))
            .collect();
        if modes.len() < self.modes.len() {
            notes.push(format!(
                "{}: a5 left out (sendfile is measured on TCP)",
                self.net_path
            ));
        }
        let workloads: Vec<Workload> = self
            .workloads
            .iter()
            .copied()
            .filter(|w| !((self.net_path.is_sink() || self.zerocopy_receive) && *w == Workload::Rr))
            .collect();
        if workloads.len() < self.workloads.len() {
            notes.push(if self.zerocopy_receive {
                "rr left out (zero-copy receive maps a stream's pages)".to_owned()
            } else {
                format!(
                    "{}: rr left out (nothing replies from a sink)",
                    self.net_path
                )
            });
        }
        let sizes: Vec<usize> = self
            .sizes
            .iter()
            .copied()
            .filter(|s| !(self.net_path.is_sink() && *s > MAX_DATAGRAM))
            .collect();
        if sizes.len() < self.sizes.len() {
            notes.push(format!(
                "{}: sizes above {MAX_DATAGRAM} B left out (one UDP datagram)",
                self.net_path
            ));
        }
        (workloads, sizes, modes, notes)
    }

    /// The zero-copy receive probes: one per mode the path carries, when asked for and the
    /// grid's own runs do not already receive that way.
    pub fn zero_copy_receive_probes(&self) -> Vec<Config> {
        if !self.probe_zero_copy_receive || self.zerocopy_receive || self.net_path.is_sink() {
            return Vec::new();
        }
        let size = self
            .sizes
            .iter()
            .copied()
            .filter(|&s| s <= 16 << 10)
            .max()
            .unwrap_or(16 << 10);
        self.carried()
            .2
            .into_iter()
            .map(|mode| {
                let mut config = Config::new(mode, Workload::Stream, size, 1);
                config.duration = self.duration;
                config.warmup = self.warmup;
                config.net_path = self.net_path;
                config.placement = self.placement.clone();
                config.zerocopy_receive = true;
                config.port = 0;
                config
            })
            .collect()
    }

    /// What the grid leaves out because the path cannot carry it, for the user to read
    /// before the sweep starts.
    pub fn notes(&self) -> Vec<String> {
        self.carried().3
    }

    /// Every grid point the path can carry, modes innermost so the modes of one point run
    /// back to back.
    pub fn points(&self) -> Vec<Config> {
        let (workloads, sizes, modes, _) = self.carried();
        let mut out = Vec::new();
        for &workload in &workloads {
            for &size in &sizes {
                for &threads in &self.threads {
                    for &mode in &modes {
                        let mut config = Config::new(mode, workload, size, threads);
                        config.duration = self.duration;
                        config.warmup = self.warmup;
                        config.net_path = self.net_path;
                        config.placement = self.placement.clone();
                        config.busy_poll = self.busy_poll;
                        config.zerocopy_receive = self.zerocopy_receive;
                        // A fresh port from the kernel every time: nothing lingers
                        // between experiments (TIME_WAIT, a slow close).
                        if !self.net_path.is_sink() {
                            config.port = 0;
                        }
                        out.push(config);
                    }
                }
            }
        }
        out
    }
}

/// How a sweep ended.
#[derive(Debug, Default)]
pub struct Ended {
    pub rows: Vec<Row>,
    pub failed: usize,
    pub disagreed: usize,
    pub interrupted: bool,
}

/// Where the experiments' servers run.
pub enum Target<'a> {
    /// In this process, on a path it built.
    Local(&'a Network),
    /// In a `netcopy serve` process, possibly on another host.
    Remote(&'a mut remote::Client),
}

impl<'a> Target<'a> {
    /// The `serve` process when there is one, else this process on `network`.
    pub fn of(remote: &'a mut Option<remote::Client>, network: &'a Network) -> Self {
        match remote {
            Some(client) => Target::Remote(client),
            None => Target::Local(network),
        }
    }
}

/// Runs `grid` against `target`, writing each row to `out` as soon as it exists and keeping
/// it in `ended`, so whatever ends the sweep (an error included) leaves every finished row
/// with the caller. Failed experiments become failed rows and the sweep goes on; Ctrl-C ends
/// it after the experiment in progress is abandoned.
pub fn run(
    grid: &Grid,
    mut target: Target<'_>,
    mut tracer: Option<&mut Tracer>,
    out: &mut ResultsDir,
    ended: &mut Ended,
) -> Result<()> {
    let started = Instant::now();
    let points = grid.points();
    let c = &grid.confidence;
    let tracing = if tracer.is_none() {
        Tracing::Never
    } else {
        grid.tracing
    };
    let accounting_runs = if tracing == Tracing::Accounting {
        points.len()
    } else {
        0
    };
    let bar = Progress::new(accounting_runs + points.len() * c.min_reps as usize);
    let mut state: Vec<PointState> = points.iter().map(|_| PointState::default()).collect();
    let mut experiment = 0u32;
    // The schedule: round 0 traces every point once, rounds 1.. time the points that still
    // want it (`Confidence::round`).
    let mut round = if tracing == Tracing::Accounting { 0 } else { 1 };
    'rounds: loop {
        let order = if round == 0 {
            (0..points.len()).collect()
        } else {
            c.round(round, &state, affordable_runs(c, started, experiment))
        };
        if order.is_empty() {
            break;
        }
        for i in order {
            if interrupt::requested() {
                ended.interrupted = true;
                break 'rounds;
            }
            let extra = round > c.min_reps;
            if extra && c.budget.is_some_and(|b| started.elapsed() >= b) {
                break 'rounds;
            }
            if extra {
                bar.inc_length(1);
            }
            let traced = match tracing {
                Tracing::Accounting => round == 0,
                Tracing::Every => true,
                Tracing::Never => false,
            };
            let config = points[i].clone();
            let point = &mut state[i];
            // Round 0 is the point's one accounting run.
            let rep = if round == 0 {
                1
            } else {
                point.timing_reps += 1;
                point.timing_reps
            };
            experiment += 1;
            // Drawn between experiments only, never inside a measured window.
            bar.set_message(format!(
                "{} {} {} x{} {} {rep}",
                config.mode,
                config.workload,
                format_size(config.size),
                config.threads,
                if round == 0 { "traced" } else { "rep" }
            ));
            let mut planned = Row::planned(out.id(), experiment, rep, traced, &config);
            planned.ci_target_pct = Some(c.target_pct);
            let observer = Observer::new(tracer.as_deref_mut(), traced);
            let Some(row) = run_one(planned, config, &mut target, observer, &bar, ended)? else {
                break 'rounds;
            };
            if round > 0
                && let Some(v) = row.primary().filter(|_| row.is_ok())
            {
                point.samples.push(v);
            }
            out.write(&row)?;
            ended.rows.push(row);
            bar.inc();
        }
        round += 1;
    }
    // Zero-copy receive, once per mode, traced: what this kernel maps (see README).
    for config in grid.zero_copy_receive_probes() {
        if tracing == Tracing::Never || ended.interrupted || interrupt::requested() {
            break;
        }
        experiment += 1;
        let planned = Row::planned(out.id(), experiment, 1, true, &config);
        let Some(row) = run_one(
            planned,
            config,
            &mut target,
            Observer::new(tracer.as_deref_mut(), true),
            &bar,
            ended,
        )?
        else {
            break;
        };
        out.write(&row)?;
        ended.rows.push(row);
    }
    bar.finish();
    Ok(())
}

/// Runs one experiment of a sweep and returns its row (failed, if it failed); None when
/// netcopy was interrupted, which `ended` then records.
fn run_one(
    planned: Row,
    config: Config,
    target: &mut Target<'_>,
    observer: Observer<'_>,
    bar: &Progress,
    ended: &mut Ended,
) -> Result<Option<Row>> {
    let clock = Instant::now();
    let result = match target {
        Target::Local(network) => Prepared::bind_on(config, network).and_then(|p| observer.run(p)),
        Target::Remote(client) => client.run(&config, observer),
    };
    let mut row = match result {
        Ok(outcome) => planned.measured(&outcome),
        Err(Error::Interrupted) => {
            ended.interrupted = true;
            return Ok(None);
        }
        // A tracer that stops working is not one experiment's problem.
        Err(e @ Error::Map { .. }) => return Err(e),
        Err(e @ Error::StillAttached { programs }) => {
            let mut row = planned.failed(&e.to_string());
            row.attached_programs = Some(programs);
            row
        }
        Err(e) => planned.failed(&e.to_string()),
    };
    row.elapsed_s = Some(clock.elapsed().as_secs_f64());
    if !row.is_ok() {
        ended.failed += 1;
        bar.suspend(|| eprintln!("netcopy: experiment failed: {}", row.error));
    } else if row.checks != "ok" && row.checks != "not traced" {
        ended.disagreed += 1;
        bar.suspend(|| eprintln!("netcopy: kernel and userspace disagree: {}", row.checks));
    }
    Ok(Some(row))
}

mod progress;
mod schedule;
mod soak;
#[cfg(test)]
mod tests;

use progress::Progress;
use schedule::{PointState, affordable_runs};
pub use soak::{resident_kib, soak};
