//! Running a sweep: the traced round, the timing rounds `schedule` plans, the zero-copy
//! receive probes; each experiment's row written the moment it exists.

use std::time::Instant;

use super::{
    Ended, Grid, Progress, Target, Tracing,
    schedule::{PointState, Shuffler},
};
use crate::{
    error::{Error, Result},
    experiment::Observer,
    interrupt,
    kernel::tracer::Tracer,
    output::ResultsDir,
    row::Row,
    units::format_size,
    workload::{Config, Prepared},
};

/// Runs `grid` against `target`, writing each row to `out` as soon as it exists and keeping
/// it in `ended`, so whatever ends the sweep (an error included) leaves every finished row
/// with the caller. Failed experiments become failed rows and the sweep goes on; Ctrl-C ends
/// it after the experiment in progress is abandoned.
pub fn run(
    grid: &Grid,
    target: Target<'_>,
    tracer: Option<&mut Tracer>,
    out: &mut ResultsDir,
    ended: &mut Ended,
) -> Result<()> {
    let mut sweep = Sweep::new(grid, target, tracer, out, ended);
    if sweep.rounds()? {
        sweep.probes()?;
    }
    sweep.bar.finish();
    Ok(())
}

/// One sweep in progress.
struct Sweep<'a> {
    grid: &'a Grid,
    points: Vec<Config>,
    state: Vec<PointState>,
    target: Target<'a>,
    tracer: Option<&'a mut Tracer>,
    out: &'a mut ResultsDir,
    ended: &'a mut Ended,
    tracing: Tracing,
    bar: Progress,
    started: Instant,
    experiment: u32,
    shuffler: Shuffler,
}

