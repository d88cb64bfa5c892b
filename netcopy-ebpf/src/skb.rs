//! Reading an `sk_buff`: its shared info (page fragments, zero-copy flag) and the IP and
//! transport headers it carries. Only header bytes are read, never payload (see
//! [`ip_packet`]).

use netcopy_common::{Addr, MAX_FRAGS, v4_mapped};

use crate::{
    maps::offset,
    sock::{field, read},
};

pub use crate::sock::{IPPROTO_TCP, IPPROTO_UDP};

/// A UDP header's length: all a UDP datagram's bytes past it are payload.
const UDP_HEADER: usize = 8;

/// The parts of an IP packet the probes use.
pub struct Packet {
    pub protocol: u8,
    /// Transport ports, host order; 0 for a non-first IPv4 fragment (no transport header).
    pub source: u16,
    pub dest: u16,
    /// IP addresses (IPv4 mapped into IPv6).
    pub source_addr: Addr,
    pub dest_addr: Addr,
    /// Bytes after the IP header (transport header included when present), from the IP
    /// header: 0 in a BIG TCP packet over 64 KiB (see [`payload_from_skb`]).
    pub ip_payload: u32,
    /// The IP header's length.
    pub header: u32,
    /// Whether this is a whole datagram (not an IPv4 fragment).
    pub unfragmented: bool,
    /// Whether the transport header is in this packet (it is in the first fragment only).
    pub has_transport_header: bool,
    /// For TCP: the segment's sequence number and its header's length.
    pub tcp_seq: u32,
    pub tcp_header: u32,
}

/// A TCP segment's sequence number and payload length, given the bytes after its IP header.
#[inline(always)]
pub fn tcp_segment(packet: &Packet, ip_payload: u32) -> (u32, u32) {
    (packet.tcp_seq, ip_payload.saturating_sub(packet.tcp_header))
}

/// The bytes after the IP header of a received skb, from the skb's own length: on the receive
/// path `data` is at the network header. Unlike the IP header's length field this holds under
/// BIG TCP, where a packet over 64 KiB says 0.
#[inline(always)]
pub fn payload_from_skb(skb: *const u8, packet: &Packet) -> Option<u32> {
    let len: u32 = field(skb, offset!(skb_len))?;
    Some(len.saturating_sub(packet.header))
}

/// Bytes of `skb_shared_info` read at once from its start: its flags, fragment count and
/// `frag_list` lie there (at 0, 2 and 8 on every kernel seen), so one helper call gets all
/// three. A field further in is read on its own.
const SHINFO_HEAD: usize = 16;

/// An skb's `skb_shared_info` (at `head + end`), with its first bytes already read.
pub struct SharedInfo {
    at: *const u8,
    head: [u8; SHINFO_HEAD],
}

impl SharedInfo {
    #[inline(always)]
    pub fn of(skb: *const u8) -> Option<Self> {
        let head: u64 = field(skb, offset!(skb_head))?;
        let end = if offset!(skb_end_is_offset) == 1 {
            head + u64::from(field::<u32>(skb, offset!(skb_end))?)
        } else {
            field::<u64>(skb, offset!(skb_end))?
        };
        let at = end as *const u8;
        Some(Self {
            at,
            head: read(at, 0)?,
        })
    }

    #[inline(always)]
    fn byte(&self, offset: u32) -> Option<u8> {
        match self.head.get(offset as usize) {
            Some(&b) => Some(b),
            None => read(self.at, offset),
        }
    }

    #[inline(always)]
    fn word(&self, offset: u32) -> Option<u64> {
        let at = offset as usize;
        match self.head.get(at..at + 8) {
            Some(b) => Some(u64::from_ne_bytes([
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
            ])),
            None => read(self.at, offset),
        }
    }

    /// Whether the skb's fragments are user pages whose release must be notified
    /// (`SKBFL_ZEROCOPY_ENABLE`).
    #[inline(always)]
    pub fn carries_user_pages(&self) -> Option<bool> {
        let flags = self.byte(offset!(shinfo_flags))?;
        Some(u32::from(flags) & offset!(skbfl_zerocopy_enable) != 0)
    }

    /// Sum of the skb's page-fragment lengths: its `data_len` when it has no `frag_list`
    /// (the bytes beyond the linear part are then all in page fragments), else summed
    /// fragment by fragment.
    #[inline(always)]
    pub fn fragment_bytes(&self, skb: *const u8) -> Option<u64> {
        if self.word(offset!(shinfo_frag_list))? == 0 {
            return field::<u32>(skb, offset!(skb_data_len)).map(u64::from);
        }
        let nr_frags = self.byte(offset!(shinfo_nr_frags))?;
        let mut bytes = 0u64;
        for i in 0..MAX_FRAGS {
            if i >= u32::from(nr_frags) {
                break;
            }
            let at = offset!(shinfo_frags) + i * offset!(frag_size) + offset!(frag_len);
            bytes += u64::from(read::<u32>(self.at, at)?);
        }
        Some(bytes)
    }
}

/// The IP packet in the skb, from its network header. None for anything but IPv4/IPv6.
///
/// Only header bytes are read, never a payload byte: the IP header's fixed part (20 bytes of
/// IPv4, or IPv6's 40 in two reads of 20), then for TCP the first 16 bytes of its 20-byte
/// header and for UDP its 8-byte header, and nothing after the IP header of a later IPv4
/// fragment or of any other protocol. Each read is one helper call.
#[inline(always)]
pub fn ip_packet(skb: *const u8) -> Option<Packet> {
    let head: u64 = field(skb, offset!(skb_head))?;
    let network: u16 = field(skb, offset!(skb_network_header))?;
    let ip = (head + u64::from(network)) as *const u8;
    let mut h = [0u8; 40];
    let first: [u8; 20] = read(ip, 0)?;
    h[..20].copy_from_slice(&first);
    if h[0] >> 4 == 6 {
        let rest: [u8; 20] = read(ip, 20)?;
        h[20..].copy_from_slice(&rest);
    }
    let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    let word = |at: usize| u32::from_ne_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let words = |at: usize| [word(at), word(at + 4), word(at + 8), word(at + 12)];
    let (protocol, header, ip_payload, fragment, source_addr, dest_addr) = match h[0] >> 4 {
        4 => {
            let header = u32::from(h[0] & 0xf) * 4;
            // Flags and fragment offset: MF (0x2000) or a non-zero offset (0x1fff).
            let frag = be16(6);
            (
                h[9],
                header,
                u32::from(be16(2)).saturating_sub(header),
                (frag & 0x2000 != 0, frag & 0x1fff != 0),
                v4_mapped(word(12)),
                v4_mapped(word(16)),
            )
        }
        6 => (
            h[6],
            40,
            u32::from(be16(4)),
            (false, false),
            words(8),
            words(24),
        ),
        _ => return None,
    };
    let (more_fragments, later_fragment) = fragment;
    let mut t = [0u8; 16];
    if !later_fragment && protocol == IPPROTO_TCP {
        t = read(ip, header)?;
    } else if !later_fragment && protocol == IPPROTO_UDP {
        let udp: [u8; UDP_HEADER] = read(ip, header)?;
        t[..UDP_HEADER].copy_from_slice(&udp);
    }
    Some(Packet {
        protocol,
        source: u16::from_be_bytes([t[0], t[1]]),
        dest: u16::from_be_bytes([t[2], t[3]]),
        source_addr,
        dest_addr,
        ip_payload,
        header,
        unfragmented: !more_fragments && !later_fragment,
        has_transport_header: !later_fragment,
        tcp_seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        tcp_header: u32::from(t[12] >> 4) * 4,
    })
}
