//! The report's wording, on synthetic rows whose intervals overlap and rows whose do not.
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
        text.starts_with("a2 and a1 are indistinguishable on this machine at every measured size"),
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
    assert!(o.contains("Not converged (2; widest first; 0 whose runs disagree, 2 stopped short): a2 stream 1KiB x 1 ±7.5 % after 3 runs (no budget recorded), a3 stream 1KiB x 1 ±3.7 % after 3 runs (no budget recorded)."), "{o}");
    // The last timing run ended at the 10 s budget: it ran out, and the runs each point
    // still needs at its spread are stated (a2: cv 3 %, ±2.5 % at 9 runs; a3: 1.5 %, at 4).
    for (i, r) in rows.iter_mut().enumerate() {
        (r.sweep_s, r.elapsed_s, r.budget_s) = (Some(i as f64 * 0.9), Some(0.35), Some(10.0));
    }
    let mut o = String::new();
    confidence(&mut o, &Summary::from_rows(&rows));
    assert!(o.contains("(2; widest first; 0 whose runs disagree, 2 for want of budget): a2 stream 1KiB x 1 ±7.5 % after 3 runs (budget ran out; about 6 more at its spread), a3 stream 1KiB x 1 ±3.7 % after 3 runs (budget ran out; about 1 more at its spread)."), "{o}");
    // With time to spare, a point stops short only at its maximum of runs.
    rows.iter_mut().for_each(|r| r.budget_s = Some(60.0));
    let mut o = String::new();
    confidence(&mut o, &Summary::from_rows(&rows));
    assert!(o.contains("2 at their maximum of runs): a2 stream 1KiB x 1 ±7.5 % after 3 runs (at the maximum of runs),"), "{o}");
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

#[test]
fn observer_table_states_the_interval_and_the_unobserved_runs() {
    let mut rows = Vec::new();
    // Untraced 9, 10, 11 (mean 10, s 1, half-width 4.303 / sqrt 3); traced 8.
    point(&mut rows, "a1", 256, 10.0, 1.0, 8.0);
    for r in rows.iter_mut().filter(|r| !r.traced).take(2) {
        r.attached_programs = Some(0);
    }
    let s = Summary::from_rows(&rows);
    let e = s.points[0].observer_estimate().unwrap();
    assert!((e.mean - 0.8).abs() < 1e-12);
    // 0.8 x 4.303 x (1 / 10) x sqrt(4 / 3)
    let expected = 0.8 * 4.303 * 0.1 * (4.0f64 / 3.0).sqrt();
    assert!((e.half_width - expected).abs() < 1e-6, "{}", e.half_width);
    let mut o = String::new();
    observer(&mut o, &s);
    assert!(o.contains("none attached in 2 of 3 untraced runs"), "{o}");
    assert!(
        o.contains(&format!(
            "| stream | 256B | 1 | 0.80 ({:.2}–{:.2}) |",
            0.8 - expected,
            0.8 + expected
        )),
        "{o}"
    );
}
