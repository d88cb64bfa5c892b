//! What a sweep leaves behind: the README documents every CSV column, a quick sweep writes
//! every file with every check ok, and Ctrl-C keeps every finished row and leaves nothing
//! attached to the kernel and no process behind.

mod common;
mod report_html;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use netcopy::{kernel::tracer::HOOKS, output::read_rows, row::Row};

/// Sweeps load programs; the interrupt test checks that none of netcopy's are loaded.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn netcopy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netcopy"))
}

/// A fresh, empty output folder for one test.
fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netcopy-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn readme_columns() -> Vec<String> {
    common::readme_section("columns:start", "columns:end")
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// results.json parses and holds the same rows as results.csv (floats compared by identity
/// columns and counts, since the two formats print them independently).
fn assert_same_rows(json: &Path, rows: &[Row]) {
    let json: Vec<Row> = serde_json::from_str(&std::fs::read_to_string(json).expect("json"))
        .expect("results.json parses");
    assert_eq!(json.len(), rows.len());
    for (j, c) in json.iter().zip(rows) {
        assert_eq!(
            (
                j.experiment,
                &j.mode,
                &j.checks,
                j.bytes_sent,
                j.k_pinned_bytes
            ),
            (
                c.experiment,
                &c.mode,
                &c.checks,
                c.bytes_sent,
                c.k_pinned_bytes
            )
        );
    }
}

/// Every plot a sweep draws.
const PLOTS: [&str; 6] = [
    "throughput_vs_size",
    "latency_vs_threads",
    "cache_misses_vs_size",
    "cycles_per_byte_vs_size",
    "cpu_time_per_byte_vs_size",
    "kernel_bytes_per_byte",
];

/// Every plot report.md shows is in `run/plots` as a non-empty PNG and SVG; every other one
/// has no file and one sentence saying why it was left out. Returns the plots left out.
fn assert_every_plot(run: &Path) -> Vec<&'static str> {
    let report = std::fs::read_to_string(run.join("report.md")).expect("report");
    let mut omitted = Vec::new();
    for plot in PLOTS {
        let shown = report.contains(&format!("](plots/{plot}.png)"));
        for ext in ["png", "svg"] {
            let f = run.join("plots").join(format!("{plot}.{ext}"));
            if shown {
                assert!(
                    f.metadata().is_ok_and(|m| m.len() > 0),
                    "{} missing",
                    f.display()
                );
            } else {
                assert!(!f.exists(), "{} drawn but not shown", f.display());
            }
        }
        if !shown {
            omitted.push(plot);
        }
    }
    let sentences = report
        .lines()
        .filter(|l| l.starts_with("Not drawn: "))
        .count();
    assert_eq!(sentences, omitted.len(), "one sentence per plot left out");
    omitted
}

/// No hardware PMU here (README): the two plots of hardware counters are left out, never
/// drawn empty; with one, all six are drawn.
fn assert_hardware_plots(run: &Path, rows: &[Row]) {
    let omitted = assert_every_plot(run);
    let pmu = rows.iter().any(|r| r.hw_counters == "measured");
    let expected: &[&str] = if pmu {
        &[]
    } else {
        &["cache_misses_vs_size", "cycles_per_byte_vs_size"]
    };
    assert_eq!(omitted, expected);
}

#[test]
fn csv_header_matches_the_readme_table() {
    assert_eq!(Row::columns(), readme_columns());
}

/// Whether this machine can run traced sweeps; says why not when it cannot.
fn can_trace(test: &str) -> bool {
    // Loaded and dropped at once: only to learn whether tracing works here.
    common::tracer_or_skip(test).is_some()
}

#[test]
fn quick_sweep_writes_every_file_and_every_check_is_ok() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !can_trace("quick_sweep_writes_every_file") {
        return;
    }
    let out = out_dir("quick");
    let status = netcopy()
        .args(["sweep", "--quick", "--out"])
        .arg(&out)
        .status()
        .expect("running netcopy");
    assert!(status.success(), "{status}");
    let run = out.join("latest");
    for file in ["results.csv", "results.json", "report.md", "report.html"] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let header = std::fs::read_to_string(run.join("results.csv")).expect("csv");
    let header: Vec<String> = header
        .lines()
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(header, readme_columns());
    assert!(run.join("points.csv").is_file());
    let rows = read_rows(&run.join("results.csv")).expect("rows parse");
    assert_hardware_plots(&run, &rows);
    report_html::check("quick_sweep_writes_every_file", &run, &rows);
    assert_same_rows(&run.join("results.json"), &rows);
    assert_timing_and_accounting_apart(&rows, &run);
    let report = std::fs::read_to_string(run.join("report.md")).expect("report");
    for q in 1..=6 {
        assert!(
            report.contains(&format!("### {q}. ")),
            "question {q} unanswered"
        );
    }
    assert_report_states_the_shares(&report, &run);
    let _ = std::fs::remove_dir_all(&out);
}

