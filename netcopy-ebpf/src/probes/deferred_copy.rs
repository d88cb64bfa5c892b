//! The deferred copy: pinned user pages that reach a local socket are copied at delivery by
//! `skb_copy_ubufs` (via `skb_orphan_frags_rx`). Counted twice, independently: the bytes of
//! pinned skbs entering local receive, and the pages allocated under `skb_copy_ubufs`.

use aya_ebpf::{EbpfContext as _, helpers::bpf_get_stack, programs::BtfTracePointContext};
use netcopy_common::{FlowKey, MAX_FRAGS, STACK_DEPTH};

use super::{OrSkip as _, Skip};
use crate::{
    maps::{DELIVERING, STACK_SCRATCH, flow_counters, offsets},
    sock::{read, watched},
};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Marks this CPU as delivering `key`'s pinned skb, or nothing (local_port 0).
#[inline(always)]
fn set_delivering(key: FlowKey) {
    if let Some(slot) = DELIVERING.get_ptr_mut(0) {
        // SAFETY: this CPU's own array element.
        unsafe { *slot = key };
    }
}

/// `net:netif_receive_skb(skb)`: an skb entering the receive path. When it carries pinned
/// user pages (`SKBFL_ZEROCOPY_ENABLE`), every byte in its page fragments is about to be
/// copied by `skb_copy_ubufs` on local delivery.
pub fn try_netif_receive_skb(ctx: &BtfTracePointContext) -> Result<(), Skip> {
    let skb: *const u8 = ctx.arg(0);
    let o = offsets();
    let head: u64 = read(skb, o.skb_head).or_skip()?;
    let end = if o.skb_end_is_offset == 1 {
        head + u64::from(read::<u32>(skb, o.skb_end).or_skip()?)
    } else {
        read::<u64>(skb, o.skb_end).or_skip()?
    };
    let shinfo = end as *const u8;
    let flags: u8 = read(shinfo, o.shinfo_flags).or_skip()?;
    if u32::from(flags) & o.skbfl_zerocopy_enable == 0 {
        set_delivering(FlowKey::default());
        return Err(Skip);
    }

    // Attribute by the packet's own ports: on loopback the skb has no socket any more.
    let network: u16 = read(skb, o.skb_network_header).or_skip()?;
    let ip = (head + u64::from(network)) as *const u8;
    let version_ihl: u8 = read(ip, 0).or_skip()?;
    let (protocol, transport): (u8, u32) = match version_ihl >> 4 {
        4 => (read(ip, 9).or_skip()?, u32::from(version_ihl & 0xf) * 4),
        6 => (read(ip, 6).or_skip()?, 40),
        _ => return Err(Skip),
    };
    if protocol != IPPROTO_TCP && protocol != IPPROTO_UDP {
        return Err(Skip);
    }
    let source: u16 = u16::from_be(read(ip, transport).or_skip()?);
    let dest: u16 = u16::from_be(read(ip, transport + 2).or_skip()?);
    // The sender's flow: its local port is the packet's source.
    let key = watched(source, dest).or_skip()?;

    let nr_frags: u8 = read(shinfo, o.shinfo_nr_frags).or_skip()?;
    let mut bytes = 0u64;
    for i in 0..MAX_FRAGS {
        if i >= u32::from(nr_frags) {
            break;
        }
        let at = o.shinfo_frags + i * o.frag_size + o.frag_len;
        bytes += u64::from(read::<u32>(shinfo, at).or_skip()?);
    }
    set_delivering(key);
    let counters = flow_counters(&key).or_skip()?;
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe { (*counters).deferred_copy_bytes += bytes };
    Ok(())
}

/// `kmem:mm_page_alloc(page, order, gfp_flags, migratetype)`: while this CPU delivers a
/// watched pinned skb, a page allocation with `skb_copy_ubufs` on the kernel stack is the
/// deferred copy's fresh page (2^order pages).
pub fn try_mm_page_alloc(ctx: &BtfTracePointContext) -> Result<(), Skip> {
    let key = *DELIVERING.get(0).or_skip()?;
    if key.local_port == 0 {
        return Err(Skip);
    }
    let order: u32 = ctx.arg(1);
    let o = offsets();
    let stack = STACK_SCRATCH.get_ptr_mut(0).or_skip()?;
    let size = (STACK_DEPTH * 8) as u32;
    // SAFETY: the scratch buffer is this CPU's and exactly `size` bytes long.
    let len = unsafe { bpf_get_stack(ctx.as_ptr(), stack.cast(), size, 0) };
    if len <= 0 {
        return Err(Skip);
    }
    let frames = (len / 8) as usize;
    let mut inside = false;
    for i in 0..STACK_DEPTH {
        if i >= frames {
            break;
        }
        // SAFETY: i < STACK_DEPTH, inside the buffer.
        let ip = unsafe { (*stack)[i] };
        if ip >= o.skb_copy_ubufs_start && ip < o.skb_copy_ubufs_end {
            inside = true;
            break;
        }
    }
    if !inside {
        return Err(Skip);
    }
    let counters = flow_counters(&key).or_skip()?;
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe { (*counters).deferred_copy_pages += 1u64 << (order & 31) };
    Ok(())
}
