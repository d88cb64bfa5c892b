//! Every sentence the report generates, held exactly: each section is written from synthetic
//! runs of a whole grid (every mode, two sizes, rr at one and two connections, a zero-copy
//! receive probe, a failed run, no PMU) and compared whole with what it must say.
use super::*;
use crate::output::plots::{Drawn, Omitted};

const SENT: u64 = 1_000_000;

/// A finished row; `value` is its primary figure, `cpu` its CPU time per byte.
fn base(mode: &str, workload: &str, size: u64, threads: u32, traced: bool) -> Row {
    Row {
        mode: mode.into(),
        workload: workload.into(),
        path: "loopback".into(),
        placement: "same".into(),
        client_cpus: "0".into(),
        server_cpus: "1".into(),
        size,
        threads,
        traced,
        status: crate::row::OK.into(),
        checks: if traced { "ok" } else { "not traced" }.into(),
        ci_target_pct: Some(2.5),
        bytes_sent: Some(SENT),
        duration_s: 1.0,
        hw_counters: "no hardware PMU (none here)".into(),
        ..Row::default()
    }
}

/// What the kernel counted for `mode`'s traced run.
fn kernel(r: &mut Row) {
    let all = Some(SENT);
    let none = Some(0);
    let zc = matches!(r.mode.as_str(), "a3" | "a4");
    r.user_copy_bytes = if r.mode == "a1" { all } else { none };
    r.k_send_bytes = all;
    r.k_copied_at_send_bytes = if matches!(r.mode.as_str(), "a1" | "a2") {
        all
    } else {
        none
    };
    r.k_pinned_bytes = if zc { all } else { none };
    r.k_referenced_at_send_bytes = if r.mode == "a5" { all } else { none };
    r.k_deferred_copy_bytes = if zc { all } else { none };
    r.k_deferred_copy_pages = Some(if zc { 245 } else { 0 });
    r.k_recopied_bytes = none;
    r.k_fallback_pct = zc.then_some(100.0);
    r.k_recv_copy_bytes = all;
    r.zc_notifications = zc.then_some(20);
    r.zc_completed = zc.then_some(60);
    r.observer_pct = Some(2.0);
}

/// Three timing runs around `mean` (± `spread`) and one traced run at 0.9 × `mean`.
fn point(rows: &mut Vec<Row>, p: (&str, &str, u64, u32), mean: f64, spread: f64, cpu: f64) {
    let (mode, workload, size, threads) = p;
    for (v, c) in [
        (mean - spread, cpu - 0.01),
        (mean, cpu),
        (mean + spread, cpu + 0.01),
    ] {
        let mut r = base(mode, workload, size, threads, false);
        if workload == "rr" {
            r.rtt_p50_us = Some(v);
        } else {
            r.send_gbps = Some(v);
            r.messages_per_s = Some(SENT as f64 / size as f64);
            r.cpu_ns_per_byte = Some(c);
        }
        r.client_task_clock_ms = Some(100.0);
        // A traced sweep's timing run: the kernel showed none of its programs attached.
        r.attached_programs = Some(0);
        rows.push(r);
    }
    let mut r = base(mode, workload, size, threads, true);
    if workload == "rr" {
        r.rtt_p50_us = Some(mean * 1.1);
    } else {
        r.send_gbps = Some(mean * 0.9);
    }
    kernel(&mut r);
    rows.push(r);
}

/// The synthetic run: a1 and a2 fast, a3 and a4 slow, a5 between; rr at 1 and 2 connections.
fn grid() -> Vec<Row> {
    let mut rows = Vec::new();
    let stream = [
        ("a1", 4.0, 10.0, 2.0, 0.40),
        ("a2", 3.5, 11.0, 2.2, 0.38),
        ("a3", 0.5, 6.0, 0.6, 1.30),
        ("a4", 0.5, 6.0, 0.6, 1.30),
        ("a5", 3.0, 10.0, 1.9, 0.45),
    ];
    for (mode, small, large, spread, cpu) in stream {
        point(&mut rows, (mode, "stream", 1024, 1), small, 0.05, cpu * 4.0);
        point(
            &mut rows,
            (mode, "stream", 16384, 1),
            large,
            spread / 10.0,
            cpu,
        );
    }
    for (mode, one, two) in [("a1", 60.0, 20.0), ("a3", 80.0, 70.0)] {
        point(&mut rows, (mode, "rr", 16384, 1), one, 1.0, 0.0);
        point(&mut rows, (mode, "rr", 16384, 2), two, 1.0, 0.0);
    }
    let mut probe = base("a3", "stream", 16384, 1, true);
    kernel(&mut probe);
    probe.zerocopy_receive = true;
    probe.zc_mapped_bytes = Some(600_000);
    probe.zc_copied_bytes = Some(400_000);
    rows.push(probe);
    rows.push(base("a4", "rr", 1024, 1, false).failed("connection refused"));
    // One run that stalled: a1's two-connection round trips now split 3 and 1.
    let mut stalled = base("a1", "rr", 16384, 2, false);
    stalled.rtt_p50_us = Some(40.0);
    stalled.attached_programs = Some(0);
    rows.push(stalled);
    scheduled(&mut rows, 20.0);
    rows
}

