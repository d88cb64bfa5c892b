//! The grid: every (workload, size, threads, mode) point, repeated, each experiment isolated
//! (fresh connections on a port the kernel picks, nothing shared but the tracer), each row
//! written the moment it exists.

use std::{io::IsTerminal as _, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{
    error::{Error, Result},
    experiment, interrupt,
    kernel::tracer::Tracer,
    netpath::{MAX_DATAGRAM, NetPath, Network},
    output::ResultsDir,
    remote,
    row::Row,
    units::format_size,
    workload::{Config, Mode, Prepared, Workload},
};

/// What to run.
#[derive(Debug, Clone)]
pub struct Grid {
    pub modes: Vec<Mode>,
    pub sizes: Vec<usize>,
    pub threads: Vec<usize>,
    pub workloads: Vec<Workload>,
    pub reps: u32,
    pub duration: Duration,
    pub warmup: Duration,
    pub path: NetPath,
}

impl Grid {
    /// `cargo xtask run`'s grid: the assignment's sizes and threads plus 64 KiB, both
    /// workloads, every mode, three repetitions; sized to finish within 10 minutes on 2 cores.
    pub fn default_run() -> Self {
        Self {
            modes: Mode::ALL.to_vec(),
            sizes: vec![256, 1 << 10, 4 << 10, 16 << 10, 64 << 10],
            threads: vec![1, 2, 4, 8],
            workloads: Workload::ALL.to_vec(),
            reps: 3,
            duration: Duration::from_millis(800),
            warmup: Duration::from_millis(200),
            path: NetPath::Loopback,
        }
    }

    /// A small grid that finishes within a minute: every mode, both workloads, two sizes and
    /// two thread counts, two repetitions.
    pub fn quick() -> Self {
        Self {
            sizes: vec![1 << 10, 16 << 10],
            threads: vec![1, 4],
            reps: 2,
            duration: Duration::from_millis(400),
            warmup: Duration::from_millis(100),
            ..Self::default_run()
        }
    }

    /// Every experiment, repetitions outermost so each point's repetitions are spread over
    /// the run (a slow minute of the machine does not land on one point), modes innermost so
    /// the modes of one point run back to back. Points a path cannot carry are left out and
    /// returned as notes.
    pub fn experiments(&self) -> (Vec<(u32, Config)>, Vec<String>) {
        let mut notes = Vec::new();
        let workloads: Vec<Workload> = self
            .workloads
            .iter()
            .copied()
            .filter(|w| !(self.path.is_sink() && *w == Workload::Rr))
            .collect();
        if workloads.len() < self.workloads.len() {
            notes.push(format!(
                "{}: rr left out (nothing replies from a sink)",
                self.path
            ));
        }
        let sizes: Vec<usize> = self
            .sizes
            .iter()
            .copied()
            .filter(|s| !(self.path.is_sink() && *s > MAX_DATAGRAM))
            .collect();
        if sizes.len() < self.sizes.len() {
            notes.push(format!(
                "{}: sizes above {MAX_DATAGRAM} B left out (one UDP datagram)",
                self.path
            ));
        }
        let mut out = Vec::new();
        for rep in 1..=self.reps {
            for &workload in &workloads {
                for &size in &sizes {
                    for &threads in &self.threads {
                        for &mode in &self.modes {
                            let mut config = Config::new(mode, workload, size, threads);
                            config.duration = self.duration;
                            config.warmup = self.warmup;
                            config.path = self.path;
                            // A fresh port from the kernel every time: nothing lingers
                            // between experiments (TIME_WAIT, a slow close).
                            if !self.path.is_sink() {
                                config.port = 0;
                            }
                            out.push((rep, config));
                        }
                    }
                }
            }
        }
        (out, notes)
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

fn progress_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Where the experiments' servers run.
pub enum Target<'a> {
    /// In this process, on a path it built.
    Local(&'a Network),
    /// In a `netcopy serve` process, possibly on another host.
    Remote(&'a mut remote::Client),
}

/// Runs `grid` against `target`, writing each row to `out` as soon as it exists. Failed
/// experiments become failed rows and the sweep goes on; Ctrl-C ends it after the
/// experiment in progress is abandoned.
pub fn run(
    grid: &Grid,
    mut target: Target<'_>,
    mut tracer: Option<&mut Tracer>,
    out: &mut ResultsDir,
) -> Result<Ended> {
    let (experiments, notes) = grid.experiments();
    for note in notes {
        eprintln!("netcopy: {note}");
    }
    let bar = progress_bar(experiments.len());
    let mut ended = Ended::default();
    for (index, (rep, config)) in experiments.into_iter().enumerate() {
        if interrupt::requested() {
            ended.interrupted = true;
            break;
        }
        // Drawn between experiments only, never inside a measured window.
        bar.set_message(format!(
            "{} {} {} x{} rep {rep}",
            config.mode,
            config.workload,
            format_size(config.size),
            config.threads
        ));
        let planned = Row::planned(out.id(), index as u32 + 1, rep, &config);
        let result = match &mut target {
            Target::Local(network) => Prepared::bind_on(config, network)
                .and_then(|p| experiment::run(p, tracer.as_deref_mut(), 1)),
            Target::Remote(client) => client.run(&config, tracer.as_deref_mut()),
        };
        let row = match result {
            Ok(outcome) => planned.measured(&outcome),
            Err(Error::Interrupted) => {
                ended.interrupted = true;
                break;
            }
            // A tracer that stops working is not one experiment's problem.
            Err(e @ Error::Map { .. }) => return Err(e),
            Err(e) => planned.failed(&e.to_string()),
        };
        if !row.is_ok() {
            ended.failed += 1;
            bar.suspend(|| eprintln!("netcopy: experiment failed: {}", row.error));
        } else if row.checks != "ok" && row.checks != "not traced" {
            ended.disagreed += 1;
            bar.suspend(|| eprintln!("netcopy: kernel and userspace disagree: {}", row.checks));
        }
        out.write(&row)?;
        ended.rows.push(row);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(ended)
}
