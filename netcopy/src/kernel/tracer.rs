//! Loads netcopy's eBPF programs, attaches them, and reads their counters.
//!
//! Dropping a [`Tracer`] detaches every program: the links are file descriptors owned here, so
//! even a process that dies leaves nothing attached.

use std::{collections::BTreeMap, net::SocketAddr};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::{BtfTracePoint, tp_btf::BtfTracePointLinkId},
};
use netcopy_common::{FlowCounters, FlowKey, KernelOffsets, Skipped, Watch, kernel_addr, names};

use super::{btf::Btf, btf_path, deliveries::Collector};
pub use super::{
    hooks::{HOOKS, Hook, WITHHOLD_ENV},
    offsets::resolve_offsets,
};
use crate::error::{Error, Result};

/// The eBPF object built by build.rs, embedded so the binary is self-contained.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netcopy-ebpf"));

/// netcopy's programs, loaded and attached.
pub struct Tracer {
    ebpf: Ebpf,
    offsets: KernelOffsets,
    /// Why `deferred_copy_pages` cannot be counted here, if it cannot.
    pages_unavailable: Option<String>,
    /// The hooks this kernel refused (or that were withheld), each with why.
    missing: Vec<(&'static Hook, String)>,
    /// The UDP classification hook's link, while attached.
    udp_link: Option<BtfTracePointLinkId>,
    /// Keeps the kernel's run-time statistics on while held (see [`Tracer::time_programs`]).
    run_stats: Option<std::os::fd::OwnedFd>,
    /// The TCP deliveries of pinned skbs, read from the programs' ring buffer.
    deliveries: Collector,
}

/// Removes every key of `map`; a key another reader removed first is fine.
fn remove_all<K>(
    map: &'static str,
    keys: std::result::Result<Vec<K>, aya::maps::MapError>,
    mut remove: impl FnMut(&K) -> std::result::Result<(), aya::maps::MapError>,
) -> Result<()> {
    for key in keys.map_err(map_err(map))? {
        match remove(&key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(err) => return Err(map_err(map)(err)),
        }
    }
    Ok(())
}

/// An attach failure of `hook`, saying what the kernel lacks.
fn attach_error(hook: &'static Hook) -> impl Fn(aya::programs::ProgramError) -> Error {
    move |source| Error::Attach {
        program: hook.program,
        hook: hook.tracepoint,
        requirement: hook.requirement,
        source: Box::new(source),
    }
}

/// Loads `hook`'s program and attaches it (an on-demand hook is detached again at once).
fn attach_hook(ebpf: &mut Ebpf, hook: &'static Hook, btf: &aya::Btf) -> Result<()> {
    let program: &mut BtfTracePoint = ebpf
        .program_mut(hook.program)
        .and_then(|p| p.try_into().ok())
        .ok_or(Error::ProgramMissing {
            program: hook.program,
        })?;
    program
        .load(hook.tracepoint, btf)
        .map_err(|source| Error::ProgramLoad {
            program: hook.program,
            hook: hook.tracepoint,
            requirement: hook.requirement,
            source: Box::new(source),
        })?;
    let link = program.attach().map_err(attach_error(hook))?;
    if hook.on_demand {
        program.detach(link).map_err(attach_error(hook))?;
    }
    Ok(())
}

fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> Error {
    move |source| Error::Map {
        map,
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

        let mut ebpf = EbpfLoader::new()
            .btf(Some(&aya_btf))
            .override_global(names::OFFSETS, &offsets, true)
            .load(EBPF_OBJECT)
            .map_err(|err| Error::Load(Box::new(err)))?;

        let withheld = std::env::var(WITHHOLD_ENV).unwrap_or_default();
        let mut missing = Vec::new();
        let mut first_error = None;
        for hook in HOOKS {
            if withheld.split(',').any(|w| w.trim() == hook.program) {
                missing.push((hook, format!("withheld by {WITHHOLD_ENV}")));
                continue;
            }
            if let Err(err) = attach_hook(&mut ebpf, hook, &aya_btf) {
                missing.push((hook, err.to_string()));
                first_error.get_or_insert(err);
            }
        }
        if missing.len() == HOOKS.len()
            && let Some(err) = first_error
        {
            return Err(err);
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
            udp_link: None,
            run_stats: None,
            deliveries: Collector::start(ring),
        })
    }

