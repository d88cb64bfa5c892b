//! The cross-checks: what both observers saw compared figure by figure, and what the
//! kernel's figures hold by themselves.

use super::{FALLBACK_TOLERANCE_PP, KernelFigures, PAGES_PROGRAM};
use crate::workload::{Config, Figures, Mode};

/// Compares what both observers saw. Every figure both can see must agree.
pub fn cross_check(config: &Config, f: &Figures, k: &KernelFigures) -> Vec<String> {
    let mut out = Vec::new();
    send_checks(&mut out, config, f, k);
    receive_checks(&mut out, f, k);
    pinning_checks(&mut out, config, f, k);
    out.extend(classification_check(k, f.bytes_sent, false));
    out.extend(kernel_checks(k));
    out
}

/// A disagreement when the kernel's figure differs from userspace's. A figure no hook could
/// see is not compared: its cell is empty, with the reason.
fn expect(out: &mut Vec<String>, name: &str, kernel: Option<u64>, user: u64) {
    if let Some(kernel) = kernel
        && kernel != user
    {
        out.push(format!("{name}: kernel {kernel} != userspace {user}"));
    }
}

/// Send calls and bytes, as the sender and the send hooks counted them.
fn send_checks(out: &mut Vec<String>, config: &Config, f: &Figures, k: &KernelFigures) {
    let c = &k.counters;
    if config.mode == Mode::A5 {
        // sendfile moves the file through a pipe of 16 pages: one socket send per pipe-full,
        // so one call can be several in the kernel, but never more than the pages it spans.
        let most = f.send_counts.send_calls * (config.size.div_ceil(4096) as u64 + 1);
        if let Some(kernel) = k.figure("k_send_calls", c.send_calls)
            && !(f.send_counts.send_calls..=most).contains(&kernel)
        {
            out.push(format!(
                "send calls: kernel {kernel} outside {}..={most} for {} sendfile calls",
                f.send_counts.send_calls, f.send_counts.send_calls
            ));
        }
    }
    expect(
        out,
        "send bytes",
        k.figure("k_send_bytes", c.send_bytes),
        f.bytes_sent,
    );
    if config.mode != Mode::A5 {
        expect(
            out,
            "send calls",
            k.figure("k_send_calls", c.send_calls),
            f.send_counts.send_calls,
        );
    }
}

/// Received and copied bytes, as the receiver and the receive hooks counted them.
fn receive_checks(out: &mut Vec<String>, f: &Figures, k: &KernelFigures) {
    let c = &k.counters;
    match &f.zc_receive {
        // Zero-copy receive: only the bytes read with `read` pass a receive call; the copies
        // (those reads and the sub-page tails) pass the copy hook; the rest was mapped, which
        // no hook sees, so the kernel's side of it is its own count of bytes received (TCP_INFO)
        // less the copies its hook saw.
        Some(zc) => {
            expect(
                out,
                "receive bytes (read calls)",
                k.figure("k_recv_bytes", c.recv_bytes),
                zc.read_bytes,
            );
            expect(
                out,
                "receive copy bytes",
                k.recv_copy_bytes(),
                zc.copied_bytes,
            );
            expect(
                out,
                "mapped bytes",
                k.recv_copy_bytes()
                    .map(|copied| zc.tcp_bytes_received.saturating_sub(copied)),
                zc.mapped_bytes,
            );
            expect(
                out,
                "mapped + copied bytes",
                Some(zc.mapped_bytes + zc.copied_bytes),
                f.bytes_received,
            );
        }
        None => {
            expect(
                out,
                "receive bytes",
                k.figure("k_recv_bytes", c.recv_bytes),
                f.bytes_received,
            );
            expect(
                out,
                "receive copy bytes",
                k.recv_copy_bytes(),
                f.bytes_received,
            );
        }
    }
}

