//! An experiment's worker threads, stopped and joined on every exit path: a workload that
//! fails while starting them (a thread that cannot be spawned, a send mode that cannot open)
//! leaves none running into the next experiment.

use std::{
    io,
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    thread::JoinHandle,
};

use super::{Phase, PhaseClock};

/// Worker threads returning `T`, all driven by one phase clock.
pub(super) struct Crew<T> {
    clock: PhaseClock,
    handles: Vec<JoinHandle<io::Result<T>>>,
}

impl<T> Crew<T> {
    pub(super) fn new(clock: &PhaseClock) -> Self {
        Self {
            clock: clock.clone(),
            handles: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, worker: JoinHandle<io::Result<T>>) {
        self.handles.push(worker);
    }

    /// The workers, for the caller to join after a normal run; the crew then has nothing
    /// left to stop.
    pub(super) fn into_handles(mut self) -> Vec<JoinHandle<io::Result<T>>> {
        std::mem::take(&mut self.handles)
    }
}

impl<T> Drop for Crew<T> {
    /// Only on an early exit (the handles were not taken): tells every worker to stop, then
    /// waits for each. Senders stop at the clock; receivers at end of stream, once their
    /// peers have stopped or their sockets were dropped.
    fn drop(&mut self) {
        if self.handles.is_empty() {
            return;
        }
        self.clock.set(Phase::Stop);
        for worker in self.handles.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Test-only fault injection: `NETCOPY_FAIL_SPAWN=N` makes this process's N-th worker spawn
/// fail, so a test can start a workload that fails halfway through starting its workers.
pub(super) fn injected_spawn_failure() -> bool {
    static AT: OnceLock<Option<usize>> = OnceLock::new();
    static SPAWNS: AtomicUsize = AtomicUsize::new(0);
    let at = AT.get_or_init(|| std::env::var("NETCOPY_FAIL_SPAWN").ok()?.parse().ok());
    at.is_some_and(|n| SPAWNS.fetch_add(1, Ordering::Relaxed) + 1 == n)
}
