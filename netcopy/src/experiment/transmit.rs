//! Copies at transmit, and what they show about the error queue: software GSO copies pinned
//! bytes without marking their completion copied.

use super::KernelFigures;
use crate::workload::Mode;

/// Why the fallback is not checked against the error queue after copies at transmit.
pub const UNDERREPORT: &str = "fallback not checked against the error queue: pinned bytes were copied at transmit (no scatter-gather on the device), and software GSO's copy (skb_segment) marks no completion copied, only linearisation (__pskb_pull_tail) does: zc_underreport_pct is the share of completed sends flagged not copied whose bytes were copied";

/// Why `zc_underreport_pct` is empty when only some pinned bytes were copied.
pub const PARTLY: &str = "zc_underreport_pct: some pinned bytes were copied and some were not, and merged completion ranges cannot say which sends";

impl KernelFigures {
    /// Whether some pinned bytes, not all, were copied (at delivery or at transmit).
    pub fn partly_copied_at_transmit(&self) -> bool {
        self.pinned_copied_bytes()
            .is_some_and(|c| c > 0 && c < self.counters.pinned_bytes())
    }

    /// Bytes copied at transmit (no scatter-gather on the device), when a hook sees them.
    pub fn copied_at_transmit_bytes(&self) -> Option<u64> {
        self.figure(
            "k_copied_at_transmit_bytes",
            self.counters.copied_at_transmit_bytes,
        )
    }

    /// Pinned bytes the kernel copied anyway, at delivery or at transmit (in a zero-copy
    /// mode every byte sent is pinned, so every byte copied at transmit was): None unless
    /// both are seen, or the delivery alone copied them all (loopback, where the transmit
    /// hook is not attached). A retransmission copies again: capped at the bytes pinned.
    fn pinned_copied_bytes(&self) -> Option<u64> {
        let c = &self.counters;
        if !self.seen("k_deferred_copy_bytes") {
            return None;
        }
        if c.deferred_copy_bytes >= c.pinned_bytes() {
            return Some(c.pinned_bytes());
        }
        let at_transmit = self.copied_at_transmit_bytes()?;
        Some((c.deferred_copy_bytes + at_transmit).min(c.pinned_bytes()))
    }

    /// The error queue's under-report: the share of completed sends it flagged "not copied"
    /// although their bytes were copied. Known exactly when every pinned byte was copied (all
    /// flagged ones were copied; `100 - copied_pct`) or none was (0); None for a copying mode,
    /// or when some were and some were not (merged completion ranges cannot tell which).
    pub fn underreport_pct(&self, mode: Mode, copied_pct: Option<f64>) -> Option<f64> {
        if !mode.is_zero_copy() {
            return None;
        }
        let (copied, pinned) = (self.pinned_copied_bytes()?, self.counters.pinned_bytes());
        match copied {
            _ if pinned == 0 => None,
            0 => Some(0.0),
            c if c == pinned => copied_pct.map(|p| 100.0 - p),
            _ => None,
        }
    }

    /// Whether pinned bytes were copied at transmit: then the error queue's COPIED flags
    /// under-report (software GSO's copy sets none), and the fallback is not checked against
    /// them (see [`UNDERREPORT`]).
    pub fn copied_pinned_at_transmit(&self) -> bool {
        self.copied_at_transmit_bytes().is_some_and(|b| b > 0) && self.counters.pinned_bytes() > 0
    }
}
