//! One experiment: the workload runs while the tracer counts its connections; the two
//! observers' figures are joined and cross-checked.

use std::collections::BTreeMap;

use netcopy_common::{FlowCounters, Skipped};

use crate::{
    error::Result,
    kernel::tracer::Tracer,
    workload::{Config, Figures, Mode, Prepared},
};

/// What the kernel saw for one experiment, and what it could not see.
#[derive(Debug, Clone, Default)]
pub struct KernelFigures {
    pub counters: FlowCounters,
    /// The `k_*` columns no hook could fill here, each with why (see `Tracer::unseen`).
    pub unseen: BTreeMap<String, String>,
    /// Events the probes saw but could not count, per reason (`Skipped::ALL` order).
    pub skipped: [u64; Skipped::ALL.len()],
}

/// Why the fallback check is skipped when sends had different outcomes.
pub const MIXED_OUTCOMES: &str = "fallback not checked against the error queue: some pinned bytes were copied at delivery and some were not, and the kernel merges completion ranges without comparing their COPIED flag (a merged range keeps its last send's)";

/// Why the copy to user is unknown when UDP receives asked for MSG_TRUNC.
pub const RECV_COPY_UNSEEN: &str = "k_recv_copy_bytes: UDP receives with MSG_TRUNC return the datagram's length, not the bytes copied";

impl KernelFigures {
    /// Events the probes saw but could not count.
    pub fn skipped_events(&self) -> u64 {
        self.skipped.iter().sum()
    }

    /// The skipped events by reason, e.g. "flow map full: 3".
    pub fn skipped_note(&self) -> String {
        Skipped::ALL
            .iter()
            .zip(self.skipped)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{}: {n}", r.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether a hook could fill `column` here.
    pub fn seen(&self, column: &str) -> bool {
        !self.unseen.contains_key(column)
    }

    /// `value` as the figure of `column`: None when no hook could fill it.
    pub fn figure(&self, column: &str, value: u64) -> Option<u64> {
        self.seen(column).then_some(value)
    }

    /// Bytes copied from kernel to user, when every receive's copy was seen.
    pub fn recv_copy_bytes(&self) -> Option<u64> {
        (self.counters.recv_copy_unseen_calls == 0)
            .then_some(self.counters.recv_copy_bytes)
            .and_then(|b| self.figure("k_recv_copy_bytes", b))
    }

    /// Deferred-copy pages observed, when this machine lets them be observed.
    pub fn deferred_copy_pages(&self) -> Option<u64> {
        self.figure("k_deferred_copy_pages", self.counters.deferred_copy_pages)
    }

    /// Why each empty kernel figure is empty, `; `-separated (the `k_note` cell).
    pub fn note(&self) -> String {
        let mut notes: Vec<String> = self
            .unseen
            .iter()
            .map(|(column, why)| format!("{column}: {why}"))
            .collect();
        if self.counters.recv_copy_unseen_calls > 0 {
            notes.push(RECV_COPY_UNSEEN.to_owned());
        }
        if self.mixed_outcomes() {
            notes.push(MIXED_OUTCOMES.to_owned());
        }
        let unseen = self.counters.deferred_copy_unseen_bytes;
        if unseen > 0 {
            notes.push(format!(
                "k_deferred_copy_bytes: {unseen} of them lie between delivered TCP sequence bytes with no delivery record (the kernel did not run the program for their skb; see README)"
            ));
        }
        notes.join("; ")
    }

    /// Whether some pinned bytes were copied at delivery and some were not: then the error
    /// queue cannot say which sends were copied (see [`MIXED_OUTCOMES`]).
    pub fn mixed_outcomes(&self) -> bool {
        self.fallback_pct()
            .is_some_and(|p| p > FALLBACK_TOLERANCE_PP && p < 100.0 - FALLBACK_TOLERANCE_PP)
    }

    /// Deferred-copied bytes as a percentage of pinned bytes; None when nothing was pinned,
    /// or when either side of it could not be seen.
    pub fn fallback_pct(&self) -> Option<f64> {
        self.seen("k_fallback_pct")
            .then(|| self.counters.fallback_pct())
            .flatten()
    }
}

/// One experiment's figures from both observers and the result of comparing them.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub config: Config,
    pub figures: Figures,
    /// None when run without tracing.
    pub kernel: Option<KernelFigures>,
    /// Every disagreement between kernel and userspace; empty means all checks passed.
    pub disagreements: Vec<String>,
}

impl Outcome {
    /// `ok`, or what disagreed, `; `-separated: the CSV's `checks` cell.
    pub fn checks(&self) -> String {
        if self.disagreements.is_empty() {
            "ok".to_owned()
        } else {
            self.disagreements.join("; ")
        }
    }
}

/// Largest difference, in percentage points, between the kernel's byte-weighted fallback and
/// the per-send copied share from notifications. Both are 0 or 100 unless a run mixes paths.
const FALLBACK_TOLERANCE_PP: f64 = 0.5;

