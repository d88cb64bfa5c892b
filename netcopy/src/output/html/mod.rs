//! report.html: the same report as report.md, in one file that works offline (no script, font
//! or image from anywhere else): every plot inline as SVG, the data path of each mode drawn
//! from its traced run, and a confidence table that sorts and filters. The sentences are
//! report.md's own (read back by [`blocks`]); the page is a minijinja template that escapes
//! everything it is given except the SVG netcopy drew itself.

pub mod blocks;

use std::path::Path;

use serde::Serialize;

use super::{
    datapath::{self, Diagram},
    plots::PlotSet,
    report::{self, Machine},
    summary::{Point, Summary},
};
use crate::{
    error::{Error, Result},
    row::Row,
    units::format_size,
};
use blocks::{Block, parse};

/// A plot, inline.
#[derive(Serialize)]
struct Plot {
    file: &'static str,
    title: String,
    svg: String,
}

/// A data path drawing, inline.
#[derive(Serialize)]
struct DataPath {
    mode: String,
    svg: String,
}

/// One line of the confidence table.
#[derive(Serialize)]
struct PointView {
    mode: String,
    workload: String,
    size: String,
    size_bytes: u64,
    threads: u32,
    figure: &'static str,
    unit: &'static str,
    runs: usize,
    mean: Option<f64>,
    half_width: Option<f64>,
    pct: Option<f64>,
    /// The three figures as the tables show them.
    text: [String; 3],
    converged: &'static str,
}

impl PointView {
    fn of(p: &Point) -> Self {
        let (figure, unit) = p.primary_name();
        let e = p.primary();
        let finite = e.filter(|e| e.half_width.is_finite());
        let digits = if p.workload == "rr" { 1 } else { 2 };
        Self {
            mode: p.mode.clone(),
            workload: p.workload.clone(),
            size: format_size(p.size as usize),
            size_bytes: p.size,
            threads: p.threads,
            figure,
            unit,
            runs: p.timing.len(),
            mean: e.map(|e| e.mean),
            half_width: finite.map(|e| e.half_width),
            pct: finite.map(|e| e.relative_pct()),
            text: [
                e.map_or("–".to_owned(), |e| format!("{:.digits$}", e.mean)),
                finite.map_or("–".to_owned(), |e| format!("± {:.digits$}", e.half_width)),
                finite.map_or("–".to_owned(), |e| format!("{:.1} %", e.relative_pct())),
            ],
            converged: match p.target_pct.map(|t| p.within(t)) {
                Some(true) => "yes",
                Some(false) => "no",
                None => "–",
            },
        }
    }
}

/// Everything the page shows.
#[derive(Serialize)]
struct Page {
    run: String,
    header: Vec<Block>,
    verdict: Vec<Block>,
    datapaths: Vec<DataPath>,
    datapath_note: Option<String>,
    measured: Vec<Block>,
    speed: Vec<Block>,
    answers: Vec<Block>,
    plots: Vec<Plot>,
    omitted: Vec<String>,
    confidence: Vec<Block>,
    points: Vec<PointView>,
    observer: Vec<Block>,
}

/// One section of report.md, as blocks.
fn section(write: impl FnOnce(&mut String)) -> Vec<Block> {
    let mut o = String::new();
    write(&mut o);
    parse(&o)
}

/// The rows the data paths are drawn from: each mode's first traced run at the reference
/// size and fewest connections, then each zero-copy receive probe.
pub fn datapath_rows(s: &Summary) -> Vec<&Row> {
    let (size, threads) = (s.reference_size(), s.min_threads());
    s.modes()
        .iter()
        .filter_map(|m| s.point("stream", m, size, threads)?.traced.first())
        .chain(&s.zero_copy_receive)
        .collect()
}

/// An SVG file as inline markup: whatever comes before `<svg` (an XML declaration) is dropped.
fn inline_svg(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(text
        .find("<svg")
        .map_or(text.clone(), |i| text[i..].to_owned()))
}

