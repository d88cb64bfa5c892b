//! Send side: what each send call handed to the kernel, and whether the kernel copied those
//! bytes or pinned the pages they live in.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, programs::BtfTracePointContext};
use netcopy_common::{Skipped, send_decision};

use super::{OrSkip as _, Skip};
use crate::{
    flows::flow_counters,
    maps::{SEND_DECISIONS, offset, skipped},
    skb::{IPPROTO_UDP, SharedInfo, ip_packet},
    sock::{
        adopt_at_transmit, confirm_adoption, field, is_udp, watched_flow, watched_flow_or_adopt,
    },
};

/// include/linux/socket.h
const MSG_ZEROCOPY: u32 = 0x400_0000;
const MSG_SPLICE_PAGES: u32 = 0x800_0000;
/// include/linux/socket.h before 6.5: more pages of the same splice follow.
const MSG_SENDPAGE_NOTLAST: i32 = 0x2_0000;

/// `tcp_sendmsg_locked(sk, msg, ...)`: its tracepoint fires in the send loop of every TCP send
/// call with data left, its fentry once at the call's start; both see what the kernel decides
/// with, so either gives the same answer. Decides, with the kernel's own inputs and in its order, how this
/// call's bytes reach the skb: pinned when the message flags ask `MSG_ZEROCOPY` and the socket
/// has `SOCK_ZEROCOPY` (or io_uring set `msg_ubuf`, which needs none); otherwise referenced
/// when they carry `MSG_SPLICE_PAGES` (sendfile, splice); either only with scatter-gather on
/// the route's device. Everything else is copied.
#[inline(always)]
pub fn try_classify_send(sk: *const u8, msg: *const u8) -> Result<(), Skip> {
    watched_flow_or_adopt(sk).or_skip()?;
    let flags: u32 = field(msg, offset!(msghdr_flags)).or_skip()?;
    let scatter_gather = || -> Result<bool, Skip> {
        let route_caps: u64 = field(sk, offset!(sock_route_caps)).or_skip()?;
        Ok(route_caps >> offset!(netif_sg_bit) & 1 == 1)
    };
    let how = if flags & MSG_ZEROCOPY != 0 {
        let ubuf: u64 = field(msg, offset!(msghdr_ubuf)).or_skip()?;
        let enabled = ubuf != 0 || {
            let sk_flags: u64 = field(sk, offset!(sock_flags)).or_skip()?;
            sk_flags >> offset!(sock_zerocopy_bit) & 1 == 1
        };
        if enabled && scatter_gather()? {
            send_decision::PINNED
        } else {
            send_decision::COPIED
        }
    } else if flags & MSG_SPLICE_PAGES != 0 && scatter_gather()? {
        send_decision::REFERENCED
    } else {
        send_decision::COPIED
    };
    decide(how)
}

/// Keeps this thread's decision for its send call's length to consume.
#[inline(always)]
fn decide(how: u32) -> Result<(), Skip> {
    let tid = bpf_get_current_pid_tgid() as u32;
    let slot = SEND_DECISIONS
        .get_ptr_mut(send_decision::slot(tid))
        .or_skip()?;
    // SAFETY: a live array element, read and written whole (one u64: never torn).
    unsafe {
        let (holder, pending) = send_decision::unpack(core::ptr::read_volatile(slot));
        // Holder 0 is a slot never written (thread 0, the idle task, sends nothing).
        if holder != tid && holder != 0 && pending != send_decision::NONE {
            skipped(Skipped::DecisionSlotShared);
        }
        core::ptr::write_volatile(slot, send_decision::pack(tid, how));
    }
    Ok(())
}

/// This thread's decision for the send call that just returned, consumed:
/// [`send_decision::NONE`] when no `tcp_sendmsg_locked` of this thread decided one since its
/// last call. A plain u32, not an Option: with an Option the compiler left a register unset
/// on the path without a slot, which the verifier refuses.
#[inline(always)]
fn take_decision(tid: u32) -> u32 {
    let Some(slot) = SEND_DECISIONS.get_ptr_mut(send_decision::slot(tid)) else {
        return send_decision::NONE;
    };
    // SAFETY: as in `decide`.
    let (holder, how) = send_decision::unpack(unsafe { core::ptr::read_volatile(slot) });
    if holder != tid || how == send_decision::NONE {
        return send_decision::NONE;
    }
    // SAFETY: as in `decide`.
    unsafe { core::ptr::write_volatile(slot, send_decision::pack(tid, send_decision::NONE)) };
    how
}

