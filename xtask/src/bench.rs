//! `cargo xtask bench`: is the harness fast enough to measure what it claims, and does the
//! observer change what it observes? Four parts, measured side by side in one run, written to
//! bench/latest.md. Nothing here asserts a timing: the numbers are reported, with the targets.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{cmd, setup};

/// Interleaved repetitions per comparison; medians are reported.
const REPS: usize = 3;
/// Part 1 compares two noisy figures against a line (1.0): more repetitions for its medians.
const HARNESS_REPS: usize = 9;
/// Part 2's interleaved (untraced, floor, traced) triples per point.
const OBSERVER_REPS: usize = 5;
const DURATION: &str = "2s";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One netcopy sweep of a single point; its only row, as column -> value.
/// "min-max" of `v`, so a median is read with its spread.
fn range(v: &[f64], digits: usize) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.digits$}-{max:.digits$}")
}

fn netcopy_row(netcopy: &Path, args: &[&str], scratch: &Path) -> Result<BTreeMap<String, String>> {
    let out = scratch.join("sweep");
    let status = Command::new(netcopy)
        .args(["sweep", "--reps", "1", "--threads"])
        .args(args)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .context("running netcopy")?;
    if !status.success() {
        bail!("netcopy sweep {args:?} failed ({status})");
    }
    let mut reader = csv::Reader::from_path(out.join("latest/results.csv"))?;
    let header = reader.headers()?.clone();
    let record = reader.records().next().context("no row")??;
    Ok(header
        .iter()
        .map(str::to_owned)
        .zip(record.iter().map(str::to_owned))
        .collect())
}

/// What one `bench-one` run printed: its send throughput and, with `--program-stats`, one
/// line per program.
struct OneRun {
    gbps: f64,
    program_lines: Vec<String>,
}

/// One `bench-one` stream run of `mode` at `size`, placed by `placement`, with `extra`
/// arguments (`--no-trace`, `--empty-programs`, `--program-stats`).
fn bench_one(
    netcopy: &Path,
    mode: &str,
    size: &str,
    placement: &[&str],
    extra: &[&str],
) -> Result<OneRun> {
    let out = Command::new(netcopy)
        .args([
            "bench-one",
            "--mode",
            mode,
            "--size",
            size,
            "--duration",
            DURATION,
        ])
        .args(["--warmup", "300ms"])
        .args(placement)
        .args(extra)
        .output()
        .context("running netcopy bench-one")?;
    if !out.status.success() {
        bail!(
            "netcopy bench-one {mode} {size} {extra:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let gbps = stdout
        .lines()
        .find_map(|l| l.strip_prefix("throughput:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("bench-one printed no throughput")?;
    Ok(OneRun {
        gbps,
        program_lines: stdout
            .lines()
            .filter(|l| l.starts_with("program:"))
            .map(str::to_owned)
            .collect(),
    })
}

/// The sweep arguments of one stream point: `conns` connections of `mode` at `size`, placed
/// by `placement` (sweep arguments).
fn stream_point<'a>(
    conns: &'a str,
    mode: &'a str,
    size: &'a str,
    traced: bool,
    placement: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        conns,
        "--modes",
        mode,
        "--sizes",
        size,
        "--workload",
        "stream",
        "--duration",
        DURATION,
        "--warmup",
        "300ms",
    ];
    if traced {
        // Every repetition traced: this point measures the observer.
        args.push("--trace-all");
    } else {
        args.push("--no-trace");
    }
    args.extend_from_slice(placement);
    args
}

/// The placements the bench compares, as (name, netcopy arguments, iperf3 -A client,server).
const PLACEMENTS: [(&str, &[&str], (usize, usize)); 2] = [
    ("split", &["--placement", "split"], (0, 1)),
    (
        "same",
        &["--client-cpus", "0", "--server-cpus", "0"],
        (0, 0),
    ),
];

fn number(row: &BTreeMap<String, String>, column: &str) -> f64 {
    row.get(column)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Waits for `child` at most `limit`, then kills it: a bench never hangs on a peer.
fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> Result<()> {
    let started = Instant::now();
    while child.try_wait()?.is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{:?} did not exit within {limit:?}; killed", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Whether some socket listens on TCP `port` (IPv4 or IPv6), from /proc/net.
fn listening(port: u16) -> bool {
    let hex = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // local_address is field 1, st field 3; 0A is LISTEN.
                f.len() > 3 && format!("{} ", f[1]).ends_with(&hex) && f[3] == "0A"
            })
        })
    })
}

