//! Which points get the next timing runs, in which order, and with how long a window.
//!
//! Every point gets `min_reps` runs first, round by round, each round in a fresh random order.
//! Then each round is planned from every point's runs so far: a point's next goal is ±5 %
//! (twice the default target's width) until it is there, then the target; the runs it needs
//! for that goal are projected from its spread with the t quantile shrinking as runs are
//! added, and priced in seconds of machine time at its own pace. Every ±5 % goal comes before
//! any sharpening to the target, each kind cheapest first, and gets a run this round if the
//! time left can finish it; a round's runs go in a
//! random order, so a slow minute of the machine lands on many points a little rather than on
//! a few. When no goal fits the time left, every point that could still reach its goal within
//! the maximum of runs gets a run while the budget lasts, and when none could, every point
//! short of the target.
//!
//! Windows fit the noise: at the end of its first runs, each point compares the spread inside
//! its windows (their 50 ms slices) with the spread between its runs. Noise inside a window
//! shrinks as the window grows; noise between runs does not. A point keeps its window, or takes
//! 2 or 4 times as long a one on the same connections after the same warm-up, whichever is
//! projected to narrow its interval most per second.

use std::time::Duration;

use super::Confidence;
use crate::{row::Row, stats};

/// Window multiples a point may take.
const STRETCHES: [u32; 3] = [1, 2, 4];
/// A longer window must promise this much less time to the same interval to be taken: the
/// spreads behind the choice come from a few runs.
const STRETCH_GAIN: f64 = 0.8;

/// One grid point's progress.
#[derive(Debug, Default, Clone)]
pub(super) struct PointState {
    pub(super) timing_reps: u32,
    /// The primary figure of every finished timing run.
    pub(super) samples: Vec<f64>,
    /// Sum over runs of the relative variance of their slices, and of their slice counts.
    slice_var: f64,
    slice_count: f64,
    slice_runs: u32,
    /// Seconds the timing runs took, in all, and the window they were given, in all.
    seconds: f64,
    window_seconds: f64,
    /// The point's window, in multiples of the grid's; 1 until its first runs are in.
    pub(super) stretch: u32,
}

impl PointState {
    pub(super) fn new() -> Self {
        Self {
            stretch: 1,
            ..Self::default()
        }
    }

    /// Takes in one finished timing run (a failed run adds only its time).
    pub(super) fn record(&mut self, row: &Row) {
        self.seconds += row.elapsed_s.unwrap_or(0.0);
        self.window_seconds += row.duration_s;
        let Some(v) = row.primary().filter(|_| row.is_ok()) else {
            return;
        };
        self.samples.push(v);
        let slices = row.slice_rates();
        if let Some(cv) = stats::cv_pct(&slices) {
            self.slice_var += (cv / 100.0).powi(2);
            self.slice_count += slices.len() as f64;
            self.slice_runs += 1;
        }
    }

    /// Relative variance of the runs (fraction²); None before two runs.
    fn run_var(&self) -> Option<f64> {
        stats::cv_pct(&self.samples).map(|cv| (cv / 100.0).powi(2))
    }

    fn within(&self, pct: f64) -> bool {
        stats::Estimate::of(&self.samples).is_some_and(|e| e.within(pct))
    }

    /// Seconds one more run takes, window `base` × stretch: the pace of its runs so far
    /// (set-up and warm-up included), with the window scaled.
    fn cost(&self, base: Duration, stretch: u32) -> f64 {
        let runs = f64::from(self.timing_reps.max(1));
        let overhead = ((self.seconds - self.window_seconds) / runs).max(0.0);
        overhead + base.as_secs_f64() * f64::from(stretch)
    }

    /// The relative variance a run of `stretch` windows is projected to have: the part of the
    /// runs' variance their slices explain shrinks with the window, the rest stays.
    fn projected_var(&self, stretch: u32) -> Option<f64> {
        let runs = self.run_var()?;
        if self.slice_runs == 0 {
            return Some(runs);
        }
        let per_slice = self.slice_var / f64::from(self.slice_runs);
        let slices = self.slice_count / f64::from(self.slice_runs);
        let within = (per_slice / slices).min(runs);
        Some(runs - within + within / f64::from(stretch))
    }

