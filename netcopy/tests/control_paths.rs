//! The same instruments on the two control paths netcopy builds in private namespaces: TCP
//! over veth into another namespace (every pinned byte is still copied at delivery) and UDP
//! out of an ifb sink (no delivery, so the pinned pages are never copied: 0 % fallback).

mod common;

use std::{sync::Mutex, time::Duration};

use netcopy::{
    Error, experiment,
    netpath::{NetPath, Network},
    workload::{Config, Mode, Prepared, Workload},
};

/// The probes are global: two experiments at once could each count the other's ports.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn run_path(path: NetPath, test: &str) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut tracer) = common::tracer_or_skip(test) else {
        return;
    };
    let network = Network::create(path).expect("building the control path");
    for (slot, mode) in Mode::ALL.into_iter().enumerate() {
        if mode == Mode::A5 && path.is_sink() {
            // sendfile is measured on TCP; the sink is UDP (refused: see bad input).
            continue;
        }
        let mut config = Config::new(mode, Workload::Stream, 16 << 10, 2);
        config.warmup = Duration::from_millis(100);
        config.duration = Duration::from_millis(400);
        let prepared = Prepared::bind_on(config, &network).expect("bind");
        let outcome = match experiment::run(prepared, Some(&mut tracer), slot as u32) {
            Ok(outcome) => outcome,
            Err(e @ Error::Unavailable { .. }) if !common::in_ci() => {
                eprintln!("SKIPPED {path} {mode}: {e}");
                continue;
            }
            Err(e) => panic!("{path} {mode}: {e}"),
        };
        assert_eq!(outcome.config.net_path, path);
        let k = outcome.kernel.as_ref().expect("traced");
        let c = &k.counters;
        let sent = outcome.figures.bytes_sent;
        assert!(sent > 0, "{path} {mode}");
        assert_eq!(outcome.checks(), "ok", "{path} {mode}: {c:?}");
        if mode.is_zero_copy() {
            assert_eq!(c.pinned_bytes(), sent, "{path} {mode}: every byte pinned");
            let expected = path.expected_fallback_pct().expect("a local path");
            assert_eq!(k.fallback_pct(), Some(expected), "{path} {mode}: {c:?}");
            assert_eq!(
                outcome.figures.send_counts.copied_pct(),
                Some(expected),
                "{path} {mode}: notifications"
            );
        } else if mode == Mode::A5 {
            // Page-cache pages by reference: no user page to copy at delivery either.
            assert_eq!(c.tcp_referenced_at_send_bytes, sent, "{path} {mode}: {c:?}");
            assert_eq!(
                c.copied_at_send_bytes() + c.pinned_bytes(),
                0,
                "{path} {mode}"
            );
            assert_eq!(c.deferred_copy_bytes, 0, "{path} {mode}");
        } else {
            assert_eq!(c.copied_at_send_bytes(), sent, "{path} {mode}");
            assert_eq!(c.pinned_bytes(), 0, "{path} {mode}");
        }
    }
}

#[test]
fn veth_copies_pinned_bytes_at_delivery() {
    run_path(NetPath::Veth, "veth_copies_pinned_bytes_at_delivery");
}

#[test]
fn ifb_sink_keeps_the_zero_copy_promise() {
    run_path(NetPath::IfbSink, "ifb_sink_keeps_the_zero_copy_promise");
}
