//! The grid and its scheduler. Every grid point gets one traced run for the kernel's accounting
//! and untraced timing runs for its speed figures, repeated until the 95 % confidence interval
//! of the point's primary figure is narrow enough (or its repetitions or the time budget run
//! out). Timing runs go in rounds, each in a random order, planned from every point's runs so
//! far (`schedule`), so every point's repetitions are spread over the whole run and a slow
//! minute of the machine is shared out instead of landing on one point. Each experiment is
//! isolated (fresh connections on a port the kernel picks, nothing shared but the tracer) and
//! each row is written the moment it exists.

use std::time::Duration;

use crate::{
    netpath::{MAX_DATAGRAM, NetPath, Network},
    placement::{Placement, Policy},
    remote,
    row::Row,
    workload::{Config, Mode, Workload},
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
    /// rr's warmup, when shorter: a request-response loop runs at its pace from its first
    /// round trip (measured: the first 50 ms slice after no warmup at all was the median of
    /// the rest in 54 rr runs), so it need not pay the stream's.
    pub rr_warmup: Option<Duration>,
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
    /// 9-minute budget allows, so the whole job stays within 10 minutes on 2 cores.
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
            rr_warmup: Some(Duration::from_millis(25)),
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
                // CPU busy time stays flat while throughput moves): at 12 %, ±5 % takes 25
                // runs. Replaying the spreads of a default run through the schedule put 2-4
                // points in 100 more within ±5 % at 40 than at 24.
                max_reps: 40,
                budget: Some(Duration::from_secs(540)),
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
                        config.warmup = match (workload, self.rr_warmup) {
                            (Workload::Rr, Some(rr)) => rr.min(self.warmup),
                            _ => self.warmup,
                        };
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

mod progress;
mod runner;
mod schedule;
mod soak;
#[cfg(test)]
mod tests;

use progress::Progress;
pub use runner::run;
pub use soak::{resident_kib, soak};
