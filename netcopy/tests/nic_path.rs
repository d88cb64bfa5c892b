//! Zero-copy through a NIC driver (the `nic` paths): two NICs joined back to back, named in
//! `NETCOPY_NICS`, as `cargo xtask vm --nic-pair` gives a guest (`cargo xtask vm -- test
//! nic_path` with `--nic-pair`, or the NIC guest suite of `cargo xtask test --guest`). Where no
//! pair is named the tests say so and do nothing: a machine's own NICs are never taken.

mod common;

use std::{sync::Mutex, time::Duration};

use netcopy::{
    experiment::{self, Outcome},
    netpath::{NICS_ENV, NetPath, Network},
    workload::{Config, Mode, Prepared, Workload},
};

/// The probes are global: two experiments at once could each count the other's ports.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `modes` over `path`, 16 KiB stream, one connection, traced; None when this machine
/// has no NIC pair or cannot trace (outside CI).
fn run(path: NetPath, modes: &[Mode], test: &str) -> Option<Vec<Outcome>> {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if path != NetPath::Loopback && std::env::var_os(NICS_ENV).is_none() {
        eprintln!(
            "SKIPPED {test}: no NIC pair named in {NICS_ENV} (run it in a guest with --nic-pair)"
        );
        return None;
    }
    let mut tracer = common::tracer_or_skip(test)?;
    // Loopback too: its 0 copied at transmit is one of the figures compared.
    tracer.count_copied_at_transmit_on_every_path(true);
    let network = Network::create(path).expect("building the NIC path");
    let outcomes = modes
        .iter()
        .enumerate()
        .map(|(slot, &mode)| {
            let mut config = Config::new(mode, Workload::Stream, 16 << 10, 1);
            config.warmup = Duration::from_millis(200);
            config.duration = Duration::from_millis(800);
            let prepared = Prepared::bind_on(config, &network).expect("bind");
            let outcome = experiment::run(prepared, Some(&mut tracer), slot as u32)
                .unwrap_or_else(|e| panic!("{path} {mode}: {e}"));
            assert_eq!(outcome.config.net_path, path);
            outcome
        })
        .collect();
    Some(outcomes)
}

/// With scatter-gather, a3 and a4 keep their promise through the driver: every byte pinned,
/// none copied at delivery or at transmit, no completion flagged copied.
#[test]
fn zero_copy_through_a_nic_driver_copies_nothing() {
    let test = "zero_copy_through_a_nic_driver_copies_nothing";
    let Some(outcomes) = run(NetPath::Nic, &[Mode::A3, Mode::A4, Mode::A1], test) else {
        return;
    };
    for o in &outcomes {
        let mode = o.config.mode;
        let device = o.config.device.as_ref().expect("the NIC is read");
        assert!(device.offloads.scatter_gather, "{device:?}");
        assert!(!device.driver.is_empty(), "{device:?}");
        let k = o.kernel.as_ref().expect("traced");
        let c = &k.counters;
        let sent = o.figures.bytes_sent;
        assert!(sent > 0, "{mode}");
        assert_eq!(o.checks(), "ok", "{mode}: {c:?}");
        assert_eq!(k.copied_at_transmit_bytes(), Some(0), "{mode}: {c:?}");
        assert_eq!(c.deferred_copy_bytes, 0, "{mode}: {c:?}");
        if mode.is_zero_copy() {
            assert_eq!(c.pinned_bytes(), sent, "{mode}: pinned = sent");
            assert_eq!(k.fallback_pct(), Some(0.0), "{mode}: {c:?}");
            assert_eq!(o.figures.send_counts.copied_pct(), Some(0.0), "{mode}");
            assert_eq!(k.underreport_pct(mode, Some(0.0)), Some(0.0), "{mode}");
        } else {
            assert_eq!(c.copied_at_send_bytes(), sent, "{mode}");
        }
    }
}

/// Without scatter-gather on the sending NIC every pinned byte is copied at transmit (software
/// GSO or linearisation), nothing at delivery, and the error queue flags fewer sends copied
/// than were: the row's under-report is exactly the rest.
#[test]
fn without_scatter_gather_pinned_bytes_are_copied_at_transmit() {
    let test = "without_scatter_gather_pinned_bytes_are_copied_at_transmit";
    let Some(outcomes) = run(NetPath::NicNoSg, &[Mode::A3], test) else {
        return;
    };
    let o = &outcomes[0];
    let device = o.config.device.as_ref().expect("the NIC is read");
    assert!(!device.offloads.scatter_gather, "{device:?}");
    let k = o.kernel.as_ref().expect("traced");
    let c = &k.counters;
    let sent = o.figures.bytes_sent;
    assert_eq!(o.checks(), "ok", "{c:?}");
    assert_eq!(c.pinned_bytes(), sent, "pinned = sent");
    assert_eq!(c.deferred_copy_bytes, 0, "{c:?}");
    // Every byte left at least once, copied; a retransmission is copied again.
    assert!(
        k.copied_at_transmit_bytes().is_some_and(|b| b >= sent),
        "{c:?}"
    );
    let copied_pct = o.figures.send_counts.copied_pct().expect("completions");
    assert_eq!(
        k.underreport_pct(Mode::A3, Some(copied_pct)),
        Some(100.0 - copied_pct)
    );
}

/// The same instruments over loopback in the same machine: every pinned byte copied at
/// delivery (100 %), nothing at transmit.
#[test]
fn loopback_copies_every_pinned_byte_at_delivery() {
    let test = "loopback_copies_every_pinned_byte_at_delivery";
    let Some(outcomes) = run(NetPath::Loopback, &[Mode::A3], test) else {
        return;
    };
    let o = &outcomes[0];
    let k = o.kernel.as_ref().expect("traced");
    assert_eq!(o.checks(), "ok", "{:?}", k.counters);
    assert_eq!(k.counters.pinned_bytes(), o.figures.bytes_sent);
    assert_eq!(k.fallback_pct(), Some(100.0), "{:?}", k.counters);
    assert_eq!(k.copied_at_transmit_bytes(), Some(0), "{:?}", k.counters);
}