/// The report's confidence line states exactly the shares points.csv gives: points with an
/// interval, and how many of those are within ±5 % and ±2.5 %.
fn assert_report_states_the_shares(report: &str, run: &Path) {
    let mut points = csv::Reader::from_path(run.join("points.csv")).expect("points.csv");
    let column = points
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "ci_pct")
        .expect("ci_pct column");
    let widths: Vec<f64> = points
        .records()
        .filter_map(|r| r.unwrap().get(column)?.parse().ok())
        .collect();
    let within = |pct: f64| widths.iter().filter(|&&w| w <= pct).count();
    let (n, loose, tight) = (widths.len(), within(5.0), within(2.5));
    let share = |k: usize| k as f64 * 100.0 / n as f64;
    let expected = format!(
        "Of {n} points, **{loose} ({:.0} %) are within ±5 %** and **{tight} ({:.0} %) within ±2.5 %**",
        share(loose),
        share(tight)
    );
    assert!(report.contains(&expected), "report lacks: {expected}");
}

/// After the grid, one traced zero-copy receive run per mode (16 KiB stream, 1 connection):
/// checks ok (the getsockopt's report agrees with the kernel's copy hook and TCP_INFO), and
/// mapped plus copied bytes are the bytes received; on this kernel a1's bytes never map and
/// a3's (copied at delivery into fresh pages) do.
fn assert_zero_copy_receive_probes(probes: &[&Row]) {
    let modes: Vec<&str> = probes.iter().map(|r| r.mode.as_str()).collect();
    assert_eq!(modes, ["a1", "a2", "a3", "a4", "a5"]);
    for r in probes {
        assert!(r.traced && r.status == "ok", "{r:?}");
        assert_eq!(
            (r.workload.as_str(), r.size, r.threads),
            ("stream", 16 << 10, 1)
        );
        assert_eq!(r.checks, "ok", "{}", r.mode);
        let (mapped, copied) = (r.zc_mapped_bytes.unwrap(), r.zc_copied_bytes.unwrap());
        assert_eq!(Some(mapped + copied), r.bytes_received, "{}", r.mode);
        match r.mode.as_str() {
            "a1" => assert_eq!(mapped, 0),
            "a3" => assert!(mapped > 0, "a3 mapped nothing: {r:?}"),
            _ => {}
        }
    }
}

/// The grid points of a quick sweep: modes x sizes x connections x workloads.
const QUICK_POINTS: usize = 5 * 2 * 2 * 2;

/// The schedule's marks on every row of the grid: the traced round is 0 and every timing run
/// in a later one, a point at most once per round; when it ran, in the sweep's order, and
/// within the quick sweep's budget past the minimum runs; a window of 1, 2 or 4 times the
/// grid's, read in slices of 50 ms or more.
fn assert_scheduled(rows: &[&Row]) {
    let mut seen = BTreeSet::new();
    let mut last = -1.0;
    for r in rows {
        let round = r.round.expect("round");
        assert_eq!(r.traced, round == 0, "{r:?}");
        let key = (r.mode.clone(), r.workload.clone(), r.size, r.threads, round);
        assert!(seen.insert(key), "a point twice in round {round}");
        let at = r.sweep_s.expect("sweep_s");
        assert!(at > last, "rows out of order");
        last = at;
        assert_eq!(r.budget_s, Some(45.0));
        if round > 3 {
            assert!(
                at < 45.0,
                "a run past the minimum started after the budget: {at}"
            );
        }
        let stretch = r.duration_s / 0.15;
        assert!(
            [1.0, 2.0, 4.0].iter().any(|m| (stretch - m).abs() < 1e-9),
            "{}",
            r.duration_s
        );
        // A slice the machine made late is longer, so a loaded window may have fewer.
        let slices = r.slice_rates();
        let most = (r.duration_s / 0.05).round() as usize;
        assert!((1..=most).contains(&slices.len()), "{:?}", r.slice_gbps);
        assert!(slices.iter().all(|s| *s >= 0.0), "{:?}", r.slice_gbps);
    }
}

