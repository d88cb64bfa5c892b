//! One experiment: the workload runs while the tracer counts its connections; the two
//! observers' figures are joined and cross-checked.

use std::collections::BTreeMap;

use netcopy_common::{FlowCounters, Skipped};

use crate::{
    error::Result,
    kernel::tracer::Tracer,
    workload::{Config, Figures, Prepared},
};

/// What the kernel saw for one experiment, and what it could not see.
#[derive(Debug, Clone, Default)]
pub struct KernelFigures {
    pub counters: FlowCounters,
    /// The `k_*` columns no hook could fill here, each with why (see `Tracer::unseen`).
    pub unseen: BTreeMap<String, String>,
    /// The `k_*` columns a fallback fed here instead of a tracepoint, each with which (see
    /// `Tracer::fed_by_fallback`): part of the note, so a figure says how it was seen.
    pub fed_by: BTreeMap<String, String>,
    /// Events the probes saw but could not count, per reason (`Skipped::ALL` order).
    pub skipped: [u64; Skipped::ALL.len()],
    /// Runs of each program the kernel skipped while these figures were counted
    /// (`recursion_misses`), only those with any: see [`missed_since`].
    pub missed_runs: Vec<(String, u64)>,
}

/// The runs each program missed between two readings of `Tracer::missed_runs`, only those
/// with any.
pub fn missed_since(before: &[(&str, u64)], after: &[(&'static str, u64)]) -> Vec<(String, u64)> {
    after
        .iter()
        .filter_map(|(name, now)| {
            let then = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, v)| *v);
            (*now > then).then(|| ((*name).to_owned(), now - then))
        })
        .collect()
}

/// Why the fallback check is skipped when sends had different outcomes.
pub const MIXED_OUTCOMES: &str = "fallback not checked against the error queue: some pinned bytes were copied at delivery and some were not, and the kernel merges completion ranges without comparing their COPIED flag (a merged range keeps its last send's)";

/// The program that sees the deferred copy's pages. It runs at every page allocation on the
/// machine, in any context, so an interrupt that allocates while it runs is a missed run; that
/// alone fails no check.
pub const PAGES_PROGRAM: &str = "mm_page_alloc";

/// Why a missed run of [`PAGES_PROGRAM`] fails no check by itself.
pub const PAGES_MISSES: &str = "a run the kernel skips is an allocation inside its own (a delivery interrupting it), which can be a deferred-copy page, so the pages seen may fall short of the pages required by at most that many, and by no more";

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

    /// `value` for a sentence: the number, or "- (not seen)" when no hook could fill `column`.
    pub fn shown(&self, column: &str, value: u64) -> String {
        self.figure(column, value)
            .map_or_else(|| "- (not seen)".to_owned(), |v| v.to_string())
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

    /// Bytes the receiving application consumed, by the kernel's count (`copied_seq`).
    pub fn recv_consumed_bytes(&self) -> Option<u64> {
        self.figure("k_recv_consumed_bytes", self.counters.recv_consumed_bytes)
    }

    /// Bytes consumed and not copied to user: mapped by `TCP_ZEROCOPY_RECEIVE` (or dropped
    /// unread with MSG_TRUNC). None when either side is unseen, or when more was copied than
    /// consumed, which [`kernel_checks`] reports.
    pub fn mapped_bytes(&self) -> Option<u64> {
        self.figure("k_mapped_bytes", 0)?;
        self.recv_consumed_bytes()?
            .checked_sub(self.recv_copy_bytes()?)
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
        // Columns fed the same way share one entry.
        let mut fed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (column, how) in &self.fed_by {
            fed.entry(how).or_default().push(column);
        }
        notes.extend(
            fed.iter()
                .map(|(how, c)| format!("{}: {how}", c.join(", "))),
        );
        if self.counters.recv_copy_unseen_calls > 0 {
            notes.push(RECV_COPY_UNSEEN.to_owned());
        }
        if self.copied_pinned_at_transmit() {
            notes.push(UNDERREPORT.to_owned());
            if self.partly_copied_at_transmit() {
                notes.push(transmit::PARTLY.to_owned());
            }
        } else if self.mixed_outcomes() {
            notes.push(MIXED_OUTCOMES.to_owned());
        }
        if let Some((_, n)) = self.missed_runs.iter().find(|(p, _)| p == PAGES_PROGRAM) {
            notes.push(format!("{PAGES_PROGRAM} missed {n} runs: {PAGES_MISSES}"));
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
    /// How many of netcopy's programs the kernel had attached at the window's edges (the
    /// larger count); None when no programs were loaded.
    pub attached_programs: Option<u32>,
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
            attached_programs: None,
        });
    };
    tracer.attach()?;
    tracer.classify_udp(config.net_path.is_sink())?;
    let transmit = tracer.wants_copied_at_transmit(config.net_path.through_device());
    tracer.count_copied_at_transmit(transmit)?;
    let attached = tracer.attached_in_kernel()?;
    tracer.clear()?;
    let missed_before = tracer.missed_runs();
    let _steady = crate::kernel::tracer::links_steady();
    tracer.watch_endpoint(endpoint, slot)?;
    let result = prepared.run_observed(Some(&*tracer));
    // Stop counting before reading, whatever happened: the next experiment may reuse the port.
    tracer.unwatch_port(port)?;
    let figures = result?;
    let kernel = KernelFigures {
        counters: tracer.totals(slot)?,
        unseen: tracer.unseen(),
        fed_by: tracer.fed_by_fallback(),
        skipped: tracer.skipped()?,
        missed_runs: missed_since(&missed_before, &tracer.missed_runs()),
    };
    let disagreements = cross_check(&config, &figures, &kernel);
    Ok(Outcome {
        config,
        figures,
        kernel: Some(kernel),
        disagreements,
        attached_programs: attached,
    })
}

mod checks;
mod observer;
mod transmit;
pub use checks::{classification_check, consumed_check, cross_check, kernel_checks};
pub use observer::{Observer, run_detached};
pub use transmit::UNDERREPORT;

#[cfg(test)]
mod tests;
