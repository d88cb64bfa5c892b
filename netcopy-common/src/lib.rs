//! Types shared by the eBPF programs and userspace.
//!
//! Everything here is `#[repr(C)]` and plain old data: it crosses the kernel boundary as raw
//! bytes, through maps and the programs' read-only globals.
#![no_std]

pub mod names;

/// Why a probe could not count an event it saw (the index into [`names::SKIPPED`]).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// The flow counters map was full and the slot had no aggregate: a socket's counts were
    /// lost.
    FlowMapFull = 0,
    /// A send call's copy-or-pin decision overwrote another task's, not yet consumed: two
    /// tasks whose thread ids share a decision slot sent at once, and one call's bytes will
    /// be unclassified.
    DecisionSlotShared = 1,
    /// An adopted connection could not be stored: its later events are lost.
    ConnMapFull = 2,
    /// A pinned TCP skb's delivery record found the ring buffer full: its bytes are lost.
    DeliveryRecordLost = 3,
}

impl Skipped {
    pub const ALL: [Skipped; 4] = [
        Skipped::FlowMapFull,
        Skipped::DecisionSlotShared,
        Skipped::ConnMapFull,
        Skipped::DeliveryRecordLost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Skipped::FlowMapFull => "flow map full",
            Skipped::DecisionSlotShared => "send decision overwritten by another task",
            Skipped::ConnMapFull => "adopted connection not stored",
            Skipped::DeliveryRecordLost => "delivery record lost (ring buffer full)",
        }
    }
}

/// Kernel stack frames examined when attributing a page allocation.
pub const STACK_DEPTH: usize = 16;
/// Most page fragments one skb can carry that the probes walk (MAX_SKB_FRAGS is 17 by
/// default and configurable up to 45).
pub const MAX_FRAGS: u32 = 48;

/// Pages `skb_copy_ubufs` allocates to copy `pagelen` fragment bytes (net/core/skbuff.c): the
/// smallest page order whose pages, `max_frags` of them, hold the bytes, then as many pages
/// of that order as the bytes need.
#[inline(always)]
pub fn ubuf_copy_pages(pagelen: u64, page_size: u64, max_frags: u64) -> u64 {
    if pagelen == 0 || page_size == 0 {
        return 0;
    }
    let mut order = 0;
    // Bounded for the verifier; order 10 already holds 4 MiB per page.
    while order < 10 && (page_size << order) * max_frags < pagelen {
        order += 1;
    }
    pagelen.div_ceil(page_size << order) << order
}

/// How the kernel handled the bytes of one TCP send call, decided from what
/// `tcp_sendmsg_locked` saw, kept for the call's `sock_send_length` in the calling thread's
/// slot of [`names::SEND_DECISIONS`]. The thread id and the decision share one u64, so one
/// store writes both and no reader sees one task's id with another's decision.
pub mod send_decision {
    /// Copied from user memory into kernel pages during the call.
    pub const COPIED: u32 = 0;
    /// User pages pinned and attached to the skb (MSG_ZEROCOPY, io_uring zero-copy).
    pub const PINNED: u32 = 1;
    /// Pages the kernel already owned (the page cache, for sendfile and splice) attached to
    /// the skb by reference (MSG_SPLICE_PAGES).
    pub const REFERENCED: u32 = 2;
    /// No send call of the slot's thread in progress: its decision was consumed.
    pub const NONE: u32 = u32::MAX;
    /// Slots: a thread's is its id modulo this. No two threads share one while the kernel's
    /// `pid_max` is at most this (32768 by default on machines with up to 32 CPUs).
    pub const SLOTS: u32 = 1 << 16;

    /// The slot of thread `tid`.
    #[inline(always)]
    pub const fn slot(tid: u32) -> u32 {
        tid & (SLOTS - 1)
    }

    /// A slot's value: thread `tid` decided `how`.
    #[inline(always)]
    pub const fn pack(tid: u32, how: u32) -> u64 {
        ((tid as u64) << 32) | how as u64
    }

    /// (thread id, decision) of a slot's value.
    #[inline(always)]
    pub const fn unpack(value: u64) -> (u32, u32) {
        ((value >> 32) as u32, value as u32)
    }
}

