//! `netcopy explain`: one experiment's data path drawn stage by stage in the terminal, with the
//! bytes both observers measured at each stage and a one-line verdict.

use std::fmt::Write as _;

use crate::{experiment::Outcome, workload::Mode};

/// 1234567 -> "1 234 567": long byte counts stay readable.
fn grouped(n: u64) -> String {
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
    match k.fallback_pct() {
        None => format!(
            "nothing was pinned: the kernel copied every byte at send time ({} of {} bytes)",
            grouped(c.copied_at_send_bytes()),
            grouped(c.send_bytes)
        ),
        Some(p) if p >= 99.5 => format!(
            "every pinned byte was copied at delivery: zero-copy fell back to copying {p:.0} % on {}",
            outcome.config.path
        ),
        Some(p) if p <= 0.5 => format!(
            "the kernel kept its promise: no pinned byte was copied ({p:.1} % fallback) on {}",
            outcome.config.path
        ),
        Some(p) => format!("{p:.1} % of the pinned bytes were copied at delivery"),
    }
}

/// The drawing.
pub fn draw(outcome: &Outcome) -> String {
    let cfg = &outcome.config;
    let f = &outcome.figures;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} ({}) on {}: {} {} x {} connection(s), {:.1}s measured\n",
        cfg.mode,
        cfg.mode.describe(),
        cfg.path,
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
    let stage = |o: &mut String, name: &str, what: String| {
        let _ = writeln!(o, "  {name:<34} {what}");
    };
    let arrow = |o: &mut String, label: &str| {
        let _ = writeln!(o, "      |  {label}\n      v");
    };
    stage(
        &mut o,
        "user memory: 8 separate fields",
        format!(
            "{} bytes in {} send calls",
            grouped(f.bytes_sent),
            grouped(f.path.send_calls)
        ),
    );
    let user_copy = if cfg.mode == Mode::A1 {
        f.bytes_sent
    } else {
        0
    };
    arrow(
        &mut o,
        &format!("user copy (a1's memcpy): {} bytes", grouped(user_copy)),
    );
    let Some(k) = &outcome.kernel else {
        let _ = writeln!(o, "  (not traced)");
        return o;
    };
    let c = &k.counters;
    stage(
        &mut o,
        "send call (tcp_sendmsg / transmit)",
        format!(
            "{} bytes copied, {} bytes pinned, {} bytes referenced (page cache)",
            grouped(c.copied_at_send_bytes()),
            grouped(c.pinned_bytes()),
            grouped(c.tcp_referenced_at_send_bytes)
        ),
    );
    arrow(&mut o, &format!("{} device", cfg.path));
    let pages = match k.deferred_copy_pages() {
        Some(pages) => format!("{} fresh pages", grouped(pages)),
        None => format!("pages not measured: {}", k.note()),
    };
    if cfg.path.is_sink() {
        stage(
            &mut o,
            "ifb sink frees the packet",
            "no delivery, no copy".to_owned(),
        );
    } else {
        stage(
            &mut o,
            "local delivery (skb_copy_ubufs)",
            format!(
                "{} bytes copied late ({pages}), {} copied again",
                grouped(c.deferred_copy_bytes),
                grouped(c.recopied_bytes)
            ),
        );
        arrow(&mut o, "receive queue");
        stage(
            &mut o,
            "receive call (copy to user)",
            format!(
                "{} bytes copied to user in {} calls",
                grouped(c.recv_copy_bytes),
                grouped(c.recv_calls)
            ),
        );
    }
    if cfg.mode.is_zero_copy() {
        let p = &f.path;
        let _ = writeln!(
            o,
            "\n  completions: {} sends completed in {} notifications, {} flagged copied ({}); kernel saw {} error-queue reports",
            grouped(p.zc_completed),
            grouped(p.zc_notifications),
            grouped(p.zc_copied),
            p.copied_pct()
                .map_or("n/a".to_owned(), |x| format!("{x:.0} %")),
            grouped(c.zc_notifications)
        );
    }
    let _ = writeln!(o, "  checks: {}", outcome.checks());
    let _ = writeln!(o, "\nverdict: {}", verdict(outcome));
    o
}
