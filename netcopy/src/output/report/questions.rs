//! The six questions of the assignment, answered from the rows, and the comparisons and
//! crossovers they rest on.

use std::fmt::Write as _;

use super::{
    beyond::{beyond_zero_copy, versus_a1},
    *,
};
use crate::{
    output::summary::Summary,
    row::Row,
    stats::{self, Estimate, Verdict},
};

/// Per measured size: `fast`/`slow` throughput ratio and the verdict, fewest connections.
pub(super) fn comparisons(s: &Summary, fast: &str, slow: &str) -> Vec<(u64, Estimate, Verdict)> {
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
pub(super) fn cpu_cost_words(s: &Summary, a: &str, b: &str, sz: u64) -> Option<String> {
    let threads = s.min_threads();
    let cost = |m: &str| {
        s.point("stream", m, sz, threads)?
            .speed(|r| r.cpu_ns_per_byte)
    };
    let (ca, cb) = (cost(a)?, cost(b)?);
    let words = match stats::compare(&ca, &cb) {
        Verdict::Higher => "more than",
        Verdict::Lower => "less than",
        Verdict::Indistinguishable => "indistinguishable on this machine from",
    };
    Some(format!(
        "{a} used {} ns of CPU per byte at {}, {words} {b}'s {} ns (busy time of the experiment's CPUs, softirq included)",
        ca.show(3),
        size(sz),
        cb.show(3)
    ))
}

/// Question 1 for one zero-copy mode: its throughput against a1's, what the kernel did with
/// its pinned bytes (when traced) and its CPU cost per byte.
fn zero_copy_fallback(o: &mut String, s: &Summary, zc: &str) {
    let (size_ref, threads) = (s.reference_size(), s.min_threads());
    let Some(p) = s.point("stream", zc, size_ref, threads) else {
        return;
    };
    let ratio = versus_a1(s, zc, size_ref, threads);
    if p.traced.is_empty() {
        let _ = writeln!(o, "- {zc} at {}: {ratio}.", size(size_ref));
    } else {
        let _ = writeln!(
            o,
            "- {zc} at {}: {ratio}. The kernel pinned {} of every byte and then copied {} % of the pinned bytes at delivery (`skb_copy_ubufs`, {} fresh pages in the traced run), and the sender read {} completion notifications (a3: error queue, a4: io_uring CQEs). On this path zero-copy is a copy postponed, plus pinning, page allocation and completion handling.",
            size(size_ref),
            fmt_opt(p.kernel_per_byte(|r| r.k_pinned_bytes), 2),
            fmt_opt(p.kernel(|r| r.k_fallback_pct), 1),
            fmt_opt(p.kernel(|r| Some(r.k_deferred_copy_pages? as f64)), 0),
            fmt_opt(p.kernel(|r| r.zc_notifications.map(|n| n as f64)), 0),
        );
    }
    if let Some(words) = cpu_cost_words(s, zc, "a1", size_ref) {
        let _ = writeln!(o, "  {words}.");
    }
}

/// The six questions.
pub fn questions(o: &mut String, s: &Summary, machine: &Machine) {
    let size_ref = s.reference_size();
    let _ = writeln!(o, "\n## The six questions\n");
    let _ = writeln!(
        o,
        "### 1. Why doesn't zero-copy always provide the best throughput?\n"
    );
    for zc in ["a3", "a4"] {
        zero_copy_fallback(o, s, zc);
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
    let _ = writeln!(
        o,
        "\n### Beyond the six: does any path avoid the copy on one machine?\n"
    );
    beyond_zero_copy(o, s);
}

/// A counter column of a row.
type Counter = fn(&Row) -> Option<u64>;

pub(super) fn cache_levels(o: &mut String, s: &Summary) {
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
    if per_msg("a1", levels[0].1).is_none() || per_msg("a2", levels[0].1).is_none() {
        let _ = writeln!(
            o,
            "Not measured: the run has no stream timing runs with cache counters for both a1 and a2."
        );
    }
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

pub(super) fn multithreading(o: &mut String, s: &Summary, machine: &Machine) {
    let size_ref = s.reference_size();
    let (lo_t, hi_t) = (s.min_threads(), s.max_threads());
    if lo_t == hi_t {
        let _ = writeln!(o, "Only one thread count was measured.");
    }
    for m in s.modes().iter().filter(|_| lo_t != hi_t) {
        let mut parts = Vec::new();
        if let (Some(lo), Some(hi)) = (s.gbps(m, size_ref, lo_t), s.gbps(m, size_ref, hi_t)) {
            parts.push(format!(
                "{} Gbit/s with {lo_t} → {} Gbit/s with {hi_t} connections at {} ({})",
                lo.show(2),
                hi.show(2),
                size(size_ref),
                match stats::compare(&hi, &lo) {
                    Verdict::Higher => "more with more connections",
                    Verdict::Lower => "less with more connections",
                    Verdict::Indistinguishable => "indistinguishable on this machine",
                }
            ));
        }
        let rtt = |t| s.point("rr", m, size_ref, t)?.speed(|r| r.rtt_p50_us);
        if let (Some(lo), Some(hi)) = (rtt(lo_t), rtt(hi_t)) {
            parts.push(format!(
                "round trip {} µs with {lo_t} → {} µs with {hi_t} connections ({})",
                lo.show(1),
                hi.show(1),
                match stats::compare(&hi, &lo) {
                    Verdict::Higher => "longer with more connections",
                    Verdict::Lower => "shorter with more connections",
                    Verdict::Indistinguishable => "indistinguishable on this machine",
                }
            ));
        }
        if !parts.is_empty() {
            let _ = writeln!(o, "- {m}: {}.", parts.join("; "));
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

pub(super) fn unexpected(o: &mut String, s: &Summary) {
    let mut surprises = kernel_surprises(o, s);
    for f in &s.failed {
        surprises += 1;
        let _ = writeln!(
            o,
            "- Failed: {} {} {} x {}: {}.",
            f.mode,
            f.workload,
            size(f.size),
            f.threads,
            f.error.trim_end_matches('.')
        );
    }
    surprises += speed_surprises(o, s);
    if surprises == 0 {
        let _ = writeln!(o, "Nothing beyond the above.");
    }
}

/// What the kernel did that a reader would not expect: second copies, merged notifications,
/// refused sends, disagreements. Returns how many were written.
fn kernel_surprises(o: &mut String, s: &Summary) -> usize {
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
            "- {} experiments where the kernel and userspace disagreed; first: {}.",
            disagreements.len(),
            disagreements[0].checks.trim_end_matches('.')
        );
    }
    surprises
}

/// Speed against expectation: throughput falling as messages grow, a3 at the smallest size.
/// Returns how many were written.
fn speed_surprises(o: &mut String, s: &Summary) -> usize {
    let threads = s.min_threads();
    let mut surprises = 0;
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
            "- At {} a3 still pinned every byte (there is no size threshold) and ran at {} times a1's throughput ({}).",
            size(sm),
            r.show(2),
            verdict_words(stats::compare(&a3, &a1))
        );
    }
    surprises
}
