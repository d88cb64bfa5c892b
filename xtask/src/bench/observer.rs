//! Part 2: what the observer costs. One CPU, traced against untraced and against the floor
//! (empty programs); the programs' own cost per run; and a traced sweep's untraced rows
//! against a `--no-trace` sweep's, interleaved.

use std::{fmt::Write as _, path::Path};

use anyhow::Result;

use super::{
    OBSERVER_REPS,
    harness::Copies,
    runs::{PLACEMENTS, bench_one, netcopy_row, stream_point},
    util::{interval, median, number, verdict},
};

/// One CPU and split: traced / untraced and floor / untraced per mode at 256 B and 16 KiB.
pub fn tracing_overhead(md: &mut String, netcopy: &Path, scratch: &Path) -> Result<Copies> {
    // 2. Tracing overhead.
    let _ = writeln!(
        md,
        "## 2. Tracing overhead: the same experiment untraced, with empty programs, and traced (stream, 1 connection)\n"
    );
    let _ = writeln!(
        md,
        "Medians of {OBSERVER_REPS} interleaved triples (`bench-one`, no BPF statistics running). `floor`: every program attached but returning at once (`--empty-programs`), the price of entering them at all. `same` pins the whole experiment on CPU 0 (the worst case: no idle core absorbs the probes); `split` puts clients on CPU 0 and servers on CPU 1. `paired`: the mean of each triple's traced / untraced ratio with its 95 % interval (Student's t); one run's throughput here wanders by several per cent, so a ratio near the target is met or missed by noise unless its interval clears it. When the floor's own interval lies below a target, the target says so: no program body, however cheap, can meet it with these hooks.\n"
    );
    let _ = writeln!(
        md,
        "| placement | mode | size | untraced Gbit/s | floor Gbit/s | traced Gbit/s | floor / untraced | traced / untraced | paired (95 %) | target |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    let mut copies = Copies::new();
    for (name, placement, _) in PLACEMENTS {
        for mode in ["a1", "a3"] {
            for (size, target) in [("256", 0.90), ("16K", 0.95)] {
                let (mut off, mut floor, mut on) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..OBSERVER_REPS {
                    off.push(bench_one(netcopy, mode, size, placement, &["--no-trace"])?.gbps);
                    floor.push(
                        bench_one(netcopy, mode, size, placement, &["--empty-programs"])?.gbps,
                    );
                    on.push(bench_one(netcopy, mode, size, placement, &[])?.gbps);
                }
                // Each triple's run over its own untraced run, as a mean with its interval.
                let paired = |runs: &[f64]| {
                    interval(
                        &runs
                            .iter()
                            .zip(&off)
                            .map(|(r, u)| r / u)
                            .collect::<Vec<_>>(),
                    )
                };
                let (mean, half) = paired(&on);
                let (floor_mean, floor_half) = paired(&floor);
                let (u, f, t) = (median(off), median(floor), median(on));
                if name == "same" {
                    let traced = netcopy_row(
                        netcopy,
                        &stream_point("1", mode, size, true, placement),
                        scratch,
                    )?;
                    let per_byte = number(&traced, "copies_per_byte")
                        - number(&traced, "user_copy_bytes") / number(&traced, "bytes_sent");
                    copies.insert((mode.to_owned(), size.to_owned()), (u, per_byte));
                }
                let ratio = t / u;
                let mut verdict = verdict(mean, half, target).to_owned();
                // Attaching alone costing more than the target allows is a different finding
                // from programs that do too much: said, so the reader knows which one it is.
                if floor_mean + floor_half < target {
                    verdict.push_str(&format!(
                        " (the floor, {floor_mean:.3} ± {floor_half:.3}, is below it: no body can meet it)"
                    ));
                }
                let _ = writeln!(
                    md,
                    "| {name} | {mode} | {size} | {u:.2} | {f:.2} | {t:.2} | {:.2} | {ratio:.2} | {mean:.3} ± {half:.3} | {target:.2}: {verdict} |",
                    f / u,
                );
            }
        }
    }
    Ok(copies)
}

/// Each program's runs and cost per run, with empty programs and traced.
pub fn program_costs(md: &mut String, netcopy: &Path) -> Result<()> {
    let _ = writeln!(
        md,
        "\nPer-program cost on one CPU (kernel BPF statistics, `bench-one --program-stats`; the statistics add a clock read to every run, so these include it). Each block first with empty programs (the floor per run), then traced:\n"
    );
    for (mode, size) in [("a1", "256"), ("a3", "16K")] {
        for extra in [&["--empty-programs"][..], &[]] {
            let mut args = vec!["--program-stats"];
            args.extend_from_slice(extra);
            let run = bench_one(netcopy, mode, size, PLACEMENTS[1].1, &args)?;
            let what = if extra.is_empty() {
                "traced"
            } else {
                "empty programs"
            };
            let _ = writeln!(md, "{mode} {size}, {what}:\n```");
            for line in run.program_lines {
                let _ = writeln!(md, "{line}");
            }
            let _ = writeln!(md, "```");
        }
    }
    let _ = writeln!(md);

    Ok(())
}
