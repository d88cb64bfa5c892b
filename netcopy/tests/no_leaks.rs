//! Its own test binary, so nothing else opens files or threads while it counts them.

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

#[test]
fn eight_connections_for_two_seconds_leave_nothing_behind() {
    let (fds, threads, socks) = (count("/proc/self/fd"), count("/proc/self/task"), sockets());
    for mode in Mode::ALL {
        let mut config = Config::new(mode, Workload::Stream, 4096, 8);
        config.port = 0;
        config.warmup = Duration::from_millis(200);
        config.duration = Duration::from_secs(2);
        match workload::run(config) {
            Ok(f) => assert_eq!(f.bytes_received, f.bytes_sent, "{mode}"),
            Err(Error::Unavailable { .. }) if !common::in_ci() => {}
            Err(e) => panic!("{mode}: {e}"),
        }
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
}
