//! A run's rows grouped by grid point, with each figure taken from the right rows: speed
//! (throughput, latency, perf and CPU time) only from untraced timing runs, the kernel's
//! accounting only from traced runs. The report, the plots and points.csv all read this.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{row::Row, stats::Estimate, units::format_size};

/// Every row of one grid point.
pub struct Point {
    pub mode: String,
    pub path: String,
    pub workload: String,
    pub size: u64,
    pub threads: u32,
    pub placement: String,
    pub busy_poll: bool,
    /// The finished rows speed figures come from: the untraced ones, or, in a run that traced
    /// every repetition (`--trace-all`), the traced ones ([`Point::speed_traced`] says which).
    pub timing: Vec<Row>,
    /// The finished traced rows: the kernel's accounting and its cross-checks.
    pub traced: Vec<Row>,
    /// Whether `timing` had to be taken from traced rows.
    pub speed_traced: bool,
    /// The interval the sweep aimed for, ± % of the mean.
    pub target_pct: Option<f64>,
}

fn median_of(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

impl Point {
    /// Mean and 95 % interval of a speed figure over the timing runs.
    pub fn speed(&self, f: impl Fn(&Row) -> Option<f64>) -> Option<Estimate> {
        Estimate::of(&self.timing.iter().filter_map(f).collect::<Vec<_>>())
    }

    /// The primary figure: stream throughput, or rr median round trip.
    pub fn primary(&self) -> Option<Estimate> {
        self.speed(Row::primary)
    }

    /// The primary figure's name and unit.
    pub fn primary_name(&self) -> (&'static str, &'static str) {
        if self.workload == "rr" {
            ("rtt_p50_us", "us")
        } else {
            ("send_gbps", "Gbit/s")
        }
    }

    /// Median over the traced runs of an accounting figure (exact counts: the traced runs of
    /// one point agree up to what their durations differ by).
    pub fn kernel(&self, f: impl Fn(&Row) -> Option<f64>) -> Option<f64> {
        median_of(self.traced.iter().filter_map(f).collect())
    }

    /// An accounting figure per byte sent, median over the traced runs.
    pub fn kernel_per_byte(&self, f: impl Fn(&Row) -> Option<u64>) -> Option<f64> {
        self.kernel(|r| Some(f(r)? as f64 / r.bytes_sent.filter(|b| *b > 0)? as f64))
    }

    /// `ok` when every traced run's checks passed, else the first disagreement; None when
    /// the point has no traced run.
    pub fn checks(&self) -> Option<String> {
        if self.traced.is_empty() {
            return None;
        }
        Some(
            self.traced
                .iter()
                .map(|r| r.checks.clone())
                .find(|c| c != "ok")
                .unwrap_or_else(|| "ok".to_owned()),
        )
    }

    /// Whether the primary figure's interval is within ± `pct` %.
    pub fn within(&self, pct: f64) -> bool {
        self.primary().is_some_and(|e| e.within(pct))
    }

    /// Traced throughput over untraced: what the observer costs this point.
    pub fn observer_ratio(&self) -> Option<f64> {
        if self.speed_traced {
            return None;
        }
        let traced = self.kernel(|r| r.send_gbps)?;
        let untraced = self.speed(|r| r.send_gbps)?.mean;
        (untraced > 0.0).then(|| traced / untraced)
    }

    /// The same ratio with its 95 % interval. With several traced runs, both means' intervals
    /// combine; a point's one traced run is taken as one more draw with the untraced runs'
    /// spread, so its interval is the untraced half-width times sqrt(n + 1) (a prediction
    /// interval for one run against the mean of n).
    pub fn observer_estimate(&self) -> Option<Estimate> {
        let ratio = self.observer_ratio()?;
        let untraced = self.speed(|r| r.send_gbps)?;
        let traced: Vec<f64> = self.traced.iter().filter_map(|r| r.send_gbps).collect();
        if traced.len() > 1 {
            let traced = Estimate::of(&traced)?;
            return crate::stats::ratio(&traced, &untraced);
        }
        let relative = untraced.half_width * ((untraced.n + 1) as f64).sqrt() / untraced.mean;
        Some(Estimate {
            n: untraced.n,
            mean: ratio,
            half_width: ratio * relative,
        })
    }

    /// The untraced runs that the kernel showed ran with no program attached, and all the
    /// untraced runs (a run without the count, from an older results.csv, is not counted
    /// as unobserved).
    pub fn unobserved_runs(&self) -> (usize, usize) {
        let untraced = self.timing.iter().filter(|r| !r.traced);
        let total = untraced.clone().count();
        (
            untraced.filter(|r| r.attached_programs == Some(0)).count(),
            total,
        )
    }

    /// `a3 stream 16KiB x 1`.
    pub fn label(&self) -> String {
        format!(
            "{} {} {} x {}",
            self.mode,
            self.workload,
            format_size(self.size as usize),
            self.threads
        )
    }
}

/// The finished rows of a run, grouped by grid point.
pub struct Summary {
    pub points: Vec<Point>,
    pub failed: Vec<Row>,
    /// The zero-copy receive experiments (traced, one per mode), apart from the grid: they
    /// answer what the kernel maps, not how fast a point goes.
    pub zero_copy_receive: Vec<Row>,
}

type Key = (String, String, u64, u32, String, String, bool);

impl Summary {
    pub fn from_rows(rows: &[Row]) -> Self {
        let mut groups: BTreeMap<Key, (Vec<Row>, Vec<Row>)> = BTreeMap::new();
        let mut failed = Vec::new();
        let mut zero_copy_receive = Vec::new();
        // A sweep's grid either receives with zero-copy throughout (`--zerocopy-receive`) or
        // not at all; in the second case its zero-copy receive rows are the probes.
        let probes = rows.iter().any(|r| !r.zerocopy_receive);
        for row in rows {
            if !row.is_ok() {
                failed.push(row.clone());
                continue;
            }
            if probes && row.zerocopy_receive {
                zero_copy_receive.push(row.clone());
                continue;
            }
            let key = (
                row.path.clone(),
                row.workload.clone(),
                row.size,
                row.threads,
                row.mode.clone(),
                row.placement.clone(),
                row.busy_poll,
            );
            let (untraced, traced) = groups.entry(key).or_default();
            if row.traced {
                traced.push(row.clone());
            } else {
                untraced.push(row.clone());
            }
        }
        let points = groups
            .into_iter()
            .map(
                |(
                    (path, workload, size, threads, mode, placement, busy_poll),
                    (untraced, traced),
                )| {
                    let speed_traced = untraced.is_empty();
                    let timing = if speed_traced {
                        traced.clone()
                    } else {
                        untraced
                    };
                    let target_pct = timing.iter().find_map(|r| r.ci_target_pct);
                    Point {
                        mode,
                        path,
                        workload,
                        size,
                        threads,
                        placement,
                        busy_poll,
                        timing,
                        traced,
                        speed_traced,
                        target_pct,
                    }
                },
            )
            .collect();
        Self {
            points,
            failed,
            zero_copy_receive,
        }
    }

    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.points.iter().flat_map(|p| {
            p.timing
                .iter()
                .chain(p.traced.iter().filter(|_| !p.speed_traced))
        })
    }

    pub fn min_threads(&self) -> u32 {
        self.points.iter().map(|c| c.threads).min().unwrap_or(1)
    }

    pub fn max_threads(&self) -> u32 {
        self.points.iter().map(|c| c.threads).max().unwrap_or(1)
    }

    pub fn sizes(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.points.iter().map(|c| c.size).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn thread_counts(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.points.iter().map(|c| c.threads).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn modes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.points.iter().map(|c| c.mode.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The size the per-mode comparisons use: 16 KiB when measured, else the largest below
    /// it, else the smallest.
    pub fn reference_size(&self) -> u64 {
        let sizes = self.sizes();
        sizes
            .iter()
            .copied()
            .filter(|&s| s <= 16 << 10)
            .max()
            .or_else(|| sizes.first().copied())
            .unwrap_or(16 << 10)
    }

    pub fn has_workload(&self, w: &str) -> bool {
        self.points.iter().any(|c| c.workload == w)
    }

    /// Whether any speed figure had to come from traced rows (`--trace-all`).
    pub fn speed_traced(&self) -> bool {
        self.points.iter().any(|p| p.speed_traced)
    }

    /// Whether the kernel's accounting was measured at all.
    pub fn traced(&self) -> bool {
        self.points.iter().any(|p| !p.traced.is_empty())
    }

    /// Why hardware counters are missing, if they are in any row.
    pub fn hw_unavailable(&self) -> Option<String> {
        self.rows()
            .find(|r| r.hw_counters != "measured")
            .map(|r| r.hw_counters.clone())
    }

    pub fn point(&self, workload: &str, mode: &str, size: u64, threads: u32) -> Option<&Point> {
        self.points.iter().find(|c| {
            c.workload == workload && c.mode == mode && c.size == size && c.threads == threads
        })
    }

    /// Stream throughput estimate of one point.
    pub fn gbps(&self, mode: &str, size: u64, threads: u32) -> Option<Estimate> {
        self.point("stream", mode, size, threads)?
            .speed(|r| r.send_gbps)
    }

    /// Share of points whose primary figure is within ± `pct` %, and how many points.
    pub fn converged_share(&self, pct: f64) -> (usize, usize) {
        let with = self.points.iter().filter(|p| p.primary().is_some());
        let n = with.clone().count();
        (with.filter(|p| p.within(pct)).count(), n)
    }
}

/// One line of points.csv: a grid point's primary figure with its interval.
#[derive(Debug, Serialize)]
pub struct PointLine {
    pub mode: String,
    pub path: String,
    pub workload: String,
    pub size: u64,
    pub threads: u32,
    pub placement: String,
    pub busy_poll: bool,
    pub figure: &'static str,
    pub unit: &'static str,
    pub reps: usize,
    pub mean: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub ci_pct: Option<f64>,
    pub target_pct: Option<f64>,
    pub converged: Option<bool>,
    pub speed_traced: bool,
    pub traced_value: Option<f64>,
    pub observer_ratio: Option<f64>,
    pub checks: String,
}

impl PointLine {
    pub fn of(p: &Point) -> Self {
        let (figure, unit) = p.primary_name();
        let e = p.primary().filter(|e| e.half_width.is_finite());
        Self {
            mode: p.mode.clone(),
            path: p.path.clone(),
            workload: p.workload.clone(),
            size: p.size,
            threads: p.threads,
            placement: p.placement.clone(),
            busy_poll: p.busy_poll,
            figure,
            unit,
            reps: p.timing.len(),
            mean: p.primary().map(|e| e.mean),
            ci_low: e.map(|e| e.low()),
            ci_high: e.map(|e| e.high()),
            ci_pct: e.map(|e| e.relative_pct()),
            target_pct: p.target_pct,
            converged: p.target_pct.map(|t| p.within(t)),
            speed_traced: p.speed_traced,
            traced_value: p.kernel(Row::primary),
            observer_ratio: p.observer_ratio(),
            checks: p.checks().unwrap_or_else(|| "not traced".to_owned()),
        }
    }
}
