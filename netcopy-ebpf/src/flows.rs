//! The flow table: each watched socket's counters, found per event without hashing its key.
//!
//! A flow gets an index once, on its first event: the global `FLOW_INDEX` hash maps its key to
//! it. Every later event finds the index in this CPU's small direct-mapped cache and confirms
//! it against `FLOW_KEYS`: a few inlined array reads instead of a hash lookup over the 40-byte
//! key, which was a third of a send probe's cost. A confirmed index is never wrong: an index
//! names one key until userspace clears the table or a provisional UDP adoption is undone, and
//! both void the key first, so a stale or torn cache entry fails the check and takes the slow
//! path.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use netcopy_common::{FlowCounters, FlowKey, MAX_FLOWS, Skipped, VOID_SLOT};

use crate::maps::{OVERFLOW, skipped};

#[map(name = "FLOWS")]
pub static FLOWS: PerCpuArray<FlowCounters> = PerCpuArray::with_max_entries(MAX_FLOWS, 0);

#[map(name = "FLOW_KEYS")]
pub static FLOW_KEYS: Array<FlowKey> = Array::with_max_entries(MAX_FLOWS, 0);

#[map(name = "FLOW_INDEX")]
pub static FLOW_INDEX: HashMap<FlowKey, u32> = HashMap::with_max_entries(MAX_FLOWS, 0);

#[map(name = "FLOW_NEXT")]
pub static FLOW_NEXT: Array<u64> = Array::with_max_entries(1, 0);

/// Entries in each CPU's cache: a power of two.
const CACHE_LINES: u32 = 256;

/// Per CPU: key hash -> flow index + 1 (0: empty).
#[map(name = "FLOW_CACHE")]
static FLOW_CACHE: PerCpuArray<u32> = PerCpuArray::with_max_entries(CACHE_LINES, 0);

#[inline(always)]
fn cache_line(key: &FlowKey) -> u32 {
    let ports = (u32::from(key.local_port) << 16) | u32::from(key.remote_port);
    let mixed = ports ^ key.remote_addr[3] ^ key.local_addr[3] ^ key.slot.rotate_left(8);
    mixed.wrapping_mul(0x9e37_79b9) >> 24 & (CACHE_LINES - 1)
}

/// Whether flow `index` is `key`'s.
#[inline(always)]
fn names(index: u32, key: &FlowKey) -> bool {
    // SAFETY: copied out at once; an entry is written only before its index is published.
    FLOW_KEYS
        .get(index)
        .is_some_and(|k| unsafe { core::ptr::read_volatile(k) } == *key)
}

/// `key`'s flow index from the table, given one if it has none. None when the table is full.
#[inline(always)]
fn index_of(key: &FlowKey) -> Option<u32> {
    // SAFETY: a u32 copied out at once.
    if let Some(index) = unsafe { FLOW_INDEX.get(key) }.copied() {
        return Some(index);
    }
    let next = FLOW_NEXT.get_ptr_mut(0)?;
    // SAFETY: a live map value, shared by every CPU: advanced atomically.
    let index = unsafe { fetch_add(next, 1) } as u32;
    let slot = FLOW_KEYS.get_ptr_mut(index)?;
    // SAFETY: a fresh index: no other program writes this entry.
    unsafe { *slot = *key };
    if FLOW_INDEX
        .insert(key, index, u64::from(BPF_NOEXIST))
        .is_ok()
    {
        return Some(index);
    }
    // Another CPU gave the key an index first: ours is given up.
    // SAFETY: as above.
    unsafe { (*slot).slot = VOID_SLOT };
    // SAFETY: a u32 copied out at once.
    unsafe { FLOW_INDEX.get(key) }.copied()
}

/// This CPU's counters for `key`, zero on first use.
///
/// Plain (non-atomic) increments through this pointer are sound: the value is per-CPU, each
/// field has one writing program, and the kernel never nests a tracing program inside itself
/// on one CPU.
#[inline(always)]
pub fn flow_counters(key: &FlowKey) -> Option<*mut FlowCounters> {
    let line = FLOW_CACHE.get_ptr_mut(cache_line(key));
    // SAFETY: this CPU's own cache entry, a u32: a nested program can only replace it whole.
    let cached = line.map_or(0, |l| unsafe { *l });
    let index = match cached.checked_sub(1) {
        Some(index) if names(index, key) => index,
        _ => match index_of(key) {
            Some(index) => {
                if let Some(l) = line {
                    // SAFETY: as above.
                    unsafe { *l = index + 1 };
                }
                index
            }
            None => return overflow(key),
        },
    };
    FLOWS.get_ptr_mut(index).or_else(|| overflow(key))
}

/// The table is full: the socket counts in its slot's aggregate instead.
#[inline(always)]
fn overflow(key: &FlowKey) -> Option<*mut FlowCounters> {
    let counters = OVERFLOW.get_ptr_mut(key.slot);
    if counters.is_none() {
        skipped(Skipped::FlowMapFull);
    }
    counters
}

/// Drops `key`'s flow and its counts (a provisional adoption undone).
#[inline(always)]
pub fn forget_flow(key: &FlowKey) {
    // SAFETY: a u32 copied out at once.
    let Some(index) = (unsafe { FLOW_INDEX.get(key) }).copied() else {
        return;
    };
    if let Some(slot) = FLOW_KEYS.get_ptr_mut(index) {
        // SAFETY: voided before the index is unpublished, so no cache confirms it again.
        unsafe { (*slot).slot = VOID_SLOT };
    }
    let _ = FLOW_INDEX.remove(key);
}

/// `*counter += n`, atomically, returning the value before. The BPF target has no
/// compare-and-swap, so core offers no `fetch_add` there; the intrinsic lowers to the
/// instruction set's own fetch-and-add (BPF v3, Linux 5.12). Sequentially consistent, because
/// LLVM 22 lowers a relaxed one to the add without fetch and hands back the operand instead
/// of the old value (every flow got index 1).
///
/// # Safety
/// `counter` is a live map value.
#[cfg(target_arch = "bpf")]
#[inline(always)]
unsafe fn fetch_add(counter: *mut u64, n: u64) -> u64 {
    use core::intrinsics::{AtomicOrdering, atomic_xadd};
    // SAFETY: the caller's.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(counter, n) }
}

/// The host build (clippy only) has the atomic type.
#[cfg(not(target_arch = "bpf"))]
#[inline(always)]
unsafe fn fetch_add(counter: *mut u64, n: u64) -> u64 {
    use core::sync::atomic::{AtomicU64, Ordering};
    // SAFETY: the caller's.
    unsafe { AtomicU64::from_ptr(counter) }.fetch_add(n, Ordering::Relaxed)
}
