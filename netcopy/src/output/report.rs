//! report.md: the run's numbers, and the six analysis questions of the originating assignment
//! answered from them. Every claim is computed from rows (crossovers are searched, not
//! asserted); a question the machine cannot answer says why.

use std::{collections::BTreeMap, fmt::Write as _};

use crate::{row::Row, units::format_size};

/// Repetitions of a point that differ by more than this (max − min over median) are flagged.
const SPREAD_TARGET_PCT: f64 = 5.0;

/// The rows of one grid point (all repetitions).
pub struct Cell {
    pub mode: String,
    pub path: String,
    pub workload: String,
    pub size: u64,
    pub threads: u32,
    pub rows: Vec<Row>,
}

fn median_of(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

impl Cell {
    fn values(&self, f: impl Fn(&Row) -> Option<f64>) -> Vec<f64> {
        self.rows.iter().filter_map(f).collect()
    }

    /// Median over repetitions of `f`, None when no repetition has it.
    pub fn median(&self, f: impl Fn(&Row) -> Option<f64>) -> Option<f64> {
        median_of(self.values(f))
    }

    /// (min, median, max) over repetitions.
    pub fn spread(&self, f: impl Fn(&Row) -> Option<f64>) -> Option<(f64, f64, f64)> {
        let v = self.values(f);
        let min = v.iter().copied().reduce(f64::min)?;
        let max = v.iter().copied().reduce(f64::max)?;
        Some((min, median_of(v)?, max))
    }
}

/// The finished rows of a run, grouped by grid point.
pub struct Summary {
    pub cells: Vec<Cell>,
    pub failed: Vec<Row>,
}

impl Summary {
    pub fn from_rows(rows: &[Row]) -> Self {
        let mut cells: BTreeMap<(String, String, u64, u32, String), Vec<Row>> = BTreeMap::new();
        let mut failed = Vec::new();
        for row in rows {
            if !row.is_ok() {
                failed.push(row.clone());
                continue;
            }
            let key = (
                row.path.clone(),
                row.workload.clone(),
                row.size,
                row.threads,
                row.mode.clone(),
            );
            cells.entry(key).or_default().push(row.clone());
        }
        let cells = cells
            .into_iter()
            .map(|((path, workload, size, threads, mode), rows)| Cell {
                mode,
                path,
                workload,
                size,
                threads,
                rows,
            })
            .collect();
        Self { cells, failed }
    }

    fn rows(&self) -> impl Iterator<Item = &Row> {
        self.cells.iter().flat_map(|c| c.rows.iter())
    }

    pub fn min_threads(&self) -> u32 {
        self.cells.iter().map(|c| c.threads).min().unwrap_or(1)
    }

    fn max_threads(&self) -> u32 {
        self.cells.iter().map(|c| c.threads).max().unwrap_or(1)
    }

    fn sizes(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.cells.iter().map(|c| c.size).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn modes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.cells.iter().map(|c| c.mode.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The size the per-mode comparisons use: 16 KiB when measured, else the largest below
    /// it, else the smallest.
    pub fn reference_size(&self) -> u64 {
        let sizes = self.sizes();
        sizes
            .iter()
            .copied()
            .filter(|&s| s <= 16 << 10)
            .max()
            .or_else(|| sizes.first().copied())
            .unwrap_or(16 << 10)
    }

    pub fn has_workload(&self, w: &str) -> bool {
        self.cells.iter().any(|c| c.workload == w)
    }

    /// Why hardware counters are missing, if they are in any row.
    pub fn hw_unavailable(&self) -> Option<String> {
        self.rows()
            .find(|r| r.hw_counters != "measured")
            .map(|r| r.hw_counters.clone())
    }

    fn cell(&self, workload: &str, mode: &str, size: u64, threads: u32) -> Option<&Cell> {
        self.cells.iter().find(|c| {
            c.workload == workload && c.mode == mode && c.size == size && c.threads == threads
        })
    }

    fn gbps(&self, mode: &str, size: u64, threads: u32) -> Option<f64> {
        self.cell("stream", mode, size, threads)?
            .median(|r| r.send_gbps)
    }

    /// (max - min) / median of throughput over the cells with repetitions, %, and where, the
    /// widest first.
    pub fn spreads(&self) -> Vec<(f64, String)> {
        let mut v: Vec<(f64, String)> = self
            .cells
            .iter()
            .filter(|c| c.rows.len() > 1)
            .filter_map(|c| {
                let (min, med, max) = c.spread(|r| r.send_gbps)?;
                (med > 0.0).then(|| {
                    (
                        (max - min) * 100.0 / med,
                        format!(
                            "{} {} {} x {}",
                            c.mode,
                            c.workload,
                            format_size(c.size as usize),
                            c.threads
                        ),
                    )
                })
            })
            .collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0));
        v
    }

    /// Smallest size from which `fast` beats `slow` at every larger measured size (stream,
    /// fewest connections).
    fn crossover(&self, fast: &str, slow: &str) -> Crossover {
        let threads = self.min_threads();
        let mut points = Vec::new();
        for size in self.sizes() {
            if let (Some(f), Some(s)) = (
                self.gbps(fast, size, threads),
                self.gbps(slow, size, threads),
            ) {
                points.push((size, f / s));
            }
        }
        if points.is_empty() {
            return Crossover::NotMeasured;
        }
        let from = points
            .iter()
            .rposition(|&(_, ratio)| ratio <= 1.0)
            .map_or(0, |i| i + 1);
        match points.get(from) {
            None => Crossover::Never(points),
            Some(&(size, _)) if from == 0 => Crossover::Always(size, points),
            Some(&(size, _)) => Crossover::From(size, points),
        }
    }
}

enum Crossover {
    NotMeasured,
    Never(Vec<(u64, f64)>),
    Always(u64, Vec<(u64, f64)>),
    From(u64, Vec<(u64, f64)>),
}

fn ratios(points: &[(u64, f64)]) -> String {
    points
        .iter()
        .map(|(s, r)| format!("{} {r:.2}x", format_size(*s as usize)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn answer_crossover(out: &mut String, s: &Summary, fast: &str, slow: &str) {
    let threads = s.min_threads();
    let _ = match s.crossover(fast, slow) {
        Crossover::NotMeasured => writeln!(
            out,
            "Not measured: the run has no stream rows for both {fast} and {slow}."
        ),
        Crossover::Never(p) => writeln!(
            out,
            "In this run, never: {fast} does not beat {slow} at any measured size ({threads} connection(s); {fast}/{slow} = {}).",
            ratios(&p)
        ),
        Crossover::Always(size, p) => writeln!(
            out,
            "{fast} beats {slow} at every measured size, from {} up ({threads} connection(s); {fast}/{slow} = {}).",
            format_size(size as usize),
            ratios(&p)
        ),
        Crossover::From(size, p) => writeln!(
            out,
            "From **{}** up, {fast} beats {slow} at every larger measured size ({threads} connection(s); {fast}/{slow} = {}).",
            format_size(size as usize),
            ratios(&p)
        ),
    };
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.digits$}"))
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

/// The whole report.
pub fn render(
    s: &Summary,
    run: &str,
    machine: &Machine,
    plots: &[String],
    command: &str,
) -> String {
    let mut o = String::new();
    let size = s.reference_size();
    let threads = s.min_threads();
    let ok_rows = s.rows().count();
    let _ = writeln!(o, "# netcopy report: run {run}\n");
    let _ = writeln!(o, "Command: `{command}`\n");
    let _ = writeln!(
        o,
        "Machine: Linux {}, {} ({} CPUs), {} memory.\n",
        machine.kernel, machine.cpu, machine.cores, machine.memory
    );
    let _ = writeln!(
        o,
        "{ok_rows} experiments finished, {} failed. Figures are medians over repetitions, with [min–max].",
        s.failed.len()
    );
    let spreads = s.spreads();
    match spreads.first() {
        Some((pct, at)) => {
            let within = spreads
                .iter()
                .filter(|(p, _)| *p < SPREAD_TARGET_PCT)
                .count();
            let _ = writeln!(
                o,
                "Spread of throughput between repetitions, (max − min) / median: {within} of {} points within {SPREAD_TARGET_PCT:.0} %; the widest {pct:.1} % ({at}).",
                spreads.len()
            );
            let noisy: Vec<String> = spreads
                .iter()
                .take_while(|(p, _)| *p >= SPREAD_TARGET_PCT)
                .take(8)
                .map(|(p, at)| format!("{at} {p:.0} %"))
                .collect();
            if !noisy.is_empty() {
                let _ = writeln!(
                    o,
                    "Read these with care (widest first): {}.",
                    noisy.join(", ")
                );
            }
        }
        None => {
            let _ = writeln!(o, "One repetition per point: no spread to report.");
        }
    }
    let _ = writeln!(o, "\n## What was and was not measured\n");
    let traced = s.rows().any(|r| r.k_send_bytes.is_some());
    let _ = writeln!(
        o,
        "- Kernel copy accounting (eBPF): {}",
        if traced {
            "measured"
        } else {
            "not measured (the run was not traced)"
        }
    );
    if let Some(note) = s
        .rows()
        .map(|r| r.k_pages_note.clone())
        .find(|n| !n.is_empty())
    {
        let _ = writeln!(o, "- Deferred-copy pages: not measured: {note}");
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
        "- Software counters (task clock, context switches, migrations, page faults): {software}\n"
    );

    let _ = writeln!(
        o,
        "## Throughput (stream, {threads} connection(s), Gbit/s)\n"
    );
    let modes = s.modes();
    let _ = writeln!(o, "| size | {} |", modes.join(" | "));
    let _ = writeln!(o, "|---|{}", "---|".repeat(modes.len()));
    for sz in s.sizes() {
        let cells: Vec<String> = modes
            .iter()
            .map(|m| {
                s.cell("stream", m, sz, threads)
                    .and_then(|c| c.spread(|r| r.send_gbps))
                    .map_or("–".to_owned(), |(lo, med, hi)| {
                        format!("{med:.2} [{lo:.2}–{hi:.2}]")
                    })
            })
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} |",
            format_size(sz as usize),
            cells.join(" | ")
        );
    }

    let _ = writeln!(
        o,
        "\n## Where the kernel copied ({} stream, {threads} connection(s), bytes per byte sent)\n",
        format_size(size as usize)
    );
    let _ = writeln!(
        o,
        "| mode | user copy | copied at send | pinned | deferred copy | copied to user | fallback % | checks |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
    for m in &modes {
        let Some(c) = s.cell("stream", m, size, threads) else {
            continue;
        };
        let per = |f: fn(&Row) -> Option<u64>| {
            fmt_opt(
                c.median(|r| Some(f(r)? as f64 / r.bytes_sent.filter(|b| *b > 0)? as f64)),
                2,
            )
        };
        let checks = if c.rows.iter().all(|r| r.checks == "ok") {
            "ok".to_owned()
        } else {
            c.rows
                .iter()
                .map(|r| r.checks.clone())
                .find(|x| x != "ok")
                .unwrap_or_default()
        };
        let _ = writeln!(
            o,
            "| {m} | {} | {} | {} | {} | {} | {} | {checks} |",
            per(|r| r.user_copy_bytes),
            per(|r| r.k_copied_at_send_bytes),
            per(|r| r.k_pinned_bytes),
            per(|r| r.k_deferred_copy_bytes),
            per(|r| r.k_recv_copy_bytes),
            fmt_opt(c.median(|r| r.k_fallback_pct), 1),
        );
    }

    let _ = writeln!(o, "\n## The six questions\n");
    let _ = writeln!(
        o,
        "### 1. Why doesn't zero-copy always provide the best throughput?\n"
    );
    for zc in ["a3", "a4"] {
        let Some(c) = s.cell("stream", zc, size, threads) else {
            continue;
        };
        let fallback = c.median(|r| r.k_fallback_pct);
        let ratio = match (s.gbps(zc, size, threads), s.gbps("a1", size, threads)) {
            (Some(z), Some(a)) if a > 0.0 => format!("{:.2}x a1's throughput", z / a),
            _ => "throughput not comparable".to_owned(),
        };
        let pages = c.median(|r| Some(r.k_deferred_copy_pages? as f64));
        let _ = writeln!(
            o,
            "- {zc} at {}: {ratio}. The kernel pinned {} of every byte and then copied {} % of the pinned bytes at delivery (`skb_copy_ubufs`, {} fresh pages per experiment), and the sender read {} completion notifications (median; a3: error queue, a4: io_uring CQEs). On this path zero-copy is a copy postponed, plus pinning, page allocation and completion handling.",
            format_size(size as usize),
            fmt_opt(
                c.median(|r| Some(
                    r.k_pinned_bytes? as f64 / r.bytes_sent.filter(|b| *b > 0)? as f64
                )),
                2
            ),
            fmt_opt(fallback, 1),
            fmt_opt(pages, 0),
            fmt_opt(c.median(|r| r.zc_notifications.map(|n| n as f64)), 0),
        );
    }
    if !traced {
        let _ = writeln!(
            o,
            "- Not traced: the fallback itself was not observed in this run."
        );
    }
    let _ = writeln!(
        o,
        "\n### 2. Which cache level benefits most from copy elimination?\n"
    );
    match s.hw_unavailable() {
        Some(why) => {
            let _ = writeln!(
                o,
                "Cannot be answered from this machine's counters: {why}. The kernel accounting still shows where copies were removed (table above); run on a machine with a PMU for the cache side."
            );
        }
        None => {
            let per_msg = |m: &str, f: fn(&Row) -> Option<u64>| {
                s.cell("stream", m, size, threads).and_then(|c| {
                    c.median(|r| Some(f(r)? as f64 / (r.messages_per_s? * r.duration_s).max(1.0)))
                })
            };
            let mut best: Option<(&str, f64)> = None;
            for (level, f) in [
                (
                    "L1d",
                    (|r: &Row| {
                        Some(r.client_l1d_load_misses? + r.server_l1d_load_misses.unwrap_or(0))
                    }) as fn(&Row) -> Option<u64>,
                ),
                ("LLC", |r: &Row| {
                    Some(r.client_llc_load_misses? + r.server_llc_load_misses.unwrap_or(0))
                }),
            ] {
                if let (Some(a1), Some(a2)) = (per_msg("a1", f), per_msg("a2", f)) {
                    let cut = if a1 > 0.0 {
                        (a1 - a2) * 100.0 / a1
                    } else {
                        0.0
                    };
                    let _ = writeln!(
                        o,
                        "- {level} load misses per message, a1 → a2: {a1:.1} → {a2:.1} ({cut:.1} % fewer)."
                    );
                    if best.is_none_or(|(_, b)| cut > b) {
                        best = Some((level, cut));
                    }
                }
            }
            if let Some((level, cut)) = best {
                let _ = writeln!(o, "\nLargest relative reduction: **{level}** ({cut:.1} %).");
            }
        }
    }
    let _ = writeln!(
        o,
        "\n### 3. How does multithreading affect each implementation?\n"
    );
    let max_t = s.max_threads();
    if max_t == threads {
        let _ = writeln!(o, "Only one thread count was measured.");
    }
    for m in &modes {
        if let (Some(lo), Some(hi)) = (s.gbps(m, size, threads), s.gbps(m, size, max_t))
            && max_t != threads
        {
            let _ = writeln!(
                o,
                "- {m}: {lo:.2} Gbit/s with {threads} → {hi:.2} Gbit/s with {max_t} connections ({:.2}x) at {}.",
                hi / lo.max(1e-9),
                format_size(size as usize)
            );
        }
        let rtt = |t| {
            s.cell("rr", m, size, t)
                .and_then(|c| c.median(|r| r.rtt_p50_us))
        };
        if let (Some(lo), Some(hi)) = (rtt(threads), rtt(max_t))
            && max_t != threads
        {
            let _ = writeln!(o, "  round trip p50 {lo:.1} us → {hi:.1} us.");
        }
    }
    let _ = writeln!(
        o,
        "\nThis machine has {} CPUs: past that many busy threads, connections share cores, so scaling flattens and latency grows with queueing.",
        machine.cores
    );
    let _ = writeln!(
        o,
        "\n### 4. At what message size does one-copy outperform two-copy?\n"
    );
    answer_crossover(&mut o, s, "a2", "a1");
    let _ = writeln!(
        o,
        "\n### 5. When does zero-copy outperform two-copy on this system?\n"
    );
    answer_crossover(&mut o, s, "a3", "a1");
    answer_crossover(&mut o, s, "a4", "a1");
    let _ = writeln!(o, "\n### 6. What was unexpected?\n");
    let mut surprises = 0;
    let recopied: u64 = s.rows().filter_map(|r| r.k_recopied_bytes).sum();
    if recopied > 0 {
        surprises += 1;
        let _ = writeln!(
            o,
            "- {recopied} pinned bytes were copied at delivery a second time: retransmitted segments still carry the user pages, so a loss on loopback costs one more copy."
        );
    }
    let merged: Vec<f64> = s
        .rows()
        .filter_map(|r| {
            Some(r.zc_completed? as f64 / r.zc_notifications.filter(|n| *n > 0)? as f64)
        })
        .collect();
    if let Some(m) = median_of(merged)
        && m > 1.0
    {
        surprises += 1;
        let _ = writeln!(
            o,
            "- One error-queue notification completed {m:.1} sends (median): the kernel merges ranges, so counting one completion per notification would undercount."
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
    let disagreements: Vec<&Row> = s
        .rows()
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
            format_size(f.size as usize),
            f.threads,
            f.error
        );
    }
    for m in &modes {
        let sizes = s.sizes();
        for pair in sizes.windows(2) {
            if let (Some(a), Some(b)) = (s.gbps(m, pair[0], threads), s.gbps(m, pair[1], threads))
                && b < a * 0.9
            {
                surprises += 1;
                let _ = writeln!(
                    o,
                    "- {m}: throughput fell from {a:.2} Gbit/s at {} to {b:.2} at {}, although larger messages mean fewer calls per byte.",
                    format_size(pair[0] as usize),
                    format_size(pair[1] as usize)
                );
            }
        }
    }
    let small = s.sizes().first().copied();
    if let (Some(sm), Some(a1), Some(a3)) = (
        small,
        small.and_then(|sm| s.gbps("a1", sm, threads)),
        small.and_then(|sm| s.gbps("a3", sm, threads)),
    ) {
        surprises += 1;
        let _ = writeln!(
            o,
            "- At {} a3 still pinned every byte (there is no size threshold) and ran at {:.2}x a1's throughput.",
            format_size(sm as usize),
            a3 / a1.max(1e-9)
        );
    }
    if surprises == 0 {
        let _ = writeln!(o, "Nothing beyond the above.");
    }
    let _ = writeln!(o, "\n## Plots\n");
    for p in plots {
        let _ = writeln!(o, "![{p}](plots/{p}.png)\n");
    }
    o
}
