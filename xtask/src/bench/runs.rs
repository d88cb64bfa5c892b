//! Running netcopy and iperf3 for the bench: one `bench-one`, one single-point sweep, a timed
//! sweep.

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use super::DURATION;

/// One netcopy sweep of a single point; its only row, as column -> value.
pub fn netcopy_row(
    netcopy: &Path,
    args: &[&str],
    scratch: &Path,
) -> Result<BTreeMap<String, String>> {
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
pub struct OneRun {
    pub gbps: f64,
    pub program_lines: Vec<String>,
}

/// One `bench-one` stream run of `mode` at `size`, placed by `placement`, with `extra`
/// arguments (`--no-trace`, `--empty-programs`, `--program-stats`).
pub fn bench_one(
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
pub fn stream_point<'a>(
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
pub const PLACEMENTS: [(&str, &[&str], (usize, usize)); 2] = [
    ("split", &["--placement", "split"], (0, 1)),
    (
        "same",
        &["--client-cpus", "0", "--server-cpus", "0"],
        (0, 0),
    ),
];

/// A sweep's wall time, and how many of its points' intervals reached ±5 % and ±2.5 %.
pub struct TimedSweep {
    seconds: f64,
    points: usize,
    within_5: usize,
    within_2_5: usize,
}

impl TimedSweep {
    /// Issue 28's targets: the sweep within 10 minutes, ≥ 90 % of points within ±5 % and
    /// ≥ 50 % within ±2.5 %.
    pub fn meets_targets(&self) -> bool {
        let n = self.points.max(1) as f64;
        self.seconds <= 600.0
            && self.within_5 as f64 >= 0.9 * n
            && self.within_2_5 as f64 >= 0.5 * n
    }
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
pub fn timed_sweep(netcopy: &Path, args: &[&str], out: &Path) -> Result<TimedSweep> {
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
