//! Hooks attached only while something needs them: every packet on the machine passes
//! `net_dev_start_xmit`, and every TCP receive call `tcp_rcv_space_adjust`, so the sweep's
//! experiments do not pay for them unless they use what they count.

use std::collections::BTreeMap;

use aya::programs::BtfTracePoint;

use super::{
    hooks::{HOOKS, WhenIdle},
    tracer::{Tracer, attach_error},
};
use crate::error::Result;

impl Tracer {
    /// Attaches (or detaches) the transmit hook that classifies UDP sends as copied or
    /// pinned. TCP never needs it; UDP paths and `trace` do.
    pub fn classify_udp(&mut self, on: bool) -> Result<()> {
        self.attach_on_demand("net_dev_start_xmit", on)
    }

    /// Attaches (or detaches) the hook that counts what TCP receivers consumed, copied or
    /// mapped (`k_recv_consumed_bytes`, `k_mapped_bytes`): only `trace` has those columns.
    pub fn count_consumed(&mut self, on: bool) -> Result<()> {
        self.attach_on_demand("tcp_rcv_space_adjust", on)
    }

    /// Attaches (or detaches) the hook that counts TCP bytes copied at transmit: only a path
    /// through a device driver (and `trace`, which may see any path) can have them.
    pub fn count_copied_at_transmit(&mut self, on: bool) -> Result<()> {
        self.attach_on_demand("copied_at_transmit", on)
    }

    /// Asks for the copies at transmit in every experiment, whatever its path: a loopback run
    /// then shows its 0 instead of an empty cell (the accounting tests do).
    pub fn count_copied_at_transmit_on_every_path(&mut self, on: bool) {
        self.transmit_on_every_path = on;
    }

    /// Whether an experiment on a path that leaves through a device driver or not
    /// (`through_device`) asks for the copies at transmit.
    pub fn wants_copied_at_transmit(&self, through_device: bool) -> bool {
        through_device || self.transmit_on_every_path
    }

    /// Whether the on-demand hook `name` is asked for now (attached, or refused by the kernel).
    pub(super) fn wanted(&self, name: &str) -> bool {
        self.wanted.contains(&name)
    }

    /// Adds to `unseen` the columns of the on-demand hooks not asked for now, each with why;
    /// trace's own columns only `with_trace_columns`.
    pub(super) fn idle(&self, unseen: &mut BTreeMap<String, String>, with_trace_columns: bool) {
        for hook in HOOKS
            .iter()
            .filter(|h| h.on_demand && !self.wanted(h.program))
        {
            let why = match hook.when_idle {
                WhenIdle::Fed => continue,
                WhenIdle::Empty(why) => why,
                WhenIdle::TraceOnly if with_trace_columns => "only `netcopy trace` uses it",
                WhenIdle::TraceOnly => continue,
            };
            for column in hook.feeds {
                unseen
                    .entry((*column).to_owned())
                    .or_insert_with(|| format!("hook {} not attached: {why}", hook.event()));
            }
        }
    }

    /// Every column a trace's rows cannot fill now, with why: [`Tracer::unseen`] and trace's
    /// own columns when their hook was not asked for.
    pub fn unseen_in_trace(&self) -> BTreeMap<String, String> {
        let mut unseen = self.unseen();
        self.idle(&mut unseen, true);
        unseen
    }

    fn attach_on_demand(&mut self, name: &'static str, on: bool) -> Result<()> {
        self.wanted.retain(|w| *w != name);
        if on {
            self.wanted.push(name);
        }
        let attached = self.on_demand_links.iter().position(|(n, _)| *n == name);
        if on == attached.is_some() || self.missing.iter().any(|(h, _)| h.program == name) {
            // Nothing to do, or a refused hook, whose columns are in `unseen`.
            return Ok(());
        }
        let hook = HOOKS
            .iter()
            .find(|h| h.program == name && h.on_demand)
            .expect("an on-demand hook");
        let program: &mut BtfTracePoint = self
            .ebpf
            .program_mut(name)
            .and_then(|p| p.try_into().ok())
            .expect("loaded with the others");
        match attached {
            Some(i) => {
                let (_, link) = self.on_demand_links.swap_remove(i);
                program.detach(link).map_err(attach_error(hook))?;
            }
            None => {
                let link = program.attach().map_err(attach_error(hook))?;
                self.on_demand_links.push((name, link));
            }
        }
        Ok(())
    }
}