    /// The hooks this kernel refused or that were withheld, each with why.
    pub fn missing_hooks(&self) -> &[(&'static Hook, String)] {
        &self.missing
    }

    /// Every column this tracer cannot fill, with why: the columns of refused hooks (the UDP
    /// transmit hook's only when `udp` traffic is classified), and the deferred copy's pages
    /// when `skb_copy_ubufs` has no address.
    pub fn unseen(&self, udp: bool) -> std::collections::BTreeMap<String, String> {
        let mut unseen = std::collections::BTreeMap::new();
        for (hook, why) in &self.missing {
            if hook.on_demand && !udp {
                continue;
            }
            for column in hook.feeds {
                unseen
                    .entry((*column).to_owned())
                    .or_insert_with(|| format!("hook {} unavailable: {why}", hook.tracepoint));
            }
        }
        if let Some(why) = &self.pages_unavailable {
            unseen
                .entry("k_deferred_copy_pages".to_owned())
                .or_insert_with(|| why.clone());
        }
        unseen
    }

    /// Turns on the kernel's per-program run-time statistics for this tracer's life, so
    /// [`Tracer::run_time`] can say what the observer itself cost. They add a clock read to
    /// every program run.
    pub fn time_programs(&mut self) -> Result<()> {
        if self.run_stats.is_none() {
            self.run_stats = Some(enable_run_stats()?);
        }
        Ok(())
    }

    /// Total run time of every program since load, while statistics are on; None otherwise.
    pub fn run_time(&self) -> Option<std::time::Duration> {
        self.run_stats.as_ref()?;
        Some(self.program_stats().iter().map(|(_, _, t)| *t).sum())
    }

    /// The offsets handed to the programs.
    pub fn offsets(&self) -> KernelOffsets {
        self.offsets
    }

    /// Attaches (or detaches) the transmit hook that classifies UDP sends as copied or
    /// pinned. TCP never needs it; UDP paths and `trace` do.
    pub fn classify_udp(&mut self, on: bool) -> Result<()> {
        const PROGRAM: &str = "net_dev_start_xmit";
        if on == self.udp_link.is_some() {
            return Ok(());
        }
        let hook = HOOKS
            .iter()
            .find(|h| h.program == PROGRAM)
            .expect("the UDP hook is listed");
        if self.missing.iter().any(|(h, _)| h.program == PROGRAM) {
            // Its columns are in `unseen(true)`.
            return Ok(());
        }
        let program: &mut BtfTracePoint = self
            .ebpf
            .program_mut(PROGRAM)
            .and_then(|p| p.try_into().ok())
            .expect("loaded with the others");
        match self.udp_link.take() {
            Some(link) => program.detach(link).map_err(attach_error(hook))?,
            None => self.udp_link = Some(program.attach().map_err(attach_error(hook))?),
        }
        Ok(())
    }

    /// Each program's (name, runs, total run time) since load; counted only while run-time
    /// statistics are on (see [`enable_run_stats`]).
    pub fn program_stats(&self) -> Vec<(&'static str, u64, std::time::Duration)> {
        HOOKS
            .iter()
            .filter_map(|hook| {
                let program: &BtfTracePoint = self.ebpf.program(hook.program)?.try_into().ok()?;
                let info = program.info().ok()?;
                Some((hook.program, info.run_count(), info.run_time()))
            })
            .collect()
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

    fn flows_map(&self) -> Result<PerCpuHashMap<&MapData, FlowKey, FlowCounters>> {
        let map = self.ebpf.map(names::FLOWS).expect("object defines FLOWS");
        PerCpuHashMap::try_from(map).map_err(map_err(names::FLOWS))
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
        let mut flows = BTreeMap::new();
        for entry in self.flows_map()?.iter() {
            let (key, per_cpu) = entry.map_err(map_err(names::FLOWS))?;
            if key.slot != slot {
                continue;
            }
            let total: &mut FlowCounters = flows.entry(key).or_default();
            for counters in per_cpu.iter() {
                total.accumulate(counters);
            }
        }
        self.deliveries.add_to(slot, &mut flows);
        Ok(flows)
    }

    /// All of `slot`'s sockets folded into one set of counters.
    pub fn totals(&self, slot: u32) -> Result<FlowCounters> {
        let mut total = FlowCounters::default();
        for counters in self.flows(slot)?.values() {
            total.accumulate(counters);
        }
        Ok(total)
    }

    /// Forgets every count and delivery, so the next experiment starts from zero.
    pub fn clear(&mut self) -> Result<()> {
        self.deliveries.clear();
        let map = self
            .ebpf
            .map_mut(names::FLOWS)
            .expect("object defines FLOWS");
        let mut flows: PerCpuHashMap<_, FlowKey, FlowCounters> =
            PerCpuHashMap::try_from(map).map_err(map_err(names::FLOWS))?;
        let keys = flows.keys().collect();
        remove_all(names::FLOWS, keys, |k| flows.remove(k))?;
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

/// Turns on the kernel's per-program run-time statistics (`BPF_ENABLE_STATS`) for as long as
/// the returned handle lives. They cost a clock read per program run, so only benchmarks ask.
pub fn enable_run_stats() -> Result<std::os::fd::OwnedFd> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| Error::io("enabling BPF run-time statistics", std::io::Error::other(e)))
}
