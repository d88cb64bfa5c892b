//! Zero-copy completions, seen from the kernel side.

use aya_ebpf::programs::BtfTracePointContext;

use super::{OrSkip as _, Skip};
use crate::{
    flows::flow_counters,
    maps::offset,
    sock::{field, watched_flow},
};

/// `sock:inet_sk_error_report(sk)`: `__msg_zerocopy_callback` reports each notification it
/// queues or merges this way. A real socket error reports too, with `sk_err` set: not counted.
pub fn try_inet_sk_error_report(ctx: &BtfTracePointContext) -> Result<(), Skip> {
    let sk: *const u8 = ctx.arg(0);
    let key = watched_flow(sk).or_skip()?;
    let sk_err: i32 = field(sk, offset!(sock_err)).or_skip()?;
    if sk_err != 0 {
        return Err(Skip);
    }
    let counters = flow_counters(&key).or_skip()?;
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe { (*counters).zc_notifications += 1 };
    Ok(())
}