/// Every point has exactly one traced run, with every check ok, and at least three untraced
/// timing runs; untraced rows carry no kernel figure; points.csv's mean of each point is the
/// mean of its untraced runs only; CPU time per byte is in every row and drawn.
fn assert_timing_and_accounting_apart(rows: &[Row], run: &Path) {
    type Key = (String, String, u64, u32);
    let mut traced: BTreeMap<Key, Vec<&Row>> = BTreeMap::new();
    let mut timing: BTreeMap<Key, Vec<&Row>> = BTreeMap::new();
    let (probes, rows): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| r.zerocopy_receive);
    assert_zero_copy_receive_probes(&probes);
    assert_scheduled(&rows);
    for row in rows {
        assert_eq!(row.status, "ok", "{row:?}");
        assert!(row.elapsed_s.is_some_and(|e| e > 0.0) && !row.started_utc.is_empty());
        assert_eq!(row.placement, "same");
        // A window in which no tick of its CPUs was busy (the VM was running another guest)
        // has no CPU time, and says why; every other has some.
        assert!(
            row.cpu_ns_per_byte.is_some_and(|c| c > 0.0)
                || (row.cpu_ns_per_byte.is_none() && row.cpu_note == netcopy::cpustat::NO_TICK),
            "{row:?}"
        );
        let key = (
            row.mode.clone(),
            row.workload.clone(),
            row.size,
            row.threads,
        );
        if row.traced {
            assert_eq!(row.checks, "ok", "{key:?}");
            assert!(row.k_send_bytes.is_some() && row.observer_ms.is_some());
            assert!(row.attached_programs.is_some_and(|n| n > 0), "{key:?}");
            traced.entry(key).or_default().push(row);
        } else {
            assert_eq!(row.checks, "not traced", "{key:?}");
            assert_eq!((row.k_send_bytes, row.k_pinned_bytes), (None, None));
            assert_eq!(row.observer_ms, None);
            // Read from the kernel's link list: nothing of netcopy's ran during the window.
            assert_eq!(row.attached_programs, Some(0), "{key:?}");
            timing.entry(key).or_default().push(row);
        }
    }
    assert_eq!(traced.len(), QUICK_POINTS);
    assert!(
        traced.values().all(|t| t.len() == 1),
        "one traced run per point"
    );
    assert_eq!(timing.len(), QUICK_POINTS);
    let mut points = csv::Reader::from_path(run.join("points.csv")).expect("points.csv");
    let header = points.headers().expect("header").clone();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let mut lines = 0;
    for line in points.records() {
        let line = line.expect("points.csv line");
        let key: Key = (
            line[col("mode")].to_owned(),
            line[col("workload")].to_owned(),
            line[col("size")].parse().unwrap(),
            line[col("threads")].parse().unwrap(),
        );
        let runs = &timing[&key];
        assert!(runs.len() >= 3, "{key:?}: {} timing runs", runs.len());
        assert_eq!(line[col("reps")].parse::<usize>().unwrap(), runs.len());
        let values: Vec<f64> = runs.iter().map(|r| r.primary().unwrap()).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let reported: f64 = line[col("mean")].parse().unwrap();
        assert!(
            (reported - mean).abs() <= 1e-9 * mean.abs(),
            "{key:?}: {reported} != {mean}"
        );
        let traced_value: f64 = line[col("traced_value")].parse().unwrap();
        assert_eq!(Some(traced_value), traced[&key][0].primary());
        lines += 1;
    }
    assert_eq!(lines, QUICK_POINTS);
    let svg = std::fs::read_to_string(run.join("plots/cpu_time_per_byte_vs_size.svg")).unwrap();
    assert!(svg.contains("<svg"), "the CPU time plot is drawn");
}

