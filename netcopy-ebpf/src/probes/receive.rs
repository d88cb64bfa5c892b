//! Receive side: what each receive call handed back to the program.

use aya_ebpf::programs::BtfTracePointContext;

use super::Skip;
use crate::{maps::flow_counters, sock::watched_flow};

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
    let key = watched_flow(sk).ok_or(Skip)?;
    let counters = flow_counters(&key).ok_or(Skip)?;
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe {
        (*counters).recv_calls += 1;
        (*counters).recv_bytes += ret as u64;
    }
    Ok(())
}
