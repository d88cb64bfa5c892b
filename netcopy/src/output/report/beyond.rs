//! Beyond the six questions: does any path avoid the copy on one machine? Verdict lines for
//! a5 (sendfile) and for zero-copy receive.

use std::fmt::Write as _;

use super::{fmt_opt, size, verdict_words};
use crate::{output::summary::Summary, stats};

/// `mode`'s stream throughput as a multiple of a1's at one point, with the verdict.
pub(super) fn versus_a1(s: &Summary, mode: &str, size: u64, threads: u32) -> String {
    match (s.gbps(mode, size, threads), s.gbps("a1", size, threads)) {
        (Some(m), Some(a)) => format!(
            "{} times a1's throughput ({})",
            stats::ratio(&m, &a).map_or("–".into(), |r| r.show(2)),
            verdict_words(stats::compare(&m, &a))
        ),
        _ => "throughput not comparable".to_owned(),
    }
}

/// The sending device of a run that left through one (the `nic` paths): per zero-copy mode,
/// what the kernel did with the pinned bytes there, and what the error queue said of it.
fn through_device(o: &mut String, s: &Summary, size_ref: u64, threads: u32) {
    for mode in ["a3", "a4"] {
        let Some(p) = s.point("stream", mode, size_ref, threads) else {
            continue;
        };
        let Some(r) = p.traced.first().filter(|r| r.path.starts_with("nic")) else {
            continue;
        };
        let _ = writeln!(
            o,
            "- {mode} at {} through {} (driver {}: {}): per byte sent, {} pinned, {} copied at delivery, {} copied at transmit; the error queue flagged {} % of the sends copied, an under-report of {} %.",
            size(size_ref),
            r.device,
            r.device_driver,
            r.device_offloads,
            fmt_opt(p.kernel_per_byte(|r| r.k_pinned_bytes), 2),
            fmt_opt(p.kernel_per_byte(|r| r.k_deferred_copy_bytes), 2),
            fmt_opt(p.kernel_per_byte(|r| r.k_copied_at_transmit_bytes), 2),
            fmt_opt(r.zc_copied_pct, 1),
            fmt_opt(r.zc_underreport_pct, 1),
        );
    }
}

/// Verdict lines for a5 (sendfile) and for zero-copy receive, from the traced runs.
pub(super) fn beyond_zero_copy(o: &mut String, s: &Summary) {
    let (size_ref, threads) = (s.reference_size(), s.min_threads());
    through_device(o, s, size_ref, threads);
    match s.point("stream", "a5", size_ref, threads) {
        Some(p) if s.traced() => {
            let ratio = versus_a1(s, "a5", size_ref, threads);
            let _ = writeln!(
                o,
                "- a5 (sendfile) at {}: per byte sent, {} referenced (page-cache pages attached by reference), {} copied at send, {} pinned, {} copied at delivery, {} copied to the receiver: the receive copy is the only one. {ratio}. The data must already be in a file.",
                size(size_ref),
                fmt_opt(p.kernel_per_byte(|r| r.k_referenced_at_send_bytes), 2),
                fmt_opt(p.kernel_per_byte(|r| r.k_copied_at_send_bytes), 2),
                fmt_opt(p.kernel_per_byte(|r| r.k_pinned_bytes), 2),
                fmt_opt(p.kernel_per_byte(|r| r.k_deferred_copy_bytes), 2),
                fmt_opt(p.kernel_per_byte(|r| r.k_recv_copy_bytes), 2),
            );
        }
        _ => {
            let _ = writeln!(o, "- a5 (sendfile) was not traced in this run.");
        }
    }
    // The zero-copy receive probes (or a sweep that received that way throughout).
    let mut mapped_any = false;
    for r in &s.zero_copy_receive {
        let (Some(mapped), Some(copied)) = (r.zc_mapped_bytes, r.zc_copied_bytes) else {
            continue;
        };
        mapped_any = true;
        let received = (mapped + copied).max(1) as f64;
        let why = match (r.mode.as_str(), mapped) {
            (_, m) if m > 0 => "",
            ("a5", _) => ": its fragments are page-cache pages, which the kernel never maps",
            ("a1" | "a2", _) => {
                ": its data sits in page fragments shared with other data, not whole pages"
            }
            _ => ": no fragment was a whole page at offset 0",
        };
        let _ = writeln!(
            o,
            "- {} with zero-copy receive ({} stream, 1 connection): {:.1} % of the bytes received were mapped, {:.1} % copied{why}; both observers agree (`{}`).",
            r.mode,
            size(r.size),
            mapped as f64 * 100.0 / received,
            copied as f64 * 100.0 / received,
            r.checks
        );
    }
    for p in s
        .points
        .iter()
        .filter(|p| p.workload == "stream" && p.size == size_ref)
    {
        let Some(mapped) = p.kernel_per_byte(|r| r.zc_mapped_bytes) else {
            continue;
        };
        mapped_any = true;
        let _ = writeln!(
            o,
            "- {} x{} with zero-copy receive at {}: {:.2} of every byte received was mapped, {} copied (both observers agree: `checks`).",
            p.mode,
            p.threads,
            size(size_ref),
            mapped,
            fmt_opt(p.kernel_per_byte(|r| r.zc_copied_bytes), 2),
        );
    }
    if !mapped_any {
        let _ = writeln!(
            o,
            "- Zero-copy receive was not measured in this run (`--zerocopy-receive`, or the default grid's probes, measure it). On Linux 6.18 the kernel maps only whole, non-compound pages that are not page cache: a1/a2 map nothing, a5 almost nothing, a3/a4 the pages their deferred copy allocated (README)."
        );
    }
}
