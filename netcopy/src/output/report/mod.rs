//! report.md: the run's numbers, and the six analysis questions of the originating assignment
//! answered from them. Every claim is computed from rows, and every comparison is worded from
//! 95 % confidence intervals: a winner is named only when the two intervals do not overlap;
//! otherwise the two are "indistinguishable on this machine". Speed figures come from untraced
//! timing runs, the kernel's accounting from traced runs (see [`super::summary`]).

use std::fmt::Write as _;

use super::{
    plots::PlotSet,
    summary::{Point, Summary},
};
use crate::{
    row::Row,
    stats::{Estimate, Verdict},
    units::format_size,
};

/// The two interval widths the report states shares for, ± % at 95 %.
pub(super) const LOOSE_PCT: f64 = 5.0;
pub(super) const TIGHT_PCT: f64 = 2.5;

pub(super) fn size(s: u64) -> String {
    format_size(s as usize)
}

pub(super) fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.digits$}"))
}

pub(super) fn show(e: Option<Estimate>, digits: usize) -> String {
    e.map_or("–".to_owned(), |e| e.show(digits))
}

/// "beats", "loses to" or "is indistinguishable from", for `a` against `b` where higher is
/// better.
pub(super) fn verdict_words(v: Verdict) -> &'static str {
    match v {
        Verdict::Higher => "faster",
        Verdict::Lower => "slower",
        Verdict::Indistinguishable => "indistinguishable on this machine",
    }
}

/// What the report states about the machine.
pub struct Machine {
    pub kernel: String,
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
}

impl Machine {
    pub fn detect() -> Self {
        use procfs::Current as _;
        let cpu = procfs::CpuInfo::current()
            .ok()
            .and_then(|c| Some(c.model_name(0)?.trim().to_owned()))
            .unwrap_or_else(|| "unknown".to_owned());
        let memory = procfs::Meminfo::current().map_or("unknown".to_owned(), |m| {
            format!("{:.1} GiB", m.mem_total as f64 / (1u64 << 30) as f64)
        });
        Self {
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory,
        }
    }
}

/// Header: the run, the machine, the placement and how the figures were taken.
pub fn header(o: &mut String, s: &Summary, run: &str, machine: &Machine, command: &str) {
    let _ = writeln!(o, "# netcopy report: run {run}\n");
    let _ = writeln!(o, "Command: `{command}`\n");
    let _ = writeln!(
        o,
        "Machine: Linux {}, **{}** ({} CPUs), {} memory. Figures from one machine do not carry over to another CPU model: compare modes within this run.\n",
        machine.kernel, machine.cpu, machine.cores, machine.memory
    );
    let timing: usize = s.points.iter().map(|p| p.timing.len()).sum();
    let traced: usize = s.points.iter().map(|p| p.traced.len()).sum();
    let _ = writeln!(
        o,
        "{} grid points: {timing} timing runs and {traced} traced runs finished, {} failed.",
        s.points.len(),
        s.failed.len()
    );
    // One line per policy, with every CPU either side used under it.
    let mut placements: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for r in s.rows() {
        let cpus = placements.entry(r.placement.as_str()).or_default();
        cpus.extend(r.client_cpus.split(' ').chain(r.server_cpus.split(' ')));
    }
    let placements: Vec<String> = placements
        .into_iter()
        .map(|(policy, mut cpus)| {
            cpus.sort_unstable_by_key(|c| c.parse::<usize>().unwrap_or(usize::MAX));
            cpus.dedup();
            format!("`{policy}` on CPU {}", cpus.join(" "))
        })
        .collect();
    if !placements.is_empty() {
        let _ = writeln!(
            o,
            "Placement: {} (each row's `client_cpus` and `server_cpus` say which CPUs each side used).",
            placements.join("; ")
        );
    }
    if s.speed_traced() {
        let _ = writeln!(
            o,
            "\n**Every repetition was traced (`--trace-all`): the speed figures below include the observer's cost.**"
        );
    } else {
        let _ = writeln!(
            o,
            "Speed figures (throughput, round trips, CPU time, perf counters) are means of the untraced timing runs with their 95 % confidence intervals (±); the kernel's accounting comes from the traced runs, never the other way round."
        );
    }
}

