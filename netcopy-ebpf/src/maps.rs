//! The maps and the read-only global userspace fills in before loading.

use aya_ebpf::{
    Global,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use netcopy_common::{
    DELIVERIES_BYTES, FlowCounters, FlowKey, KernelOffsets, MAX_FLOWS, MAX_SLOTS,
    MAX_WATCHED_CONNS, MAX_WATCHED_TGIDS, STACK_DEPTH, Skipped, WATCHED_PORTS_LEN, Watch,
    send_decision,
};

/// Filled in by userspace from BTF and kallsyms before load (see `netcopy::kernel::tracer`).
#[unsafe(no_mangle)]
// SAFETY: KernelOffsets is plain integers; all-zero is a valid (unresolved) value.
pub static OFFSETS: Global<KernelOffsets> = Global::new(unsafe { core::mem::zeroed() });

#[map(name = "WATCHED_PORTS")]
pub static WATCHED_PORTS: Array<Watch> = Array::with_max_entries(WATCHED_PORTS_LEN, 0);

#[map(name = "WATCHED_TGIDS")]
pub static WATCHED_TGIDS: HashMap<u32, u32> = HashMap::with_max_entries(MAX_WATCHED_TGIDS, 0);

#[map(name = "WATCHED_CONNS")]
pub static WATCHED_CONNS: HashMap<FlowKey, u32> = HashMap::with_max_entries(MAX_WATCHED_CONNS, 0);

/// Per slot: the counters of sockets that found `FLOWS` full, together. A busy server has
/// more connections than any map holds; their bytes still count, in one aggregate.
#[map(name = "OVERFLOW")]
pub static OVERFLOW: PerCpuArray<FlowCounters> = PerCpuArray::with_max_entries(MAX_SLOTS, 0);

/// Per thread (see [`send_decision`]): a send call runs in one thread from `tcp_sendmsg_locked`
/// to `sock_send_length`, even when it sleeps and wakes on another CPU. An array indexed by
/// thread id, not a hash map keyed by task: the verifier inlines an array access, where a hash
/// lookup is a call, and on this VM calls and returns were a third of the send probes' cost.
#[map(name = "SEND_DECISIONS")]
pub static SEND_DECISIONS: Array<u64> = Array::with_max_entries(send_decision::SLOTS, 0);

/// Per task: a UDP socket adopted while it transmitted, before its send call returned (see
/// `sock::adopt_at_transmit`), until that call's `sock_send_length` confirms it.
#[map(name = "PROVISIONAL")]
pub static PROVISIONAL: LruHashMap<u64, FlowKey> = LruHashMap::with_max_entries(1024, 0);

/// The pinned skb this CPU is delivering. Delivery and its `skb_copy_ubufs` run back to back
/// in one softirq on one CPU.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Delivering {
    /// The watched flow (local_port 0: none).
    pub key: FlowKey,
    /// Pages the copy of this skb's fragments can still need.
    pub pages_left: u32,
    /// Flags and order of the first allocation seen under `skb_copy_ubufs` (if confirmed).
    pub gfp: u32,
    pub order: u32,
    pub confirmed: u32,
    /// Signature-matched allocations counted since the last stack walk.
    pub since_walk: u32,
    /// Pages counted for `key` and not yet added to its counters: they are added once per
    /// skb (when its copy has all the pages it needs, or when the next skb arrives), not at
    /// every page, which saves a hash lookup per page.
    pub pages_pending: u32,
}

#[map(name = "DELIVERING")]
pub static DELIVERING: PerCpuArray<Delivering> = PerCpuArray::with_max_entries(1, 0);

/// Per TCP socket: the bytes its application had consumed at the last
/// `tcp_rcv_space_adjust`, so each run counts only the advance. Removed when it closes.
#[map(name = "CONSUMED")]
pub static CONSUMED: LruHashMap<FlowKey, u64> = LruHashMap::with_max_entries(MAX_FLOWS, 0);

/// One record per pinned TCP skb delivered: many CPUs write, userspace reads in order.
#[map(name = "DELIVERIES")]
pub static DELIVERIES: RingBuf = RingBuf::with_byte_size(DELIVERIES_BYTES, 0);

/// A kernel stack is too big for the 512-byte BPF stack.
#[map(name = "STACK_SCRATCH")]
pub static STACK_SCRATCH: PerCpuArray<[u64; STACK_DEPTH]> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "SKIPPED")]
pub static SKIPPED: PerCpuArray<u64> = PerCpuArray::with_max_entries(Skipped::ALL.len() as u32, 0);

/// Counts one event that could not be counted, and why.
#[inline(always)]
pub fn skipped(reason: Skipped) {
    if let Some(count) = SKIPPED.get_ptr_mut(reason as u32) {
        // SAFETY: this CPU's own element; programs do not nest on one CPU.
        unsafe { *count += 1 };
    }
}

/// One field of the offsets as patched in by the loader. Read volatile, so the compiler does
/// not fold in the zeros above, and one field at a time: `Global::load` would copy the whole
/// struct onto the stack at every use. The map behind it is frozen read-only, so the verifier
/// knows each value as a constant.
macro_rules! offset {
    ($field:ident) => {{
        let all =
            core::ptr::addr_of!($crate::maps::OFFSETS).cast::<netcopy_common::KernelOffsets>();
        // SAFETY: `Global` is repr(transparent) over an initialised KernelOffsets.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*all).$field)) }
    }};
}
pub(crate) use offset;
