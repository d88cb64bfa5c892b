//! Small helpers of the bench: medians, ranges, bounded waits, the machine's name, memcpy.

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::DURATION;

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Mean and 95 % half-width (Student's t) of `v`.
pub fn interval(v: &[f64]) -> (f64, f64) {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 {
        return (mean, f64::INFINITY);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T
        .get(n - 2)
        .copied()
        .unwrap_or(1.960 + 2.4 / (n - 1) as f64);
    (mean, t * (var / n as f64).sqrt())
}

/// Whether `estimate` ± `half` (a 95 % interval) meets `target`: "met" or "missed" when the
/// interval clears it, with "within noise" when it holds it.
pub fn verdict(estimate: f64, half: f64, target: f64) -> &'static str {
    match (
        estimate - half >= target,
        estimate + half < target,
        estimate >= target,
    ) {
        (true, _, _) => "met",
        (_, true, _) => "missed",
        (_, _, true) => "met, within noise",
        _ => "missed, within noise",
    }
}

/// "min-max" of `v`, so a median is read with its spread.
pub fn range(v: &[f64], digits: usize) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.digits$}-{max:.digits$}")
}

pub fn number(row: &BTreeMap<String, String>, column: &str) -> f64 {
    row.get(column)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Waits for `child` at most `limit`, then kills it: a bench never hangs on a peer.
pub fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> Result<()> {
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
pub fn listening(port: u16) -> bool {
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
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// iperf3 on loopback: received Gbit/s for `size`-byte writes over `streams` connections,
/// client and server pinned with `-A client,server` when `cpus` is given.
pub fn iperf3_gbps(size: &str, streams: usize, cpus: Option<(usize, usize)>) -> Result<f64> {
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
pub fn memcpy_gbps(size: usize, resident: bool) -> f64 {
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

/// The 1-minute load average (`/proc/loadavg`), or `unknown`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn machine() -> String {
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