/// What this machine could and could not measure.
pub fn measured(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "\n## What was and was not measured\n");
    let _ = writeln!(
        o,
        "- Kernel copy accounting (eBPF): {}",
        if s.speed_traced() {
            "measured in every run (`--trace-all`)"
        } else if s.traced() {
            "measured in one traced run per point"
        } else {
            "not measured (the run was not traced)"
        }
    );
    if let Some(note) = s
        .points
        .iter()
        .flat_map(|p| &p.traced)
        .map(|r| r.k_note.clone())
        .find(|n| !n.is_empty())
    {
        // k_note says why a column is empty, which part of a figure was inferred, or which
        // mechanism fed it: not only empty cells.
        let _ = writeln!(
            o,
            "- Note on the kernel figures (first traced run with one): {note}"
        );
    }
    let hardware = match s.hw_unavailable() {
        _ if s.rows().next().is_none() => "not measured (no experiment finished)".to_owned(),
        Some(why) => format!("not measured: {why}"),
        None => "measured".to_owned(),
    };
    let _ = writeln!(
        o,
        "- Hardware counters (cycles, instructions, cache misses): {hardware}"
    );
    let software = if s.rows().any(|r| r.client_task_clock_ms.is_some()) {
        "measured per side"
    } else {
        "not measured (perf_event_open refused them; see kernel.perf_event_paranoid)"
    };
    let _ = writeln!(
        o,
        "- Software counters (task clock, context switches, migrations, page faults): {software}"
    );
    let cpu = if s.rows().any(|r| r.cpu_ns_per_byte.is_some()) {
        "measured (busy time of the experiment's CPUs in /proc/stat, softirq and ksoftirqd included)"
    } else {
        "not measured (/proc/stat unreadable)"
    };
    let _ = writeln!(o, "- CPU time per byte: {cpu}");
}

/// A stream figure per size (rows) and mode (columns), at the fewest connections.
pub(super) fn stream_table(
    o: &mut String,
    s: &Summary,
    digits: usize,
    f: impl Fn(&Row) -> Option<f64>,
) {
    let threads = s.min_threads();
    let modes = s.modes();
    let _ = writeln!(o, "| size | {} |", modes.join(" | "));
    let _ = writeln!(o, "|---|{}", "---|".repeat(modes.len()));
    for sz in s.sizes() {
        let cells: Vec<String> = modes
            .iter()
            .map(|m| {
                show(
                    s.point("stream", m, sz, threads).and_then(|p| p.speed(&f)),
                    digits,
                )
            })
            .collect();
        let _ = writeln!(o, "| {} | {} |", size(sz), cells.join(" | "));
    }
}

/// Throughput, round trips and CPU cost per byte, each with its interval.
pub fn speed(o: &mut String, s: &Summary) {
    let threads = s.min_threads();
    if s.has_workload("stream") {
        let _ = writeln!(
            o,
            "\n## Throughput (stream, {threads} connection(s), Gbit/s, mean ± 95 % CI)\n"
        );
        stream_table(o, s, 2, |r| r.send_gbps);
        let _ = writeln!(
            o,
            "\n## CPU time per byte (stream, {threads} connection(s), ns per byte sent, mean ± 95 % CI)\n"
        );
        let _ = writeln!(
            o,
            "Busy time of every CPU the experiment ran on (user, system, irq and softirq: the kernel's copies and loopback's protocol work included) over the window, per payload byte sent; netperf's service demand in µs/KB is this × 1.024.\n"
        );
        stream_table(o, s, 3, |r| r.cpu_ns_per_byte);
    }
    if s.has_workload("rr") {
        let size_ref = s.reference_size();
        let _ = writeln!(
            o,
            "\n## Round trip (rr, {}, median round trip in µs, mean ± 95 % CI over runs)\n",
            size(size_ref)
        );
        let modes = s.modes();
        let _ = writeln!(o, "| connections | {} |", modes.join(" | "));
        let _ = writeln!(o, "|---|{}", "---|".repeat(modes.len()));
        for t in s.thread_counts() {
            let cells: Vec<String> = modes
                .iter()
                .map(|m| {
                    show(
                        s.point("rr", m, size_ref, t)
                            .and_then(|p| p.speed(|r| r.rtt_p50_us)),
                        1,
                    )
                })
                .collect();
            let _ = writeln!(o, "| {t} | {} |", cells.join(" | "));
        }
    }
}

