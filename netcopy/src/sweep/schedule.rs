//! Which points get the next timing runs: every point up to the minimum, then those that can
//! still reach twice the target's width in the time left, cheapest first, then the target.

use std::time::Instant;

use super::Confidence;
use crate::stats::Estimate;

/// One grid point's progress.
#[derive(Default)]
pub(super) struct PointState {
    pub(super) timing_reps: u32,
    /// The primary figure of every finished timing run.
    pub(super) samples: Vec<f64>,
}

impl PointState {
    fn within(&self, pct: f64) -> bool {
        Estimate::of(&self.samples).is_some_and(|e| e.within(pct))
    }

    /// About how many timing runs in all the point needs to reach ±`pct`, from its spread so
    /// far (the interval narrows with the square root of the runs).
    fn runs_needed(&self, pct: f64) -> f64 {
        match Estimate::of(&self.samples) {
            Some(e) if e.half_width.is_finite() => {
                let ratio = e.relative_pct() / pct;
                e.n as f64 * ratio * ratio
            }
            _ => f64::INFINITY,
        }
    }

    /// Whether another timing run could still bring the point to ±`pct` within the maximum.
    fn wants(&self, pct: f64, c: &Confidence, reachable_only: bool) -> bool {
        self.timing_reps < c.max_reps
            && !self.within(pct)
            && (!reachable_only || self.runs_needed(pct) <= f64::from(c.max_reps))
    }
}

impl Confidence {
    /// The first goal past the minimum: twice the target's width. Every point that can reach
    /// it within the maximum is brought there before any point is sharpened to the target,
    /// so a budget that runs out leaves as many points usable as it could.
    fn first_goal_pct(&self) -> f64 {
        2.0 * self.target_pct
    }

    /// The points that get a timing run in `round` (from 1), in the order they get it: all of
    /// them, in grid order, up to `min_reps`; then those short of the first goal that can
    /// still reach it, cheapest first and only as many as `affordable` more runs can bring
    /// there; then those short of the target. Within a round the points closest to their goal
    /// go first.
    pub(super) fn round(&self, round: u32, state: &[PointState], affordable: f64) -> Vec<usize> {
        if round <= self.min_reps {
            return (0..state.len()).collect();
        }
        let first = self.first_goal_pct();
        for (goal, reachable_only) in [(first, true), (self.target_pct, false)] {
            let mut wanting: Vec<usize> = (0..state.len())
                .filter(|&i| state[i].wants(goal, self, reachable_only))
                .collect();
            wanting.sort_by(|&a, &b| {
                state[a]
                    .runs_needed(goal)
                    .total_cmp(&state[b].runs_needed(goal))
            });
            if reachable_only {
                // A point that cannot be finished in the time left only takes runs from one
                // that can: leave it to the second goal.
                let mut left = affordable;
                wanting.retain(|&i| {
                    let more =
                        (state[i].runs_needed(goal) - state[i].samples.len() as f64).max(1.0);
                    let fits = more <= left;
                    if fits {
                        left -= more;
                    }
                    fits
                });
            }
            if !wanting.is_empty() {
                return wanting;
            }
        }
        Vec::new()
    }
}

/// About how many more experiments fit in the budget, at the pace so far.
pub(super) fn affordable_runs(c: &Confidence, started: Instant, done: u32) -> f64 {
    match c.budget {
        Some(budget) if done > 0 => {
            let pace = started.elapsed().as_secs_f64() / f64::from(done);
            budget.saturating_sub(started.elapsed()).as_secs_f64() / pace
        }
        _ => f64::INFINITY,
    }
}