/// A free loopback port, from the kernel.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// iperf3 on loopback: received Gbit/s for `size`-byte writes over `streams` connections,
/// client and server pinned with `-A client,server` when `cpus` is given.
fn iperf3_gbps(size: &str, streams: usize, cpus: Option<(usize, usize)>) -> Result<f64> {
    let port = free_port()?.to_string();
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-p", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting iperf3 (cargo xtask setup installs it)")?;
    // Ready when the port is in the kernel's listen table: a probe connection would be taken
    // for the one client `-1` serves.
    let started = Instant::now();
    while !listening(port.parse()?) {
        if started.elapsed() > Duration::from_secs(5) {
            let _ = server.kill();
            let _ = server.wait();
            bail!("iperf3 -s did not listen within 5 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let secs = DURATION.trim_end_matches('s');
    let mut client = Command::new("iperf3");
    client
        .args(["-c", "127.0.0.1", "-p", &port, "-t", secs, "-l", size, "-J"])
        .args(["-P", &streams.to_string()]);
    if let Some((c, s)) = cpus {
        client.args(["-A", &format!("{c},{s}")]);
    }
    let out = client.output().context("running iperf3")?;
    let waited = wait_bounded(&mut server, Duration::from_secs(10));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("iperf3's JSON report")?;
    waited?;
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3's end.sum_received.bits_per_second")?;
    Ok(bps / 1e9)
}

/// One core's memcpy bandwidth, GB/s, for `size`-byte copies: from one buffer to another that
/// stay in cache (`resident`), or walking a 512 MiB region so every copy misses.
fn memcpy_gbps(size: usize, resident: bool) -> f64 {
    let region = if resident { size * 2 } else { 512 << 20 };
    let mut src = vec![1u8; region];
    let mut dst = vec![0u8; region];
    let chunks = (region / size).max(1);
    let started = Instant::now();
    let mut copied = 0u64;
    let mut i = 0;
    while started.elapsed() < Duration::from_millis(500) {
        for _ in 0..64 {
            let at = (i % chunks) * size;
            dst[at..at + size].copy_from_slice(&src[at..at + size]);
            i += 1;
            copied += size as u64;
        }
        std::hint::black_box(&mut dst);
    }
    src[0] = dst[0];
    std::hint::black_box(&src);
    copied as f64 / started.elapsed().as_secs_f64() / 1e9
}

fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_owned(), |s| s.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "Linux {}, {cpu}, {cores} CPUs",
        read("/proc/sys/kernel/osrelease").trim()
    )
}

/// A sweep's wall time, and how many of its points' intervals reached ±5 % and ±2.5 %.
struct TimedSweep {
    seconds: f64,
    points: usize,
    within_5: usize,
    within_2_5: usize,
}

impl std::fmt::Display for TimedSweep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let share = |n: usize| 100.0 * n as f64 / self.points.max(1) as f64;
        write!(
            f,
            "{:.0} s; of {} points, {} ({:.0} %) within ±5 % and {} ({:.0} %) within ±2.5 % at 95 % confidence",
            self.seconds,
            self.points,
            self.within_5,
            share(self.within_5),
            self.within_2_5,
            share(self.within_2_5)
        )
    }
}