/// Length of [`names::WATCHED_PORTS`]: an array indexed by port, so a probe finds a port's
/// watch with an inlined array access instead of a hash lookup (a helper call).
pub const WATCHED_PORTS_LEN: u32 = 1 << 16;
/// Capacity of [`names::WATCHED_TGIDS`].
pub const MAX_WATCHED_TGIDS: u32 = 64;
/// Capacity of [`names::WATCHED_CONNS`].
pub const MAX_WATCHED_CONNS: u32 = 8192;

mod addr;
pub use addr::{Addr, ip_of, kernel_addr, same_addr, v4_mapped};

/// Which sockets on a watched port are counted.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watch {
    pub slot: u32,
    /// [`Watch::ANY_ADDRESS`], [`Watch::LOCAL_ONLY`].
    pub flags: u32,
    /// The endpoint's address, unless [`Watch::ANY_ADDRESS`].
    pub addr: Addr,
}

impl Watch {
    /// Any address on the port matches (`trace --port`, a server bound to a wildcard).
    pub const ANY_ADDRESS: u32 = 1;
    /// Only sockets whose own (local) endpoint it is; not clients connecting to it.
    pub const LOCAL_ONLY: u32 = 2;
    /// Set in every watch; an unwatched port's entry is all zero.
    pub const ACTIVE: u32 = 4;
}
/// Capacity of [`names::FLOWS`]: one entry per observed socket.
pub const MAX_FLOWS: u32 = 8192;
/// The slot of a [`names::FLOW_KEYS`] entry whose index was given up.
pub const VOID_SLOT: u32 = u32::MAX;
/// Length of [`names::OVERFLOW`]: slots run from 0 to this, exclusive.
pub const MAX_SLOTS: u32 = 16;

/// Byte offsets of the kernel struct members the programs read.
///
/// Struct layouts change between kernels, so none of these is a literal: userspace resolves them
/// from /sys/kernel/btf/vmlinux at load time and hands them over as a read-only global.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `struct sock` -> `__sk_common.skc_num`: local port, host byte order (u16).
    pub sock_local_port: u32,
    /// `struct sock` -> `__sk_common.skc_dport`: remote port, network byte order (u16).
    pub sock_remote_port: u32,
    /// `struct sock` -> `__sk_common.skc_family` (u16: AF_INET, AF_INET6).
    pub sock_family: u32,
    /// `struct sock` -> `__sk_common.skc_rcv_saddr`: local IPv4 address (4 bytes).
    pub sock_v4_local: u32,
    /// `struct sock` -> `__sk_common.skc_daddr`: remote IPv4 address.
    pub sock_v4_remote: u32,
    /// `struct sock` -> `__sk_common.skc_v6_rcv_saddr`: local IPv6 address (16 bytes).
    pub sock_v6_local: u32,
    /// `struct sock` -> `__sk_common.skc_v6_daddr`: remote IPv6 address.
    pub sock_v6_remote: u32,
    /// `struct sock` -> `sk_flags` (unsigned long bitmap of `enum sock_flags`).
    pub sock_flags: u32,
    /// `struct sock` -> `sk_route_caps` (netdev_features_t).
    pub sock_route_caps: u32,
    /// `struct sock` -> `sk_protocol` (u16: IPPROTO_TCP, IPPROTO_UDP, ...).
    pub sock_protocol: u32,
    /// `struct sock` -> `sk_err` (int).
    pub sock_err: u32,
    /// `struct msghdr` -> `msg_flags` (unsigned int).
    pub msghdr_flags: u32,
    /// `struct msghdr` -> `msg_ubuf` (pointer; set by io_uring zero-copy sends).
    pub msghdr_ubuf: u32,
    /// `struct sk_buff` -> `sk` (pointer).
    pub skb_sk: u32,
    /// `struct sk_buff` -> `head` (pointer).
    pub skb_head: u32,
    /// `struct sk_buff` -> `end` (offset from head on 64-bit kernels).
    pub skb_end: u32,
    /// `struct sk_buff` -> `network_header` (u16 offset from head).
    pub skb_network_header: u32,
    /// `struct sk_buff` -> `data_len` (u32: bytes in page fragments, not in the linear part).
    pub skb_data_len: u32,
    /// `struct skb_shared_info` -> `flags` (u8).
    pub shinfo_flags: u32,
    /// `struct skb_shared_info` -> `nr_frags` (u8).
    pub shinfo_nr_frags: u32,
    /// `struct skb_shared_info` -> `frag_list` (pointer).
    pub shinfo_frag_list: u32,
    /// `struct skb_shared_info` -> `frags` (array of skb_frag_t).
    pub shinfo_frags: u32,
    /// Size of one `skb_frag_t`.
    pub frag_size: u32,
    /// `skb_frag_t` -> its length member (u32).
    pub frag_len: u32,
    /// Bit number of `SOCK_ZEROCOPY` in `enum sock_flags`.
    pub sock_zerocopy_bit: u32,
    /// Bit number of `NETIF_F_SG_BIT` (scatter-gather) in netdev features.
    pub netif_sg_bit: u32,
    /// Value of `SKBFL_ZEROCOPY_ENABLE` in `skb_shinfo()->flags`.
    pub skbfl_zerocopy_enable: u32,
    /// 1 when `sk_buff.end` is an offset from `head` (64-bit kernels), 0 when a pointer.
    pub skb_end_is_offset: u32,
    /// MAX_SKB_FRAGS: the length of `skb_shared_info.frags`.
    pub max_skb_frags: u32,
    /// The kernel's page size, bytes.
    pub page_size: u32,
    /// `struct sk_buff` -> `len` (u32: bytes from `data` on, fragments included).
    pub skb_len: u32,
    /// `struct tcp_sock` -> `copied_seq` (u32): the next sequence the application consumes.
    pub tcp_copied_seq: u32,
    /// `struct tcp_sock` -> `rcv_nxt` (u32): the next sequence expected from the peer.
    pub tcp_rcv_nxt: u32,
    /// `struct tcp_sock` -> `bytes_received` (u64): sequence bytes received in order.
    pub tcp_bytes_received: u32,
    /// `struct inet_sock` -> `inet_sport` (network order u16): the local port, still there
    /// when a closing socket's `skc_num` was cleared by `inet_put_port`.
    pub inet_sport: u32,
    /// 1: every program returns before doing anything. Only the benchmark sets it, to measure
    /// the floor: what entering the programs costs, apart from what they do.
    pub count_nothing: u32,
    /// Text address range of `skb_copy_ubufs` (from /proc/kallsyms): a page allocated with a
    /// return address inside it is the deferred copy's.
    pub skb_copy_ubufs_start: u64,
    pub skb_copy_ubufs_end: u64,
    /// `struct socket` -> `sk`: the fexit fallbacks on `sock_sendmsg`/`sock_recvmsg` get the
    /// socket, not the sock.
    pub socket_sk: u32,
    pub _pad: u32,
}

