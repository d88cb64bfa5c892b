//! Load: 64 connections per mode for 10 s, and nothing grows: file descriptors, sockets,
//! threads, resident memory. Its own test binary, so nothing else opens files or threads
//! while it counts them.

mod common;

use std::time::Duration;

use netcopy::{
    Error,
    workload::{self, Config, Mode, Workload},
};

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).expect(dir).count()
}

fn sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Resident memory, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

fn run(mode: Mode) {
    let mut config = Config::new(mode, Workload::Stream, 4096, 64);
    config.port = 0;
    config.warmup = Duration::from_millis(200);
    config.duration = Duration::from_secs(10);
    match workload::run(config) {
        Ok(f) => assert_eq!(f.bytes_received, f.bytes_sent, "{mode}"),
        Err(e @ Error::Unavailable { .. }) if !common::in_ci() => {
            eprintln!("SKIPPED {mode}: {e}");
        }
        Err(e) => panic!("{mode}: {e}"),
    }
}

/// Memory the allocator may keep after a run without it being a leak: a run's histograms
/// and rings are freed, but not every page goes back to the kernel.
const RSS_SLACK: u64 = 16 << 20;

#[test]
fn sixty_four_connections_for_ten_seconds_leave_nothing_behind() {
    let (fds, threads, socks) = (count("/proc/self/fd"), count("/proc/self/task"), sockets());
    // A first run sizes the allocator's arenas; growth is measured from there.
    run(Mode::A1);
    let baseline = rss();
    for mode in Mode::ALL {
        run(mode);
        assert_eq!(
            count("/proc/self/fd"),
            fds,
            "{mode}: file descriptors leaked"
        );
        assert_eq!(sockets(), socks, "{mode}: sockets leaked");
        assert_eq!(
            count("/proc/self/task"),
            threads,
            "{mode}: threads left running"
        );
    }
    let grown = rss().saturating_sub(baseline);
    assert!(
        grown <= RSS_SLACK,
        "resident memory grew by {grown} bytes over four runs"
    );
}
