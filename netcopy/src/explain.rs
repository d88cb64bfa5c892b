//! `netcopy explain`: one experiment's data path drawn stage by stage in the terminal, with the
//! bytes both observers measured at each stage and a one-line verdict.

use std::fmt::Write as _;

use crate::{
    experiment::{KernelFigures, Outcome},
    workload::Mode,
};

/// 1234567 -> "1 234 567": long byte counts stay readable.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The verdict on what the kernel did with the pinned bytes.
pub fn verdict(outcome: &Outcome) -> String {
    let Some(k) = &outcome.kernel else {
        return "not traced: nothing to say about the kernel".to_owned();
    };
    let c = &k.counters;
    let send = match k.fallback_pct() {
        None if c.tcp_referenced_at_send_bytes > 0 && c.copied_at_send_bytes() == 0 => format!(
            "nothing was copied or pinned at send: all {} bytes went by reference to page-cache pages (sendfile), and local delivery had nothing to copy; the receiver's copy is the only one",
            grouped(c.tcp_referenced_at_send_bytes)
        ),
        None if c.tcp_referenced_at_send_bytes > 0 => format!(
            "nothing was pinned: the kernel copied {} bytes at send time and attached {} by reference (page cache)",
            grouped(c.copied_at_send_bytes()),
            grouped(c.tcp_referenced_at_send_bytes)
        ),
        None => format!(
            "nothing was pinned: the kernel copied every byte at send time ({} of {} bytes)",
            grouped(c.copied_at_send_bytes()),
            grouped(c.send_bytes)
        ),
        Some(p) if p >= 99.5 => format!(
            "every pinned byte was copied at delivery: zero-copy fell back to copying {p:.0} % on {}",
            outcome.config.net_path
        ),
        Some(p) if p <= 0.5 => format!(
            "the kernel kept its promise: no pinned byte was copied ({p:.1} % fallback) on {}",
            outcome.config.net_path
        ),
        Some(p) => format!("{p:.1} % of the pinned bytes were copied at delivery"),
    };
    match &outcome.figures.zc_receive {
        Some(zc) if zc.mapped_bytes > 0 => format!(
            "{send}. Zero-copy receive mapped {} of {} bytes received ({:.1} %), the rest was copied",
            grouped(zc.mapped_bytes),
            grouped(zc.mapped_bytes + zc.copied_bytes),
            zc.mapped_bytes as f64 * 100.0 / (zc.mapped_bytes + zc.copied_bytes).max(1) as f64
        ),
        Some(zc) => format!(
            "{send}. Zero-copy receive mapped nothing ({} bytes copied): the kernel maps only whole pages at offset 0 that are neither compound nor page cache, and this sender's were not",
            grouped(zc.copied_bytes)
        ),
        None => send,
    }
}

/// The drawing.
pub fn draw(outcome: &Outcome) -> String {
    let mut o = String::new();
    heading(&mut o, outcome);
    user_side(&mut o, outcome);
    let Some(k) = &outcome.kernel else {
        let _ = writeln!(o, "  (not traced)");
        return o;
    };
    send_and_delivery(&mut o, outcome, k);
    if outcome.config.mode.is_zero_copy() {
        completions(&mut o, outcome, k);
    }
    let _ = writeln!(o, "  checks: {}", outcome.checks());
    let _ = writeln!(o, "\nverdict: {}", verdict(outcome));
    o
}

/// One stage of the drawing: its name, then what happened there.
fn stage(o: &mut String, name: &str, what: String) {
    let _ = writeln!(o, "  {name:<34} {what}");
}

/// The arrow between two stages, labelled.
fn arrow(o: &mut String, label: &str) {
    let _ = writeln!(o, "      |  {label}\n      v");
}

/// What ran, and whether its speed includes the observer's cost.
fn heading(o: &mut String, outcome: &Outcome) {
    let cfg = &outcome.config;
    let f = &outcome.figures;
    let _ = writeln!(
        o,
        "{} ({}) on {}: {} {} x {} connection(s), {:.1}s measured\n",
        cfg.mode,
        cfg.mode.describe(),
        cfg.net_path,
        cfg.workload,
        crate::units::format_size(cfg.size),
        cfg.threads,
        f.window.as_secs_f64()
    );
    if outcome.kernel.is_some() {
        let _ = writeln!(
            o,
            "speed figures of this run were taken while traced: they include the observer's cost \
             ({:.2} Gbit/s here; time modes with `netcopy sweep`, whose speed comes from untraced runs)\n",
            f.send_gbps()
        );
    }
}