/// Where the kernel copied, from the traced runs.
pub fn kernel(o: &mut String, s: &Summary) {
    let size_ref = s.reference_size();
    let threads = s.min_threads();
    let _ = writeln!(
        o,
        "\n## Where the kernel copied ({} stream, {threads} connection(s), bytes per byte sent, traced runs)\n",
        size(size_ref)
    );
    if !s.traced() {
        let _ = writeln!(
            o,
            "Not measured: the run was not traced, so the kernel counted nothing."
        );
        return;
    }
    let _ = writeln!(
        o,
        "| mode | user copy | copied at send | pinned | referenced (page cache) | deferred copy | copied to user | fallback % | checks |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    for m in s.modes() {
        let Some(p) = s.point("stream", &m, size_ref, threads) else {
            continue;
        };
        let per = |f: fn(&Row) -> Option<u64>| fmt_opt(p.kernel_per_byte(f), 2);
        let _ = writeln!(
            o,
            "| {m} | {} | {} | {} | {} | {} | {} | {} | {} |",
            per(|r| r.user_copy_bytes),
            per(|r| r.k_copied_at_send_bytes),
            per(|r| r.k_pinned_bytes),
            per(|r| r.k_referenced_at_send_bytes),
            per(|r| r.k_deferred_copy_bytes),
            per(|r| r.k_recv_copy_bytes),
            fmt_opt(p.kernel(|r| r.k_fallback_pct), 1),
            p.checks().unwrap_or_else(|| "not traced".into()),
        );
    }
}

/// What the observer costs each point: traced throughput over the untraced mean, with its
/// interval, and whether the kernel showed the untraced runs unobserved.
pub fn observer(o: &mut String, s: &Summary) {
    if s.speed_traced() || !s.traced() {
        return;
    }
    let _ = writeln!(
        o,
        "\n## The observer's cost (traced throughput / untraced mean, every point)\n"
    );
    let (unobserved, untraced) = s
        .points
        .iter()
        .map(Point::unobserved_runs)
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    let _ = writeln!(
        o,
        "One traced run per point against its untraced timing runs, which ran with every netcopy program detached: the kernel's link list showed none attached in {unobserved} of {untraced} untraced runs (`attached_programs`). Below 1.00 the eBPF programs slowed the experiment; the 95 % interval takes the traced run as one more draw with the untraced runs' spread, so an interval that holds 1.00 shows no cost this machine can see. `observer %` is the programs' own run time as a share of the experiment's CPU time, over the traced run's warmup: the kernel's BPF statistics that time them add two clock reads to every program run (at 256 B they took a1 on one CPU from 0.80 to 0.66 of its untraced speed), so they are on only then, and the traced throughput above is measured without them.\n"
    );
    let modes = s.modes();
    let _ = writeln!(
        o,
        "| workload | size | connections | {} | observer % ({}) |",
        modes.join(" | "),
        modes.join(", ")
    );
    let _ = writeln!(o, "|---|---|---|{}---|", "---|".repeat(modes.len()));
    for w in ["stream", "rr"] {
        for sz in s.sizes() {
            for t in s.thread_counts() {
                let points: Vec<Option<&Point>> =
                    modes.iter().map(|m| s.point(w, m, sz, t)).collect();
                if points.iter().all(Option::is_none) {
                    continue;
                }
                let ratios: Vec<String> = points
                    .iter()
                    .map(|p| observer_cell(p.and_then(Point::observer_estimate)))
                    .collect();
                let shares: Vec<String> = points
                    .iter()
                    .map(|p| fmt_opt(p.and_then(|p| p.kernel(|r| r.observer_pct)), 1))
                    .collect();
                let _ = writeln!(
                    o,
                    "| {w} | {} | {t} | {} | {} |",
                    size(sz),
                    ratios.join(" | "),
                    shares.join(", ")
                );
            }
        }
    }
}

/// `0.71 (0.66–0.77)`: the ratio and its 95 % interval.
fn observer_cell(e: Option<Estimate>) -> String {
    match e {
        Some(e) if e.half_width.is_finite() => {
            format!("{:.2} ({:.2}–{:.2})", e.mean, e.low(), e.high())
        }
        Some(e) => format!("{:.2} (one run)", e.mean),
        None => "–".to_owned(),
    }
}

mod beyond;
mod confidence;
mod questions;
#[cfg(test)]
mod sentences;
#[cfg(test)]
mod tests;

pub use confidence::{confidence, confidence_shares};
pub use questions::{crossover, lone_round_trip, questions};

/// The plots drawn, as images, and one sentence for each plot left out.
pub fn plots(o: &mut String, plots: &PlotSet) {
    let _ = writeln!(o, "\n## Plots\n");
    for p in &plots.drawn {
        let _ = writeln!(o, "![{}](plots/{}.png)\n", p.title, p.file);
    }
    for p in &plots.omitted {
        let _ = writeln!(o, "{}\n", p.sentence());
    }
}

/// The whole report.
pub fn render(
    s: &Summary,
    run: &str,
    machine: &Machine,
    plot_set: &PlotSet,
    command: &str,
) -> String {
    let mut o = String::new();
    header(&mut o, s, run, machine, command);
    confidence(&mut o, s);
    measured(&mut o, s);
    speed(&mut o, s);
    kernel(&mut o, s);
    questions(&mut o, s, machine);
    observer(&mut o, s);
    plots(&mut o, plot_set);
    o
}
