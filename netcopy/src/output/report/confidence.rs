//! The report's confidence section: how many points reached ±5 % and ±2.5 %, by which method,
//! what the sweep spent, which runs no mean counts, and why each point short of the target
//! stopped.

use std::fmt::Write as _;

use super::{LOOSE_PCT, TIGHT_PCT};
use crate::{
    output::summary::{Point, Summary},
    row::Row,
    stats,
};

/// The method behind every interval, as the report names it.
pub const METHOD: &str =
    "Student's t-interval of the mean of each point's timing runs, every finished run counted once";

/// A sweep whose last timing run ended this close to its budget stopped for it: the schedule
/// checks the budget between runs only.
const BUDGET_SLACK_S: f64 = 1.0;

/// How many points reached each interval width; false when no timing run finished.
pub fn confidence_shares(o: &mut String, s: &Summary) -> bool {
    let (loose, n) = s.converged_share(LOOSE_PCT);
    let (tight, _) = s.converged_share(TIGHT_PCT);
    if n == 0 {
        let _ = writeln!(o, "No timing runs finished: nothing to state.");
        return false;
    }
    let pct = |k: usize| k as f64 * 100.0 / n as f64;
    let target = s.points.iter().find_map(|p| p.target_pct);
    let _ = writeln!(
        o,
        "Of {n} points, **{loose} ({:.0} %) are within ±{LOOSE_PCT} %** and **{tight} ({:.0} %) within ±{TIGHT_PCT} %** of their mean at 95 % confidence ({METHOD}; primary figure: stream throughput, rr median round trip){}.",
        pct(loose),
        pct(tight),
        target.map_or(String::new(), |t| format!("; the sweep aimed for ±{t} %"))
    );
    true
}

