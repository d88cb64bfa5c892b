//! The experiment's clock: the phase every worker loop reads once per message, and the
//! registry of worker threads the coordinator opens counters on.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{interrupt, perf, side::Side};

/// Where an experiment is in its life; loops read it once per message. It also collects the
/// worker threads' ids as they start, so counters can be opened on them from outside.
#[derive(Clone)]
pub struct PhaseClock {
    phase: Arc<AtomicU8>,
    threads: Arc<Mutex<Vec<(Side, i32)>>>,
    /// Set by a worker that failed: the experiment is over, however long its window.
    failed: Arc<AtomicBool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Warmup = 0,
    Measure = 1,
    Stop = 2,
}

impl PhaseClock {
    /// A clock for `workers` threads. Their registry is sized up front, so registering
    /// allocates nothing on a worker's thread.
    pub(super) fn new(workers: usize) -> Self {
        Self {
            phase: Arc::new(AtomicU8::new(Phase::Warmup as u8)),
            threads: Arc::new(Mutex::new(Vec::with_capacity(workers))),
            failed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Waits `d`, or less when netcopy is asked to stop or a worker failed (its error ends
    /// the experiment now, not at the end of its window).
    pub(super) fn wait(&self, d: Duration) {
        interrupt::sleep_unless(d, || self.failed.load(Ordering::Relaxed));
    }

    /// Whether a worker failed.
    pub(super) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// A worker failed: the experiment stops now, and its coordinator knows why.
    pub(super) fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
        self.set(Phase::Stop);
    }

    pub(super) fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    #[inline]
    pub fn get(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Warmup,
            1 => Phase::Measure,
            _ => Phase::Stop,
        }
    }

    pub(super) fn register(&self, side: Side) {
        let tid = perf::current_tid();
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((side, tid));
    }

    pub(super) fn threads(&self) -> Vec<(Side, i32)> {
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The window is read in slices this long (the last one may be shorter): their rates show
/// how much the figure moves within one run.
pub const SLICE: Duration = Duration::from_millis(50);

/// Waits out the window from `start` in [`SLICE`]s, reading the bytes received (`sum`, at
/// `before` when the window opened) at each edge; the rate of each slice, Gbit/s. Reading the
/// counters is a few atomic loads: nothing a worker waits on.
pub(super) fn measure_slices(
    clock: &PhaseClock,
    duration: Duration,
    start: Instant,
    before: u64,
    sum: impl Fn() -> u64,
) -> Vec<f64> {
    let mut rates = Vec::with_capacity(duration.div_duration_f64(SLICE).ceil() as usize);
    let (mut edge, mut bytes) = (start, before);
    while let Some(left) = duration
        .checked_sub(start.elapsed())
        .filter(|d| !d.is_zero())
    {
        clock.wait(left.min(SLICE));
        if clock.failed() || interrupt::requested() {
            break;
        }
        let (now, total) = (Instant::now(), sum());
        let secs = now.duration_since(edge).as_secs_f64();
        if secs > 0.0 {
            rates.push((total - bytes) as f64 * 8.0 / secs / 1e9);
        }
        (edge, bytes) = (now, total);
    }
    rates
}
