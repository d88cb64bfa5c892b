//! The four send modes on real loopback sockets: every byte arrives, sampled messages arrive
//! byte-exact, and zero-copy sends all complete, all flagged as copied by the kernel.

mod common;

use std::time::Duration;

use netcopy::{
    Error, netns,
    workload::{self, Config, Figures, Mode, Workload},
};

fn quick(mode: Mode, workload: Workload, size: usize, threads: usize) -> Config {
    let mut config = Config::new(mode, workload, size, threads);
    config.port = 0;
    config.warmup = Duration::from_millis(100);
    config.duration = Duration::from_millis(300);
    config.sample_every = 16;
    config
}

/// Runs `config`; None (after saying why) when the mode cannot run on this machine, which
/// under CI is a failure.
fn run(config: Config) -> Option<Figures> {
    match workload::run(config.clone()) {
        Ok(figures) => Some(figures),
        Err(e @ Error::Unavailable { .. }) if !common::in_ci() => {
            eprintln!("SKIPPED {}: {e}", config.mode);
            None
        }
        Err(e) => panic!("{} {} {}: {e}", config.mode, config.workload, config.size),
    }
}

fn assert_delivered(what: &str, mode: Mode, f: &Figures) {
    assert!(f.bytes_sent > 0, "{what}: nothing sent");
    assert_eq!(
        f.bytes_received, f.bytes_sent,
        "{what}: bytes lost or invented"
    );
    assert!(
        f.verified_messages > 0,
        "{what}: no message checked byte for byte"
    );
    assert_eq!(f.send_counts.bytes_sent, f.bytes_sent, "{what}");
    if mode.is_zero_copy() {
        assert!(f.send_counts.zc_sends > 0, "{what}: no zero-copy send");
        assert_eq!(
            f.send_counts.zc_completed, f.send_counts.zc_sends,
            "{what}: sends left uncompleted"
        );
        // On loopback every pinned byte is copied at delivery: all completions say so.
        assert_eq!(
            f.send_counts.copied_pct(),
            Some(100.0),
            "{what}: {:?}",
            f.send_counts
        );
    } else {
        assert_eq!(f.send_counts.zc_sends, 0, "{what}");
    }
}

#[test]
fn every_mode_and_workload_delivers_every_byte() {
    for mode in Mode::ALL {
        for workload in Workload::ALL {
            // 1003: not a multiple of 8, so fields differ in length.
            for size in [1003, 16 << 10] {
                let what = format!("{mode} {workload} {size}");
                if let Some(f) = run(quick(mode, workload, size, 2)) {
                    assert_delivered(&what, mode, &f);
                    let rr = workload == Workload::Rr;
                    assert_eq!(f.round_trip.is_some(), rr, "{what}");
                    assert_eq!(f.send_latency.is_some(), !rr, "{what}");
                    assert!(f.window_messages > 0, "{what}: nothing in the window");
                }
            }
        }
    }
}

#[test]
fn a3_survives_enobufs_with_every_byte_delivered() {
    if !netcopy::kernel::is_root() && !common::in_ci() {
        eprintln!(
            "SKIPPED a3_survives_enobufs: needs root to lower optmem_max in a private network namespace"
        );
        return;
    }
    // A private namespace, so lowering optmem_max touches nothing else on the machine. With
    // room for only a few notifications and many sends allowed in flight, the kernel must
    // refuse some sends with ENOBUFS; a3 drains the error queue and retries.
    let figures = std::thread::spawn(|| {
        netns::enter_private().expect("private network namespace");
        netns::set_net_sysctl("net/core/optmem_max", "2048").expect("lower optmem_max");
        let mut config = quick(Mode::A3, Workload::Stream, 256, 2);
        config.ring = 4096;
        workload::run(config)
    })
    .join()
    .expect("experiment thread")
    .expect("a3 completes despite ENOBUFS");
    assert_delivered("a3 under ENOBUFS", Mode::A3, &figures);
    assert!(
        figures.send_counts.enobufs_retries > 0,
        "optmem_max 2048 should force ENOBUFS: {:?}",
        figures.send_counts
    );
}
