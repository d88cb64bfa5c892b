//! Reading kernel memory through the BTF-resolved offsets, and deciding which flow it is.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
};
use netcopy_common::FlowKey;

use crate::maps::{WATCHED_PORTS, WATCHED_TGIDS, offsets};

/// Reads a `T` at `base + offset` in kernel memory. A bad address is None, never a fault.
#[inline(always)]
pub fn read<T>(base: *const u8, offset: u32) -> Option<T> {
    if base.is_null() {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel validates the address.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize).cast::<T>()).ok() }
}

/// The flow of a socket with these ports, when either is watched.
#[inline(always)]
pub fn watched(local_port: u16, remote_port: u16) -> Option<FlowKey> {
    // SAFETY: the value is a u32 copied out at once; a racing delete only makes it stale.
    let slot = unsafe {
        match WATCHED_PORTS.get(local_port) {
            Some(slot) => *slot,
            None => *WATCHED_PORTS.get(remote_port)?,
        }
    };
    Some(FlowKey {
        slot,
        local_port,
        remote_port,
    })
}

/// The flow a `struct sock` belongs to, when either of its ports is watched.
#[inline(always)]
pub fn watched_flow(sk: *const u8) -> Option<FlowKey> {
    let offsets = offsets();
    let local_port: u16 = read(sk, offsets.sock_local_port)?;
    let remote_port: u16 = u16::from_be(read(sk, offsets.sock_remote_port)?);
    watched(local_port, remote_port)
}

/// Like [`watched_flow`], and when neither port is watched but the calling process is, the
/// socket's local port becomes watched under the process's slot. Only for probes that run in
/// the process's own context (send and receive calls): in softirq context the current task
/// is whoever was interrupted.
#[inline(always)]
pub fn watched_flow_or_adopt(sk: *const u8) -> Option<FlowKey> {
    if let Some(key) = watched_flow(sk) {
        return Some(key);
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the value is a u32 copied out at once.
    let slot = unsafe { *WATCHED_TGIDS.get(tgid)? };
    let offsets = offsets();
    let local_port: u16 = read(sk, offsets.sock_local_port)?;
    let remote_port: u16 = u16::from_be(read(sk, offsets.sock_remote_port)?);
    if local_port == 0 {
        return None;
    }
    let _ = WATCHED_PORTS.insert(local_port, slot, u64::from(BPF_NOEXIST));
    Some(FlowKey {
        slot,
        local_port,
        remote_port,
    })
}
