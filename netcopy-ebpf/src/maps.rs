//! The maps and the read-only global userspace fills in before loading.

use aya_ebpf::{
    Global,
    bindings::BPF_NOEXIST,
    macros::map,
    maps::{HashMap, PerCpuHashMap},
};
use netcopy_common::{FlowCounters, FlowKey, KernelOffsets, MAX_FLOWS, MAX_WATCHED_PORTS};

/// Filled in by userspace from BTF before load (see `netcopy::kernel::btf`).
#[unsafe(no_mangle)]
static OFFSETS: Global<KernelOffsets> = Global::new(KernelOffsets {
    sock_local_port: 0,
    sock_remote_port: 0,
});

#[map(name = "WATCHED_PORTS")]
pub static WATCHED_PORTS: HashMap<u16, u32> = HashMap::with_max_entries(MAX_WATCHED_PORTS, 0);

#[map(name = "FLOWS")]
pub static FLOWS: PerCpuHashMap<FlowKey, FlowCounters> =
    PerCpuHashMap::with_max_entries(MAX_FLOWS, 0);

/// The offsets as patched in by the loader (`Global` keeps the compiler from folding in the
/// zeros above).
#[inline(always)]
pub fn offsets() -> KernelOffsets {
    OFFSETS.load()
}

/// This CPU's counters for `key`, created zeroed on first use.
///
/// Plain (non-atomic) increments through this pointer are sound: the value is per-CPU, each
/// field has one writing program, and the kernel never nests a tracing program inside itself
/// on one CPU.
#[inline(always)]
pub fn flow_counters(key: &FlowKey) -> Option<*mut FlowCounters> {
    if let Some(counters) = FLOWS.get_ptr_mut(key) {
        return Some(counters);
    }
    // Another CPU may insert the same key between the lookup and here: NOEXIST then fails and
    // the second lookup finds its entry, which is ours too (per-CPU values).
    let _ = FLOWS.insert(key, FlowCounters::default(), u64::from(BPF_NOEXIST));
    FLOWS.get_ptr_mut(key)
}