impl<'a> Sweep<'a> {
    fn new(
        grid: &'a Grid,
        target: Target<'a>,
        tracer: Option<&'a mut Tracer>,
        out: &'a mut ResultsDir,
        ended: &'a mut Ended,
    ) -> Self {
        let points = grid.points();
        let tracing = if tracer.is_none() {
            Tracing::Never
        } else {
            grid.tracing
        };
        let traced_round = if tracing == Tracing::Accounting { 1 } else { 0 };
        let runs = points.len() * (traced_round + grid.confidence.min_reps as usize);
        // The order changes from run to run; nothing in it is worth reproducing.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Self {
            grid,
            state: vec![PointState::new(); points.len()],
            points,
            target,
            tracer,
            out,
            ended,
            tracing,
            bar: Progress::new(runs),
            started: Instant::now(),
            experiment: 0,
            shuffler: Shuffler::seeded(seed),
        }
    }

    /// Round 0 traces every point once (`Tracing::Accounting`); rounds 1.. time the points
    /// the schedule picks, until none wants a run or the budget is spent. False when the
    /// sweep was interrupted.
    fn rounds(&mut self) -> Result<bool> {
        let c = self.grid.confidence;
        let mut round = if self.tracing == Tracing::Accounting {
            0
        } else {
            1
        };
        loop {
            if round == c.min_reps + 1 {
                for point in &mut self.state {
                    point.choose_stretch(self.grid.duration);
                }
            }
            let order = self.order(round);
            if order.is_empty() {
                return Ok(true);
            }
            for i in order {
                if interrupt::requested() {
                    self.ended.interrupted = true;
                }
                if self.ended.interrupted {
                    return Ok(false);
                }
                let past_minimum = round > c.min_reps;
                if past_minimum && self.seconds_left() <= 0.0 {
                    return Ok(true);
                }
                if past_minimum {
                    self.bar.inc_length(1);
                }
                if !self.one(i, round)? {
                    return Ok(false);
                }
            }
            round += 1;
        }
    }

    /// Seconds of the budget left (infinite without one).
    fn seconds_left(&self) -> f64 {
        self.grid.confidence.budget.map_or(f64::INFINITY, |b| {
            b.as_secs_f64() - self.started.elapsed().as_secs_f64()
        })
    }

    /// The points of `round`, in their order.
    fn order(&mut self, round: u32) -> Vec<usize> {
        let left = self.seconds_left();
        let shuffler = &mut self.shuffler;
        let mut shuffle = |order: &mut [usize]| shuffler.shuffle(order);
        if round == 0 {
            let mut all: Vec<usize> = (0..self.points.len()).collect();
            shuffle(&mut all);
            return all;
        }
        self.grid
            .confidence
            .round(round, &self.state, self.grid.duration, left, &mut shuffle)
    }

    /// Runs point `i` once in `round` (0: its traced run) and keeps its row. False when
    /// interrupted.
    fn one(&mut self, i: usize, round: u32) -> Result<bool> {
        let traced = match self.tracing {
            Tracing::Accounting => round == 0,
            Tracing::Every => true,
            Tracing::Never => false,
        };
        let mut config = self.points[i].clone();
        let point = &mut self.state[i];
        let rep = if round == 0 {
            1
        } else {
            config.duration *= point.stretch;
            point.timing_reps += 1;
            point.timing_reps
        };
        self.experiment += 1;
        // Drawn between experiments only, never inside a measured window.
        self.bar.set_message(format!(
            "{} {} {} x{} {} {rep}",
            config.mode,
            config.workload,
            format_size(config.size),
            config.threads,
            if round == 0 { "traced" } else { "rep" }
        ));
        let mut planned = Row::planned(self.out.id(), self.experiment, rep, traced, &config);
        planned.ci_target_pct = Some(self.grid.confidence.target_pct);
        planned.round = Some(round);
        planned.sweep_s = Some(self.started.elapsed().as_secs_f64());
        planned.budget_s = self.grid.confidence.budget.map(|b| b.as_secs_f64());
        let Some(row) = self.run(planned, config, traced)? else {
            return Ok(false);
        };
        if round > 0 {
            self.state[i].record(&row);
        }
        self.keep(row)?;
        Ok(true)
    }

    /// One experiment, traced or not, as planned; None when netcopy was interrupted.
    fn run(&mut self, planned: Row, config: Config, traced: bool) -> Result<Option<Row>> {
        let observer = Observer::new(self.tracer.as_deref_mut(), traced);
        run_one(
            planned,
            config,
            &mut self.target,
            observer,
            &self.bar,
            self.ended,
        )
    }

    fn keep(&mut self, row: Row) -> Result<()> {
        self.out.write(&row)?;
        self.ended.rows.push(row);
        self.bar.inc();
        Ok(())
    }

    /// Zero-copy receive, once per mode, traced: what this kernel maps (see README).
    fn probes(&mut self) -> Result<()> {
        if self.tracing == Tracing::Never {
            return Ok(());
        }
        for config in self.grid.zero_copy_receive_probes() {
            if interrupt::requested() {
                self.ended.interrupted = true;
                break;
            }
            self.experiment += 1;
            let mut planned = Row::planned(self.out.id(), self.experiment, 1, true, &config);
            planned.sweep_s = Some(self.started.elapsed().as_secs_f64());
            let Some(row) = self.run(planned, config, true)? else {
                break;
            };
            self.out.write(&row)?;
            self.ended.rows.push(row);
        }
        Ok(())
    }
}

/// Runs one experiment of a sweep and returns its row (failed, if it failed); None when
/// netcopy was interrupted, which `ended` then records.
fn run_one(
    planned: Row,
    config: Config,
    target: &mut Target<'_>,
    observer: Observer<'_>,
    bar: &Progress,
    ended: &mut Ended,
) -> Result<Option<Row>> {
    let clock = Instant::now();
    let result = match target {
        Target::Local(network) => Prepared::bind_on(config, network).and_then(|p| observer.run(p)),
        Target::Remote(client) => client.run(&config, observer),
    };
    let mut row = match result {
        Ok(outcome) => planned.measured(&outcome),
        Err(Error::Interrupted) => {
            ended.interrupted = true;
            return Ok(None);
        }
        // A tracer that stops working is not one experiment's problem.
        Err(e @ Error::Map { .. }) => return Err(e),
        Err(e @ Error::StillAttached { programs }) => {
            let mut row = planned.failed(&e.to_string());
            row.attached_programs = Some(programs);
            row
        }
        Err(e) => planned.failed(&e.to_string()),
    };
    row.elapsed_s = Some(clock.elapsed().as_secs_f64());
    if !row.is_ok() {
        ended.failed += 1;
        bar.suspend(|| eprintln!("netcopy: experiment failed: {}", row.error));
    } else if row.checks != "ok" && row.checks != "not traced" {
        ended.disagreed += 1;
        bar.suspend(|| eprintln!("netcopy: kernel and userspace disagree: {}", row.checks));
    }
    Ok(Some(row))
}
