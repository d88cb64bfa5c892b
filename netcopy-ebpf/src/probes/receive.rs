//! Receive side: what each receive call handed back, and the kernel-to-user copy behind it.

use aya_ebpf::programs::BtfTracePointContext;

use super::{OrSkip as _, Skip};
use crate::{
    maps::{flow_counters, offsets},
    sock::{read, watched_flow_or_adopt},
};

/// Not data: a peek leaves the bytes queued and an error-queue read returns notifications.
const MSG_PEEK: i32 = 0x2;
const MSG_ERRQUEUE: i32 = 0x2000;

/// `sock:sock_recv_length(struct sock *sk, int ret, int flags)`, fired by
/// `sock_recvmsg_nosec` after every receive call.
pub fn try_sock_recv_length(ctx: &BtfTracePointContext) -> Result<(), Skip> {
    let sk: *const u8 = ctx.arg(0);
    let ret: i32 = ctx.arg(1);
    let flags: i32 = ctx.arg(2);
    if ret <= 0 || flags & (MSG_PEEK | MSG_ERRQUEUE) != 0 {
        return Err(Skip);
    }
    let key = watched_flow_or_adopt(sk).or_skip()?;
    let counters = flow_counters(&key).or_skip()?;
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe {
        (*counters).recv_calls += 1;
        (*counters).recv_bytes += ret as u64;
    }
    Ok(())
}

/// `skb:skb_copy_datagram_iovec(skb, len)`: the kernel copying `len` bytes of a received skb
/// to user memory. The skb is owned by the receiving socket by then.
pub fn try_skb_copy_datagram_iovec(ctx: &BtfTracePointContext) -> Result<(), Skip> {
    let skb: *const u8 = ctx.arg(0);
    let len: i32 = ctx.arg(1);
    if len <= 0 {
        return Err(Skip);
    }
    let sk: u64 = read(skb, offsets().skb_sk).or_skip()?;
    let key = watched_flow_or_adopt(sk as *const u8).or_skip()?;
    let counters = flow_counters(&key).or_skip()?;
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe { (*counters).recv_copy_bytes += len as u64 };
    Ok(())
}
