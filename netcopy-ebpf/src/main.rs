//! netcopy's eBPF programs: thin wrappers, one per hook, each calling a `try_*` function in the
//! probe module of its kernel domain. They only read kernel memory and count into maps: no write
//! helper is used and no payload byte is ever read.
//!
//! On the host the crate builds as an ordinary std binary with an empty `main`, so that
//! `cargo clippy --workspace` checks the probe code too.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

mod flows;
mod maps;
mod probes;
mod skb;
mod sock;

use aya_ebpf::{
    macros::{btf_tracepoint, fentry, fexit},
    programs::{BtfTracePointContext, FEntryContext, FExitContext},
};

/// Runs one probe; the kernel ignores a tracing program's return value. Under the benchmark's
/// floor measurement (`count_nothing`) the probe is not run at all.
#[inline(always)]
fn run(probe: impl FnOnce() -> Result<(), probes::Skip>) -> i32 {
    if maps::offset!(count_nothing) != 0 {
        return 0;
    }
    probe().map_or(1, |()| 0)
}

/// `tcp:tcp_sendmsg_locked(sk, msg, skb, size_goal)`: decides copy or pin per send call.
#[btf_tracepoint(function = "tcp_sendmsg_locked")]
pub fn tcp_sendmsg_locked(ctx: BtfTracePointContext) -> i32 {
    run(|| probes::send::try_classify_send(ctx.arg(0), ctx.arg(1)))
}

/// Entry of `tcp_sendmsg_locked(sk, msg, size)`, where the tracepoint is missing (< 6.16).
#[fentry(function = "tcp_sendmsg_locked")]
pub fn fentry_tcp_sendmsg_locked(ctx: FEntryContext) -> i32 {
    run(|| probes::send::try_classify_send(ctx.arg(0), ctx.arg(1)))
}

/// `sock:sock_send_length(sk, ret, flags)`: every send call's result.
#[btf_tracepoint(function = "sock_send_length")]
pub fn sock_send_length(ctx: BtfTracePointContext) -> i32 {
    run(|| probes::send::try_send_length(ctx.arg(0), ctx.arg(1)))
}

/// Exit of `__sock_sendmsg(sock, msg)`, where the tracepoint is missing: every send passes it.
#[fexit(function = "__sock_sendmsg")]
pub fn fexit_sock_sendmsg_inner(ctx: FExitContext) -> i32 {
    run(|| probes::send::try_send_length(sock::of_socket(ctx.arg(0)), ctx.arg(2)))
}

/// Exit of `tcp_sendmsg(sk, msg, size)`, on kernels without a `__sock_sendmsg` to trace.
#[fexit(function = "tcp_sendmsg")]
pub fn fexit_tcp_sendmsg(ctx: FExitContext) -> i32 {
    run(|| probes::send::try_send_length(ctx.arg(0), ctx.arg(3)))
}

/// Exit of `tcp_sendpage(sk, page, offset, size, flags)`: sendfile before 6.5.
#[fexit(function = "tcp_sendpage")]
pub fn fexit_tcp_sendpage(ctx: FExitContext) -> i32 {
    run(|| probes::send::try_sendpage_length(ctx.arg(0), ctx.arg(5), ctx.arg(4)))
}

/// `sock:sock_recv_length(sk, ret, flags)`: every receive call's result.
#[btf_tracepoint(function = "sock_recv_length")]
pub fn sock_recv_length(ctx: BtfTracePointContext) -> i32 {
    run(|| probes::receive::try_recv_length(ctx.arg(0), ctx.arg(1), ctx.arg(2)))
}

/// Exit of `sock_recvmsg(sock, msg, flags)`, where the tracepoint is missing (< 6.3).
#[fexit(function = "sock_recvmsg")]
pub fn fexit_sock_recvmsg(ctx: FExitContext) -> i32 {
    let sk = sock::of_socket(ctx.arg(0));
    run(|| probes::receive::try_recv_length(sk, ctx.arg(3), ctx.arg(2)))
}

/// `skb:skb_copy_datagram_iovec(skb, len)`: the kernel-to-user copy on receive.
#[btf_tracepoint(function = "skb_copy_datagram_iovec")]
pub fn skb_copy_datagram_iovec(ctx: BtfTracePointContext) -> i32 {
    run(|| probes::receive::try_skb_copy_datagram_iovec(&ctx))
}

/// `tcp:tcp_rcv_space_adjust(sk)`: bytes a TCP receiver consumed, copied or mapped.
#[btf_tracepoint(function = "tcp_rcv_space_adjust")]
pub fn tcp_rcv_space_adjust(ctx: BtfTracePointContext) -> i32 {
    run(|| probes::receive::try_tcp_rcv_space_adjust(&ctx))
}

/// `net:net_dev_start_xmit(skb, dev)`: decides copy or pin per UDP datagram as it leaves.
#[btf_tracepoint(function = "net_dev_start_xmit")]
pub fn net_dev_start_xmit(ctx: BtfTracePointContext) -> i32 {
    run(|| probes::send::try_net_dev_start_xmit(&ctx))
}

/// `net:netif_receive_skb(skb)`: pinned bytes about to be copied at local delivery.
#[btf_tracepoint(function = "netif_receive_skb")]
pub fn netif_receive_skb(ctx: BtfTracePointContext) -> i32 {
    run(|| probes::deferred_copy::try_netif_receive_skb(&ctx))
}

/// `kmem:mm_page_alloc(page, order, gfp, migratetype)`: pages the deferred copy allocates.
#[btf_tracepoint(function = "mm_page_alloc")]
pub fn mm_page_alloc(ctx: BtfTracePointContext) -> i32 {
    run(|| probes::deferred_copy::try_mm_page_alloc(&ctx))
}

/// `sock:inet_sk_error_report(sk)`: zero-copy notifications queued or merged.
#[btf_tracepoint(function = "inet_sk_error_report")]
pub fn inet_sk_error_report(ctx: BtfTracePointContext) -> i32 {
    run(|| probes::completion::try_inet_sk_error_report(&ctx))
}

/// `sock:inet_sock_set_state(sk, oldstate, newstate)`: forgets adopted sockets that close.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    run(|| probes::connection::try_inet_sock_set_state(&ctx))
}

/// `net:net_dev_start_xmit(skb, dev)`: TCP payload leaving in linear memory, copied at transmit.
#[btf_tracepoint(function = "net_dev_start_xmit")]
pub fn copied_at_transmit(ctx: BtfTracePointContext) -> i32 {
    run(|| probes::transmit::try_copied_at_transmit(ctx.arg(0)))
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
