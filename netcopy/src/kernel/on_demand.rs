//! Hooks attached only while something needs them: every packet on the machine passes
//! `net_dev_start_xmit`, and every TCP receive call `tcp_rcv_space_adjust`, so the sweep's
//! experiments do not pay for them unless they use what they count.

use std::collections::BTreeMap;

use aya::programs::BtfTracePoint;

use super::{
    hooks::HOOKS,
    tracer::{Tracer, attach_error},
};
use crate::error::Result;

/// The UDP classification hook.
const UDP_PROGRAM: &str = "net_dev_start_xmit";

impl Tracer {
    /// Attaches (or detaches) the transmit hook that classifies UDP sends as copied or
    /// pinned. TCP never needs it; UDP paths and `trace` do.
    pub fn classify_udp(&mut self, on: bool) -> Result<()> {
        self.attach_on_demand(UDP_PROGRAM, on)
    }

    /// Attaches (or detaches) the hook that counts what TCP receivers consumed, copied or
    /// mapped (`k_recv_consumed_bytes`, `k_mapped_bytes`): only `trace` has those columns.
    pub fn count_consumed(&mut self, on: bool) -> Result<()> {
        self.attach_on_demand("tcp_rcv_space_adjust", on)
    }

    /// Adds to `unseen` the columns only an on-demand hook that is not attached now feeds
    /// (the UDP hook's are fed by TCP's hooks too, so it has none): trace's own columns,
    /// which the sweep's rows do not have.
    pub fn unattached(&self, unseen: &mut BTreeMap<String, String>) {
        let detached = HOOKS.iter().filter(|h| {
            h.on_demand
                && h.program != UDP_PROGRAM
                && !self.on_demand_links.iter().any(|(n, _)| *n == h.program)
        });
        for hook in detached {
            for column in hook.feeds {
                unseen.entry((*column).to_owned()).or_insert_with(|| {
                    format!(
                        "hook {} not attached: only `netcopy trace` uses it",
                        hook.event()
                    )
                });
            }
        }
    }

    fn attach_on_demand(&mut self, name: &'static str, on: bool) -> Result<()> {
        let attached = self.on_demand_links.iter().position(|(n, _)| *n == name);
        if on == attached.is_some() || self.missing.iter().any(|(h, _)| h.program == name) {
            // Nothing to do, or a refused hook, whose columns are in `unseen(true)`.
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