    /// The window multiple that narrows the interval fastest per second (see the module).
    pub(super) fn choose_stretch(&mut self, base: Duration) {
        let price = |m: u32| {
            self.projected_var(m)
                .map_or(f64::INFINITY, |v| v * self.cost(base, m))
        };
        let keep = price(1);
        let best = STRETCHES
            .into_iter()
            .min_by(|a, b| price(*a).total_cmp(&price(*b)))
            .unwrap_or(1);
        self.stretch = if price(best) < STRETCH_GAIN * keep {
            best
        } else {
            1
        };
    }

    /// More runs the point needs for ±`goal` %, at most `left`: the runs so far keep their
    /// spread, new ones have the spread projected for the point's window.
    fn runs_needed(&self, goal: f64, left: u32) -> Option<u32> {
        let n = self.samples.len() as f64;
        let (old, new) = (self.run_var()?, self.projected_var(self.stretch)?);
        (1..=left).find(|&j| {
            let all = n + f64::from(j);
            let var = (n * old + f64::from(j) * new) / all;
            t_95(all as usize - 1) * (var / all).sqrt() * 100.0 <= goal
        })
    }
}

impl Confidence {
    /// The first goal past the minimum: twice the target's width.
    fn first_goal_pct(&self) -> f64 {
        2.0 * self.target_pct
    }

    /// The points that get a timing run in `round` (from 1), in the order they get it: all of
    /// them up to `min_reps`; then the cheapest goals that fit in `seconds_left` (see the
    /// module); then every point short of the target. `shuffle` puts each round in its order.
    pub(super) fn round(
        &self,
        round: u32,
        state: &[PointState],
        base: Duration,
        seconds_left: f64,
        shuffle: &mut impl FnMut(&mut [usize]),
    ) -> Vec<usize> {
        let mut order: Vec<usize> = if round <= self.min_reps {
            (0..state.len()).collect()
        } else {
            self.planned(state, base, seconds_left)
        };
        shuffle(&mut order);
        order
    }

    fn planned(&self, state: &[PointState], base: Duration, seconds_left: f64) -> Vec<usize> {
        let open: Vec<usize> = (0..state.len())
            .filter(|&i| state[i].timing_reps < self.max_reps && !state[i].within(self.target_pct))
            .collect();
        // (whether the goal is the target itself, seconds to it, point): every reachable
        // ±5 % goal before any sharpening to the target, each kind cheapest first.
        let mut priced: Vec<(bool, f64, usize)> = open
            .iter()
            .filter_map(|&i| {
                let p = &state[i];
                let sharpening = p.within(self.first_goal_pct());
                let goal = if sharpening {
                    self.target_pct
                } else {
                    self.first_goal_pct()
                };
                let runs = p.runs_needed(goal, self.max_reps - p.timing_reps)?;
                Some((sharpening, f64::from(runs) * p.cost(base, p.stretch), i))
            })
            .collect();
        priced.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut left = seconds_left;
        let fitting: Vec<usize> = priced
            .iter()
            .filter(|(_, seconds, _)| {
                let fits = *seconds <= left;
                if fits {
                    left -= seconds;
                }
                fits
            })
            .map(|(_, _, i)| *i)
            .collect();
        // No goal fits the time left: the points that could still reach theirs within the
        // maximum, then the rest.
        match (fitting.is_empty(), priced.is_empty()) {
            (false, _) => fitting,
            (true, false) => priced.into_iter().map(|(_, _, i)| i).collect(),
            (true, true) => open,
        }
    }
}

/// `stats::t_95`, read from a table made once: the plan asks for it thousands of times a
/// round.
fn t_95(df: usize) -> f64 {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| (0..=256).map(stats::t_95).collect());
    table.get(df).copied().unwrap_or_else(|| stats::t_95(df))
}

/// A small, fast generator for the rounds' order (splitmix64): the order needs no more than
/// to be unrelated to the grid and the machine's rhythm.
pub(super) struct Shuffler(u64);

impl Shuffler {
    pub(super) fn seeded(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher-Yates.
    pub(super) fn shuffle(&mut self, order: &mut [usize]) {
        for i in (1..order.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
}
