//! Parts 1 and 3: netcopy's harness against iperf3, and the copy limit.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::Result;

use super::{
    HARNESS_REPS,
    runs::{PLACEMENTS, netcopy_row, stream_point},
    util::{iperf3_gbps, median, memcpy_gbps, number, range},
};

/// Part 1: netcopy a2 stream against iperf3, interleaved, both placements.
pub fn harness(md: &mut String, netcopy: &Path, scratch: &Path) -> Result<()> {
    // 1. Harness efficiency.
    let _ = writeln!(
        md,
        "## 1. Harness efficiency: netcopy a2 stream vs iperf3 (loopback, untraced, same placement for both)\n"
    );
    let _ = writeln!(
        md,
        "Medians of {HARNESS_REPS} interleaved repetitions; `pair ratios` divides each netcopy run by the iperf3 run right after it (the machine's drift cancels within a pair) and gives their median and range. `split`: netcopy `--placement split`, iperf3 `-A 0,1` (client on CPU 0, server on CPU 1). `same`: netcopy `--client-cpus 0 --server-cpus 0`, iperf3 `-A 0,0`.\n"
    );
    let _ = writeln!(
        md,
        "| placement | size | connections | netcopy Gbit/s (range) | iperf3 Gbit/s (range) | netcopy / iperf3 | pair ratios | target |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for (name, placement, cpus) in PLACEMENTS {
        for size in ["16K", "64K"] {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..HARNESS_REPS {
                let row = netcopy_row(
                    netcopy,
                    &stream_point("1", "a2", size, false, placement),
                    scratch,
                )?;
                ours.push(number(&row, "send_gbps"));
                theirs.push(iperf3_gbps(size, 1, Some(cpus))?);
            }
            let pairs: Vec<f64> = ours.iter().zip(&theirs).map(|(o, t)| o / t).collect();
            let (o_range, t_range, p_range) =
                (range(&ours, 1), range(&theirs, 1), range(&pairs, 2));
            let (o, t, p) = (median(ours), median(theirs), median(pairs));
            let _ = writeln!(
                md,
                "| {name} | {size} | 1 | {o:.2} ({o_range}) | {t:.2} ({t_range}) | {:.2} | {p:.2} ({p_range}) | ≥ 1.0: {} |",
                o / t,
                if o / t >= 1.0 { "met" } else { "missed" }
            );
        }
    }
    let _ = writeln!(md);

    Ok(())
}

/// Untraced throughput and kernel copies per byte (from a traced run) per (mode, size).
pub type Copies = BTreeMap<(String, String), (f64, f64)>;

/// Part 3: one core's memcpy against loopback throughput.
pub fn copy_limit(md: &mut String, copies: &Copies) {
    // 3. The copy limit.
    let _ = writeln!(
        md,
        "## 4. The copy limit: one core's memcpy against loopback throughput\n"
    );
    let _ = writeln!(
        md,
        "Limit = memcpy bandwidth (cache-resident) / kernel copies per byte that mode made (from the traced run: copied at send + deferred + copied to user). Fraction = untraced throughput / limit.\n"
    );
    let _ = writeln!(
        md,
        "| mode | size | memcpy GB/s (in cache) | memcpy GB/s (from memory) | kernel copies per byte | limit Gbit/s | untraced Gbit/s | fraction of limit |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for ((mode, size), (untraced, per_byte)) in copies {
        let bytes = if size == "16K" {
            16 << 10
        } else {
            size.parse().unwrap_or(256)
        };
        let hot = memcpy_gbps(bytes, true);
        let cold = memcpy_gbps(bytes, false);
        let limit = hot * 8.0 / per_byte;
        let _ = writeln!(
            md,
            "| {mode} | {size} | {hot:.1} | {cold:.1} | {per_byte:.2} | {limit:.1} | {untraced:.2} | {:.2} |",
            untraced / limit
        );
    }
}
