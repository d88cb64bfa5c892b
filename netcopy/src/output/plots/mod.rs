//! The plots, each as PNG and SVG, drawn from the run's summary: every point is the mean of the
//! untraced timing runs with its 95 % confidence interval as an error bar; the kernel's bytes
//! come from the traced runs. A plot whose figure this machine could not measure, or that has no
//! point to draw, is left out (and the report says why in one sentence): never drawn empty.

use std::{collections::BTreeMap, path::Path, sync::Once};

use plotters::{
    coord::Shift,
    prelude::*,
    style::{FontStyle, register_font},
};

use super::summary::{Point, Summary};
use crate::{
    error::{Error, Result},
    row::Row,
    stats::Estimate,
};

/// One line per series: (label, points as (x, estimate)).
type Series = Vec<(String, Vec<(f64, Estimate)>)>;

/// What a plot shows.
pub struct LinePlot {
    pub file: &'static str,
    pub title: String,
    pub x_label: &'static str,
    pub y_label: &'static str,
    pub log_x: bool,
    pub series: Series,
    /// Shown instead of the lines when the figure was not measured.
    pub not_measured: Option<String>,
}

mod bars;

use bars::{draw_stacked, kernel_bytes};

const SIZE: (u32, u32) = (900, 560);
const COLORS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Embedded, so plots look the same on a machine without fonts.
        let _ = register_font("sans-serif", FontStyle::Normal, ttf_noto_sans::REGULAR);
    });
}

/// A plotters error as netcopy's (its type is generic over the drawing backend).
fn err(e: impl std::fmt::Display) -> Error {
    Error::Plot {
        plot: String::new(),
        what: e.to_string(),
    }
}

/// `result` with the plot's name filled in.
fn named<T>(plot: &str, result: Result<T>) -> Result<T> {
    result.map_err(|e| match e {
        Error::Plot { what, .. } => Error::Plot {
            plot: plot.to_owned(),
            what,
        },
        other => other,
    })
}

/// The top of a point's error bar (its mean when it has no interval).
fn bar_top(e: &Estimate) -> f64 {
    if e.half_width.is_finite() {
        e.high()
    } else {
        e.mean
    }
}

/// The smallest and largest x, and the highest bar's top; an error when there is no point.
fn extent(plot: &LinePlot) -> Result<(f64, f64, f64)> {
    let points = plot.series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0f64);
    for (x, e) in points {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y1 = y1.max(bar_top(e));
    }
    if x0 > x1 {
        return Err(err("no point to draw"));
    }
    Ok((x0, x1, y1))
}

/// The x axis's label at `v` (log2 of a size when `log_x`).
fn x_label(v: f64, log_x: bool) -> String {
    if log_x {
        // Powers of two only: between them a size label means nothing.
        if (v - v.round()).abs() < 0.01 {
            crate::units::format_size(2f64.powf(v.round()) as usize)
        } else {
            String::new()
        }
    } else {
        format!("{v:.0}")
    }
}

fn draw_lines<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, plot: &LinePlot) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let (x0, x1, y1) = extent(plot)?;
    let tx = |x: f64| if plot.log_x { x.log2() } else { x };
    let (lo, hi) = (tx(x0), tx(x1).max(tx(x0) + 1.0));
    let mut chart = ChartBuilder::on(&root)
        .caption(&plot.title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(lo..hi, 0f64..(y1 * 1.1).max(1e-9))
        .map_err(err)?;
    let log_x = plot.log_x;
    chart
        .configure_mesh()
        .x_desc(plot.x_label)
        .y_desc(plot.y_label)
        .x_label_formatter(&|v| x_label(*v, log_x))
        .draw()
        .map_err(err)?;
    for (i, (label, pts)) in plot.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let line: Vec<(f64, f64)> = pts.iter().map(|(x, e)| (tx(*x), e.mean)).collect();
        // The 95 % interval as an error bar with caps; a single run has none to draw.
        let cap = (hi - lo) / 150.0;
        chart
            .draw_series(
                pts.iter()
                    .filter(|(_, e)| e.half_width.is_finite())
                    .map(|(x, e)| {
                        let (x, lo_y, hi_y) = (tx(*x), e.low().max(0.0), e.high());
                        PathElement::new(
                            vec![
                                (x - cap, lo_y),
                                (x + cap, lo_y),
                                (x, lo_y),
                                (x, hi_y),
                                (x - cap, hi_y),
                                (x + cap, hi_y),
                            ],
                            color.stroke_width(1),
                        )
                    }),
            )
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// A plot written as `plots/<file>.png` and `.svg`.
pub struct Drawn {
    pub file: &'static str,
    pub title: String,
}

/// A plot left out, and why: a plot without data is never drawn empty.
pub struct Omitted {
    pub file: &'static str,
    pub title: String,
    pub why: String,
}

/// What [`write_all`] drew and what it left out.
#[derive(Default)]
pub struct PlotSet {
    pub drawn: Vec<Drawn>,
    pub omitted: Vec<Omitted>,
}

impl Omitted {
    /// The one sentence report.md and report.html give in the plot's place.
    pub fn sentence(&self) -> String {
        format!("Not drawn: {}, because {}.", self.title, self.why)
    }
}

/// Why a line plot has nothing to draw, if it has not.
fn line_plot_empty(plot: &LinePlot) -> Option<String> {
    plot.not_measured.clone().or_else(|| {
        plot.series
            .iter()
            .all(|(_, pts)| pts.is_empty())
            .then(|| "no finished row has this figure".to_owned())
    })
}

/// Renders every plot of `summary` that has data into `dir`, and removes the files of any
/// plot left out (a `report` run over an older folder must not leave an empty one behind).
pub fn write_all(dir: &Path, summary: &Summary) -> Result<PlotSet> {
    fonts();
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut set = PlotSet::default();
    let paths = |file: &str| {
        (
            dir.join(format!("{file}.svg")),
            dir.join(format!("{file}.png")),
        )
    };
    for plot in line_plots(summary) {
        let (svg, png) = paths(plot.file);
        if let Some(why) = line_plot_empty(&plot) {
            set.omitted
                .push(omit(plot.file, plot.title, why, &[&svg, &png]));
            continue;
        }
        named(
            plot.file,
            draw_lines(SVGBackend::new(&svg, SIZE).into_drawing_area(), &plot),
        )?;
        named(
            plot.file,
            draw_lines(BitMapBackend::new(&png, SIZE).into_drawing_area(), &plot),
        )?;
        set.drawn.push(Drawn {
            file: plot.file,
            title: plot.title,
        });
    }
    let bars = kernel_bytes(summary);
    let (svg, png) = paths(bars.file);
    if let Some(why) = bars.not_measured.clone() {
        set.omitted
            .push(omit(bars.file, bars.title, why, &[&svg, &png]));
        return Ok(set);
    }
    named(
        bars.file,
        draw_stacked(SVGBackend::new(&svg, SIZE).into_drawing_area(), &bars),
    )?;
    named(
        bars.file,
        draw_stacked(BitMapBackend::new(&png, SIZE).into_drawing_area(), &bars),
    )?;
    set.drawn.push(Drawn {
        file: bars.file,
        title: bars.title,
    });
    Ok(set)
}

fn omit(file: &'static str, title: String, why: String, stale: &[&Path]) -> Omitted {
    for path in stale {
        let _ = std::fs::remove_file(path);
    }
    Omitted { file, title, why }
}

/// `value`'s estimate per (mode, x) over the points `keep` selects.
fn by_mode(
    summary: &Summary,
    keep: impl Fn(&Point) -> bool,
    x: impl Fn(&Point) -> f64,
    value: impl Fn(&Point) -> Option<Estimate>,
) -> Series {
    let mut lines: BTreeMap<String, Vec<(f64, Estimate)>> = BTreeMap::new();
    for point in summary.points.iter().filter(|p| keep(p)) {
        if let Some(v) = value(point) {
            lines
                .entry(point.mode.clone())
                .or_default()
                .push((x(point), v));
        }
    }
    lines
        .into_iter()
        .map(|(mode, mut pts)| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (mode, pts)
        })
        .collect()
}

