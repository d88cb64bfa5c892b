//! The deferred copy: pinned user pages that reach a local socket are copied at delivery by
//! `skb_copy_ubufs` (via `skb_orphan_frags_rx`). Counted twice, independently: the bytes of
//! pinned skbs entering local receive, and the pages allocated under `skb_copy_ubufs`.

use aya_ebpf::{EbpfContext as _, helpers::bpf_get_stack, programs::BtfTracePointContext};
use netcopy_common::{Delivery, FlowKey, STACK_DEPTH, Skipped, ubuf_copy_pages};

/// include/uapi/linux/bpf.h
const BPF_RB_NO_WAKEUP: u64 = 1;

/// A signature-matched allocation is still stack-checked this often. A walk costs about 4 us
/// on this VM: at one in 64 the audit was 40 % of this probe's cost, at one in 256 it is 15 %.
const RECHECK_EVERY: u32 = 256;

use super::{OrSkip as _, Skip};
use crate::{
    flows::flow_counters,
    maps::{DELIVERIES, DELIVERING, Delivering, STACK_SCRATCH, offset, skipped},
    skb::{IPPROTO_TCP, IPPROTO_UDP, Packet, SharedInfo, ip_packet, payload_from_skb, tcp_segment},
    sock::watched,
};

/// Marks this CPU as delivering `key`'s pinned skb, whose copy needs `pages`, or nothing
/// (`None`). Pages still pending for the previous skb are added to its flow first.
#[inline(always)]
fn set_delivering(delivery: Option<(FlowKey, u64)>) {
    if let Some(slot) = DELIVERING.get_ptr_mut(0) {
        // SAFETY: this CPU's own array element. The learnt allocation signature stays.
        let d = unsafe { &mut *slot };
        if d.pages_pending != 0 {
            add_pending_pages(d);
        }
        match delivery {
            Some((key, pages)) => {
                d.key = key;
                d.pages_left = pages as u32;
            }
            // Only the port marks "nothing": zeroing the whole key compiled to a call of a
            // byte-by-byte memset, a third of this probe's cost for an skb with no pinned pages.
            None => {
                d.key.local_port = 0;
                d.pages_left = 0;
            }
        }
    }
}

/// Adds the pages counted for the skb being delivered to its flow's counters.
#[inline(always)]
fn add_pending_pages(d: &mut Delivering) {
    if let Some(counters) = flow_counters(&d.key) {
        // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
        unsafe { (*counters).deferred_copy_pages += u64::from(d.pages_pending) };
    }
    d.pages_pending = 0;
}

/// `net:netif_receive_skb(skb)`: an skb entering the receive path. When it carries pinned
/// user pages (`SKBFL_ZEROCOPY_ENABLE`), every byte in its page fragments is about to be
/// copied by `skb_copy_ubufs` on local delivery.
pub fn try_netif_receive_skb(ctx: &BtfTracePointContext) -> Result<(), Skip> {
    // Whatever this skb turns out to be, the previous one's delivery is over: a stale state
    // would charge this CPU's next allocations to the wrong flow.
    set_delivering(None);
    let skb: *const u8 = ctx.arg(0);
    let shinfo = SharedInfo::of(skb).or_skip()?;
    if !shinfo.carries_user_pages().or_skip()? {
        return Err(Skip);
    }
    // Attribute by the packet's own addresses: on loopback the skb has no socket any more.
    let packet = ip_packet(skb).or_skip()?;
    if packet.protocol != IPPROTO_TCP && packet.protocol != IPPROTO_UDP {
        return Err(Skip);
    }
    let key = sender(&packet).or_skip()?;
    let bytes = shinfo.fragment_bytes(skb).or_skip()?;
    let pages = ubuf_copy_pages(
        bytes,
        u64::from(offset!(page_size)),
        u64::from(offset!(max_skb_frags)),
    );
    let payload = payload_from_skb(skb, &packet).or_skip()?;
    set_delivering(Some((key, pages)));
    if packet.protocol == IPPROTO_TCP {
        record_delivery(key, &packet, payload, bytes);
    }
    let counters = flow_counters(&key).or_skip()?;
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe {
        if packet.protocol == IPPROTO_UDP {
            // A datagram has no sequence number: each one is delivered, and copied, once.
            (*counters).deferred_copy_bytes += bytes;
        }
        (*counters).deferred_copy_pages_required += pages;
    }
    Ok(())
}

