//! The NIC paths' machinery on any machine: a veth pair, made in a private namespace of this
//! test's own, stands in for two NICs joined back to back. netcopy takes it, turns
//! scatter-gather off on the sender (`nic-no-sg`), counts the copies at transmit, and gives
//! the pair back. (A veth pair with scatter-gather delivers to a local socket, which copies
//! at delivery: only `nic-no-sg` is held here; the real driver path is `tests/nic_path.rs`, in
//! a guest.)

mod common;

use std::time::Duration;

use netcopy::{
    experiment, netns,
    netpath::{NICS_ENV, NetPath, Network},
    workload::{Config, Mode, Prepared, Workload},
};

#[test]
fn nic_no_sg_over_a_veth_pair_copies_pinned_bytes_at_transmit() {
    let test = "nic_no_sg_over_a_veth_pair_copies_pinned_bytes_at_transmit";
    let Some(mut tracer) = common::tracer_or_skip(test) else {
        return;
    };
    // A namespace of this thread's own, holding a spare pair: nothing of the machine's.
    if let Err(e) = netns::enter_private() {
        assert!(!common::in_ci(), "{test}: {e}");
        eprintln!("SKIPPED {test}: {e}");
        return;
    }
    netns::ip(&[
        "link", "add", "nc-nic0", "type", "veth", "peer", "name", "nc-nic1",
    ])
    .expect("a veth pair");
    // SAFETY: this binary's only test; no other thread reads the environment.
    unsafe { std::env::set_var(NICS_ENV, "nc-nic0 nc-nic1") };
    let network = Network::create(NetPath::NicNoSg).expect("taking the pair");
    for (slot, mode) in [Mode::A3, Mode::A4, Mode::A1].into_iter().enumerate() {
        let mut config = Config::new(mode, Workload::Stream, 16 << 10, 1);
        config.warmup = Duration::from_millis(100);
        config.duration = Duration::from_millis(400);
        let prepared = Prepared::bind_on(config, &network).expect("bind");
        let o = experiment::run(prepared, Some(&mut tracer), slot as u32).expect("run");
        let device = o.config.device.as_ref().expect("the sender is read");
        assert_eq!(
            (device.name.as_str(), device.driver.as_str()),
            ("nc-nic0", "veth")
        );
        assert!(!device.offloads.scatter_gather, "{device:?}");
        let k = o.kernel.as_ref().expect("traced");
        let c = &k.counters;
        let sent = o.figures.bytes_sent;
        assert!(sent > 0, "{mode}");
        assert_eq!(o.checks(), "ok", "{mode}: {c:?}");
        assert_eq!(
            c.deferred_copy_bytes, 0,
            "{mode}: the copies are linear: {c:?}"
        );
        // Every byte left copied, at least once (a retransmission is copied again).
        let at_transmit = k.copied_at_transmit_bytes().expect("a tracepoint feeds it");
        assert!(at_transmit >= sent, "{mode}: {at_transmit} < {sent}");
        if mode.is_zero_copy() {
            assert_eq!(c.pinned_bytes(), sent, "{mode}: pinned = sent");
            let copied_pct = o.figures.send_counts.copied_pct().expect("completions");
            assert_eq!(
                k.underreport_pct(mode, Some(copied_pct)),
                Some(100.0 - copied_pct),
                "{mode}"
            );
        } else {
            assert_eq!(c.copied_at_send_bytes(), sent, "{mode}");
        }
    }
    drop(network);
    // Given back to this namespace, scatter-gather on again.
    let back = netcopy::device::device("nc-nic0").expect("nc-nic0 is back");
    assert!(back.offloads.scatter_gather, "{back:?}");
    netcopy::device::device("nc-nic1").expect("nc-nic1 is back");
}
