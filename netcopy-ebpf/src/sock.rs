//! Reading `struct sock` through the BTF-resolved offsets.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use netcopy_common::FlowKey;

use crate::maps::{WATCHED_PORTS, offsets};

/// The flow a socket belongs to, when either of its ports is watched.
#[inline(always)]
pub fn watched_flow(sk: *const u8) -> Option<FlowKey> {
    if sk.is_null() {
        return None;
    }
    let offsets = offsets();
    // SAFETY: bpf_probe_read_kernel validates the address; a bad one is an Err, not a fault.
    let local_port: u16 = unsafe {
        bpf_probe_read_kernel(sk.add(offsets.sock_local_port as usize).cast::<u16>()).ok()?
    };
    let remote_port_be: u16 = unsafe {
        bpf_probe_read_kernel(sk.add(offsets.sock_remote_port as usize).cast::<u16>()).ok()?
    };
    let remote_port = u16::from_be(remote_port_be);
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
