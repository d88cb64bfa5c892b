//! report.html in a real browser: Debian's headless Chromium loads the page from file://, in a
//! network namespace of its own, and the test reads the DOM it built (`--dump-dom`, after the
//! page's script ran) and Chromium's own network log. Used by the quick sweep test, so one
//! sweep serves both.

use std::{
    collections::BTreeSet,
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use netcopy::{explain::grouped, row::Row};

use crate::common;

/// Where the screenshot goes; `cargo xtask test` prints this path.
pub fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-html/report.png")
}

/// Chromium, or None after saying why the check is skipped (a failure under CI, where
/// `cargo xtask setup` installs it).
fn chromium(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None if common::in_ci() => panic!("{test}: chromium is not installed (cargo xtask setup)"),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: chromium is not installed (cargo xtask setup installs it)"
            );
            None
        }
    }
}

/// Runs Chromium headless on `page` with `extra` arguments, without network (a namespace of
/// its own), a fresh profile and a network log; returns its stdout and the URLs the page
/// itself asked for (Chromium's own background requests are told apart by their initiator).
fn browse(chromium: &Path, page: &Path, extra: &[&str]) -> (String, Vec<String>) {
    let work = std::env::temp_dir().join(format!(
        "netcopy-chromium-{}-{}",
        std::process::id(),
        page.file_stem().unwrap().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let (netlog, out) = (work.join("netlog.json"), work.join("stdout"));
    let mut child = Command::new("unshare")
        .arg("--net")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.join("profile").display()
        ))
        .arg(format!("--log-net-log={}", netlog.display()))
        .args(extra)
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromium");
    let status = common::wait_bounded(&mut child, Duration::from_secs(120), "chromium");
    assert!(status.success(), "chromium: {status}");
    let dom = std::fs::read_to_string(&out).unwrap();
    let requests = page_requests(&netlog);
    let _ = std::fs::remove_dir_all(&work);
    (dom, requests)
}

/// The URLs the network log shows requested on behalf of a file:// page.
fn page_requests(netlog: &Path) -> Vec<String> {
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(netlog).expect("network log"))
            .expect("network log is JSON");
    let start_job = &log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"];
    assert!(start_job.is_number(), "the network log names its events");
    log["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| &e["type"] == start_job && e["params"]["initiator"] != "not an origin")
        // The job's start carries its URL; its end, nothing.
        .filter_map(|e| Some(e["params"]["url"].as_str()?.to_owned()))
        .collect()
}

/// The parts of `dom` from each `start` to the next `end`.
fn parts<'a>(dom: &'a str, start: &str, end: &str) -> Vec<&'a str> {
    dom.split(start)
        .skip(1)
        .map(|p| p.split(end).next().unwrap())
        .collect()
}

/// Checks report.html of a finished quick sweep in `run`, whose rows are `rows`; writes the
/// screenshot.
pub fn check(test: &str, run: &Path, rows: &[Row]) {
    let Some(chromium) = chromium(test) else {
        return;
    };
    // The check can fail: a page that fetches from outside is caught.
    let probe = std::env::temp_dir().join(format!("netcopy-probe-{}.html", std::process::id()));
    std::fs::write(&probe, "<img src=\"http://127.0.0.1:9/x.png\"><p>probe</p>").unwrap();
    let (_, fetched) = browse(&chromium, &probe, &["--dump-dom"]);
    assert_eq!(fetched, ["http://127.0.0.1:9/x.png"]);
    let _ = std::fs::remove_file(&probe);
    let page = run.join("report.html");
    let (dom, fetched) = browse(&chromium, &page, &["--dump-dom"]);
    assert!(fetched.is_empty(), "report.html fetched {fetched:?}");
    assert_no_outside_reference(&dom);
    assert_verdict_table(&dom, rows);
    assert_datapaths(&dom, rows);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert_plots(&dom, &report);
    let points = csv::Reader::from_path(run.join("points.csv"))
        .unwrap()
        .records()
        .count();
    // The page's own script ran: it counts the confidence table's rows.
    assert!(
        dom.contains(&format!("id=\"shown\">{points} of {points} points<")),
        "the confidence table's script did not run"
    );
    let shot = screenshot_path();
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let arg = format!("--screenshot={}", shot.display());
    browse(&chromium, &page, &[&arg, "--window-size=1280,7600"]);
    assert!(shot.metadata().is_ok_and(|m| m.len() > 10_000));
    let _ = writeln!(
        std::io::stderr(),
        "report.html screenshot: {}",
        shot.display()
    );
}

