//! The data path of one traced experiment, drawn as SVG: where the bytes went, from the
//! user's fields to the receiver, with each stage's exact byte count and each edge's bytes per
//! byte sent. report.html draws one per mode and `netcopy explain --svg` writes the same
//! picture: both go through [`svg`], from the experiment's row.

use serde::Serialize;

use crate::{
    error::{Error, Result},
    explain::grouped,
    row::Row,
    units::format_size,
};

/// Columns are this far apart; boxes this wide and tall.
const COLUMN: f64 = 266.0;
const BOX_W: f64 = 176.0;
const BOX_H: f64 = 72.0;
/// The three rows a column's boxes sit on.
const TOP: f64 = 60.0;
const MID: f64 = 150.0;
const BOTTOM: f64 = 240.0;

/// One stage: a box with a title and its exact figure.
#[derive(Serialize)]
struct Stage {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    title: String,
    figure: String,
    /// A third line, when the stage needs one.
    detail: String,
    /// Whether any byte went through it (drawn in colour, else grey).
    used: bool,
}

/// One edge: a curve from a stage to the next, labelled with its bytes per byte sent.
#[derive(Serialize)]
struct Edge {
    d: String,
    label: String,
    lx: f64,
    ly: f64,
    width: f64,
    used: bool,
}

/// What the template draws.
#[derive(Serialize)]
pub struct Diagram {
    pub mode: String,
    title: String,
    note: String,
    width: f64,
    height: f64,
    stages: Vec<Stage>,
    edges: Vec<Edge>,
}

fn stage(col: usize, y: f64, title: &str, value: Option<u64>, detail: &str) -> Stage {
    Stage {
        x: 10.0 + col as f64 * COLUMN,
        y,
        w: BOX_W,
        h: BOX_H,
        title: title.to_owned(),
        figure: bytes(value),
        detail: detail.to_owned(),
        used: value.is_some_and(|v| v > 0),
    }
}

/// Every stage of a row's data path, before the ones its path skips are left out.
struct Stages {
    source: Stage,
    buffer: Stage,
    send: [Stage; 3],
    skb: Stage,
    delivery: Stage,
    recv: Stage,
    mapped: Stage,
}

impl Stages {
    fn of(row: &Row) -> Self {
        Self {
            source: Self::source(row),
            buffer: stage(
                1,
                MID,
                "a1's user buffer",
                row.user_copy_bytes,
                "the fields copied in",
            ),
            send: Self::send(row),
            skb: stage(
                3,
                MID,
                "skb",
                row.k_send_bytes,
                "accepted by the send calls",
            ),
            delivery: Self::delivery(row),
            recv: stage(
                5,
                TOP + 45.0,
                "receiver's copy",
                row.k_recv_copy_bytes,
                "copied into its buffer",
            ),
            mapped: Self::mapped(row),
        }
    }

    /// Where the sent bytes lie: the user's fields, or a5's page cache.
    fn source(row: &Row) -> Stage {
        if row.mode == "a5" {
            stage(
                0,
                MID,
                "page cache",
                row.bytes_sent,
                "sent, a memfd of messages",
            )
        } else {
            stage(
                0,
                MID,
                "user's fields",
                row.bytes_sent,
                "sent, 8 fields a message",
            )
        }
    }

    /// What the send calls did with the bytes: copied, pinned, or referenced.
    fn send(row: &Row) -> [Stage; 3] {
        [
            (
                TOP,
                "copied at send",
                row.k_copied_at_send_bytes,
                "into the skb's own pages",
            ),
            (
                MID,
                "pinned user pages",
                row.k_pinned_bytes,
                "the user's, not copied",
            ),
            (
                BOTTOM,
                "referenced pages",
                row.k_referenced_at_send_bytes,
                "the page cache's",
            ),
        ]
        .map(|(y, title, v, detail)| stage(2, y, title, v, detail))
    }

    /// The deferred copy at local delivery, or the ifb sink that frees the packet.
    fn delivery(row: &Row) -> Stage {
        if row.path == "ifb-sink" {
            let mut s = stage(4, MID, "ifb sink frees it", None, "");
            s.figure = "no delivery, no copy".to_owned();
            s
        } else {
            let pages = row
                .k_deferred_copy_pages
                .map_or("at delivery, pages not measured".to_owned(), |p| {
                    format!("at delivery, {} pages", grouped(p))
                });
            stage(4, MID, "deferred copy", row.k_deferred_copy_bytes, &pages)
        }
    }

    /// The pages zero-copy receive mapped, or "not used".
    fn mapped(row: &Row) -> Stage {
        let mut mapped = stage(
            5,
            BOTTOM - 45.0,
            "zero-copy receive",
            row.zc_mapped_bytes,
            "pages mapped, not copied",
        );
        if !row.zerocopy_receive {
            mapped.figure = "not used".to_owned();
        }
        mapped
    }
}

/// `1 234 B`, or why the figure is missing.
fn bytes(v: Option<u64>) -> String {
    v.map_or("not measured".to_owned(), |v| format!("{} B", grouped(v)))
}

/// An edge from the right side of `from` to the left side of `to`, carrying `value` bytes of
/// `sent`; labelled when `label` (the second half of a path through a stage is not).
fn edge(from: &Stage, to: &Stage, value: Option<u64>, sent: u64, label: bool) -> Edge {
    let (x0, y0) = (from.x + from.w, from.y + from.h / 2.0);
    let (x1, y1) = (to.x, to.y + to.h / 2.0);
    let mid = (x0 + x1) / 2.0;
    let ratio = value.map(|v| v as f64 / sent.max(1) as f64);
    Edge {
        d: format!("M{x0:.1},{y0:.1} C{mid:.1},{y0:.1} {mid:.1},{y1:.1} {x1:.1},{y1:.1}"),
        label: match (label, ratio) {
            (false, _) => String::new(),
            (true, Some(r)) => format!("{r:.2} per byte"),
            (true, None) => "not measured".to_owned(),
        },
        // Just before the target, above the curve's flat end.
        lx: x1 - 6.0,
        ly: y1 - 8.0,
        width: ratio.map_or(1.0, |r| 1.0 + 5.0 * r.min(1.5)),
        used: value.is_some_and(|v| v > 0),
    }
}

