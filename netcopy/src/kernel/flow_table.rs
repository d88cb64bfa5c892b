//! Userspace's side of the programs' flow table (see netcopy-ebpf's flows.rs): flow index ->
//! key in `FLOW_KEYS`, index -> per-CPU counters in `FLOWS`, the next free index in
//! `FLOW_NEXT`, and the per-slot aggregate `OVERFLOW` of sockets that found the table full.

use std::collections::BTreeMap;

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues},
};
use netcopy_common::{FlowCounters, FlowKey, VOID_SLOT, names};

use super::map_access::{map_err, remove_all};
use crate::error::{Error, Result};

fn array<'a, V: aya::Pod>(ebpf: &'a Ebpf, name: &'static str) -> Result<Array<&'a MapData, V>> {
    let map = ebpf
        .map(name)
        .unwrap_or_else(|| panic!("object defines {name}"));
    Array::try_from(map).map_err(map_err(name))
}

fn per_cpu<'a>(
    ebpf: &'a Ebpf,
    name: &'static str,
) -> Result<PerCpuArray<&'a MapData, FlowCounters>> {
    let map = ebpf
        .map(name)
        .unwrap_or_else(|| panic!("object defines {name}"));
    PerCpuArray::try_from(map).map_err(map_err(name))
}

/// How many indexes have been handed out (at most the table's length).
fn used(ebpf: &Ebpf) -> Result<u32> {
    let next: u64 = array(ebpf, names::FLOW_NEXT)?
        .get(&0, 0)
        .map_err(map_err(names::FLOW_NEXT))?;
    let len = per_cpu(ebpf, names::FLOWS)?.len();
    Ok(u32::try_from(next).map_or(len, |n| n.min(len)))
}

/// Every socket counted under `slot`, each summed over CPUs.
pub fn flows(ebpf: &Ebpf, slot: u32) -> Result<BTreeMap<FlowKey, FlowCounters>> {
    let keys = array::<FlowKey>(ebpf, names::FLOW_KEYS)?;
    let counters = per_cpu(ebpf, names::FLOWS)?;
    let mut flows: BTreeMap<FlowKey, FlowCounters> = BTreeMap::new();
    for index in 0..used(ebpf)? {
        let key = keys.get(&index, 0).map_err(map_err(names::FLOW_KEYS))?;
        if key.slot != slot || key.slot == VOID_SLOT {
            continue;
        }
        let sum = summed(&counters, index, names::FLOWS)?;
        flows.entry(key).or_default().accumulate(&sum);
    }
    Ok(flows)
}

/// The counters of `slot`'s sockets that found the table full, together.
pub fn overflow(ebpf: &Ebpf, slot: u32) -> Result<FlowCounters> {
    let array = per_cpu(ebpf, names::OVERFLOW)?;
    if slot >= array.len() {
        // Shrunk by NETCOPY_MAP_ENTRIES: the slot has no aggregate (events are skipped).
        return Ok(FlowCounters::default());
    }
    summed(&array, slot, names::OVERFLOW)
}

/// Entry `index` of the per-CPU counters `array` (named `name`), summed over CPUs.
fn summed(
    array: &PerCpuArray<&MapData, FlowCounters>,
    index: u32,
    name: &'static str,
) -> Result<FlowCounters> {
    let mut total = FlowCounters::default();
    for counters in array.get(&index, 0).map_err(map_err(name))?.iter() {
        total.accumulate(counters);
    }
    Ok(total)
}

/// Empties the table: keys voided first, so no CPU's cache confirms an old index again, then
/// the index map, the counters and the next index. Called between experiments, when no
/// watched traffic flows.
pub fn clear(ebpf: &mut Ebpf) -> Result<()> {
    let used = used(ebpf)?;
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| Error::io(what, e))?;
    let zeros = || {
        PerCpuValues::try_from(vec![FlowCounters::default(); cpus])
            .map_err(|e| Error::io("zeroing the flow counters", e))
    };
    {
        let map = ebpf
            .map_mut(names::FLOW_KEYS)
            .expect("object defines FLOW_KEYS");
        let mut keys: Array<_, FlowKey> =
            Array::try_from(map).map_err(map_err(names::FLOW_KEYS))?;
        let void = FlowKey {
            slot: VOID_SLOT,
            ..FlowKey::default()
        };
        for index in 0..used {
            keys.set(index, void, 0)
                .map_err(map_err(names::FLOW_KEYS))?;
        }
    }
    {
        let map = ebpf
            .map_mut(names::FLOW_INDEX)
            .expect("object defines FLOW_INDEX");
        let mut index: HashMap<_, FlowKey, u32> =
            HashMap::try_from(map).map_err(map_err(names::FLOW_INDEX))?;
        let keys = index.keys().collect();
        remove_all(names::FLOW_INDEX, keys, |k| index.remove(k))?;
    }
    for name in [names::FLOWS, names::OVERFLOW] {
        let map = ebpf
            .map_mut(name)
            .unwrap_or_else(|| panic!("object defines {name}"));
        let mut counters: PerCpuArray<_, FlowCounters> =
            PerCpuArray::try_from(map).map_err(map_err(name))?;
        let len = if name == names::FLOWS {
            used
        } else {
            counters.len()
        };
        for index in 0..len {
            counters.set(index, zeros()?, 0).map_err(map_err(name))?;
        }
    }
    let map = ebpf
        .map_mut(names::FLOW_NEXT)
        .expect("object defines FLOW_NEXT");
    let mut next: Array<_, u64> = Array::try_from(map).map_err(map_err(names::FLOW_NEXT))?;
    next.set(0, 0, 0).map_err(map_err(names::FLOW_NEXT))
}
