//! The statistics behind every claim netcopy makes about speed: the mean of a point's
//! repetitions with its 95 % confidence interval (Student's t), and comparisons that name a
//! winner only when the two intervals do not overlap.

use statrs::distribution::{ContinuousCDF as _, StudentsT};

/// Confidence level of every interval netcopy reports.
pub const CONFIDENCE_PCT: f64 = 95.0;

/// Two-sided 95 % quantile of Student's t for `df` degrees of freedom (statrs), to the three
/// decimals of the published tables: every interval reported before reads the same.
pub fn t_95(df: usize) -> f64 {
    let Ok(t) = StudentsT::new(0.0, 1.0, df as f64) else {
        // No degree of freedom (one sample): no interval.
        return f64::INFINITY;
    };
    (t.inverse_cdf(0.975) * 1000.0).round() / 1000.0
}

/// A mean with its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub n: usize,
    pub mean: f64,
    /// Half the interval's width; infinite with one sample.
    pub half_width: f64,
}

impl Estimate {
    /// From samples; None without any.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let n = samples.len();
        if n == 0 {
            return None;
        }
        let mean = samples.iter().sum::<f64>() / n as f64;
        let half_width = if n < 2 {
            f64::INFINITY
        } else {
            let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            t_95(n - 1) * (var / n as f64).sqrt()
        };
        Some(Self {
            n,
            mean,
            half_width,
        })
    }

    pub fn low(&self) -> f64 {
        self.mean - self.half_width
    }

    pub fn high(&self) -> f64 {
        self.mean + self.half_width
    }

    /// Half-width relative to the mean, %: the "±x %" of the interval.
    pub fn relative_pct(&self) -> f64 {
        if self.mean == 0.0 {
            if self.half_width == 0.0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            self.half_width * 100.0 / self.mean.abs()
        }
    }

    /// Whether the interval is within ±`target_pct` of the mean.
    pub fn within(&self, target_pct: f64) -> bool {
        self.relative_pct() <= target_pct
    }

    /// `12.3 ± 0.4` with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        if self.half_width.is_finite() {
            format!("{:.digits$} ± {:.digits$}", self.mean, self.half_width)
        } else {
            format!("{:.digits$} (one run)", self.mean)
        }
    }
}

/// The fewest runs whose interval would be within ±`goal_pct` of the mean when the runs
/// spread with a coefficient of variation of `cv_pct` (t(n-1)·cv/√n ≤ goal: the t quantile
/// shrinks with the runs too); at most `cap`.
pub fn runs_to_reach(cv_pct: f64, goal_pct: f64, cap: u32) -> u32 {
    (2..cap)
        .find(|&n| t_95(n as usize - 1) * cv_pct / f64::from(n).sqrt() <= goal_pct)
        .unwrap_or(cap)
}

/// Coefficient of variation of `samples`, % of their mean; None with fewer than two or a mean
/// of 0.
pub fn cv_pct(samples: &[f64]) -> Option<f64> {
    let n = samples.len();
    let mean = samples.iter().sum::<f64>() / n as f64;
    if n < 2 || mean == 0.0 {
        return None;
    }
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some(var.sqrt() * 100.0 / mean.abs())
}

/// How one estimate stands against another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The first is higher: its interval lies wholly above the other's.
    Higher,
    /// The first is lower: its interval lies wholly below.
    Lower,
    /// The intervals overlap: no winner can be named on this machine.
    Indistinguishable,
}

/// Compares `a` with `b` by their intervals.
pub fn compare(a: &Estimate, b: &Estimate) -> Verdict {
    if a.low() > b.high() {
        Verdict::Higher
    } else if a.high() < b.low() {
        Verdict::Lower
    } else {
        Verdict::Indistinguishable
    }
}

/// The ratio a / b with an interval from the two relative half-widths (first-order
/// propagation); None when b's mean is 0.
pub fn ratio(a: &Estimate, b: &Estimate) -> Option<Estimate> {
    if b.mean == 0.0 {
        return None;
    }
    let mean = a.mean / b.mean;
    let rel = ((a.relative_pct() / 100.0).powi(2) + (b.relative_pct() / 100.0).powi(2)).sqrt();
    Some(Estimate {
        n: a.n.min(b.n),
        mean,
        half_width: mean.abs() * rel,
    })
}