/// Runs `netcopy sweep args` into `out` (its run folder stays there) and times it.
fn timed_sweep(netcopy: &Path, args: &[&str], out: &Path) -> Result<TimedSweep> {
    let started = Instant::now();
    let status = Command::new(netcopy)
        .arg("sweep")
        .args(args)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("netcopy sweep {args:?} failed ({status})");
    }
    let seconds = started.elapsed().as_secs_f64();
    // points.csv has no quoted fields before `ci_pct`.
    let points = std::fs::read_to_string(out.join("latest/points.csv"))?;
    let mut lines = points.lines();
    let column = lines
        .next()
        .and_then(|h| h.split(',').position(|c| c == "ci_pct"))
        .ok_or_else(|| anyhow::anyhow!("points.csv has no ci_pct column"))?;
    let widths: Vec<f64> = lines
        .map(|l| {
            l.split(',')
                .nth(column)
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::INFINITY)
        })
        .collect();
    Ok(TimedSweep {
        seconds,
        points: widths.len(),
        within_5: widths.iter().filter(|&&w| w <= 5.0).count(),
        within_2_5: widths.iter().filter(|&&w| w <= 2.5).count(),
    })
}

pub fn run(skip_default_sweep: bool) -> Result<()> {
    if !setup::is_root() {
        bail!("the benchmark traces the kernel: run it as root");
    }
    let env = setup::run()?;
    let netcopy = cmd::build_release(&env)?;
    let root = cmd::workspace_root();
    let scratch = std::env::temp_dir().join(format!("netcopy-bench-{}", std::process::id()));
    let mut md = String::new();
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()?;
    let _ = writeln!(md, "# netcopy benchmark\n");
    let _ = writeln!(
        md,
        "{} on {}. Medians of {REPS} interleaved repetitions, {DURATION} each.\n",
        String::from_utf8_lossy(&date.stdout).trim(),
        machine()
    );

    // 1. Harness efficiency.
    eprintln!("bench: 1/4 harness vs iperf3");
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
                    &netcopy,
                    &stream_point("1", "a2", size, false, placement),
                    &scratch,
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

    // 2. Tracing overhead.
    eprintln!("bench: 2/4 tracing overhead");
    let _ = writeln!(
        md,
        "## 2. Tracing overhead: the same experiment untraced, with empty programs, and traced (stream, 1 connection)\n"
    );
    let _ = writeln!(
        md,
        "Medians of {OBSERVER_REPS} interleaved triples (`bench-one`, no BPF statistics running). `floor`: every program attached but returning at once (`--empty-programs`), the price of entering them at all. `same` pins the whole experiment on CPU 0 (the worst case: no idle core absorbs the probes); `split` puts clients on CPU 0 and servers on CPU 1.\n"
    );
    let _ = writeln!(
        md,
        "| placement | mode | size | untraced Gbit/s | floor Gbit/s | traced Gbit/s | floor / untraced | traced / untraced | target |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    let mut copies: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for (name, placement, _) in PLACEMENTS {
        for mode in ["a1", "a3"] {
            for (size, target) in [("256", 0.90), ("16K", 0.95)] {
                let (mut off, mut floor, mut on) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..OBSERVER_REPS {
                    off.push(bench_one(&netcopy, mode, size, placement, &["--no-trace"])?.gbps);
                    floor.push(
                        bench_one(&netcopy, mode, size, placement, &["--empty-programs"])?.gbps,
                    );
                    on.push(bench_one(&netcopy, mode, size, placement, &[])?.gbps);
                }
                let (u, f, t) = (median(off), median(floor), median(on));
                if name == "same" {
                    let traced = netcopy_row(
                        &netcopy,
                        &stream_point("1", mode, size, true, placement),
                        &scratch,
                    )?;
                    let per_byte = number(&traced, "copies_per_byte")
                        - number(&traced, "user_copy_bytes") / number(&traced, "bytes_sent");
                    copies.insert((mode.to_owned(), size.to_owned()), (u, per_byte));
                }
                let ratio = t / u;
                let _ = writeln!(
                    md,
                    "| {name} | {mode} | {size} | {u:.2} | {f:.2} | {t:.2} | {:.2} | {ratio:.2} | {target:.2}: {} |",
                    f / u,
                    if ratio >= target { "met" } else { "missed" }
                );
            }
        }
    }
    let _ = writeln!(
        md,
        "\nPer-program cost on one CPU (kernel BPF statistics, `bench-one --program-stats`; the statistics add a clock read to every run, so these include it). Each block first with empty programs (the floor per run), then traced:\n"
    );
    for (mode, size) in [("a1", "256"), ("a3", "16K")] {
        for extra in [&["--empty-programs"][..], &[]] {
            let mut args = vec!["--program-stats"];
            args.extend_from_slice(extra);
            let run = bench_one(&netcopy, mode, size, PLACEMENTS[1].1, &args)?;
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

    // 3. The copy limit.
    eprintln!("bench: 3/4 copy limit");
    let _ = writeln!(
        md,
        "## 3. The copy limit: one core's memcpy against loopback throughput\n"
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
    for ((mode, size), (untraced, per_byte)) in &copies {
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

    // 4. Sweep cost.
    eprintln!("bench: 4/4 sweep cost");
    let _ = writeln!(
        md,
        "\n## 4. Sweep cost (wall time: one traced run per point, timing runs to the confidence target)\n"
    );
    let quick = timed_sweep(&netcopy, &["--quick"], &scratch.join("timed"))?;
    let _ = writeln!(md, "- `cargo xtask run -- --quick`: {quick} (target: 60 s)");
    if skip_default_sweep {
        let _ = writeln!(md, "- default sweep: not run (--skip-default-sweep)");
    } else {
        // Kept, like any `cargo xtask run`: its report and plots are the README's example.
        let full = timed_sweep(&netcopy, &[], &root.join("results"))?;
        let _ = writeln!(
            md,
            "- `cargo xtask run` (default grid): {full} (targets: 600 s, 80 % within ±5 %)"
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let dir = root.join("bench");
    std::fs::create_dir_all(&dir)?;
    let path: PathBuf = dir.join("latest.md");
    std::fs::write(&path, &md)?;
    print!("{md}");
    eprintln!("bench: written to {}", path.display());
    Ok(())
}

/// `cargo xtask soak`: the quick sweep in a loop, in one netcopy process, for `minutes`;
/// the resident memory after every pass goes to bench/soak.md.
pub fn soak(minutes: u64) -> Result<()> {
    if !setup::is_root() {
        bail!("the soak traces the kernel: run it as root");
    }
    let env = setup::run()?;
    let netcopy = cmd::build_release(&env)?;
    let scratch = std::env::temp_dir().join(format!("netcopy-soak-{}", std::process::id()));
    let started = Instant::now();
    let out = Command::new(&netcopy)
        .args([
            "sweep",
            "--quick",
            "--soak",
            &format!("{minutes}m"),
            "--out",
        ])
        .arg(&scratch)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running netcopy")?;
    let passes: Vec<u64> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("soak: pass "))
        .filter_map(|l| l.split("rss_kib ").nth(1))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let _ = std::fs::remove_dir_all(&scratch);
    if passes.is_empty() {
        bail!("netcopy reported no pass ({})", out.status);
    }
    let mut md = String::new();
    let _ = writeln!(md, "# netcopy soak\n");
    let _ = writeln!(
        md,
        "{} passes of the quick sweep in one process over {:.0} min on {} (exit: {}).\n",
        passes.len(),
        started.elapsed().as_secs_f64() / 60.0,
        machine(),
        out.status
    );
    let (first, last) = (passes[0], *passes.last().unwrap_or(&0));
    let max = passes.iter().copied().max().unwrap_or(0);
    let _ = writeln!(
        md,
        "Resident memory: first pass {first} KiB, last {last} KiB, highest {max} KiB ({:+} KiB from first to last).\n",
        last as i64 - first as i64
    );
    let _ = writeln!(
        md,
        "Per pass (KiB): {}",
        passes
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let path = cmd::workspace_root().join("bench").join("soak.md");
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    std::fs::write(&path, &md)?;
    print!("{md}");
    if !out.status.success() {
        bail!("netcopy failed during the soak ({})", out.status);
    }
    Ok(())
}
