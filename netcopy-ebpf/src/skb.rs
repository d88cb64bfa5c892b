//! Reading an `sk_buff`: its shared info (page fragments, zero-copy flag) and the IP and
//! transport headers it carries. Only headers are read, never payload.

use netcopy_common::{Addr, MAX_FRAGS, v4_mapped};

use crate::{
    maps::offset,
    sock::{field, read},
};

pub use crate::sock::{IPPROTO_TCP, IPPROTO_UDP};

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
    /// Where the transport header starts.
    pub transport: *const u8,
}

/// A TCP segment's sequence number and payload length, given the bytes after its IP header.
#[inline(always)]
pub fn tcp_segment(packet: &Packet, ip_payload: u32) -> Option<(u32, u32)> {
    let seq = u32::from_be(read(packet.transport, 4)?);
    let data_offset: u8 = read(packet.transport, 12)?;
    let header = u32::from(data_offset >> 4) * 4;
    Some((seq, ip_payload.saturating_sub(header)))
}

/// The bytes after the IP header of a received skb, from the skb's own length: on the receive
/// path `data` is at the network header. Unlike the IP header's length field this holds under
/// BIG TCP, where a packet over 64 KiB says 0.
#[inline(always)]
pub fn payload_from_skb(skb: *const u8, packet: &Packet) -> Option<u32> {
    let len: u32 = field(skb, offset!(skb_len))?;
    Some(len.saturating_sub(packet.header))
}

/// The skb's `skb_shared_info` (at `head + end`).
#[inline(always)]
pub fn shared_info(skb: *const u8) -> Option<*const u8> {
    let head: u64 = field(skb, offset!(skb_head))?;
    let end = if offset!(skb_end_is_offset) == 1 {
        head + u64::from(field::<u32>(skb, offset!(skb_end))?)
    } else {
        field::<u64>(skb, offset!(skb_end))?
    };
    Some(end as *const u8)
}

/// Whether the skb's fragments are user pages whose release must be notified
/// (`SKBFL_ZEROCOPY_ENABLE`).
#[inline(always)]
pub fn carries_user_pages(shinfo: *const u8) -> Option<bool> {
    let flags: u8 = read(shinfo, offset!(shinfo_flags))?;
    Some(u32::from(flags) & offset!(skbfl_zerocopy_enable) != 0)
}

/// Sum of the skb's page-fragment lengths.
#[inline(always)]
pub fn fragment_bytes(shinfo: *const u8) -> Option<u64> {
    let nr_frags: u8 = read(shinfo, offset!(shinfo_nr_frags))?;
    let mut bytes = 0u64;
    for i in 0..MAX_FRAGS {
        if i >= u32::from(nr_frags) {
            break;
        }
        let at = offset!(shinfo_frags) + i * offset!(frag_size) + offset!(frag_len);
        bytes += u64::from(read::<u32>(shinfo, at)?);
    }
    Some(bytes)
}

/// The IP packet in the skb, from its network header. None for anything but IPv4/IPv6.
#[inline(always)]
pub fn ip_packet(skb: *const u8) -> Option<Packet> {
    let head: u64 = field(skb, offset!(skb_head))?;
    let network: u16 = field(skb, offset!(skb_network_header))?;
    let ip = (head + u64::from(network)) as *const u8;
    let version_ihl: u8 = read(ip, 0)?;
    let (protocol, header, ip_payload, fragment, source_addr, dest_addr) = match version_ihl >> 4 {
        4 => {
            let header = u32::from(version_ihl & 0xf) * 4;
            let total = u32::from(u16::from_be(read(ip, 2)?));
            // Flags and fragment offset: MF (0x2000) or a non-zero offset (0x1fff).
            let frag = u16::from_be(read(ip, 6)?);
            (
                read(ip, 9)?,
                header,
                total.saturating_sub(header),
                (frag & 0x2000 != 0, frag & 0x1fff != 0),
                v4_mapped(read(ip, 12)?),
                v4_mapped(read(ip, 16)?),
            )
        }
        6 => (
            read(ip, 6)?,
            40,
            u32::from(u16::from_be(read(ip, 4)?)),
            (false, false),
            read(ip, 8)?,
            read(ip, 24)?,
        ),
        _ => return None,
    };
    let (more_fragments, later_fragment) = fragment;
    let (source, dest) = if later_fragment {
        (0, 0)
    } else {
        (
            u16::from_be(read(ip, header)?),
            u16::from_be(read(ip, header + 2)?),
        )
    };
    Some(Packet {
        protocol,
        source,
        dest,
        source_addr,
        dest_addr,
        ip_payload,
        header,
        unfragmented: !more_fragments && !later_fragment,
        has_transport_header: !later_fragment,
        transport: ip.wrapping_add(header as usize),
    })
}
