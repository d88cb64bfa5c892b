//! report.md: the run's numbers, and the six analysis questions of the originating assignment
//! answered from them. Every claim is computed from rows, and every comparison is worded from
//! 95 % confidence intervals: a winner is named only when the two intervals do not overlap;
//! otherwise the two are "indistinguishable on this machine". Speed figures come from untraced
//! timing runs, the kernel's accounting from traced runs (see [`super::summary`]).

use std::fmt::Write as _;

use super::summary::{Point, Summary};
use crate::{
    row::Row,
    stats::{self, Estimate, Verdict},
    units::format_size,
};

/// The two interval widths the report states shares for, ± % at 95 %.
const LOOSE_PCT: f64 = 5.0;
const TIGHT_PCT: f64 = 2.5;

fn size(s: u64) -> String {
    format_size(s as usize)
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.digits$}"))
}

fn show(e: Option<Estimate>, digits: usize) -> String {
    e.map_or("–".to_owned(), |e| e.show(digits))
}

/// "beats", "loses to" or "is indistinguishable from", for `a` against `b` where higher is
/// better.
fn verdict_words(v: Verdict) -> &'static str {
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
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or("unknown".to_owned(), |s| s.trim().to_owned());
        let memory = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or("unknown".to_owned(), |kb| {
                format!("{:.1} GiB", kb as f64 / 1048576.0)
            });
        Self {
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
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

/// How many points reached each interval width, and which did not converge.
pub fn confidence(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "\n## Confidence\n");
    let (loose, n) = s.converged_share(LOOSE_PCT);
    let (tight, _) = s.converged_share(TIGHT_PCT);
    if n == 0 {
        let _ = writeln!(o, "No timing runs finished: nothing to state.");
        return;
    }
    let pct = |k: usize| k as f64 * 100.0 / n as f64;
    let target = s.points.iter().find_map(|p| p.target_pct);
    let _ = writeln!(
        o,
        "Of {n} points, **{loose} ({:.0} %) are within ±{LOOSE_PCT} %** and **{tight} ({:.0} %) within ±{TIGHT_PCT} %** of their mean at 95 % confidence (primary figure: stream throughput, rr median round trip){}.",
        pct(loose),
        pct(tight),
        target.map_or(String::new(), |t| format!("; the sweep aimed for ±{t} %"))
    );
    let mut short: Vec<(f64, &Point)> = s
        .points
        .iter()
        .filter(|p| !p.within(target.unwrap_or(TIGHT_PCT)))
        .map(|p| (p.primary().map_or(f64::INFINITY, |e| e.relative_pct()), p))
        .collect();
    short.sort_by(|a, b| b.0.total_cmp(&a.0));
    if short.is_empty() {
        let _ = writeln!(o, "Every point converged.");
        return;
    }
    let _ = writeln!(
        o,
        "\nNot converged ({}; widest first): {}.",
        short.len(),
        short
            .iter()
            .map(|(pct, p)| format!("{} ±{pct:.1} % after {} runs", p.label(), p.timing.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// What this machine could and could not measure.
pub fn measured(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "\n## What was and was not measured\n");
    let _ = writeln!(
        o,
        "- Kernel copy accounting (eBPF): {}",
        if s.traced() {
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
        let _ = writeln!(o, "- Kernel figures left empty, and why: {note}");
    }
    let _ = writeln!(
        o,
        "- Hardware counters (cycles, instructions, cache misses): {}",
        s.hw_unavailable()
            .map_or("measured".to_owned(), |w| format!("not measured: {w}"))
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
fn stream_table(o: &mut String, s: &Summary, digits: usize, f: impl Fn(&Row) -> Option<f64>) {
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
    let _ = writeln!(
        o,
        "| mode | user copy | copied at send | pinned | deferred copy | copied to user | fallback % | checks |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
    for m in s.modes() {
        let Some(p) = s.point("stream", &m, size_ref, threads) else {
            continue;
        };
        let per = |f: fn(&Row) -> Option<u64>| fmt_opt(p.kernel_per_byte(f), 2);
        let _ = writeln!(
            o,
            "| {m} | {} | {} | {} | {} | {} | {} | {} |",
            per(|r| r.user_copy_bytes),
            per(|r| r.k_copied_at_send_bytes),
            per(|r| r.k_pinned_bytes),
            per(|r| r.k_deferred_copy_bytes),
            per(|r| r.k_recv_copy_bytes),
            fmt_opt(p.kernel(|r| r.k_fallback_pct), 1),
            p.checks().unwrap_or_else(|| "not traced".into()),
        );
    }
}

/// What the observer costs each point: traced throughput over the untraced mean.
pub fn observer(o: &mut String, s: &Summary) {
    if s.speed_traced() || !s.traced() {
        return;
    }
    let _ = writeln!(
        o,
        "\n## The observer's cost (traced throughput / untraced mean, every point)\n"
    );
    let _ = writeln!(
        o,
        "One traced run per point against its untraced timing runs. Below 1.00 the eBPF programs slowed the experiment; within the untraced interval, no cost can be seen. `observer %` is the programs' own run time as a share of the experiment's CPU time in the traced run (kernel BPF statistics).\n"
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
                    .map(|p| fmt_opt(p.and_then(Point::observer_ratio), 2))
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

/// Per measured size: `fast`/`slow` throughput ratio and the verdict, fewest connections.
fn comparisons(s: &Summary, fast: &str, slow: &str) -> Vec<(u64, Estimate, Verdict)> {
    let threads = s.min_threads();
    s.sizes()
        .into_iter()
        .filter_map(|sz| {
            let (f, w) = (s.gbps(fast, sz, threads)?, s.gbps(slow, sz, threads)?);
            Some((sz, stats::ratio(&f, &w)?, stats::compare(&f, &w)))
        })
        .collect()
}

/// The crossover question, worded from the intervals: from which size `fast` is faster than
/// `slow` at every larger size, with every size's ratio and verdict.
pub fn crossover(o: &mut String, s: &Summary, fast: &str, slow: &str) {
    let threads = s.min_threads();
    let points = comparisons(s, fast, slow);
    if points.is_empty() {
        let _ = writeln!(
            o,
            "Not measured: the run has no stream timing runs for both {fast} and {slow}."
        );
        return;
    }
    let detail = points
        .iter()
        .map(|(sz, r, v)| format!("{} {} ({})", size(*sz), r.show(2), verdict_words(*v)))
        .collect::<Vec<_>>()
        .join("; ");
    let from = points
        .iter()
        .rposition(|(_, _, v)| *v != Verdict::Higher)
        .map_or(0, |i| i + 1);
    let _ = match points.get(from) {
        Some((sz, _, _)) if from == 0 => writeln!(
            o,
            "{fast} beats {slow} at every measured size, from {} up, with non-overlapping intervals ({threads} connection(s); {fast}/{slow}: {detail}).",
            size(*sz)
        ),
        Some((sz, _, _)) => writeln!(
            o,
            "From **{}** up, {fast} beats {slow} at every larger measured size, with non-overlapping intervals ({threads} connection(s); {fast}/{slow}: {detail}).",
            size(*sz)
        ),
        None if points.iter().any(|(_, _, v)| *v == Verdict::Higher) => writeln!(
            o,
            "No crossover: {fast} is faster at some sizes but not from any size up to the largest ({threads} connection(s); {fast}/{slow}: {detail})."
        ),
        None if points
            .iter()
            .all(|(_, _, v)| *v == Verdict::Indistinguishable) =>
        {
            writeln!(
                o,
                "{fast} and {slow} are indistinguishable on this machine at every measured size ({threads} connection(s); {fast}/{slow}: {detail})."
            )
        }
        None => writeln!(
            o,
            "In this run, never: {fast} does not beat {slow} beyond the noise at any measured size ({threads} connection(s); {fast}/{slow}: {detail})."
        ),
    };
}

/// `a3 costs X ns of CPU per byte at 16 KiB against a1's Y (verdict)`.
fn cpu_cost_words(s: &Summary, a: &str, b: &str, sz: u64) -> Option<String> {
    let threads = s.min_threads();
    let cost = |m: &str| {
        s.point("stream", m, sz, threads)?
            .speed(|r| r.cpu_ns_per_byte)
    };
    let (ca, cb) = (cost(a)?, cost(b)?);
    let words = match stats::compare(&ca, &cb) {
        Verdict::Higher => "more",
        Verdict::Lower => "less",
        Verdict::Indistinguishable => "indistinguishable on this machine from",
    };
    Some(format!(
        "{a} used {} ns of CPU per byte at {}, {words} {b}'s {} ns (busy time of the experiment's CPUs, softirq included)",
        ca.show(3),
        size(sz),
        cb.show(3)
    ))
}

/// The six questions.
pub fn questions(o: &mut String, s: &Summary, machine: &Machine) {
    let size_ref = s.reference_size();
    let threads = s.min_threads();
    let _ = writeln!(o, "\n## The six questions\n");
    let _ = writeln!(
        o,
        "### 1. Why doesn't zero-copy always provide the best throughput?\n"
    );
    for zc in ["a3", "a4"] {
        let Some(p) = s.point("stream", zc, size_ref, threads) else {
            continue;
        };
        let ratio = match (
            s.gbps(zc, size_ref, threads),
            s.gbps("a1", size_ref, threads),
        ) {
            (Some(z), Some(a)) => format!(
                "{} a1's throughput ({})",
                stats::ratio(&z, &a).map_or("–".into(), |r| format!("{}x", r.show(2))),
                verdict_words(stats::compare(&z, &a))
            ),
            _ => "throughput not comparable".to_owned(),
        };
        let _ = writeln!(
            o,
            "- {zc} at {}: {ratio}. The kernel pinned {} of every byte and then copied {} % of the pinned bytes at delivery (`skb_copy_ubufs`, {} fresh pages in the traced run), and the sender read {} completion notifications (a3: error queue, a4: io_uring CQEs). On this path zero-copy is a copy postponed, plus pinning, page allocation and completion handling.",
            size(size_ref),
            fmt_opt(p.kernel_per_byte(|r| r.k_pinned_bytes), 2),
            fmt_opt(p.kernel(|r| r.k_fallback_pct), 1),
            fmt_opt(p.kernel(|r| Some(r.k_deferred_copy_pages? as f64)), 0),
            fmt_opt(p.kernel(|r| r.zc_notifications.map(|n| n as f64)), 0),
        );
        if let Some(words) = cpu_cost_words(s, zc, "a1", size_ref) {
            let _ = writeln!(o, "  {words}.");
        }
    }
    if !s.traced() {
        let _ = writeln!(
            o,
            "- Not traced: the fallback itself was not observed in this run."
        );
    }
    let _ = writeln!(
        o,
        "\n### 2. Which cache level benefits most from copy elimination?\n"
    );
    cache_levels(o, s);
    let _ = writeln!(
        o,
        "\n### 3. How does multithreading affect each implementation?\n"
    );
    multithreading(o, s, machine);
    let _ = writeln!(
        o,
        "\n### 4. At what message size does one-copy outperform two-copy?\n"
    );
    crossover(o, s, "a2", "a1");
    if let Some(words) = cpu_cost_words(s, "a2", "a1", size_ref) {
        let _ = writeln!(o, "\n{words}.");
    }
    let _ = writeln!(
        o,
        "\n### 5. When does zero-copy outperform two-copy on this system?\n"
    );
    crossover(o, s, "a3", "a1");
    crossover(o, s, "a4", "a1");
    let _ = writeln!(o, "\n### 6. What was unexpected?\n");
    unexpected(o, s);
}

/// A counter column of a row.
type Counter = fn(&Row) -> Option<u64>;

fn cache_levels(o: &mut String, s: &Summary) {
    let size_ref = s.reference_size();
    let threads = s.min_threads();
    if let Some(why) = s.hw_unavailable() {
        let _ = writeln!(
            o,
            "Cannot be answered from this machine's counters: {why}. The kernel accounting still shows where copies were removed, and the CPU time per byte shows what they cost (tables above); run on a machine with a PMU for the cache side."
        );
        return;
    }
    let per_msg = |m: &str, f: fn(&Row) -> Option<u64>| {
        s.point("stream", m, size_ref, threads)?
            .speed(|r| Some(f(r)? as f64 / (r.messages_per_s? * r.duration_s).max(1.0)))
    };
    let levels: [(&str, Counter); 2] = [
        ("L1d", |r| {
            Some(r.client_l1d_load_misses? + r.server_l1d_load_misses.unwrap_or(0))
        }),
        ("LLC", |r| {
            Some(r.client_llc_load_misses? + r.server_llc_load_misses.unwrap_or(0))
        }),
    ];
    for (level, f) in levels {
        if let (Some(a1), Some(a2)) = (per_msg("a1", f), per_msg("a2", f)) {
            let _ = writeln!(
                o,
                "- {level} load misses per message, a1 → a2: {} → {} ({}).",
                a1.show(1),
                a2.show(1),
                match stats::compare(&a2, &a1) {
                    Verdict::Lower => "fewer",
                    Verdict::Higher => "more",
                    Verdict::Indistinguishable => "indistinguishable on this machine",
                }
            );
        }
    }
}

fn multithreading(o: &mut String, s: &Summary, machine: &Machine) {
    let size_ref = s.reference_size();
    let (lo_t, hi_t) = (s.min_threads(), s.max_threads());
    if lo_t == hi_t {
        let _ = writeln!(o, "Only one thread count was measured.");
    }
    for m in s.modes() {
        if let (Some(lo), Some(hi)) = (s.gbps(&m, size_ref, lo_t), s.gbps(&m, size_ref, hi_t))
            && lo_t != hi_t
        {
            let _ = writeln!(
                o,
                "- {m}: {} Gbit/s with {lo_t} → {} Gbit/s with {hi_t} connections at {} ({}).",
                lo.show(2),
                hi.show(2),
                size(size_ref),
                match stats::compare(&hi, &lo) {
                    Verdict::Higher => "more with more connections",
                    Verdict::Lower => "less with more connections",
                    Verdict::Indistinguishable => "indistinguishable on this machine",
                }
            );
        }
        let rtt = |t| s.point("rr", &m, size_ref, t)?.speed(|r| r.rtt_p50_us);
        if let (Some(lo), Some(hi)) = (rtt(lo_t), rtt(hi_t))
            && lo_t != hi_t
        {
            let _ = writeln!(o, "  round trip {} µs → {} µs.", lo.show(1), hi.show(1));
        }
    }
    let _ = writeln!(
        o,
        "\nThis machine has {} CPUs: past that many busy threads, connections share cores, so scaling flattens and latency grows with queueing.",
        machine.cores
    );
    lone_round_trip(o, s);
}

/// Says why one connection's round trip can be slower than two connections'.
pub fn lone_round_trip(o: &mut String, s: &Summary) {
    let size_ref = s.reference_size();
    for m in s.modes() {
        let rtt = |t| {
            s.points
                .iter()
                .find(|p| {
                    p.workload == "rr"
                        && p.mode == m
                        && p.size == size_ref
                        && p.threads == t
                        && !p.busy_poll
                })?
                .speed(|r| r.rtt_p50_us)
        };
        let (Some(one), Some(two)) = (rtt(1), rtt(2)) else {
            continue;
        };
        if stats::compare(&one, &two) == Verdict::Higher {
            let _ = writeln!(
                o,
                "\nWith one connection the round trip ({} µs, {m}) is longer than with two ({} µs). A lone connection's threads block in recv between messages, their CPU goes idle, and waking an idle virtual CPU costs a VM exit (this kernel has no guest halt-polling); with two connections the CPUs stay busy and wake-ups are cheap. `--busy-poll` spins on non-blocking reads instead and removes the idle wake-up.",
                one.show(1),
                two.show(1)
            );
            return;
        }
    }
}

fn unexpected(o: &mut String, s: &Summary) {
    let threads = s.min_threads();
    let mut surprises = 0;
    let traced_rows = || s.points.iter().flat_map(|p| p.traced.iter());
    let recopied: u64 = traced_rows().filter_map(|r| r.k_recopied_bytes).sum();
    if recopied > 0 {
        surprises += 1;
        let _ = writeln!(
            o,
            "- {recopied} pinned bytes were copied at delivery a second time: retransmitted segments still carry the user pages, so a loss on loopback costs one more copy."
        );
    }
    let merged: Vec<f64> = traced_rows()
        .filter_map(|r| {
            Some(r.zc_completed? as f64 / r.zc_notifications.filter(|n| *n > 0)? as f64)
        })
        .collect();
    if let Some(m) = Estimate::of(&merged).filter(|m| m.mean > 1.0) {
        surprises += 1;
        let _ = writeln!(
            o,
            "- One error-queue notification completed {:.1} sends on average: the kernel merges ranges, so counting one completion per notification would undercount.",
            m.mean
        );
    }
    let enobufs: u64 = s.rows().filter_map(|r| r.enobufs_retries).sum();
    if enobufs > 0 {
        surprises += 1;
        let _ = writeln!(
            o,
            "- {enobufs} zero-copy sends were refused with ENOBUFS (pinned memory over optmem_max) and retried after draining the error queue."
        );
    }
    let disagreements: Vec<&Row> = traced_rows()
        .filter(|r| r.checks != "ok" && r.checks != "not traced")
        .collect();
    if !disagreements.is_empty() {
        surprises += 1;
        let _ = writeln!(
            o,
            "- {} experiments where the kernel and userspace disagreed; first: {}",
            disagreements.len(),
            disagreements[0].checks
        );
    }
    for f in &s.failed {
        surprises += 1;
        let _ = writeln!(
            o,
            "- Failed: {} {} {} x {}: {}",
            f.mode,
            f.workload,
            size(f.size),
            f.threads,
            f.error
        );
    }
    for m in s.modes() {
        for pair in s.sizes().windows(2) {
            if let (Some(a), Some(b)) = (s.gbps(&m, pair[0], threads), s.gbps(&m, pair[1], threads))
                && stats::compare(&b, &a) == Verdict::Lower
            {
                surprises += 1;
                let _ = writeln!(
                    o,
                    "- {m}: throughput fell from {} Gbit/s at {} to {} at {}, beyond the noise, although larger messages mean fewer calls per byte.",
                    a.show(2),
                    size(pair[0]),
                    b.show(2),
                    size(pair[1])
                );
            }
        }
    }
    if let Some(sm) = s.sizes().first().copied()
        && let (Some(a1), Some(a3)) = (s.gbps("a1", sm, threads), s.gbps("a3", sm, threads))
        && let Some(r) = stats::ratio(&a3, &a1)
    {
        surprises += 1;
        let _ = writeln!(
            o,
            "- At {} a3 still pinned every byte (there is no size threshold) and ran at {}x a1's throughput ({}).",
            size(sm),
            r.show(2),
            verdict_words(stats::compare(&a3, &a1))
        );
    }
    if surprises == 0 {
        let _ = writeln!(o, "Nothing beyond the above.");
    }
}

/// The whole report.
pub fn render(
    s: &Summary,
    run: &str,
    machine: &Machine,
    plots: &[String],
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
    let _ = writeln!(o, "\n## Plots\n");
    for p in plots {
        let _ = writeln!(o, "![{p}](plots/{p}.png)\n");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished row of `mode` at `size`, 1 connection, with `value` as its primary figure.
    fn row(workload: &str, mode: &str, size: u64, threads: u32, traced: bool, value: f64) -> Row {
        let mut r = Row {
            mode: mode.into(),
            workload: workload.into(),
            path: "loopback".into(),
            placement: "same".into(),
            size,
            threads,
            traced,
            status: crate::row::OK.into(),
            checks: if traced { "ok" } else { "not traced" }.into(),
            ci_target_pct: Some(2.5),
            bytes_sent: Some(1000),
            ..Row::default()
        };
        if workload == "rr" {
            r.rtt_p50_us = Some(value);
        } else {
            r.send_gbps = Some(value);
        }
        if traced {
            r.k_pinned_bytes = Some(0);
            r.k_copied_at_send_bytes = Some(1000);
        }
        r
    }

    /// Three timing runs around `mean` (spread ±`spread`) and one traced run at `traced`.
    fn point(rows: &mut Vec<Row>, mode: &str, size: u64, mean: f64, spread: f64, traced: f64) {
        for v in [mean - spread, mean, mean + spread] {
            rows.push(row("stream", mode, size, 1, false, v));
        }
        rows.push(row("stream", mode, size, 1, true, traced));
    }

    fn crossover_text(rows: &[Row], fast: &str, slow: &str) -> String {
        let mut o = String::new();
        crossover(&mut o, &Summary::from_rows(rows), fast, slow);
        o
    }

    #[test]
    fn overlapping_intervals_name_no_winner() {
        let mut rows = Vec::new();
        // a2 has the higher mean at both sizes, but the intervals overlap widely.
        point(&mut rows, "a1", 1024, 10.0, 2.0, 5.0);
        point(&mut rows, "a2", 1024, 10.5, 2.0, 5.0);
        point(&mut rows, "a1", 16384, 20.0, 3.0, 5.0);
        point(&mut rows, "a2", 16384, 21.0, 3.0, 5.0);
        let text = crossover_text(&rows, "a2", "a1");
        assert!(
            text.starts_with(
                "a2 and a1 are indistinguishable on this machine at every measured size"
            ),
            "{text}"
        );
        assert!(!text.contains("beats"), "{text}");
    }

    #[test]
    fn separated_intervals_name_the_crossover() {
        let mut rows = Vec::new();
        // a2 slower at 1 KiB, indistinguishable at 4 KiB, faster from 16 KiB up.
        point(&mut rows, "a1", 1024, 10.0, 0.1, 1.0);
        point(&mut rows, "a2", 1024, 8.0, 0.1, 1.0);
        point(&mut rows, "a1", 4096, 15.0, 1.0, 1.0);
        point(&mut rows, "a2", 4096, 15.2, 1.0, 1.0);
        point(&mut rows, "a1", 16384, 20.0, 0.2, 1.0);
        point(&mut rows, "a2", 16384, 24.0, 0.2, 1.0);
        point(&mut rows, "a1", 65536, 22.0, 0.2, 1.0);
        point(&mut rows, "a2", 65536, 30.0, 0.2, 1.0);
        let text = crossover_text(&rows, "a2", "a1");
        assert!(
            text.starts_with("From **16KiB** up, a2 beats a1 at every larger measured size"),
            "{text}"
        );
        assert!(text.contains("1KiB 0.80 ± 0.03 (slower)"), "{text}");
        assert!(
            text.contains("4KiB 1.01 ± 0.24 (indistinguishable on this machine)"),
            "{text}"
        );
        // The other way round: a1 never beats a2 from any size up.
        let text = crossover_text(&rows, "a1", "a2");
        assert!(
            text.starts_with("No crossover: a1 is faster at some sizes"),
            "{text}"
        );
    }

    #[test]
    fn no_speed_figure_comes_from_a_traced_row() {
        let mut rows = Vec::new();
        point(&mut rows, "a1", 16384, 20.0, 0.2, 777.77);
        point(&mut rows, "a3", 16384, 10.0, 0.2, 777.77);
        let s = Summary::from_rows(&rows);
        let p = s.point("stream", "a1", 16384, 1).unwrap();
        assert_eq!(p.timing.len(), 3);
        assert!(p.timing.iter().all(|r| !r.traced));
        assert_eq!(p.traced.len(), 1);
        assert_eq!(p.primary().unwrap().mean, 20.0);
        let mut o = String::new();
        speed(&mut o, &s);
        questions(&mut o, &s, &Machine::detect());
        assert!(o.contains("20.00 ± 0.50"), "{o}");
        assert!(
            !o.contains("777"),
            "a traced figure reached a speed table:\n{o}"
        );
        // The plots' series are built from the same estimates.
        let series = crate::output::plots::stream_by_size(&s, 1, |r| r.send_gbps);
        let means: Vec<f64> = series.iter().map(|(_, pts)| pts[0].1.mean).collect();
        assert_eq!(means, [20.0, 10.0]);
        // Only the observer table compares the traced run with the untraced mean.
        assert!((p.observer_ratio().unwrap() - 38.8885).abs() < 1e-3);
    }

    #[test]
    fn confidence_states_both_shares_and_lists_the_unconverged() {
        let mut rows = Vec::new();
        point(&mut rows, "a1", 1024, 10.0, 0.1, 1.0); // ±2.5 %: converged
        point(&mut rows, "a2", 1024, 10.0, 0.3, 1.0); // ±7.5 %: neither
        point(&mut rows, "a3", 1024, 100.0, 1.5, 1.0); // ±3.7 %: within 5 only
        let mut o = String::new();
        confidence(&mut o, &Summary::from_rows(&rows));
        assert!(
            o.contains("Of 3 points, **2 (67 %) are within ±5 %** and **1 (33 %) within ±2.5 %**"),
            "{o}"
        );
        assert!(o.contains("Not converged (2; widest first): a2 stream 1KiB x 1 ±7.5 % after 3 runs, a3 stream 1KiB x 1 ±3.7 % after 3 runs."), "{o}");
    }

    #[test]
    fn a_slower_lone_round_trip_is_explained_only_when_it_is() {
        let mut rows = Vec::new();
        for v in [59.0, 60.0, 61.0] {
            rows.push(row("rr", "a1", 16384, 1, false, v));
            rows.push(row("rr", "a1", 16384, 2, false, v / 3.0));
        }
        let mut o = String::new();
        lone_round_trip(&mut o, &Summary::from_rows(&rows));
        assert!(o.contains("With one connection the round trip (60.0 ± 2.5 µs, a1) is longer than with two (20.0 ± 0.8 µs)"), "{o}");
        assert!(o.contains("VM exit"), "{o}");
        // Overlapping intervals: nothing to explain.
        let rows: Vec<Row> = [20.0, 30.0, 25.0]
            .iter()
            .flat_map(|&v| {
                [
                    row("rr", "a1", 16384, 1, false, v),
                    row("rr", "a1", 16384, 2, false, v - 1.0),
                ]
            })
            .collect();
        let mut o = String::new();
        lone_round_trip(&mut o, &Summary::from_rows(&rows));
        assert_eq!(o, "");
    }
}