fn page(
    s: &Summary,
    run: &str,
    machine: &Machine,
    plots: &PlotSet,
    plot_dir: &Path,
    command: &str,
) -> Result<Page> {
    let datapaths = datapath_rows(s)
        .into_iter()
        .map(|r| {
            let diagram = Diagram::of(r);
            Ok(DataPath {
                mode: diagram.mode.clone(),
                svg: datapath::svg(&diagram)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let plot_views = plots
        .drawn
        .iter()
        .map(|p| {
            Ok(Plot {
                file: p.file,
                title: p.title.clone(),
                svg: inline_svg(&plot_dir.join(format!("{}.svg", p.file)))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page {
        run: run.to_owned(),
        header: section(|o| report::header(o, s, run, machine, command)),
        verdict: section(|o| report::kernel(o, s)),
        datapath_note: datapaths.is_empty().then(|| {
            "Not drawn: the data path of each mode, because the run has no traced stream run."
                .to_owned()
        }),
        datapaths,
        measured: section(|o| report::measured(o, s)),
        speed: section(|o| report::speed(o, s)),
        answers: section(|o| report::questions(o, s, machine)),
        plots: plot_views,
        omitted: plots.omitted.iter().map(|p| p.sentence()).collect(),
        confidence: section(|o| {
            report::confidence_shares(o, s);
        }),
        points: s.points.iter().map(PointView::of).collect(),
        observer: section(|o| report::observer(o, s)),
    })
}

const TEMPLATE: &str = include_str!("../templates/report.html");

/// The whole page. `plot_dir` holds the SVGs [`super::plots::write_all`] wrote.
pub fn render(
    s: &Summary,
    run: &str,
    machine: &Machine,
    plots: &PlotSet,
    plot_dir: &Path,
    command: &str,
) -> Result<String> {
    let page = page(s, run, machine, plots, plot_dir, command)?;
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("report.html", TEMPLATE)
        .and_then(|()| {
            env.get_template("report.html")?
                .render(minijinja::value::Serde(&page))
        })
        .map_err(|e| Error::Template {
            template: "report.html",
            what: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything a row brings is escaped, in the report's sentences, tables and drawings.
    #[test]
    fn a_rows_markup_is_escaped_everywhere() {
        let mut traced = Row {
            mode: "a1<img src=x>".into(),
            workload: "stream".into(),
            path: "loopback".into(),
            size: 16384,
            threads: 1,
            traced: true,
            status: crate::row::OK.into(),
            checks: "</td><script>alert(1)</script>".into(),
            bytes_sent: Some(1000),
            k_send_bytes: Some(1000),
            ..Row::default()
        };
        traced.send_gbps = Some(1.0);
        let mut failed = traced.clone().failed("<b>refused</b>");
        failed.traced = false;
        let s = Summary::from_rows(&[traced, failed]);
        let machine = Machine {
            kernel: "6.18".into(),
            cpu: "<i>cpu</i>".into(),
            cores: 2,
            memory: "1 GiB".into(),
        };
        let page = render(
            &s,
            "run&1",
            &machine,
            &PlotSet::default(),
            Path::new("/nonexistent"),
            "netcopy sweep --out '<x>'",
        )
        .unwrap();
        for raw in [
            "<img",
            "<script>alert",
            "<b>refused",
            "<i>cpu",
            "'<x>'",
            "run&1",
        ] {
            assert!(!page.contains(raw), "{raw} reached the page unescaped");
        }
        for escaped in [
            "a1&lt;img src=x&gt;",
            "&lt;b&gt;refused&lt;",
            "&lt;i&gt;cpu&lt;",
        ] {
            assert!(page.contains(escaped), "{escaped}");
        }
        assert_eq!(
            page.matches("<script>").count(),
            1,
            "the page's own script only"
        );
    }
}