/// A stream speed figure by message size, one line per mode, at `threads` connections.
pub fn stream_by_size(s: &Summary, threads: u32, value: impl Fn(&Row) -> Option<f64>) -> Series {
    by_mode(
        s,
        |p| p.workload == "stream" && p.threads == threads,
        |p| p.size as f64,
        |p| p.speed(&value),
    )
}

fn line_plots(s: &Summary) -> Vec<LinePlot> {
    let threads = s.min_threads();
    let size = s.reference_size();
    let hw_missing = s
        .hw_unavailable()
        .map(|w| format!("the hardware counters were not measured on this machine: {w}"));
    vec![
        LinePlot {
            file: "throughput_vs_size",
            title: format!("Stream throughput vs message size ({threads} connection(s))"),
            x_label: "message size",
            y_label: "Gbit/s (mean, 95 % CI)",
            log_x: true,
            series: stream_by_size(s, threads, |r| r.send_gbps),
            not_measured: None,
        },
        LinePlot {
            file: "latency_vs_threads",
            title: format!(
                "Request-response round trip vs connections ({})",
                crate::units::format_size(size as usize)
            ),
            x_label: "connections (threads per side)",
            y_label: "median round trip, us (mean, 95 % CI)",
            log_x: false,
            series: by_mode(
                s,
                |p| p.workload == "rr" && p.size == size && !p.busy_poll,
                |p| p.threads as f64,
                |p| p.speed(|r| r.rtt_p50_us),
            ),
            not_measured: (!s.has_workload("rr"))
                .then(|| "the run has no request-response rows".to_owned()),
        },
        LinePlot {
            file: "cache_misses_vs_size",
            title: format!("Cache misses per message vs size (stream, {threads} connection(s))"),
            x_label: "message size",
            y_label: "cache misses per message, both sides",
            log_x: true,
            series: stream_by_size(s, threads, |r| {
                let misses = r.client_cache_misses? + r.server_cache_misses.unwrap_or(0);
                let msgs = r.messages_per_s? * r.duration_s;
                (msgs > 0.0).then(|| misses as f64 / msgs)
            }),
            not_measured: hw_missing.clone(),
        },
        LinePlot {
            file: "cycles_per_byte_vs_size",
            title: format!("CPU cycles per byte sent vs size (stream, {threads} connection(s))"),
            x_label: "message size",
            y_label: "cycles per byte, both sides",
            log_x: true,
            series: stream_by_size(s, threads, |r| r.cycles_per_byte),
            not_measured: hw_missing,
        },
        LinePlot {
            file: "cpu_time_per_byte_vs_size",
            title: format!("CPU time per byte sent vs size (stream, {threads} connection(s))"),
            x_label: "message size",
            y_label: "ns of CPU per byte, busy CPUs incl. softirq",
            log_x: true,
            series: stream_by_size(s, threads, |r| r.cpu_ns_per_byte),
            not_measured: (!s.rows().any(|r| r.cpu_ns_per_byte.is_some()))
                .then(|| "/proc/stat could not be read".to_owned()),
        },
    ]
}
