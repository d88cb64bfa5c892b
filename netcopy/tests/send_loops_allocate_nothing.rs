//! README's promise: the send loops allocate nothing. A counting global allocator counts the
//! allocations made on the workers' threads (named `send-*` and `rr-*`); a longer run that
//! sent more than twice the messages must make exactly as many: everything they allocate is
//! set-up, none of it per message.

mod common;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use netcopy::{
    experiment,
    workload::{Config, Mode, Prepared, Workload},
};

struct Counting;

static WORKER_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Whether the calling thread is a workload's worker, by its kernel name (no allocation).
fn on_worker_thread() -> bool {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes into the buffer.
    unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
    name.starts_with(b"send-") || name.starts_with(b"rr-")
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if on_worker_thread() {
            WORKER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if on_worker_thread() {
            WORKER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for alloc and dealloc.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Worker allocations and messages sent in one untraced run of `window`; None when the mode
/// is unavailable on this kernel (said, and a failure under CI).
fn run(mode: Mode, workload: Workload, window: Duration) -> Option<(u64, u64)> {
    let mut config = Config::new(mode, workload, 4096, 1);
    config.port = 0;
    config.warmup = Duration::from_millis(50);
    config.duration = window;
    let before = WORKER_ALLOCATIONS.load(Ordering::Relaxed);
    let outcome = match experiment::run(Prepared::bind(config).unwrap(), None, 1) {
        Ok(outcome) => outcome,
        // io_uring without SENDMSG_ZC: said, and under CI (this kernel has it) a failure.
        Err(e @ netcopy::Error::Unavailable { .. }) => {
            assert!(!common::in_ci(), "{mode}: {e}");
            eprintln!("SKIPPED {mode} {workload}: {e}");
            return None;
        }
        Err(e) => panic!("{mode} {workload}: {e}"),
    };
    Some((
        WORKER_ALLOCATIONS.load(Ordering::Relaxed) - before,
        outcome.figures.send_counts.send_calls,
    ))
}

#[test]
fn the_send_loops_allocate_nothing_per_message() {
    for workload in [Workload::Stream, Workload::Rr] {
        for mode in Mode::ALL {
            let Some((short, short_sends)) = run(mode, workload, Duration::from_millis(100)) else {
                continue;
            };
            // A mode that ran and sent nothing proves nothing about its loop: a failure.
            assert!(
                short_sends > 0,
                "{mode} {workload}: no message sent in 100 ms"
            );
            // The longer run must send clearly more, or equal counts would prove nothing. On two
            // shared CPUs a zero-copy run can crawl for a while (it waits for its receiver's
            // completions), so the window grows until it does; the allocations must still match.
            let mut longer = None;
            for window_ms in [400, 1600, 4000] {
                let Some((long, long_sends)) =
                    run(mode, workload, Duration::from_millis(window_ms))
                else {
                    break;
                };
                eprintln!(
                    "{mode} {workload}: {short_sends} sends in 100 ms, {long_sends} in {window_ms} ms"
                );
                if long_sends > 2 * short_sends {
                    longer = Some((long, long_sends));
                    break;
                }
            }
            let Some((long, long_sends)) = longer else {
                panic!(
                    "{mode} {workload}: no run up to 4 s sent twice the {short_sends} sends of 100 ms"
                );
            };
            assert_eq!(
                short, long,
                "{mode} {workload}: {short} allocations in {short_sends} sends, {long} in {long_sends}"
            );
        }
    }
}