/// Compares what both observers saw. Every figure both can see must agree.
pub fn cross_check(config: &Config, f: &Figures, k: &KernelFigures) -> Vec<String> {
    let c = &k.counters;
    let mut out = Vec::new();
    if config.mode == Mode::A5 {
        // sendfile moves the file through a pipe of 16 pages: one socket send per pipe-full,
        // so one call can be several in the kernel, but never more than the pages it spans.
        let most = f.send_counts.send_calls * (config.size.div_ceil(4096) as u64 + 1);
        if let Some(kernel) = k.figure("k_send_calls", c.send_calls)
            && !(f.send_counts.send_calls..=most).contains(&kernel)
        {
            out.push(format!(
                "send calls: kernel {kernel} outside {}..={most} for {} sendfile calls",
                f.send_counts.send_calls, f.send_counts.send_calls
            ));
        }
    }
    // A figure no hook could see is not compared: its cell is empty, with the reason.
    let mut expect = |name: &str, kernel: Option<u64>, user: u64| {
        if let Some(kernel) = kernel
            && kernel != user
        {
            out.push(format!("{name}: kernel {kernel} != userspace {user}"));
        }
    };
    expect(
        "send bytes",
        k.figure("k_send_bytes", c.send_bytes),
        f.bytes_sent,
    );
    if config.mode != Mode::A5 {
        expect(
            "send calls",
            k.figure("k_send_calls", c.send_calls),
            f.send_counts.send_calls,
        );
    }
    match &f.zc_receive {
        // Zero-copy receive: only the bytes read with `read` pass a receive call; the copies
        // (those reads and the sub-page tails) pass the copy hook; the rest was mapped, which
        // no hook sees, so the kernel's side of it is its own count of bytes received (TCP_INFO)
        // less the copies its hook saw.
        Some(zc) => {
            expect(
                "receive bytes (read calls)",
                k.figure("k_recv_bytes", c.recv_bytes),
                zc.read_bytes,
            );
            expect("receive copy bytes", k.recv_copy_bytes(), zc.copied_bytes);
            expect(
                "mapped bytes",
                k.recv_copy_bytes()
                    .map(|copied| zc.tcp_bytes_received.saturating_sub(copied)),
                zc.mapped_bytes,
            );
            expect(
                "mapped + copied bytes",
                Some(zc.mapped_bytes + zc.copied_bytes),
                f.bytes_received,
            );
        }
        None => {
            expect(
                "receive bytes",
                k.figure("k_recv_bytes", c.recv_bytes),
                f.bytes_received,
            );
            expect("receive copy bytes", k.recv_copy_bytes(), f.bytes_received);
        }
    }
    expect(
        "classified send bytes",
        k.figure(
            "k_pinned_bytes",
            c.copied_at_send_bytes() + c.pinned_bytes() + c.tcp_referenced_at_send_bytes,
        ),
        f.bytes_sent,
    );
    if config.mode.is_zero_copy() && !k.mixed_outcomes() && k.seen("k_fallback_pct") {
        match (k.fallback_pct(), f.send_counts.copied_pct()) {
            (Some(kernel), Some(user)) if (kernel - user).abs() > FALLBACK_TOLERANCE_PP => out
                .push(format!(
                    "fallback: kernel {kernel:.1} % != error-queue copied {user:.1} %"
                )),
            (None, Some(user)) => out.push(format!(
                "fallback: kernel saw no pinned bytes, error queue says {user:.1} % copied"
            )),
            _ => {}
        }
    } else if !config.mode.is_zero_copy() {
        expect(
            "pinned bytes of a copying mode",
            k.figure("k_pinned_bytes", c.pinned_bytes()),
            0,
        );
    }
    // A probe that saw an event and could not count it makes every figure suspect.
    if k.skipped_events() > 0 {
        out.push(format!(
            "events the probes could not count: {}",
            k.skipped_note()
        ));
    }
    // Every page skb_copy_ubufs had to allocate for the pinned skbs delivered was seen
    // allocated under it, and no other.
    if let Some(observed) = k.deferred_copy_pages()
        && k.seen("k_deferred_copy_pages_required")
        && observed != c.deferred_copy_pages_required
    {
        out.push(format!(
            "deferred-copy pages: observed {observed} != required {}",
            c.deferred_copy_pages_required
        ));
    }
    out
}

/// Runs `prepared` with `tracer` (if any) counting its connections under `slot`.
pub fn run(prepared: Prepared, tracer: Option<&mut Tracer>, slot: u32) -> Result<Outcome> {
    let config = prepared.config().clone();
    let endpoint = prepared.endpoint()?;
    let port = endpoint.port();
    let Some(tracer) = tracer else {
        let figures = prepared.run()?;
        return Ok(Outcome {
            config,
            figures,
            kernel: None,
            disagreements: Vec::new(),
        });
    };
    tracer.clear()?;
    tracer.classify_udp(config.net_path.is_sink())?;
    tracer.watch_endpoint(endpoint, slot)?;
    let result = {
        let observer = || tracer.run_time();
        prepared.run_observed(Some(&observer))
    };
    // Stop counting before reading, whatever happened: the next experiment may reuse the port.
    tracer.unwatch_port(port)?;
    let figures = result?;
    let kernel = KernelFigures {
        counters: tracer.totals(slot)?,
        unseen: tracer.unseen(config.net_path.is_sink()),
        skipped: tracer.skipped()?,
    };
    let disagreements = cross_check(&config, &figures, &kernel);
    Ok(Outcome {
        config,
        figures,
        kernel: Some(kernel),
        disagreements,
    })
}
