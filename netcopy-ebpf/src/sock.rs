//! Reading kernel memory through the BTF-resolved and deciding which flow it is.

use crate::maps::offset;
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
};
use netcopy_common::{Addr, FlowKey, Skipped, Watch, same_addr, v4_mapped};

use crate::flows::forget_flow;
use crate::maps::{PROVISIONAL, WATCHED_CONNS, WATCHED_PORTS, WATCHED_TGIDS, skipped};

/// include/uapi/asm-generic/errno-base.h
const EEXIST: i32 = 17;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Reads a `T` at `base + offset` in kernel memory. A bad address is None, never a fault.
#[inline(always)]
pub fn read<T>(base: *const u8, offset: u32) -> Option<T> {
    if base.is_null() {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel validates the address.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize).cast::<T>()).ok() }
}

/// Reads a `T` at `base + offset`, where `base` is a pointer the verifier knows by its BTF
/// type: a tp_btf argument, or a pointer member read from one with [`field`]. A plain load,
/// checked at load time against the type's layout (the offsets come from a frozen read-only
/// map, so the verifier sees them as constants); a fault reads as zero. No helper call: on
/// this VM each call and return costs tens of nanoseconds (return thunks), which made the
/// helper reads the larger part of a program's cost.
#[inline(always)]
pub fn field<T>(base: *const u8, offset: u32) -> Option<T> {
    if base.is_null() {
        return None;
    }
    // SAFETY: the verifier turns this load into a fault-tolerant kernel read.
    Some(unsafe { core::ptr::read_volatile(base.wrapping_add(offset as usize).cast::<T>()) })
}

/// The `struct sock` of a `struct socket` (a BTF-typed pointer); null when unreadable.
#[inline(always)]
pub fn of_socket(socket: *const u8) -> *const u8 {
    field(socket, offset!(socket_sk)).unwrap_or(core::ptr::null())
}

/// Whether `sk` (a BTF-typed pointer) is a UDP socket.
#[inline(always)]
pub fn is_udp(sk: *const u8) -> bool {
    field::<u16>(sk, offset!(sock_protocol)) == Some(u16::from(IPPROTO_UDP))
}

/// The slot of the watch on `port`, when it covers `addr` (`local`: the socket's own end).
#[inline(always)]
fn watch_slot(port: u16, addr: &Addr, local: bool) -> Option<u32> {
    // Copied out at once: a racing update only makes it stale.
    let watch: Watch = *WATCHED_PORTS.get(u32::from(port))?;
    if watch.flags & Watch::ACTIVE == 0 {
        return None;
    }
    let side_ok = local || watch.flags & Watch::LOCAL_ONLY == 0;
    let addr_ok = watch.flags & Watch::ANY_ADDRESS != 0 || same_addr(&watch.addr, addr);
    (side_ok && addr_ok).then_some(watch.slot)
}

/// `key` (a bare connection, slot 0) with the slot that watches it: its own endpoint or its
/// peer's is a watched endpoint, or it is a connection adopted from a watched process.
#[inline(always)]
pub fn watched(mut key: FlowKey) -> Option<FlowKey> {
    let slot = match watch_slot(key.local_port, &key.local_addr, true) {
        Some(slot) => slot,
        None => match watch_slot(key.remote_port, &key.remote_addr, false) {
            Some(slot) => slot,
            // SAFETY: the value is a u32 copied out at once.
            None => unsafe { *WATCHED_CONNS.get(key)? },
        },
    };
    key.slot = slot;
    Some(key)
}

/// The connection a `struct sock` is (slot 0), from its family, addresses and ports.
#[inline(always)]
pub fn connection(sk: *const u8) -> Option<FlowKey> {
    let family: u16 = field(sk, offset!(sock_family))?;
    let (local_addr, remote_addr) = match family {
        AF_INET => (
            v4_mapped(field(sk, offset!(sock_v4_local))?),
            v4_mapped(field(sk, offset!(sock_v4_remote))?),
        ),
        AF_INET6 => (
            field(sk, offset!(sock_v6_local))?,
            field(sk, offset!(sock_v6_remote))?,
        ),
        _ => return None,
    };
    Some(FlowKey {
        slot: 0,
        local_port: field(sk, offset!(sock_local_port))?,
        remote_port: u16::from_be(field(sk, offset!(sock_remote_port))?),
        local_addr,
        remote_addr,
    })
}