/// Zero-copy modes: the kernel's fallback against the error queue's copied share; copying
/// modes: nothing pinned.
fn pinning_checks(out: &mut Vec<String>, config: &Config, f: &Figures, k: &KernelFigures) {
    if config.mode.is_zero_copy()
        && !k.mixed_outcomes()
        && !k.copied_pinned_at_transmit()
        && k.seen("k_fallback_pct")
    {
        match (k.fallback_pct(), f.send_counts.copied_pct()) {
            (Some(kernel), Some(user)) if (kernel - user).abs() > FALLBACK_TOLERANCE_PP => out
                .push(format!(
                    "fallback: kernel {kernel:.1} % != error-queue copied {user:.1} %"
                )),
            (None, Some(user)) => out.push(format!(
                "fallback: kernel saw no pinned bytes, error queue says {user:.1} % copied"
            )),
            _ => {}
        }
    } else if !config.mode.is_zero_copy() {
        expect(
            out,
            "pinned bytes of a copying mode",
            k.figure("k_pinned_bytes", k.counters.pinned_bytes()),
            0,
        );
    }
}

/// The checks the kernel's figures hold by themselves, wherever two of its observers see the
/// same thing: every event counted, every program run, the deferred copy's pages seen against
/// the pages its bytes require, and every sent byte classified exactly once. The sweep runs
/// them with its userspace comparisons ([`cross_check`]); `netcopy trace`, which has no
/// userspace figures, runs them alone.
pub fn kernel_checks(k: &KernelFigures) -> Vec<String> {
    let c = &k.counters;
    let mut out = Vec::new();
    // A probe that saw an event and could not count it makes every figure suspect.
    if k.skipped_events() > 0 {
        out.push(format!(
            "events the probes could not count: {}",
            k.skipped_note()
        ));
    }
    // A run the kernel skipped (the program was already running on that CPU, interrupted) is
    // an event no counter saw: a total with a missed run behind it is not a total.
    let runs: Vec<String> = k
        .missed_runs
        .iter()
        .filter(|(p, _)| p != PAGES_PROGRAM)
        .map(|(p, n)| format!("{p}: {n}"))
        .collect();
    if !runs.is_empty() {
        out.push(format!(
            "program runs the kernel skipped: {}",
            runs.join(", ")
        ));
    }
    // Every page skb_copy_ubufs had to allocate for the pinned skbs delivered was seen
    // allocated under it, and no other; short by no more than the page program's own runs
    // the kernel skipped (it counts them: `recursion_misses`).
    let skipped_pages = k
        .missed_runs
        .iter()
        .find(|(p, _)| p == PAGES_PROGRAM)
        .map_or(0, |(_, n)| *n);
    let required = c.deferred_copy_pages_required;
    if let Some(observed) = k.deferred_copy_pages()
        && k.seen("k_deferred_copy_pages_required")
        && !(observed <= required && required - observed <= skipped_pages)
    {
        out.push(format!(
            "deferred-copy pages: observed {observed} != required {required} ({PAGES_PROGRAM} skipped {skipped_pages} runs)"
        ));
    }
    out
}

/// Each sent byte classified once: copied + pinned + referenced = `sent`, the userspace count
/// in the sweep. `netcopy trace` has only the kernel's count of bytes sent, and adds in the
/// bytes counted as unclassified (`with_unclassified`: TCP send calls `tcp_sendmsg_locked`
/// never decided, shown in `k_unclassified_send_bytes`).
pub fn classification_check(
    k: &KernelFigures,
    sent: u64,
    with_unclassified: bool,
) -> Option<String> {
    let c = &k.counters;
    let mut classified =
        c.copied_at_send_bytes() + c.pinned_bytes() + c.tcp_referenced_at_send_bytes;
    if with_unclassified {
        classified += c.unclassified_send_bytes;
    }
    let side = if with_unclassified {
        "kernel sent"
    } else {
        "userspace"
    };
    (k.seen("k_pinned_bytes") && classified != sent)
        .then(|| format!("classified send bytes: kernel {classified} != {side} {sent}"))
}

/// Every byte a receiver consumed, by the kernel's own count, was copied to user or mapped:
/// copied + mapped = consumed, so no more can have been copied than consumed. `netcopy trace`
/// runs it on every row; the sweep compares the receive side with its own userspace figures.
pub fn consumed_check(k: &KernelFigures) -> Option<String> {
    let (consumed, copied) = (k.recv_consumed_bytes()?, k.recv_copy_bytes()?);
    (copied > consumed).then(|| {
        format!(
            "receive: copied to user {copied} > consumed {consumed} (copied + mapped must equal consumed)"
        )
    })
}