/// Waits (a minute at most) until `csv` holds `n` finished rows.
fn wait_for_rows(csv: &Path, n: usize) {
    let started = Instant::now();
    while read_rows(csv).map_or(0, |r| r.len()) < n {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no rows after a minute"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The network namespaces (as `net:[inode]`) the threads under `tasks` are in.
fn net_namespaces(tasks: &str) -> BTreeSet<String> {
    std::fs::read_dir(tasks)
        .map(|dir| {
            dir.flatten()
                .filter_map(|t| std::fs::read_link(t.path().join("ns/net")).ok())
                .map(|l| l.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// netcopy's programs loaded now, once those of a tracer just dropped (can_trace's own) have
/// had up to 2 s to go.
fn settled_program_ids() -> BTreeSet<u32> {
    let mut ids = netcopy_program_ids();
    let started = Instant::now();
    while !ids.is_empty() && started.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
        ids = netcopy_program_ids();
    }
    ids
}

/// Ids of netcopy's programs loaded anywhere on the machine (names are cut to 15 bytes).
fn netcopy_program_ids() -> BTreeSet<u32> {
    // Every way in of every hook: a fallback's program is netcopy's too.
    let ours: Vec<&str> = HOOKS
        .iter()
        .flat_map(|h| h.attachments)
        .map(|a| &a.program[..a.program.len().min(15)])
        .collect();
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str().is_some_and(|name| ours.contains(&name)))
        .map(|p| p.id())
        .collect()
}

/// netcopy programs loaded now that were not in `before`, after giving the kernel two
/// seconds to free closed ones (it does so after an RCU grace period). Comparing with
/// `before` keeps other netcopy runs on the machine out of it.
fn programs_left_since(before: &BTreeSet<u32>) -> Vec<u32> {
    let started = Instant::now();
    loop {
        let left: Vec<u32> = netcopy_program_ids().difference(before).copied().collect();
        if left.is_empty() || started.elapsed() > Duration::from_secs(2) {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigint_keeps_finished_rows_and_leaves_nothing_behind() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !can_trace("sigint_keeps_finished_rows") {
        return;
    }
    // can_trace's own programs may still be on their way out: wait for them first.
    let before = settled_program_ids();
    let out = out_dir("sigint");
    // veth: the run also owns two network namespaces, which must go with it.
    let mut child = netcopy()
        .args([
            "sweep",
            "--quick",
            "--path",
            "veth",
            "--workload",
            "stream",
            "--out",
        ])
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .expect("starting netcopy");
    let csv = out.join("latest").join("results.csv");
    wait_for_rows(&csv, 3);
    let own = net_namespaces(&format!("/proc/{}/task", child.id()));
    let made: BTreeSet<String> = own
        .difference(&net_namespaces("/proc/self/task"))
        .cloned()
        .collect();
    assert!(
        !made.is_empty(),
        "the veth sweep runs in namespaces of its own"
    );
    // While it runs, its programs are loaded: the checks after it ends can fail.
    let loaded: Vec<u32> = netcopy_program_ids().difference(&before).copied().collect();
    assert!(
        !loaded.is_empty(),
        "no netcopy program loaded while the sweep runs"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = common::wait_bounded(
        &mut child,
        Duration::from_secs(60),
        "netcopy after its signal",
    );
    assert_eq!(status.code(), Some(130), "{status}");
    let rows = read_rows(&csv).expect("the CSV stays valid");
    assert!(rows.len() >= 3);
    assert!(
        rows.iter()
            .all(|r| r.status == "ok" && r.checks == if r.traced { "ok" } else { "not traced" }),
        "{rows:?}"
    );
    assert_same_rows(&out.join("latest").join("results.json"), &rows);
    assert!(
        out.join("latest").join("report.md").is_file(),
        "report from finished rows"
    );
    // The process is gone (reaped above); its programs, links and namespaces went with it.
    assert!(!Path::new(&format!("/proc/{}", child.id())).exists());
    assert_eq!(programs_left_since(&before), Vec::<u32>::new());
    // No thread of any process is left in the namespaces the sweep made: they are gone.
    let everywhere: BTreeSet<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .flat_map(|e| net_namespaces(&e.path().join("task").to_string_lossy()))
        .collect();
    assert!(made.is_disjoint(&everywhere), "namespaces left: {made:?}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn sighup_mid_sweep_leaves_valid_rows_plots_and_report() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = out_dir("sighup");
    // Untraced: what matters here is what a closed terminal leaves on disk.
    let mut child = netcopy()
        .args([
            "sweep",
            "--quick",
            "--no-trace",
            "--modes",
            "a1,a2",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting netcopy");
    let csv = out.join("latest").join("results.csv");
    wait_for_rows(&csv, 3);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let status = common::wait_bounded(
        &mut child,
        Duration::from_secs(60),
        "netcopy after its signal",
    );
    assert_eq!(status.code(), Some(130), "{status}");
    let run = out.join("latest");
    let rows = read_rows(&csv).expect("the CSV stays valid");
    assert!(
        rows.len() >= 3 && rows.iter().all(|r| r.status == "ok"),
        "{rows:?}"
    );
    assert_same_rows(&run.join("results.json"), &rows);
    assert_every_plot(&run);
    let report = std::fs::read_to_string(run.join("report.md")).expect("report");
    assert!(
        report.contains("timing runs and 0 traced runs finished"),
        "{report}"
    );
    assert!(run.join("points.csv").is_file());
    let _ = std::fs::remove_dir_all(&out);
}

/// README's promise: a second signal ends netcopy at once, and even then the kernel detaches
/// every program (they are tied to the process's file descriptors).
#[test]
fn a_second_signal_ends_netcopy_at_once() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !can_trace("a_second_signal_ends_netcopy_at_once") {
        return;
    }
    let before = settled_program_ids();
    let out = out_dir("second-signal");
    let mut child = netcopy()
        .args(["sweep", "--modes", "a1", "--sizes", "16K", "--threads", "1"])
        .args(["--workload", "stream", "--reps", "1", "--trace-all"])
        .args(["--duration", "30s", "--warmup", "100ms", "--out"])
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .expect("starting netcopy");
    let started = Instant::now();
    while netcopy_program_ids().difference(&before).next().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "programs never loaded"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child, twice.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let signalled = Instant::now();
    let status = common::wait_bounded(
        &mut child,
        Duration::from_secs(60),
        "netcopy after its signal",
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "{:?} after the second signal",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{status}");
    assert_eq!(programs_left_since(&before), Vec::<u32>::new());
    let _ = std::fs::remove_dir_all(&out);
}