/// The flow a `struct sock` belongs to, when it is watched.
#[inline(always)]
pub fn watched_flow(sk: *const u8) -> Option<FlowKey> {
    watched(connection(sk)?)
}

/// Like [`watched_flow`], and when the socket is not watched but the calling process is, the
/// socket's connection becomes watched under the process's slot (until it closes: see
/// [`forget`]). Only for probes that run in the process's own context (send and receive
/// calls): in softirq context the current task is whoever was interrupted.
#[inline(always)]
pub fn watched_flow_or_adopt(sk: *const u8) -> Option<FlowKey> {
    let mut key = connection(sk)?;
    if let Some(flow) = watched(key) {
        return Some(flow);
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the value is a u32 copied out at once.
    key.slot = unsafe { *WATCHED_TGIDS.get(tgid)? };
    adopt(key)
}

/// Watches `key`'s connection under `key.slot` until it closes.
#[inline(always)]
fn adopt(key: FlowKey) -> Option<FlowKey> {
    if key.local_port == 0 {
        return None;
    }
    // -EEXIST is another CPU adopting the same connection first; anything else is a loss.
    if let Err(e) =
        WATCHED_CONNS.insert(FlowKey { slot: 0, ..key }, key.slot, u64::from(BPF_NOEXIST))
        && e != -EEXIST
    {
        skipped(Skipped::ConnMapFull);
    }
    Some(key)
}

/// A UDP socket nobody watches transmitting while a watched process runs: almost always that
/// process's first send call on it (the datagram leaves inside the call, before
/// `sock_send_length`), so the socket is adopted now, provisionally. The call's
/// `sock_send_length` confirms it (see [`confirm_adoption`]); a transmit that ran in softirq
/// context while the process was merely interrupted is undone there, counters and all.
#[inline(always)]
pub fn adopt_at_transmit(sk: *const u8) -> Option<FlowKey> {
    let task = bpf_get_current_pid_tgid();
    // SAFETY: the value is a u32 copied out at once.
    let slot = unsafe { *WATCHED_TGIDS.get((task >> 32) as u32)? };
    let key = adopt(FlowKey {
        slot,
        ..connection(sk)?
    })?;
    if PROVISIONAL.insert(task, key, 0).is_err() {
        skipped(Skipped::ConnMapFull);
    }
    Some(key)
}

/// This task's send call on `key` returned: a socket it adopted provisionally during the call
/// is confirmed if it is `key`, and forgotten with its counts if it is another.
#[inline(always)]
pub fn confirm_adoption(task: u64, key: &FlowKey) {
    // SAFETY: copied out at once; only this task writes its entry.
    let Some(held) = (unsafe { PROVISIONAL.get(task) }).copied() else {
        return;
    };
    let _ = PROVISIONAL.remove(task);
    let same = held.local_port == key.local_port
        && held.remote_port == key.remote_port
        && same_addr(&held.local_addr, &key.local_addr)
        && same_addr(&held.remote_addr, &key.remote_addr);
    if !same {
        let _ = WATCHED_CONNS.remove(FlowKey { slot: 0, ..held });
        forget_flow(&held);
    }
}

/// The connection a closing `struct sock` was (slot 0). `tcp_set_state(TCP_CLOSE)` fires its
/// tracepoint after `inet_put_port` cleared the local port (`skc_num`), so the local port is
/// read from `inet_sport`, which stays.
#[inline(always)]
pub fn closing_connection(sk: *const u8) -> Option<FlowKey> {
    let sport: u16 = read(sk, offset!(inet_sport))?;
    Some(FlowKey {
        local_port: u16::from_be(sport),
        ..connection(sk)?
    })
}

/// Forgets an adopted connection, `key` (slot 0) as it closes: a later socket with the same
/// addresses and ports, in any process, is not the watched process's.
#[inline(always)]
pub fn forget(key: FlowKey) -> Option<()> {
    WATCHED_CONNS.remove(key).ok()
}