impl Diagram {
    /// The data path of `row`, a traced run's row (the kernel columns filled).
    pub fn of(row: &Row) -> Self {
        let sent = row.bytes_sent.unwrap_or(0);
        let (a1, sink) = (row.mode == "a1", row.path == "ifb-sink");
        let st = Stages::of(row);
        let mut edges = Vec::new();
        let from = if a1 {
            edges.push(edge(
                &st.source,
                &st.buffer,
                row.user_copy_bytes,
                sent,
                true,
            ));
            &st.buffer
        } else {
            &st.source
        };
        for s in &st.send {
            let v = Self::figure_of(row, &s.title);
            edges.push(edge(from, s, v, sent, true));
            edges.push(edge(s, &st.skb, v, sent, false));
        }
        if !sink {
            // Every byte the send calls accepted reaches delivery; what it copies there is
            // the deferred copy stage's own figure.
            edges.push(edge(&st.skb, &st.delivery, row.k_send_bytes, sent, true));
            edges.push(edge(
                &st.delivery,
                &st.recv,
                row.k_recv_copy_bytes,
                sent,
                true,
            ));
            let zc = row.zerocopy_receive;
            edges.push(edge(
                &st.delivery,
                &st.mapped,
                row.zc_mapped_bytes,
                sent,
                zc,
            ));
        }
        let mut stages = vec![st.source];
        if a1 {
            stages.push(st.buffer);
        }
        stages.extend(st.send);
        stages.extend([st.skb, st.delivery]);
        if !sink {
            stages.extend([st.recv, st.mapped]);
        }
        Self::finish(row, stages, edges)
    }

    /// The send stage's figure, by its title.
    fn figure_of(row: &Row, title: &str) -> Option<u64> {
        match title {
            "copied at send" => row.k_copied_at_send_bytes,
            "pinned user pages" => row.k_pinned_bytes,
            _ => row.k_referenced_at_send_bytes,
        }
    }

    fn finish(row: &Row, stages: Vec<Stage>, edges: Vec<Edge>) -> Self {
        Self {
            mode: row.mode.clone(),
            title: format!(
                "{}: {} {} x {} on {}{}, traced run (experiment {})",
                row.mode,
                row.workload,
                format_size(row.size as usize),
                row.threads,
                row.path,
                if row.zerocopy_receive {
                    " with zero-copy receive"
                } else {
                    ""
                },
                row.experiment
            ),
            note: "Boxes: exact bytes the traced run counted. Edges: bytes per byte sent."
                .to_owned(),
            width: 10.0 + 5.0 * COLUMN + BOX_W + 10.0,
            height: BOTTOM + BOX_H + 40.0,
            stages,
            edges,
        }
    }
}

const TEMPLATE: &str = include_str!("templates/datapath.svg");

/// The diagram as a standalone SVG document (for a file, or inline in HTML).
pub fn svg(diagram: &Diagram) -> Result<String> {
    let mut env = minijinja::Environment::new();
    // Everything from a row is escaped, whatever the template's name says.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("datapath.svg", TEMPLATE)
        .and_then(|()| {
            env.get_template("datapath.svg")?
                .render(minijinja::value::Serde(diagram))
        })
        .map_err(|e| Error::Template {
            template: "datapath.svg",
            what: e.to_string(),
        })
}

/// Writes the data path of `row` to `path` as an SVG file.
pub fn write_svg(path: &std::path::Path, row: &Row) -> Result<()> {
    std::fs::write(path, svg(&Diagram::of(row))?)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zero-copy row whose text fields carry markup: the figures drawn exactly, the text
    /// escaped.
    #[test]
    fn a_rows_figures_are_drawn_and_its_text_escaped() {
        let row = Row {
            mode: "a3<script>".into(),
            path: "loopback".into(),
            workload: "stream\"".into(),
            size: 16384,
            threads: 1,
            experiment: 7,
            bytes_sent: Some(1_000_000),
            k_send_bytes: Some(1_000_000),
            k_copied_at_send_bytes: Some(0),
            k_pinned_bytes: Some(1_000_000),
            k_referenced_at_send_bytes: Some(0),
            k_deferred_copy_bytes: Some(1_000_000),
            k_deferred_copy_pages: Some(245),
            k_recv_copy_bytes: Some(500_000),
            ..Row::default()
        };
        let svg = svg(&Diagram::of(&row)).unwrap();
        assert!(
            !svg.contains("<script>") && !svg.contains("stream\""),
            "{svg}"
        );
        assert!(svg.contains(
            "a3&lt;script&gt;: stream&quot; 16KiB x 1 on loopback, traced run (experiment 7)"
        ));
        for text in [
            ">1 000 000 B<",
            ">500 000 B<",
            ">at delivery, 245 pages<",
            ">1.00 per byte<",
            ">0.50 per byte<",
            ">0.00 per byte<",
            ">not used<",
        ] {
            assert!(svg.contains(text), "{text}");
        }
        // No a1 buffer for a3: six stages, then the two receivers.
        assert_eq!(svg.matches("<g class=\"stage\">").count(), 8);
    }
}
