//! Whether a point's runs disagree with each other: a two-group split test.
//!
//! The runs are sorted and cut in two where the two groups' own spread is least (Jenks'
//! natural breaks for two classes, as Otsu's threshold does it); the share of the runs'
//! variance that the cut explains is Jenks' goodness of variance fit (GVF). Runs that land in
//! one of two states (a round trip that flips between 28 and 35 µs, one stalled run among
//! steady ones) fit two groups almost perfectly; runs spread around one value do not. The GVF
//! is compared with its 95th percentile for the same number of normal runs, drawn by a fixed
//! Monte Carlo (so every report says the same of the same runs): above it, the runs disagree
//! at the 5 % level. More runs of such a point narrow its mean only slowly; the report says so.

/// Monte Carlo draws behind each critical value.
const DRAWS: usize = 2000;
/// Fewest runs the test is made on: with three, any cut fits almost perfectly.
pub const MIN_RUNS: usize = 4;

/// Two groups the runs split into, and how well.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Split {
    /// Runs in the lower and the upper group.
    pub low: usize,
    pub high: usize,
    /// Share of the variance the cut explains (Jenks' GVF), 0-1.
    pub fit: f64,
    /// Its 95th percentile for the same number of normal runs.
    pub critical: f64,
}

impl Split {
    /// Whether the runs disagree: the cut fits better than 95 % of normal samples' cuts.
    pub fn disagree(&self) -> bool {
        self.fit > self.critical
    }
}

/// The best two-group cut of `samples` and its test; None with fewer than [`MIN_RUNS`] or no
/// spread at all.
pub fn two_groups(samples: &[f64]) -> Option<Split> {
    if samples.len() < MIN_RUNS {
        return None;
    }
    let (fit, low) = best_cut(samples)?;
    Some(Split {
        low,
        high: samples.len() - low,
        fit,
        critical: critical_fit(samples.len()),
    })
}

/// The GVF of the best cut of `samples` and how many runs fall below it.
fn best_cut(samples: &[f64]) -> Option<(f64, usize)> {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let ss = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>()
    };
    let total = ss(&s);
    if total <= 0.0 {
        return None;
    }
    (1..s.len())
        .map(|k| (1.0 - (ss(&s[..k]) + ss(&s[k..])) / total, k))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// The 95th percentile of the best cut's GVF over `DRAWS` samples of `n` standard normal
/// runs (fixed seed); drawn once per `n` in a process.
pub fn critical_fit(n: usize) -> f64 {
    static DRAWN: std::sync::Mutex<std::collections::BTreeMap<usize, f64>> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());
    let mut drawn = DRAWN.lock().unwrap_or_else(|e| e.into_inner());
    *drawn.entry(n).or_insert_with(|| draw_critical_fit(n))
}

fn draw_critical_fit(n: usize) -> f64 {
    let mut normal = normal_source(0x9e37_79b9_7f4a_7c15 ^ n as u64);
    let mut fits: Vec<f64> = (0..DRAWS)
        .filter_map(|_| best_cut(&(0..n).map(|_| normal()).collect::<Vec<_>>()).map(|f| f.0))
        .collect();
    fits.sort_by(f64::total_cmp);
    fits[(fits.len() * 95).div_ceil(100).min(fits.len() - 1)]
}

/// Standard normal draws (Box-Muller over a xorshift seeded with `seed`): reproducible samples
/// of a known distribution.
pub(crate) fn normal_source(seed: u64) -> impl FnMut() -> f64 {
    let mut x = seed.max(1);
    let mut uniform = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    move || {
        let (u, v) = (uniform(), uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_values_of_normal_runs() {
        // Independent simulation (Python, 4000 draws): 0.956 at 5 runs, 0.895 at 8, 0.775 at 24.
        for (n, expected) in [(5, 0.956), (8, 0.895), (24, 0.775)] {
            let c = critical_fit(n);
            assert!((c - expected).abs() < 0.015, "{n} runs: {c}");
        }
    }

    /// Against known distributions: normal runs disagree in about 5 % of samples (the test's
    /// level), runs from two equal modes eight standard deviations apart nearly always (at four, about a third of
    /// the time: the test sees only modes well apart).
    #[test]
    fn level_and_power() {
        let mut normal = normal_source(11);
        let mut rate = |shift: f64| {
            let hits = (0..1000)
                .filter(|_| {
                    let s: Vec<f64> = (0..8)
                        .map(|i| normal() + if i % 2 == 0 { 0.0 } else { shift })
                        .collect();
                    two_groups(&s).unwrap().disagree()
                })
                .count();
            hits as f64 / 1000.0
        };
        let level = rate(0.0);
        assert!((0.03..=0.07).contains(&level), "normal runs: {level}");
        let power = rate(8.0);
        assert!(power > 0.9, "two modes: {power}");
    }

    #[test]
    fn runs_of_a_default_sweep() {
        // rr runs that flip between two round trips (a default run of 2026-12-06): 3 and 5.
        let flipping = [34.85, 36.77, 36.03, 34.08, 28.57, 35.36, 28.78, 28.35];
        let split = two_groups(&flipping).unwrap();
        assert!(split.disagree(), "{split:?}");
        assert_eq!((split.low, split.high), (3, 5));
        // One stalled run among steady ones.
        let stalled = two_groups(&[16.51, 15.5, 25.09, 15.09, 15.23]).unwrap();
        assert!(stalled.disagree() && stalled.high == 1, "{stalled:?}");
        // Runs spread around one value.
        let one = two_groups(&[15.78, 16.10, 15.52, 15.95, 16.31, 15.70, 15.88]).unwrap();
        assert!(!one.disagree(), "{one:?}");
        assert_eq!(two_groups(&[1.0, 2.0, 3.0]), None);
        assert_eq!(two_groups(&[2.0; 5]), None);
    }
}