/// What the programs count under: an experiment's slot and one socket's two endpoints.
///
/// Keying by socket (not by process) matters: loopback receive work runs in softirq context,
/// often on the sending thread, so the current pid says nothing about whose bytes they are.
/// Keying by whole address (not by port) keeps another program on the same port number, at
/// another address or in the other family, out of an experiment's figures.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Slot of the experiment (or trace) whose watch matched; 0 in a bare connection key.
    pub slot: u32,
    /// The socket's own port, host byte order.
    pub local_port: u16,
    /// The peer's port, host byte order.
    pub remote_port: u16,
    /// The socket's own address.
    pub local_addr: Addr,
    /// The peer's address (all zero for an unconnected UDP socket).
    pub remote_addr: Addr,
}

/// Counters for one socket. Each field is written by exactly one program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct FlowCounters {
    /// Send calls that returned a byte count (`sock:sock_send_length`, ret >= 0).
    pub send_calls: u64,
    /// Bytes those send calls accepted.
    pub send_bytes: u64,
    /// Send calls that returned an error.
    pub send_errors: u64,
    /// Receive calls that returned data (`sock:sock_recv_length`, ret > 0, no MSG_PEEK or
    /// MSG_ERRQUEUE).
    pub recv_calls: u64,
    /// Bytes those receive calls returned.
    pub recv_bytes: u64,
    /// TCP: sent bytes the kernel copied from user memory during the send call, as decided
    /// in `tcp:tcp_sendmsg_locked`.
    pub tcp_copied_at_send_bytes: u64,
    /// TCP: sent bytes whose user pages the kernel pinned instead of copying.
    pub tcp_pinned_bytes: u64,
    /// TCP: sent bytes attached by reference to pages the kernel already owned (sendfile and
    /// splice from the page cache: MSG_SPLICE_PAGES): neither copied nor pinned user memory.
    pub tcp_referenced_at_send_bytes: u64,
    /// TCP: sent bytes of a call `tcp_sendmsg_locked` never decided, so not classified.
    pub unclassified_send_bytes: u64,
    /// UDP: datagram payload bytes that left in kernel memory (`net:net_dev_start_xmit`).
    pub udp_copied_at_send_bytes: u64,
    /// UDP: datagram payload bytes that left as pinned user pages.
    pub udp_pinned_bytes: u64,
    /// Pinned bytes that reached local delivery carrying user pages, so `skb_copy_ubufs`
    /// copied them there (`net:netif_receive_skb`, SKBFL_ZEROCOPY_ENABLE set). TCP: the
    /// sequence bytes each flow delivered from its first to its last delivered pinned byte,
    /// each once (userspace, from the [`Delivery`] records); see `recopied_bytes` and
    /// `deferred_copy_unseen_bytes`.
    pub deferred_copy_bytes: u64,
    /// Pinned TCP bytes delivered, and so copied, again: a retransmitted segment still
    /// carries the user pages (the write queue keeps them until acknowledged).
    pub recopied_bytes: u64,
    /// The part of `deferred_copy_bytes` no delivery record showed: sequence bytes between
    /// two delivered ones (TCP delivers a stream, so they were delivered too) whose skb the
    /// program was not run for. Userspace only; the kernel never writes it.
    pub deferred_copy_unseen_bytes: u64,
    /// Pages allocated with `skb_copy_ubufs` on the kernel stack (2^order per allocation).
    pub deferred_copy_pages: u64,
    /// Pages `skb_copy_ubufs` must allocate for the pinned skbs delivered (its own formula
    /// over each skb's fragment bytes), to compare with the pages observed.
    pub deferred_copy_pages_required: u64,
    /// Error reports on the socket with no socket error: zero-copy notifications queued or
    /// merged (`sock:inet_sk_error_report`).
    pub zc_notifications: u64,
    /// Bytes copied from kernel to user on receive: TCP from `skb:skb_copy_datagram_iovec`;
    /// UDP from `sock:sock_recv_length`, since UDP copies a linear skb without passing that
    /// tracepoint and returns exactly the bytes it copied.
    pub recv_copy_bytes: u64,
    /// UDP receive calls with MSG_TRUNC: they return the datagram's length, not the bytes
    /// copied, so `recv_copy_bytes` cannot be known for that socket.
    pub recv_copy_unseen_calls: u64,
    /// Bytes the receiving application consumed, by the kernel's own count: TCP from the
    /// advance of `copied_seq` (`tcp:tcp_rcv_space_adjust`, which every read, zero-copy
    /// receive and splice calls after consuming); UDP, the datagram bytes receive calls took.
    /// What was consumed and not copied to user was mapped (`TCP_ZEROCOPY_RECEIVE`).
    pub recv_consumed_bytes: u64,
    pub copied_at_transmit_bytes: u64, // TCP payload sent linear: see probes/transmit.rs
}

