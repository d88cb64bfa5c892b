//! Loads netcopy's eBPF programs, attaches them, and reads their counters.
//!
//! Dropping a [`Tracer`] detaches every program: the links are file descriptors owned here, so
//! even a process that dies leaves nothing attached.

use std::{collections::BTreeMap, net::SocketAddr};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues, RingBuf},
    programs::tp_btf::BtfTracePointLinkId,
};
use netcopy_common::{FlowCounters, FlowKey, KernelOffsets, Skipped, Watch, kernel_addr, names};

use super::attach::{self, AnyLink, Choice};
use super::map_access::map_err;
use super::{btf::Btf, btf_path, deliveries::Collector, flow_table};
pub use super::{
    hooks::{Attachment, HOOKS, Hook, Mechanism, WITHHOLD_ENV},
    offsets::resolve_offsets,
};
use crate::error::{Error, Result};

/// The eBPF object built by build.rs, embedded so the binary is self-contained.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netcopy-ebpf"));

/// netcopy's programs, loaded and attached.
pub struct Tracer {
    pub(super) ebpf: Ebpf,
    offsets: KernelOffsets,
    /// Why `deferred_copy_pages` cannot be counted here, if it cannot.
    pages_unavailable: Option<String>,
    /// The hooks this kernel refused (or that were withheld), each with why.
    pub(super) missing: Vec<(&'static Hook, String)>,
    /// How each attached hook is attached on this kernel.
    chosen: Vec<(&'static Hook, &'static Attachment)>,
    /// Hooks on a path this kernel does not take, each with why nothing is missing.
    absent: Vec<(&'static Hook, &'static str)>,
    /// The on-demand hooks attached now, each with its link (see `on_demand.rs`).
    pub(super) on_demand_links: Vec<(&'static str, BtfTracePointLinkId)>,
    /// The on-demand hooks asked for now, attached or refused (see `on_demand.rs`).
    pub(super) wanted: Vec<&'static str>,
    /// Whether every experiment asks for the copies at transmit (see `on_demand.rs`).
    pub(super) transmit_on_every_path: bool,
    /// The other hooks' links, while attached (see [`Tracer::detach`]).
    links: Vec<(&'static Hook, &'static Attachment, AnyLink)>,
    /// The programs' run time is measured (see `run_time.rs`): whether, and the handle that
    /// keeps the kernel's statistics on while it is held.
    time_runs: bool,
    run_stats: std::cell::RefCell<Option<std::os::fd::OwnedFd>>,
    /// The TCP deliveries of pinned skbs, read from the programs' ring buffer.
    deliveries: Collector,
}

mod links;
mod run_time;

pub use links::links_steady;
pub use run_time::enable_run_stats;

/// An attach failure of `hook`, saying what the kernel lacks.
pub(super) fn attach_error(hook: &'static Hook) -> impl Fn(aya::programs::ProgramError) -> Error {
    move |source| Error::Attach {
        program: hook.program,
        hook: hook.event(),
        requirement: hook.requirement,
        source: Box::new(source),
    }
}

impl Tracer {
    /// Loads and attaches every program this kernel accepts. A refused hook only empties the
    /// columns it feeds (see [`Tracer::unseen`]); the load fails only when no hook is left.
    pub fn load() -> Result<Self> {
        Self::load_programs(false)
    }

    /// Loads and attaches the same programs, each returning before it does anything: they
    /// count nothing, and what they cost is the floor, the price of entering them at all.
    pub fn load_empty() -> Result<Self> {
        Self::load_programs(true)
    }

    fn load_programs(count_nothing: bool) -> Result<Self> {
        if !super::can_trace() {
            return Err(Error::NotPermitted);
        }
        let path = btf_path();
        let btf = Btf::from_file(&path)?;
        let mut offsets = resolve_offsets(&btf)?;
        offsets.count_nothing = u32::from(count_nothing);
        let pages_unavailable = match super::kallsyms::function_range("skb_copy_ubufs") {
            Some((start, end)) => {
                offsets.skb_copy_ubufs_start = start;
                offsets.skb_copy_ubufs_end = end;
                None
            }
            None => Some(
                "skb_copy_ubufs has no address in /proc/kallsyms (hidden without CAP_SYSLOG unless kernel.kptr_restrict=0 and perf_event_paranoid <= 1)"
                    .to_owned(),
            ),
        };
        let aya_btf = aya::Btf::parse_file(&path, aya::Endianness::default()).map_err(|err| {
            Error::BtfMalformed {
                path: path.clone(),
                what: err.to_string(),
            }
        })?;

        let mut loader = EbpfLoader::new();
        let sizes = super::map_entries()?;
        for (name, entries) in &sizes {
            loader.map_max_entries(name, *entries);
        }
        let mut ebpf = loader
            .btf(Some(&aya_btf))
            .override_global(names::OFFSETS, &offsets, true)
            .load(EBPF_OBJECT)
            .map_err(|err| Error::Load(Box::new(err)))?;

        let withheld = std::env::var(WITHHOLD_ENV).unwrap_or_default();
        let withheld: Vec<&str> = withheld.split(',').map(str::trim).collect();
        let (mut missing, mut chosen, mut absent) = (Vec::new(), Vec::new(), Vec::new());
        let mut links = Vec::new();
        let changing = links::changing_links();
        for hook in HOOKS {
            match attach::choose(&mut ebpf, hook, &btf, &aya_btf, &withheld) {
                Choice::Attached(att, link) => {
                    chosen.push((hook, att));
                    links.extend(link.map(|l| (hook, att, l)));
                }
                Choice::Absent(why) => absent.push((hook, why)),
                Choice::Missing(why) => missing.push((hook, why)),
            }
        }
        drop(changing);
        if chosen.is_empty() {
            let why = missing
                .first()
                .map(|(_, why)| why.clone())
                .unwrap_or_default();
            return Err(Error::NoHookAttached { why });
        }
        let ring = ebpf
            .take_map(names::DELIVERIES)
            .expect("object defines DELIVERIES");
        let ring = RingBuf::try_from(ring).map_err(map_err(names::DELIVERIES))?;
        Ok(Self {
            ebpf,
            offsets,
            pages_unavailable,
            missing,
            chosen,
            absent,
            on_demand_links: Vec::new(),
            wanted: Vec::new(),
            transmit_on_every_path: false,
            links,
            time_runs: false,
            run_stats: std::cell::RefCell::new(None),
            deliveries: Collector::start(ring),
        })
    }

    /// The hooks this kernel refused or that were withheld, each with why.
    pub fn missing_hooks(&self) -> &[(&'static Hook, String)] {
        &self.missing
    }

    /// How each attached hook is attached here, in attach order.
    pub fn mechanisms(&self) -> &[(&'static Hook, &'static Attachment)] {
        &self.chosen
    }

    /// Hooks on a path this kernel does not take, each with why nothing is missing.
    pub fn absent_hooks(&self) -> &[(&'static Hook, &'static str)] {
        &self.absent
    }

    /// The columns fed here by something other than a tracepoint (a function's entry or
    /// exit), each with the mechanisms that fed it: what a row's note says beside its figures.
    pub fn fed_by_fallback(&self) -> BTreeMap<String, String> {
        let mut fed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (hook, att) in &self.chosen {
            if att.mechanism == Mechanism::TpBtf || (hook.on_demand && !self.wanted(hook.program)) {
                continue;
            }
            for column in hook.feeds {
                fed.entry((*column).to_owned())
                    .or_default()
                    .push(att.label());
            }
        }
        fed.into_iter()
            .map(|(column, labels)| (column, format!("fed by {}", labels.join(" and "))))
            .collect()
    }

    /// Every column this tracer cannot fill now, with why: the columns of refused hooks (an
    /// on-demand hook's only while it is asked for) and of on-demand hooks not asked for, and
    /// the deferred copy's pages when `skb_copy_ubufs` has no address.
    pub fn unseen(&self) -> BTreeMap<String, String> {
        let mut unseen = BTreeMap::new();
        for (hook, why) in &self.missing {
            if hook.on_demand && !self.wanted(hook.program) {
                continue;
            }
            for column in hook.feeds {
                unseen
                    .entry((*column).to_owned())
                    .or_insert_with(|| format!("hook {} unavailable: {why}", hook.event()));
            }
        }
        self.idle(&mut unseen, false);
        if let Some(why) = &self.pages_unavailable {
            unseen
                .entry("k_deferred_copy_pages".to_owned())
                .or_insert_with(|| why.clone());
        }
        unseen
    }

    /// The offsets handed to the programs.
    pub fn offsets(&self) -> KernelOffsets {
        self.offsets
    }

    /// Sets `port`'s entry of the port array (an all-zero [`Watch`] unwatches it).
    fn set_port(&mut self, port: u16, watch: Watch) -> Result<()> {
        let map = self
            .ebpf
            .map_mut(names::WATCHED_PORTS)
            .expect("object defines WATCHED_PORTS");
        Array::try_from(map)
            .and_then(|mut ports| ports.set(u32::from(port), watch, 0))
            .map_err(map_err(names::WATCHED_PORTS))
    }

    /// Counts, under `slot`, every socket whose local or remote port is `port`, whatever its
    /// address (`trace --port`).
    pub fn watch_port(&mut self, port: u16, slot: u32) -> Result<()> {
        self.watch(
            port,
            Watch {
                slot,
                flags: Watch::ANY_ADDRESS,
                addr: [0; 4],
            },
        )
    }

    /// Counts, under `slot`, the sockets of `endpoint` (a server's address): its own sockets
    /// and those connected to it. A wildcard address stands for every local address, so then
    /// only the server's own sockets are counted: a client elsewhere with that port as its
    /// peer is not the server's.
    pub fn watch_endpoint(&mut self, endpoint: SocketAddr, slot: u32) -> Result<()> {
        let watch = if endpoint.ip().is_unspecified() {
            Watch {
                slot,
                flags: Watch::ANY_ADDRESS | Watch::LOCAL_ONLY,
                addr: [0; 4],
            }
        } else {
            Watch {
                slot,
                flags: 0,
                addr: kernel_addr(endpoint.ip()),
            }
        };
        self.watch(endpoint.port(), watch)
    }

    fn watch(&mut self, port: u16, watch: Watch) -> Result<()> {
        self.set_port(
            port,
            Watch {
                flags: watch.flags | Watch::ACTIVE,
                ..watch
            },
        )
    }

    /// Counts every socket process `tgid` sends or receives on under `slot`, from its next
    /// send or receive call on (that connection becomes watched until it closes).
    pub fn watch_process(&mut self, tgid: u32, slot: u32) -> Result<()> {
        let map = self
            .ebpf
            .map_mut(names::WATCHED_TGIDS)
            .expect("object defines WATCHED_TGIDS");
        let mut tgids: HashMap<_, u32, u32> =
            HashMap::try_from(map).map_err(map_err(names::WATCHED_TGIDS))?;
        tgids
            .insert(tgid, slot, 0)
            .map_err(map_err(names::WATCHED_TGIDS))
    }

    /// Stops counting `port`; counts already made stay until [`Tracer::clear`].
    pub fn unwatch_port(&mut self, port: u16) -> Result<()> {
        self.set_port(port, Watch::default())
    }

    /// Every socket counted under `slot`, each summed over CPUs.
    pub fn flows(&self, slot: u32) -> Result<BTreeMap<FlowKey, FlowCounters>> {
        let mut flows = flow_table::flows(&self.ebpf, slot)?;
        self.deliveries.add_to(slot, &mut flows);
        Ok(flows)
    }

    /// The counters of `slot`'s sockets that found the flow table full, together.
    pub fn overflow(&self, slot: u32) -> Result<FlowCounters> {
        flow_table::overflow(&self.ebpf, slot)
    }

    /// All of `slot`'s sockets folded into one set of counters, those in the overflow too.
    pub fn totals(&self, slot: u32) -> Result<FlowCounters> {
        let mut total = self.overflow(slot)?;
        for counters in self.flows(slot)?.values() {
            total.accumulate(counters);
        }
        Ok(total)
    }

    /// Forgets every count and delivery, so the next experiment starts from zero.
    pub fn clear(&mut self) -> Result<()> {
        self.deliveries.clear();
        flow_table::clear(&mut self.ebpf)?;
        let cpus = aya::util::nr_cpus().map_err(|(what, e)| Error::io(what, e))?;
        let mut skipped = self.skipped_map()?;
        for reason in Skipped::ALL {
            let zeros = PerCpuValues::try_from(vec![0u64; cpus])
                .map_err(|e| Error::io("zeroing the skipped-event counters", e))?;
            skipped
                .set(reason as u32, zeros, 0)
                .map_err(map_err(names::SKIPPED))?;
        }
        Ok(())
    }

    fn skipped_map(&mut self) -> Result<PerCpuArray<&mut MapData, u64>> {
        let map = self
            .ebpf
            .map_mut(names::SKIPPED)
            .expect("object defines SKIPPED");
        PerCpuArray::try_from(map).map_err(map_err(names::SKIPPED))
    }

    /// Events the probes saw but could not count since the last [`Tracer::clear`], per
    /// reason (in [`Skipped::ALL`] order), summed over CPUs.
    pub fn skipped(&mut self) -> Result<[u64; Skipped::ALL.len()]> {
        let skipped = self.skipped_map()?;
        let mut out = [0; Skipped::ALL.len()];
        for reason in Skipped::ALL {
            let values = skipped
                .get(&(reason as u32), 0)
                .map_err(map_err(names::SKIPPED))?;
            out[reason as usize] = values.iter().sum();
        }
        Ok(out)
    }
}
