//! netcopy's eBPF programs: thin wrappers, one per hook, each calling a `try_*` function in the
//! probe module of its kernel domain. They only read kernel memory and count into maps: no write
//! helper is used and no payload byte is ever read.
//!
//! On the host the crate builds as an ordinary std binary with an empty `main`, so that
//! `cargo clippy --workspace` checks the probe code too.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

mod maps;
mod probes;
mod sock;

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

/// `sock:sock_send_length(sk, ret, flags)`: every send call's result.
#[btf_tracepoint(function = "sock_send_length")]
pub fn sock_send_length(ctx: BtfTracePointContext) -> i32 {
    probes::send::try_sock_send_length(&ctx).map_or(1, |()| 0)
}

/// `sock:sock_recv_length(sk, ret, flags)`: every receive call's result.
#[btf_tracepoint(function = "sock_recv_length")]
pub fn sock_recv_length(ctx: BtfTracePointContext) -> i32 {
    probes::receive::try_sock_recv_length(&ctx).map_or(1, |()| 0)
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