/// Stamps `rows` as a sweep of `budget` s ran them, one every 0.35 s (traced rows in round 0,
/// the rest in rounds 1..), the last point with a window twice as long.
fn scheduled(rows: &mut [Row], budget: f64) {
    let last = rows.len() - 1;
    for (i, r) in rows.iter_mut().enumerate() {
        r.sweep_s = Some(i as f64 * 0.35);
        r.elapsed_s = Some(0.35);
        r.budget_s = Some(budget);
        r.round = Some(if r.traced { 0 } else { 1 + i as u32 % 3 });
        if i == last {
            r.duration_s *= 2.0;
        }
    }
}

fn machine() -> Machine {
    Machine {
        kernel: "6.18.0".into(),
        cpu: "Test CPU".into(),
        cores: 2,
        memory: "4.0 GiB".into(),
    }
}

/// An untraced run on a machine with a PMU and one connection count: a2 beats a1 at every
/// size, a1 falls at its largest, a3 retries ENOBUFS, and /proc/stat and the software
/// counters gave nothing.
fn untraced_with_pmu() -> Vec<Row> {
    let mut rows = Vec::new();
    let grid = [
        ("a1", [4.0, 12.0, 9.0]),
        ("a2", [5.0, 14.0, 16.0]),
        ("a3", [1.0, 3.0, 8.0]),
    ];
    for (mode, gbps) in grid {
        for (size, g) in [1024u64, 4096, 16384].into_iter().zip(gbps) {
            for v in [g * 0.99, g, g * 1.01] {
                let mut r = base(mode, "stream", size, 1, false);
                r.send_gbps = Some(v);
                r.messages_per_s = Some(1000.0);
                r.hw_counters = "measured".into();
                let misses = if mode == "a1" { 2_000_000 } else { 1_000_000 };
                r.client_l1d_load_misses = Some(misses);
                r.client_llc_load_misses = Some(50_000);
                r.enobufs_retries = (mode == "a3").then_some(5);
                rows.push(r);
            }
        }
    }
    rows
}

/// The same rows with every run traced (`--trace-all`).
fn trace_all() -> Vec<Row> {
    let mut rows: Vec<Row> = grid().into_iter().filter(|r| r.is_ok()).collect();
    for r in &mut rows {
        if !r.traced {
            r.traced = true;
            kernel(r);
            r.checks = "ok".into();
        }
    }
    rows
}

fn plot_set() -> PlotSet {
    PlotSet {
        drawn: vec![Drawn {
            file: "throughput_vs_size",
            title: "Stream throughput vs message size (1 connection(s))".into(),
        }],
        omitted: vec![Omitted {
            file: "cycles_per_byte_vs_size",
            title: "CPU cycles per byte sent vs size (stream, 1 connection(s))".into(),
            why: "the hardware counters were not measured on this machine: no hardware PMU (none here)".into(),
        }],
    }
}

/// The whole report.md of `rows`, compared line by line with `expected`.
fn assert_report(rows: &[Row], name: &str, expected: &str) {
    let s = Summary::from_rows(rows);
    let text = render(&s, "RUN", &machine(), &plot_set(), "netcopy sweep --quick");
    if let Ok(path) = std::env::var("BLESS_REPORT") {
        std::fs::write(format!("{path}/{name}"), &text).unwrap();
    }
    for (i, (got, want)) in text.lines().zip(expected.lines()).enumerate() {
        assert_eq!(got, want, "line {}", i + 1);
    }
    assert_eq!(text.lines().count(), expected.lines().count(), "{text}");
}

#[test]
fn every_sentence_of_a_traced_grid() {
    assert_report(
        &grid(),
        "traced_grid.md",
        include_str!("expected/traced_grid.md"),
    );
}

#[test]
fn every_sentence_of_an_untraced_run_with_a_pmu() {
    assert_report(
        &untraced_with_pmu(),
        "untraced_with_pmu.md",
        include_str!("expected/untraced_with_pmu.md"),
    );
}

#[test]
fn every_sentence_of_a_run_traced_throughout() {
    assert_report(
        &trace_all(),
        "trace_all.md",
        include_str!("expected/trace_all.md"),
    );
}

/// A run that ended before any timing run: what the report can and cannot say.
#[test]
fn every_sentence_of_a_run_with_only_failures() {
    let rows = vec![base("a1", "stream", 1024, 1, false).failed("no route to host.")];
    assert_report(
        &rows,
        "only_failures.md",
        include_str!("expected/only_failures.md"),
    );
}