/// A send call's result `ret` on `sk`: from `sock:sock_send_length(sk, ret, flags)`, fired by
/// `sock_sendmsg_nosec` after every send call, or from the exit of the function that fires
/// it. `flags` is always 0 there, so the copy-or-pin decision comes from
/// `tcp_sendmsg_locked` in the same task.
#[inline(always)]
pub fn try_send_length(sk: *const u8, ret: i32) -> Result<(), Skip> {
    count_send(sk, ret, 1)
}

/// Counts a send's `ret` bytes under this task's decision, as `calls` send calls.
#[inline(always)]
fn count_send(sk: *const u8, ret: i32, calls: u64) -> Result<(), Skip> {
    let key = watched_flow_or_adopt(sk).or_skip()?;
    let task = bpf_get_current_pid_tgid();
    let udp = is_udp(sk);
    let decision = take_decision(task as u32);
    let counters = flow_counters(&key).or_skip()?;
    if udp {
        confirm_adoption(task, &key);
    }
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe {
        if ret < 0 {
            (*counters).send_errors += 1;
            return Ok(());
        }
        let bytes = ret as u64;
        (*counters).send_calls += calls;
        (*counters).send_bytes += bytes;
        match decision {
            send_decision::PINNED => (*counters).tcp_pinned_bytes += bytes,
            send_decision::REFERENCED => (*counters).tcp_referenced_at_send_bytes += bytes,
            // UDP is classified when it leaves (`net_dev_start_xmit`); a TCP call without a
            // decision is a gap in the accounting, counted so the cross-check can see it.
            send_decision::NONE if udp => {}
            send_decision::NONE => (*counters).unclassified_send_bytes += bytes,
            _ => (*counters).tcp_copied_at_send_bytes += bytes,
        }
    }
    Ok(())
}

/// The exit of `tcp_sendpage(sk, page, offset, size, flags)`, sendfile's and splice's way in
/// before 6.5: the page is attached by reference when the route has scatter-gather;
/// otherwise `sock_no_sendpage_locked` copies it through `tcp_sendmsg_locked`. Splice sends
/// a call's pages one by one, each but the last flagged `MSG_SENDPAGE_NOTLAST`: one send call
/// is counted per batch, as the tracepoint's `sock_sendmsg` does from 6.5 on.
#[inline(always)]
pub fn try_sendpage_length(sk: *const u8, ret: i32, flags: i32) -> Result<(), Skip> {
    watched_flow_or_adopt(sk).or_skip()?;
    let route_caps: u64 = field(sk, offset!(sock_route_caps)).or_skip()?;
    if route_caps >> offset!(netif_sg_bit) & 1 == 1 {
        decide(send_decision::REFERENCED)?;
    } else {
        decide(send_decision::COPIED)?;
    }
    let last = flags & MSG_SENDPAGE_NOTLAST == 0;
    count_send(sk, ret, u64::from(last))
}

/// `net:net_dev_start_xmit(skb, dev)`: a packet handed to a device. For UDP this is where the
/// copy-or-pin decision shows: a datagram sent whole (unfragmented) whose skb carries user
/// pages left its fragment bytes pinned; every other payload byte was copied into kernel
/// memory by the send call. TCP is decided in `tcp_sendmsg_locked` instead (its segments are
/// retransmitted and resegmented, so transmits do not map to send calls).
pub fn try_net_dev_start_xmit(ctx: &BtfTracePointContext) -> Result<(), Skip> {
    let skb: *const u8 = ctx.arg(0);
    // Every fragment of a datagram still belongs to the sending socket.
    let sk: *const u8 = field(skb, offset!(skb_sk)).or_skip()?;
    if !is_udp(sk) {
        return Err(Skip);
    }
    let packet = ip_packet(skb).or_skip()?;
    if packet.protocol != IPPROTO_UDP {
        return Err(Skip);
    }
    let udp_header = if packet.has_transport_header { 8 } else { 0 };
    let payload = u64::from(packet.ip_payload.saturating_sub(udp_header));
    let shinfo = SharedInfo::of(skb).or_skip()?;
    let pinned = if packet.unfragmented && shinfo.carries_user_pages().or_skip()? {
        let data_len: u32 = field(skb, offset!(skb_data_len)).or_skip()?;
        u64::from(data_len).min(payload)
    } else {
        0
    };
    // A watched process's first datagram on a socket leaves inside its first send call,
    // before `sock_send_length` could adopt the socket.
    let key = watched_flow(sk)
        .or_else(|| adopt_at_transmit(sk))
        .or_skip()?;
    let counters = flow_counters(&key).or_skip()?;
    // SAFETY: a live per-CPU map value; see `flow_counters` for why plain adds are sound.
    unsafe {
        (*counters).udp_pinned_bytes += pinned;
        (*counters).udp_copied_at_send_bytes += payload - pinned;
    }
    Ok(())
}
