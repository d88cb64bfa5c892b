//! Copies at transmit. TCP puts a send's payload in page fragments (pinned user pages, or
//! pages it copied into); a device without scatter-gather cannot take fragments, so the
//! kernel copies them into linear memory on the way out: software GSO's `skb_segment` (a GSO
//! skb cut into linear segments, every payload byte copied, the notification NOT marked
//! copied) or linearisation, `__skb_linearize` → `__pskb_pull_tail` (a one-segment skb,
//! marked copied). Either way, TCP payload that reaches the driver in an skb's linear part
//! was copied at transmit: counted at `net:net_dev_start_xmit`, a tracepoint every kernel has.

use super::{OrSkip as _, Skip};
use crate::{
    flows::flow_counters,
    maps::offset,
    skb::{IPPROTO_TCP, ip_packet},
    sock::{field, watched_flow},
};

/// `net:net_dev_start_xmit(skb, dev)`: a watched TCP socket's skb reaching its driver. Its
/// payload (from the IP header's length, less the TCP header) beyond its fragment bytes
/// (`data_len`: fragments hold only payload) lies in the linear part: copied.
#[inline(always)]
pub fn try_copied_at_transmit(skb: *const u8) -> Result<(), Skip> {
    let sk: u64 = field(skb, offset!(skb_sk)).or_skip()?;
    if sk == 0 {
        return Err(Skip);
    }
    let key = watched_flow(sk as *const u8).or_skip()?;
    let packet = ip_packet(skb).or_skip()?;
    if packet.protocol != IPPROTO_TCP {
        return Err(Skip);
    }
    let payload = packet.ip_payload.saturating_sub(packet.tcp_header);
    let data_len: u32 = field(skb, offset!(skb_data_len)).or_skip()?;
    let linear = payload.saturating_sub(data_len);
    if linear == 0 {
        return Err(Skip);
    }
    let counters = flow_counters(&key).or_skip()?;
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe { (*counters).copied_at_transmit_bytes += u64::from(linear) };
    Ok(())
}
