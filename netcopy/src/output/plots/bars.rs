//! The stacked bars: what the kernel did with each byte sent, per mode (and per zero-copy
//! receive probe).

use plotters::{coord::Shift, prelude::*};

use super::{COLORS, err};
use crate::{error::Result, output::summary::Summary, row::Row};

/// Stacked bars: per group, (component, value).
pub(super) struct StackedBars {
    pub file: &'static str,
    pub title: String,
    pub y_label: &'static str,
    pub groups: Vec<(String, Vec<(&'static str, f64)>)>,
    pub not_measured: Option<String>,
}

pub(super) fn draw_stacked<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    plot: &StackedBars,
) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let top = plot
        .groups
        .iter()
        .map(|(_, parts)| parts.iter().map(|(_, v)| v).sum::<f64>())
        .fold(0f64, f64::max);
    let n = plot.groups.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(&plot.title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n as f64, 0f64..(top * 1.5).max(1.0))
        .map_err(err)?;
    let names: Vec<String> = plot.groups.iter().map(|(g, _)| g.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|v| {
            let i = (*v - 0.5).round();
            if (v - 0.5 - i).abs() < 0.01 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc(plot.y_label)
        .draw()
        .map_err(err)?;
    let mut components: Vec<&'static str> = Vec::new();
    for (_, parts) in &plot.groups {
        for (name, _) in parts {
            if !components.contains(name) {
                components.push(name);
            }
        }
    }
    for (ci, component) in components.iter().enumerate() {
        let color = COLORS[ci % COLORS.len()];
        let bars = plot
            .groups
            .iter()
            .enumerate()
            .filter_map(|(gi, (_, parts))| {
                let below: f64 = parts
                    .iter()
                    .take_while(|(n, _)| n != component)
                    .map(|(_, v)| v)
                    .sum();
                let value = parts.iter().find(|(n, _)| n == component)?.1;
                let x = gi as f64;
                Some(Rectangle::new(
                    [(x + 0.15, below), (x + 0.85, below + value)],
                    color.filled(),
                ))
            });
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(*component)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// A counter column of a row.
type Counter = fn(&Row) -> Option<u64>;

/// What happened to each byte sent, per byte, in stacking order.
fn byte_fates(per_byte: impl Fn(Counter) -> f64) -> Vec<(&'static str, f64)> {
    vec![
        ("user copy (a1's memcpy)", per_byte(|r| r.user_copy_bytes)),
        ("copied at send", per_byte(|r| r.k_copied_at_send_bytes)),
        ("pinned", per_byte(|r| r.k_pinned_bytes)),
        (
            "referenced (page cache)",
            per_byte(|r| r.k_referenced_at_send_bytes),
        ),
        ("deferred copy", per_byte(|r| r.k_deferred_copy_bytes)),
        ("copied to user", per_byte(|r| r.k_recv_copy_bytes)),
        (
            "mapped (zero-copy receive)",
            per_byte(|r| r.zc_mapped_bytes),
        ),
    ]
}

pub(super) fn kernel_bytes(s: &Summary) -> StackedBars {
    let threads = s.min_threads();
    let size = s.reference_size();
    let mut groups = Vec::new();
    for p in s
        .points
        .iter()
        .filter(|p| p.workload == "stream" && p.threads == threads && p.size == size)
    {
        if p.traced.is_empty() {
            continue;
        }
        let per_byte = |f: Counter| p.kernel_per_byte(f).unwrap_or(0.0);
        groups.push((p.mode.clone(), byte_fates(per_byte)));
    }
    // The zero-copy receive probes, beside the modes they received from.
    for r in &s.zero_copy_receive {
        let sent = r.bytes_sent.unwrap_or(0).max(1) as f64;
        let per_byte = |f: Counter| f(r).map_or(0.0, |v| v as f64 / sent);
        groups.push((format!("{}+zc rx", r.mode), byte_fates(per_byte)));
    }
    StackedBars {
        file: "kernel_bytes_per_byte",
        title: format!(
            "What the kernel did with each byte sent (stream, {}, {threads} connection(s), traced run)",
            crate::units::format_size(size as usize)
        ),
        y_label: "bytes per byte sent (exact counts)",
        not_measured: groups.is_empty().then(|| {
            "the run was not traced (--no-trace), so the kernel counted nothing".to_owned()
        }),
        groups,
    }
}
