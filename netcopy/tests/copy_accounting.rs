//! From real runs on loopback, the kernel's own accounting: copying modes copy every byte at
//! send time and pin none; zero-copy modes pin every byte, and every pinned byte is copied
//! after all at delivery. Both observers agree.

mod common;

use std::time::Duration;

use netcopy::{
    Error, experiment,
    workload::{Config, Mode, Prepared, Workload},
};

#[test]
fn loopback_copies_every_byte_once_or_defers_it() {
    let Some(mut tracer) = common::tracer_or_skip("loopback_copies_every_byte") else {
        return;
    };
    for (slot, mode) in Mode::ALL.into_iter().enumerate() {
        let mut config = Config::new(mode, Workload::Stream, 16 << 10, 2);
        config.port = 0;
        config.warmup = Duration::from_millis(100);
        config.duration = Duration::from_millis(400);
        let prepared = Prepared::bind(config).expect("bind");
        let outcome = match experiment::run(prepared, Some(&mut tracer), slot as u32) {
            Ok(outcome) => outcome,
            Err(Error::Unavailable { .. }) if !common::in_ci() => continue,
            Err(e) => panic!("{mode}: {e}"),
        };
        let k = outcome.kernel.as_ref().expect("traced");
        let c = &k.counters;
        let sent = outcome.figures.bytes_sent;
        assert!(sent > 0, "{mode}");
        assert_eq!(outcome.checks(), "ok", "{mode}: {c:?}");
        assert_eq!(c.send_bytes, sent, "{mode}");
        assert_eq!(c.recv_copy_bytes, outcome.figures.bytes_received, "{mode}");
        if mode.is_zero_copy() {
            assert_eq!(c.pinned_bytes(), sent, "{mode}: every byte pinned");
            assert_eq!(c.copied_at_send_bytes(), 0, "{mode}");
            // Every pinned byte is copied at delivery exactly once; a retransmitted segment
            // copied again is counted apart, as recopied.
            assert_eq!(c.deferred_copy_bytes, c.pinned_bytes(), "{mode}: {c:?}");
            let fallback = k.fallback_pct().expect("bytes were pinned");
            assert_eq!(fallback, 100.0, "{mode}");
            assert!(
                k.pages_unavailable.is_none(),
                "{mode}: {:?}",
                k.pages_unavailable
            );
            assert!(
                c.deferred_copy_pages >= c.deferred_copy_bytes / 4096,
                "{mode}: {} pages cannot hold {} bytes",
                c.deferred_copy_pages,
                c.deferred_copy_bytes
            );
            assert_eq!(outcome.figures.path.copied_pct(), Some(100.0), "{mode}");
        } else {
            assert_eq!(c.pinned_bytes(), 0, "{mode}");
            assert_eq!(c.copied_at_send_bytes(), sent, "{mode}");
            assert_eq!(c.deferred_copy_bytes, 0, "{mode}");
            assert_eq!(k.fallback_pct(), None, "{mode}");
        }
        if mode == Mode::A3 {
            // Error-queue notifications, kernel side: at least one, at most one per send.
            assert!(c.zc_notifications > 0 && c.zc_notifications <= outcome.figures.path.zc_sends);
        }
    }
}

#[test]
fn a_disagreement_is_reported_not_hidden() {
    // Feed the checker figures that cannot both be true.
    let config = Config::new(Mode::A1, Workload::Stream, 1024, 1);
    let mut figures = netcopy::workload::Figures {
        bytes_sent: 1000,
        bytes_received: 1000,
        ..Default::default()
    };
    figures.path.bytes_sent = 1000;
    let mut kernel = experiment::KernelFigures::default();
    kernel.counters.send_bytes = 999;
    kernel.counters.recv_bytes = 1000;
    kernel.counters.recv_copy_bytes = 1000;
    kernel.counters.tcp_copied_at_send_bytes = 999;
    let found = experiment::cross_check(&config, &figures, &kernel);
    assert!(
        found
            .iter()
            .any(|d| d.contains("send bytes: kernel 999 != userspace 1000")),
        "{found:?}"
    );
}
