//! What a sweep leaves behind: the README documents every CSV column, a quick sweep writes
//! every file with every check ok, and Ctrl-C keeps every finished row and leaves nothing
//! attached to the kernel and no process behind.

mod common;

use std::{
    collections::BTreeSet,
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
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let start = readme
        .find("<!-- columns:start -->")
        .expect("columns:start marker");
    let end = readme
        .find("<!-- columns:end -->")
        .expect("columns:end marker");
    readme[start..end]
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
    for file in ["results.csv", "results.json", "report.md"] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    for plot in [
        "throughput_vs_size",
        "latency_vs_threads",
        "cache_misses_vs_size",
        "cycles_per_byte_vs_size",
        "kernel_bytes_per_byte",
    ] {
        for ext in ["png", "svg"] {
            let f = run.join("plots").join(format!("{plot}.{ext}"));
            assert!(
                f.metadata().is_ok_and(|m| m.len() > 0),
                "{} missing",
                f.display()
            );
        }
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
    let rows = read_rows(&run.join("results.csv")).expect("rows parse");
    assert_eq!(
        rows.len(),
        4 * 2 * 2 * 2 * 2,
        "modes x sizes x threads x workloads x reps"
    );
    for row in &rows {
        assert_eq!(row.status, "ok", "{row:?}");
        assert_eq!(
            row.checks, "ok",
            "{} {} {} x{}",
            row.mode, row.workload, row.size, row.threads
        );
    }
    assert_same_rows(&run.join("results.json"), &rows);
    let report = std::fs::read_to_string(run.join("report.md")).expect("report");
    for q in 1..=6 {
        assert!(
            report.contains(&format!("### {q}. ")),
            "question {q} unanswered"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
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

/// Ids of netcopy's programs loaded anywhere on the machine (names are cut to 15 bytes).
fn netcopy_program_ids() -> BTreeSet<u32> {
    let ours: Vec<&str> = HOOKS
        .iter()
        .map(|h| &h.program[..h.program.len().min(15)])
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
    let before = {
        let mut ids = netcopy_program_ids();
        let started = Instant::now();
        while !ids.is_empty() && started.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(50));
            ids = netcopy_program_ids();
        }
        ids
    };
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
    let started = Instant::now();
    while read_rows(&csv).map_or(0, |r| r.len()) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no rows after a minute"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let own = net_namespaces(&format!("/proc/{}/task", child.id()));
    let made: BTreeSet<String> = own
        .difference(&net_namespaces("/proc/self/task"))
        .cloned()
        .collect();
    assert!(
        !made.is_empty(),
        "the veth sweep runs in namespaces of its own"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("waiting for netcopy");
    assert_eq!(status.code(), Some(130), "{status}");
    let rows = read_rows(&csv).expect("the CSV stays valid");
    assert!(rows.len() >= 3);
    assert!(
        rows.iter().all(|r| r.status == "ok" && r.checks == "ok"),
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