/// The sending socket's flow, seen from the packet: its local end is the packet's source.
/// An unconnected UDP sender was adopted with no peer, so it is looked up that way too.
#[inline(always)]
fn sender(packet: &Packet) -> Option<FlowKey> {
    let key = FlowKey {
        slot: 0,
        local_port: packet.source,
        remote_port: packet.dest,
        local_addr: packet.source_addr,
        remote_addr: packet.dest_addr,
    };
    match watched(key) {
        Some(flow) => Some(flow),
        None if packet.protocol == IPPROTO_UDP => watched(FlowKey {
            remote_port: 0,
            remote_addr: [0; 4],
            ..key
        }),
        None => None,
    }
}

/// Hands one pinned TCP segment's delivery to userspace, which tells first deliveries from
/// repeated ones by sequence number. A full ring buffer is counted, never silent. Nobody is
/// woken: userspace polls the ring on a timer, and a wake-up is an interrupt per record.
#[inline(always)]
fn record_delivery(key: FlowKey, packet: &Packet, ip_payload: u32, bytes: u64) {
    let (seq, len) = tcp_segment(packet, ip_payload);
    let record = Delivery {
        key,
        seq,
        len,
        bytes,
    };
    if DELIVERIES
        .output::<Delivery>(&record, BPF_RB_NO_WAKEUP)
        .is_err()
    {
        skipped(Skipped::DeliveryRecordLost);
    }
}

/// Whether `skb_copy_ubufs` is on this allocation's kernel stack.
#[inline(always)]
fn under_skb_copy_ubufs(ctx: &BtfTracePointContext) -> Option<bool> {
    let stack = STACK_SCRATCH.get_ptr_mut(0)?;
    let size = (STACK_DEPTH * 8) as u32;
    // SAFETY: the scratch buffer is this CPU's and exactly `size` bytes long.
    let len = unsafe { bpf_get_stack(ctx.as_ptr(), stack.cast(), size, 0) };
    if len <= 0 {
        return None;
    }
    let frames = (len / 8) as usize;
    for i in 0..STACK_DEPTH {
        if i >= frames {
            break;
        }
        // SAFETY: i < STACK_DEPTH, inside the buffer.
        let ip = unsafe { (*stack)[i] };
        if ip >= offset!(skb_copy_ubufs_start) && ip < offset!(skb_copy_ubufs_end) {
            return Some(true);
        }
    }
    Some(false)
}

/// `kmem:mm_page_alloc(page, order, gfp_flags, migratetype)`: while this CPU delivers a
/// watched pinned skb, a page allocation with `skb_copy_ubufs` on the kernel stack is the
/// deferred copy's fresh page (2^order pages).
///
/// Walking the stack costs about 4 us here (more than the copy of a small message), so
/// the walk teaches this CPU the signature (gfp flags and order) of `skb_copy_ubufs`'s
/// allocations; inside a pinned delivery, an allocation with that signature and within what
/// the skb's fragment bytes can need is counted without a walk. Every other allocation in a
/// delivery, and every `RECHECK_EVERY`-th matching one, is walked; a walk that does not find
/// `skb_copy_ubufs` forgets the signature.
pub fn try_mm_page_alloc(ctx: &BtfTracePointContext) -> Result<(), Skip> {
    let state = DELIVERING.get_ptr_mut(0).or_skip()?;
    // SAFETY: this CPU's own array element; tracing programs do not nest on one CPU.
    let d = unsafe { &mut *state };
    if d.key.local_port == 0 {
        return Err(Skip);
    }
    let order: u32 = ctx.arg(1);
    let gfp: u32 = ctx.arg(2);
    let pages = 1u32 << (order & 31);
    if d.pages_left < pages {
        return Err(Skip);
    }
    let known = d.confirmed == 1 && d.gfp == gfp && d.order == order;
    d.since_walk += 1;
    if !known || d.since_walk >= RECHECK_EVERY {
        d.since_walk = 0;
        if !under_skb_copy_ubufs(ctx).or_skip()? {
            d.confirmed = 0;
            return Err(Skip);
        }
        d.confirmed = 1;
        d.gfp = gfp;
        d.order = order;
    }
    d.pages_left = d.pages_left.saturating_sub(pages);
    d.pages_pending += pages;
    if d.pages_left == 0 {
        add_pending_pages(d);
    }
    Ok(())
}