impl FlowCounters {
    /// Adds `other` field by field: per-CPU values and several sockets fold into one figure.
    pub fn accumulate(&mut self, other: &FlowCounters) {
        self.send_calls += other.send_calls;
        self.send_bytes += other.send_bytes;
        self.send_errors += other.send_errors;
        self.recv_calls += other.recv_calls;
        self.recv_bytes += other.recv_bytes;
        self.tcp_copied_at_send_bytes += other.tcp_copied_at_send_bytes;
        self.tcp_pinned_bytes += other.tcp_pinned_bytes;
        self.tcp_referenced_at_send_bytes += other.tcp_referenced_at_send_bytes;
        self.unclassified_send_bytes += other.unclassified_send_bytes;
        self.udp_copied_at_send_bytes += other.udp_copied_at_send_bytes;
        self.udp_pinned_bytes += other.udp_pinned_bytes;
        self.deferred_copy_bytes += other.deferred_copy_bytes;
        self.recopied_bytes += other.recopied_bytes;
        self.deferred_copy_unseen_bytes += other.deferred_copy_unseen_bytes;
        self.deferred_copy_pages += other.deferred_copy_pages;
        self.deferred_copy_pages_required += other.deferred_copy_pages_required;
        self.zc_notifications += other.zc_notifications;
        self.recv_copy_bytes += other.recv_copy_bytes;
        self.recv_copy_unseen_calls += other.recv_copy_unseen_calls;
        self.recv_consumed_bytes += other.recv_consumed_bytes;
        self.copied_at_transmit_bytes += other.copied_at_transmit_bytes;
    }