/// The sender's memory and its user-space copy, known without tracing.
fn user_side(o: &mut String, outcome: &Outcome) {
    let cfg = &outcome.config;
    let f = &outcome.figures;
    stage(
        o,
        if cfg.mode == Mode::A5 {
            "page cache: a memfd of messages"
        } else {
            "user memory: 8 separate fields"
        },
        format!(
            "{} bytes in {} send calls",
            grouped(f.bytes_sent),
            grouped(f.send_counts.send_calls)
        ),
    );
    let user_copy = if cfg.mode == Mode::A1 {
        f.bytes_sent
    } else {
        0
    };
    arrow(
        o,
        &format!("user copy (a1's memcpy): {} bytes", grouped(user_copy)),
    );
}

/// The send call, the device, and what the receiving side did, as the kernel counted them.
fn send_and_delivery(o: &mut String, outcome: &Outcome, k: &KernelFigures) {
    let cfg = &outcome.config;
    let c = &k.counters;
    stage(
        o,
        "send call (tcp_sendmsg / transmit)",
        format!(
            "{} bytes copied, {} bytes pinned, {} bytes referenced (page cache)",
            grouped(c.copied_at_send_bytes()),
            grouped(c.pinned_bytes()),
            grouped(c.tcp_referenced_at_send_bytes)
        ),
    );
    arrow(o, &format!("{} device", cfg.net_path));
    let pages = match k.deferred_copy_pages() {
        Some(pages) => format!("{} fresh pages", grouped(pages)),
        None => format!("pages not measured: {}", k.note()),
    };
    if cfg.net_path.is_sink() {
        stage(
            o,
            "ifb sink frees the packet",
            "no delivery, no copy".to_owned(),
        );
        return;
    }
    stage(
        o,
        "local delivery (skb_copy_ubufs)",
        format!(
            "{} bytes copied late ({pages}), {} copied again",
            grouped(c.deferred_copy_bytes),
            grouped(c.recopied_bytes)
        ),
    );
    arrow(o, "receive queue");
    let received = match &outcome.figures.zc_receive {
        Some(zc) => format!(
            "{} bytes mapped (TCP_ZEROCOPY_RECEIVE), {} copied to user",
            grouped(zc.mapped_bytes),
            grouped(c.recv_copy_bytes)
        ),
        None => format!(
            "{} bytes copied to user in {} calls",
            grouped(c.recv_copy_bytes),
            grouped(c.recv_calls)
        ),
    };
    stage(o, "receive call (copy to user)", received);
}

/// Zero-copy completions as the sender read them, and the kernel's own count of reports.
fn completions(o: &mut String, outcome: &Outcome, k: &KernelFigures) {
    let p = &outcome.figures.send_counts;
    let _ = writeln!(
        o,
        "\n  completions: {} sends completed in {} notifications, {} flagged copied ({}); kernel saw {} error-queue reports",
        grouped(p.zc_completed),
        grouped(p.zc_notifications),
        grouped(p.zc_copied),
        p.copied_pct()
            .map_or("n/a".to_owned(), |x| format!("{x:.0} %")),
        grouped(k.counters.zc_notifications)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        experiment::KernelFigures,
        workload::{Config, Figures, Workload, zc_receive::ZcReceiveCounters},
    };

    fn outcome(mode: Mode, counters: netcopy_common::FlowCounters) -> Outcome {
        Outcome {
            config: Config::new(mode, Workload::Stream, 16 << 10, 1),
            figures: Figures::default(),
            kernel: Some(KernelFigures {
                counters,
                ..KernelFigures::default()
            }),
            disagreements: Vec::new(),
            attached_programs: None,
        }
    }

    #[test]
    fn sendfile_is_not_called_a_copy() {
        let mut c = netcopy_common::FlowCounters {
            send_bytes: 1000,
            tcp_referenced_at_send_bytes: 1000,
            ..Default::default()
        };
        let v = verdict(&outcome(Mode::A5, c));
        assert!(
            v.starts_with(
                "nothing was copied or pinned at send: all 1 000 bytes went by reference"
            ),
            "{v}"
        );
        c.tcp_copied_at_send_bytes = 37;
        let v = verdict(&outcome(Mode::A5, c));
        assert!(
            v.contains("copied 37 bytes at send time and attached 1 000 by reference"),
            "{v}"
        );
    }

    #[test]
    fn zero_copy_receive_gets_its_own_sentence() {
        let c = netcopy_common::FlowCounters {
            send_bytes: 4096,
            tcp_copied_at_send_bytes: 4096,
            ..Default::default()
        };
        let mut o = outcome(Mode::A1, c);
        o.figures.zc_receive = Some(ZcReceiveCounters {
            mapped_bytes: 3072,
            copied_bytes: 1024,
            ..Default::default()
        });
        let v = verdict(&o);
        assert!(v.ends_with("Zero-copy receive mapped 3 072 of 4 096 bytes received (75.0 %), the rest was copied"), "{v}");
        o.figures.zc_receive = Some(ZcReceiveCounters {
            copied_bytes: 4096,
            ..Default::default()
        });
        assert!(verdict(&o).contains("mapped nothing (4 096 bytes copied)"));
    }
}