/// The shares, the time spent, the runs left out, and each point short of the target with
/// why it stopped.
pub fn confidence(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "\n## Confidence\n");
    if !confidence_shares(o, s) {
        return;
    }
    spent(o, s);
    left_out(o, s);
    let target = s.points.iter().find_map(|p| p.target_pct);
    let mut short: Vec<(f64, &Point)> = s
        .points
        .iter()
        .filter(|p| !p.within(target.unwrap_or(TIGHT_PCT)))
        .map(|p| (p.primary().map_or(f64::INFINITY, |e| e.relative_pct()), p))
        .collect();
    short.sort_by(|a, b| b.0.total_cmp(&a.0));
    if short.is_empty() {
        let _ = writeln!(o, "\nEvery point converged.");
        return;
    }
    let ran_out = budget_ran_out(s);
    let reasons: Vec<(bool, String)> = short
        .iter()
        .map(|(_, p)| reason(p, target.unwrap_or(TIGHT_PCT), ran_out))
        .collect();
    let disagree = reasons.iter().filter(|r| r.0).count();
    let _ = writeln!(
        o,
        "\nNot converged ({}; widest first; {disagree} whose runs disagree, {} {}): {}.",
        short.len(),
        short.len() - disagree,
        match ran_out {
            Some(true) => "for want of budget",
            Some(false) => "at their maximum of runs",
            None => "stopped short",
        },
        short
            .iter()
            .zip(&reasons)
            .map(|((pct, p), (_, why))| format!(
                "{} ±{pct:.1} % after {} runs ({why})",
                p.label(),
                p.timing.len()
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        o,
        "\nRuns disagree when the best cut of a point's runs into two groups explains more of their variance than it does for 95 % of samples of as many normal runs (Jenks' goodness of variance fit, tested on points with {} runs or more): the runs then come from two states, which more of them average only slowly.",
        stats::MIN_SPLIT_RUNS
    );
}

/// The time the sweep took against its budget, and where it went.
fn spent(o: &mut String, s: &Summary) {
    let all: Vec<&Row> = s
        .points
        .iter()
        .flat_map(|p| p.timing.iter().chain(&p.traced))
        .chain(&s.failed)
        .chain(&s.zero_copy_receive)
        .collect();
    let Some(span) = all
        .iter()
        .filter_map(|r| Some(r.sweep_s? + r.elapsed_s?))
        .max_by(f64::total_cmp)
    else {
        return;
    };
    let seconds = |timing: bool| -> (usize, f64) {
        let rows = s.points.iter().flat_map(|p| {
            if timing {
                p.timing.iter().collect::<Vec<_>>()
            } else {
                p.traced.iter().filter(|_| !p.speed_traced).collect()
            }
        });
        rows.fold((0, 0.0), |(n, t), r| {
            (n + 1, t + r.elapsed_s.unwrap_or(0.0))
        })
    };
    let (traced, traced_s) = seconds(false);
    let (timing, timing_s) = seconds(true);
    let budget = all.iter().find_map(|r| r.budget_s);
    let stretched = s.points.iter().filter(|p| stretched(p)).count();
    let runs = if s.speed_traced() {
        format!("{timing} runs, every one traced, took {}", clock(timing_s))
    } else {
        format!(
            "{} took {}, {} {}",
            plural(traced, "traced run"),
            clock(traced_s),
            plural(timing, "timing run"),
            clock(timing_s)
        )
    };
    let _ = writeln!(
        o,
        "\nTime: the sweep ran {}{}; {runs} ({} with a window longer than the grid's, where the noise inside a window outweighed the noise between runs).",
        clock(span),
        budget.map_or(" (no budget)".to_owned(), |b| format!(
            " of its {} budget",
            clock(b)
        )),
        plural(stretched, "point"),
    );
}

/// `1 run`, `2 runs`.
fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Whether any of a point's timing runs had a longer window than its first.
fn stretched(p: &Point) -> bool {
    let first = p.timing.first().map_or(0.0, |r| r.duration_s);
    p.timing.iter().any(|r| r.duration_s > first)
}

/// `m:ss`.
fn clock(seconds: f64) -> String {
    let s = seconds.round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// The rule for the runs no mean counts, and how many there were.
fn left_out(o: &mut String, s: &Summary) {
    let failed = s.failed.iter().filter(|r| !r.traced).count();
    if failed == 0 {
        let _ = writeln!(
            o,
            "\nEvery timing run finished and is in its point's mean: a run is left out only when it failed, and none did."
        );
    } else {
        let _ = writeln!(
            o,
            "\n**{} in no mean** (a run is left out only when it failed: it has no figure; its row says why).",
            if failed == 1 {
                "1 timing run failed and is".to_owned()
            } else {
                format!("{failed} timing runs failed and are")
            }
        );
    }
}

/// Whether the timing runs stopped because the budget was spent; None when the rows do not
/// say (no budget recorded: results written before the columns existed).
fn budget_ran_out(s: &Summary) -> Option<bool> {
    let timing = s.points.iter().flat_map(|p| &p.timing);
    let end = timing
        .clone()
        .filter_map(|r| Some(r.sweep_s? + r.elapsed_s?))
        .max_by(f64::total_cmp);
    let budget = timing.clone().find_map(|r| r.budget_s)?;
    Some(end? >= budget - BUDGET_SLACK_S)
}

/// Why `p` stopped short of `target`: its runs disagree (true), or the budget ran out, or it
/// reached the maximum of runs.
fn reason(p: &Point, target: f64, ran_out: Option<bool>) -> (bool, String) {
    let runs: Vec<f64> = p.timing.iter().filter_map(Row::primary).collect();
    if let Some(split) = stats::two_groups(&runs).filter(stats::Split::disagree) {
        return (
            true,
            format!(
                "runs disagree: {} and {} runs, fit {:.3} > {:.3}",
                split.low, split.high, split.fit, split.critical
            ),
        );
    }
    match ran_out {
        None => return (false, "no budget recorded".to_owned()),
        Some(false) => return (false, "at the maximum of runs".to_owned()),
        Some(true) => {}
    }
    let more = stats::cv_pct(&runs)
        .map(|cv| stats::runs_to_reach(cv, target, 1000).saturating_sub(runs.len() as u32));
    (
        false,
        match more {
            Some(more) => format!("budget ran out; about {more} more at its spread"),
            None => "budget ran out".to_owned(),
        },
    )
}