    /// Sent bytes copied from user memory at send time, TCP and UDP. The two are counted by
    /// different programs (a softirq transmit may interrupt a send call's program on one CPU,
    /// and per-CPU counters are added without atomics), so they are summed here.
    pub fn copied_at_send_bytes(&self) -> u64 {
        self.tcp_copied_at_send_bytes + self.udp_copied_at_send_bytes
    }

    /// Sent bytes pinned as user pages instead of copied, TCP and UDP.
    pub fn pinned_bytes(&self) -> u64 {
        self.tcp_pinned_bytes + self.udp_pinned_bytes
    }

    /// Deferred-copied bytes as a percentage of pinned bytes; None when nothing was pinned.
    /// Userspace only: eBPF has no floating point.
    #[cfg(feature = "user")]
    pub fn fallback_pct(&self) -> Option<f64> {
        let pinned = self.pinned_bytes();
        (pinned > 0).then(|| self.deferred_copy_bytes as f64 * 100.0 / pinned as f64)
    }

    /// The counters of what happened on a socket (calls, copies at send and to user,
    /// notifications), with the delivery counters zeroed.
    pub fn socket_part(&self) -> Self {
        Self {
            deferred_copy_bytes: 0,
            recopied_bytes: 0,
            deferred_copy_unseen_bytes: 0,
            deferred_copy_pages: 0,
            deferred_copy_pages_required: 0,
            ..*self
        }
    }

    /// The counters of deliveries into this machine's kernel (the deferred copy), keyed by the
    /// sending flow whichever machine sent it; everything else zeroed.
    pub fn delivery_part(&self) -> Self {
        Self {
            deferred_copy_bytes: self.deferred_copy_bytes,
            recopied_bytes: self.recopied_bytes,
            deferred_copy_unseen_bytes: self.deferred_copy_unseen_bytes,
            deferred_copy_pages: self.deferred_copy_pages,
            deferred_copy_pages_required: self.deferred_copy_pages_required,
            ..Self::default()
        }
    }
}

/// One pinned TCP skb entering local delivery: the sending flow, the segment's sequence
/// number and payload length, and its page-fragment bytes (what `skb_copy_ubufs` copies).
/// Written by one program run into a ring buffer (many producers, one reader): no state is
/// shared between CPUs, so no interleaving and no order of segments can corrupt the count.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub key: FlowKey,
    pub seq: u32,
    pub len: u32,
    pub bytes: u64,
}

/// Ring buffer size for [`Delivery`] records: 4 MiB holds about 70 000 of them, about a
/// second of pinned 64 KiB segments at 40 Gbit/s; userspace drains it every few milliseconds.
pub const DELIVERIES_BYTES: u32 = 4 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_pages_follow_the_kernels_formula() {
        assert_eq!(ubuf_copy_pages(0, 4096, 17), 0);
        assert_eq!(ubuf_copy_pages(256, 4096, 17), 1);
        assert_eq!(ubuf_copy_pages(4096, 4096, 17), 1);
        assert_eq!(ubuf_copy_pages(4097, 4096, 17), 2);
        assert_eq!(ubuf_copy_pages(65536, 4096, 17), 16);
        // 17 pages of 4 KiB hold 69 632 bytes; one byte more takes order-1 pages.
        assert_eq!(ubuf_copy_pages(69_632, 4096, 17), 17);
        assert_eq!(ubuf_copy_pages(69_633, 4096, 17), 18);
        // BIG TCP: 185 000 bytes need order 2 (16 KiB pages): 12 of them, 48 pages.
        assert_eq!(ubuf_copy_pages(185_000, 4096, 17), 48);
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of them are #[repr(C)] structs of integers with no padding-sensitive invariants;
    // any bit pattern is a valid value.
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::Watch {}
    unsafe impl aya::Pod for super::FlowCounters {}
    unsafe impl aya::Pod for super::Delivery {}
}
