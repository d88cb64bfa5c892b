//! Receive side: what each receive call handed back, and the kernel-to-user copy behind it.

use aya_ebpf::programs::BtfTracePointContext;

use super::{OrSkip as _, Skip};
use netcopy_common::Skipped;

use crate::{
    flows::flow_counters,
    maps::{CONSUMED, offset, skipped},
    sock::{field, is_udp, read, watched_flow_or_adopt},
};

/// Not data: a peek leaves the bytes queued and an error-queue read returns notifications.
const MSG_PEEK: i32 = 0x2;
const MSG_ERRQUEUE: i32 = 0x2000;
/// On a UDP receive: return the datagram's whole length, whatever was copied.
const MSG_TRUNC: i32 = 0x20;

/// A receive call's result: from `sock:sock_recv_length(struct sock *sk, int ret, int flags)`,
/// fired by `sock_recvmsg_nosec` after every receive call, or from `sock_recvmsg`'s exit. For UDP it is also the copy to user:
/// `udp_recvmsg` returns exactly the bytes it copied (unless asked for MSG_TRUNC), while its
/// copy of a linear skb passes no tracepoint.
#[inline(always)]
pub fn try_recv_length(sk: *const u8, ret: i32, flags: i32) -> Result<(), Skip> {
    if ret <= 0 || flags & (MSG_PEEK | MSG_ERRQUEUE) != 0 {
        return Err(Skip);
    }
    let key = watched_flow_or_adopt(sk).or_skip()?;
    let udp = is_udp(sk);
    let counters = flow_counters(&key).or_skip()?;
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe {
        (*counters).recv_calls += 1;
        (*counters).recv_bytes += ret as u64;
        if udp && flags & MSG_TRUNC != 0 {
            (*counters).recv_copy_unseen_calls += 1;
        } else if udp {
            (*counters).recv_copy_bytes += ret as u64;
        }
        if udp {
            // A datagram is consumed whole by the call that takes it.
            (*counters).recv_consumed_bytes += ret as u64;
        }
    }
    Ok(())
}

/// `skb:skb_copy_datagram_iovec(skb, len)`: the kernel copying `len` bytes of a received skb
/// to user memory. The skb is owned by the receiving socket by then. TCP only: UDP passes here
/// for some skbs and not others, so its copy is counted in `sock_recv_length`.
pub fn try_skb_copy_datagram_iovec(ctx: &BtfTracePointContext) -> Result<(), Skip> {
    let skb: *const u8 = ctx.arg(0);
    let len: i32 = ctx.arg(1);
    if len <= 0 {
        return Err(Skip);
    }
    let sk: *const u8 = field(skb, offset!(skb_sk)).or_skip()?;
    if is_udp(sk) {
        return Err(Skip);
    }
    let key = watched_flow_or_adopt(sk).or_skip()?;
    let counters = flow_counters(&key).or_skip()?;
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe { (*counters).recv_copy_bytes += len as u64 };
    Ok(())
}

/// Bytes `sk`'s application has consumed since the connection began: the sequence bytes
/// received in order, less those still queued unread (`rcv_nxt - copied_seq`). The tcp_sock
/// members lie past `struct sock`, so they are read with the helper, not a typed load.
#[inline(always)]
fn consumed(sk: *const u8) -> Option<u64> {
    let received: u64 = read(sk, offset!(tcp_bytes_received))?;
    let rcv_nxt: u32 = read(sk, offset!(tcp_rcv_nxt))?;
    let copied_seq: u32 = read(sk, offset!(tcp_copied_seq))?;
    Some(received.saturating_sub(u64::from(rcv_nxt.wrapping_sub(copied_seq))))
}

/// `tcp:tcp_rcv_space_adjust(sk)`: called in process context after the application consumed
/// bytes, by a read (`tcp_recvmsg_locked`), a zero-copy receive (`tcp_zerocopy_receive`, after
/// it advanced `copied_seq` over the pages it mapped) or a splice. Counts the advance since
/// the socket's last call: bytes consumed, copied to user or not.
pub fn try_tcp_rcv_space_adjust(ctx: &BtfTracePointContext) -> Result<(), Skip> {
    let sk: *const u8 = ctx.arg(0);
    let key = watched_flow_or_adopt(sk).or_skip()?;
    let now = consumed(sk).or_skip()?;
    let before = match CONSUMED.get_ptr_mut(key) {
        // SAFETY: this socket's entry; its lock serialises the calls that write it.
        Some(last) => unsafe { core::mem::replace(&mut *last, now) },
        None => {
            if CONSUMED.insert(key, now, 0).is_err() {
                // An LRU map evicts rather than fail; a failure is still a loss to count.
                skipped(Skipped::FlowMapFull);
            }
            0
        }
    };
    let counters = flow_counters(&key).or_skip()?;
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe { (*counters).recv_consumed_bytes += now.saturating_sub(before) };
    Ok(())
}
