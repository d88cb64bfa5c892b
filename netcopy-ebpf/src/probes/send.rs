//! Send side: what each send call handed to the kernel.

use aya_ebpf::programs::BtfTracePointContext;

use super::Skip;
use crate::{maps::flow_counters, sock::watched_flow};

/// `sock:sock_send_length(struct sock *sk, int ret, int flags)`, fired by `sock_sendmsg_nosec`
/// after every send call. `flags` is always 0 there, so it cannot tell MSG_ZEROCOPY.
pub fn try_sock_send_length(ctx: &BtfTracePointContext) -> Result<(), Skip> {
    let sk: *const u8 = ctx.arg(0);
    let ret: i32 = ctx.arg(1);
    let key = watched_flow(sk).ok_or(Skip)?;
    let counters = flow_counters(&key).ok_or(Skip)?;
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe {
        if ret >= 0 {
            (*counters).send_calls += 1;
            (*counters).send_bytes += ret as u64;
        } else {
            (*counters).send_errors += 1;
        }
    }
    Ok(())
}