pub(crate) mod shape;
pub use shape::{MIN_RUNS as MIN_SPLIT_RUNS, Split, two_groups};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_known_samples() {
        // mean 10, sample sd 1 (values 9, 10, 11), n = 3: half-width = 4.303 / sqrt(3).
        let e = Estimate::of(&[9.0, 10.0, 11.0]).unwrap();
        assert_eq!(e.n, 3);
        assert!((e.mean - 10.0).abs() < 1e-12);
        assert!((e.half_width - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert!((e.relative_pct() - 24.843).abs() < 1e-2);
        assert!(!e.within(5.0));
        let one = Estimate::of(&[3.0]).unwrap();
        assert!(one.half_width.is_infinite() && !one.within(100.0));
        assert_eq!(Estimate::of(&[]), None);
    }

    #[test]
    fn identical_samples_converge_at_once() {
        let e = Estimate::of(&[5.0, 5.0, 5.0]).unwrap();
        assert_eq!(e.half_width, 0.0);
        assert!(e.within(0.0));
    }

    /// The published table of t(0.975, df), df = 1..=30, and statrs's quantiles agree.
    #[test]
    fn t_quantiles_are_the_published_table() {
        const TABLE: [f64; 30] = [
            12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
            2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
            2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
        ];
        for (df, published) in (1..).zip(TABLE) {
            assert_eq!(t_95(df), published, "df {df}");
        }
        // Large samples approach the normal quantile from above.
        assert_eq!(t_95(120), 1.980);
        assert_eq!(t_95(100_000), 1.960);
    }

    #[test]
    fn t_quantiles() {
        assert_eq!(t_95(1), 12.706);
        assert_eq!(t_95(30), 2.042);
        assert!(t_95(31) < 2.042 && t_95(31) > 1.96);
        assert!(t_95(0).is_infinite());
    }

    #[test]
    fn runs_to_reach_counts_the_t_quantile_down() {
        // cv 4 %: n = 5 gives 2.776·4/√5 = 4.97 ≤ 5, n = 4 gives 3.182·4/2 = 6.4.
        assert_eq!(runs_to_reach(4.0, 5.0, 100), 5);
        // cv 1 %: two runs would need 12.706/√2 = 9.0; three give 4.303/√3 = 2.48 ≤ 2.5.
        assert_eq!(runs_to_reach(1.0, 2.5, 100), 3);
        assert_eq!(runs_to_reach(50.0, 2.5, 24), 24);
        assert_eq!(cv_pct(&[9.0, 10.0, 11.0]), Some(10.0));
        assert_eq!(cv_pct(&[3.0]), None);
    }

    /// The named method against a known distribution: for normal samples, the 95 % t-interval
    /// of the mean of 5 covers the true mean in 95 % of 4000 trials (±1 %, three binomial
    /// standard deviations).
    #[test]
    fn t_interval_covers_the_mean_of_normal_samples() {
        let mut normal = shape::normal_source(7);
        let covered = (0..4000)
            .filter(|_| {
                let s: Vec<f64> = (0..5).map(|_| 10.0 + 2.0 * normal()).collect();
                let e = Estimate::of(&s).unwrap();
                e.low() <= 10.0 && 10.0 <= e.high()
            })
            .count();
        assert!((3760..=3840).contains(&covered), "{covered} of 4000");
    }

    #[test]
    fn verdicts_follow_the_intervals() {
        let a = Estimate::of(&[10.0, 10.1, 9.9]).unwrap();
        let b = Estimate::of(&[12.0, 12.1, 11.9]).unwrap();
        let wide = Estimate::of(&[8.0, 14.0, 11.0]).unwrap();
        assert_eq!(compare(&b, &a), Verdict::Higher);
        assert_eq!(compare(&a, &b), Verdict::Lower);
        assert_eq!(compare(&a, &wide), Verdict::Indistinguishable);
        let r = ratio(&b, &a).unwrap();
        assert!((r.mean - 1.2).abs() < 1e-12);
        assert!(r.low() > 1.0);
    }
}