/// Nothing in the page points outside it (the xmlns of inline SVG names, it is not fetched).
fn assert_no_outside_reference(dom: &str) {
    let lower = dom.to_lowercase();
    for attr in [
        "src=", "href=", "url(", "@import", "<link", "<img", "<iframe",
    ] {
        for (i, _) in lower.match_indices(attr) {
            let value = lower[i + attr.len()..].trim_start_matches(['"', '\'', ' ']);
            assert!(
                !attr.starts_with('<') && value.starts_with('#'),
                "report.html refers outside itself: {}",
                &dom[i..(i + 80).min(dom.len())]
            );
        }
    }
}

/// The modes of the quick sweep's traced stream runs at its reference size, 1 connection.
fn reference_rows(rows: &[Row]) -> Vec<&Row> {
    rows.iter()
        .filter(|r| r.traced && r.workload == "stream" && r.threads == 1)
        .filter(|r| r.size == 16 << 10 && !r.zerocopy_receive)
        .collect()
}

fn assert_verdict_table(dom: &str, rows: &[Row]) {
    let tables = parts(dom, "<table class=\"verdict\">", "</table>");
    assert_eq!(tables.len(), 1, "one verdict table");
    let body = tables[0].split("<tbody>").nth(1).expect("a body");
    let modes: Vec<&str> = parts(body, "<tr><td>", "</td>");
    let mut expected: Vec<&str> = reference_rows(rows)
        .iter()
        .map(|r| r.mode.as_str())
        .collect();
    expected.sort_unstable();
    assert_eq!(modes, expected, "a row per mode");
}

/// Each drawing holds its traced run's exact figures, as results.csv has them.
fn assert_datapaths(dom: &str, rows: &[Row]) {
    let figures = parts(dom, "<figure class=\"datapath\"", "</figure>");
    let probes = rows.iter().filter(|r| r.zerocopy_receive).count();
    assert_eq!(figures.len(), reference_rows(rows).len() + probes);
    let mut modes = BTreeSet::new();
    for fig in figures {
        let experiment: u32 = fig
            .split("traced run (experiment ")
            .nth(1)
            .and_then(|t| t.split(')').next())
            .and_then(|n| n.parse().ok())
            .expect("the drawing names its experiment");
        let row = rows.iter().find(|r| r.experiment == experiment).unwrap();
        assert!(row.traced);
        assert!(fig.contains(&format!("data-mode=\"{}\"", row.mode)));
        modes.insert(row.mode.clone());
        let b = |v: Option<u64>| format!(">{} B<", grouped(v.expect("a traced figure")));
        let mut expected = vec![
            b(row.bytes_sent),
            b(row.k_copied_at_send_bytes),
            b(row.k_pinned_bytes),
            b(row.k_referenced_at_send_bytes),
            b(row.k_send_bytes),
            b(row.k_deferred_copy_bytes),
            b(row.k_recv_copy_bytes),
            format!(
                ">at delivery, {} pages<",
                grouped(row.k_deferred_copy_pages.unwrap())
            ),
        ];
        if row.mode == "a1" {
            expected.push(b(row.user_copy_bytes));
        }
        if row.zerocopy_receive {
            expected.push(b(row.zc_mapped_bytes));
        }
        for figure in expected {
            assert!(fig.contains(&figure), "{} lacks {figure}", row.mode);
        }
        let sent = row.bytes_sent.unwrap().max(1) as f64;
        let recv = row.k_recv_copy_bytes.unwrap() as f64 / sent;
        assert!(fig.contains(&format!(">{recv:.2} per byte<")), "{fig}");
    }
    assert_eq!(modes.len(), 5, "every mode drawn");
}

/// Every plot report.md shows is an inline `<svg>`; every plot it leaves out is said so.
fn assert_plots(dom: &str, report: &str) {
    let figures = parts(dom, "<figure class=\"plot\"", "</figure>");
    let shown: Vec<&str> = parts(report, "](plots/", ".png)");
    assert_eq!(figures.len(), shown.len());
    for (fig, file) in figures.iter().zip(&shown) {
        assert!(
            fig.starts_with(&format!(" data-plot=\"{file}\">")),
            "{file}"
        );
        assert!(fig.contains("<svg"), "{file} is not inline SVG");
    }
    let omitted: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("Not drawn: "))
        .collect();
    for sentence in &omitted {
        assert!(dom.contains(&format!("<p class=\"omitted\">{sentence}</p>")));
    }
    assert_eq!(
        shown.len() + omitted.len(),
        6,
        "six plots, drawn or said why not"
    );
}
