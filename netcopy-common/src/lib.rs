//! Types shared by the eBPF programs and userspace.
//!
//! Everything here is `#[repr(C)]` and plain old data: it crosses the kernel boundary as raw
//! bytes, through maps and the programs' read-only globals.
#![no_std]

/// Names of the maps and globals, so both sides spell them once.
pub mod names {
    /// Global in the programs' .rodata: the [`KernelOffsets`](super::KernelOffsets).
    pub const OFFSETS: &str = "OFFSETS";
    /// Hash map: port (host order) -> slot. Traffic touching no watched port is ignored.
    pub const WATCHED_PORTS: &str = "WATCHED_PORTS";
    /// Per-CPU hash map: [`FlowKey`](super::FlowKey) -> [`FlowCounters`](super::FlowCounters).
    pub const FLOWS: &str = "FLOWS";
}

/// Capacity of [`names::WATCHED_PORTS`].
pub const MAX_WATCHED_PORTS: u32 = 1024;
/// Capacity of [`names::FLOWS`]: one entry per observed socket.
pub const MAX_FLOWS: u32 = 8192;

/// Byte offsets of the kernel struct members the programs read.
///
/// Struct layouts change between kernels, so none of these is a literal: userspace resolves them
/// from /sys/kernel/btf/vmlinux at load time and hands them over as a read-only global.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `struct sock` -> `__sk_common.skc_num`: local port, host byte order (u16).
    pub sock_local_port: u32,
    /// `struct sock` -> `__sk_common.skc_dport`: remote port, network byte order (u16).
    pub sock_remote_port: u32,
}

/// What the programs count under: an experiment's slot and one socket's two ports.
///
/// Keying by socket (not by process) matters: loopback receive work runs in softirq context,
/// often on the sending thread, so the current pid says nothing about whose bytes they are.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Slot of the experiment (or traced port set) that registered the matching port.
    pub slot: u32,
    /// The socket's own port, host byte order.
    pub local_port: u16,
    /// The peer's port, host byte order.
    pub remote_port: u16,
}

/// Counters for one socket. Each field is written by exactly one program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    /// Send calls that returned a byte count (`sock:sock_send_length`, ret >= 0).
    pub send_calls: u64,
    /// Bytes those send calls accepted.
    pub send_bytes: u64,
    /// Send calls that returned an error.
    pub send_errors: u64,
    /// Receive calls that returned data (`sock:sock_recv_length`, ret > 0, no MSG_PEEK or
    /// MSG_ERRQUEUE).
    pub recv_calls: u64,
    /// Bytes those receive calls returned.
    pub recv_bytes: u64,
}

impl FlowCounters {
    /// Adds `other` field by field: per-CPU values and several sockets fold into one figure.
    pub fn accumulate(&mut self, other: &FlowCounters) {
        self.send_calls += other.send_calls;
        self.send_bytes += other.send_bytes;
        self.send_errors += other.send_errors;
        self.recv_calls += other.recv_calls;
        self.recv_bytes += other.recv_bytes;
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all three are #[repr(C)] structs of integers with no padding-sensitive invariants;
    // any bit pattern is a valid value.
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowCounters {}
}
