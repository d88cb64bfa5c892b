//! IP addresses as the kernel's socket fields hold them.

/// An IP address as the kernel's IPv6 fields hold it, in four native-order words of its
/// network-order bytes; an IPv4 address is mapped (`::ffff:a.b.c.d`), as a dual-stack socket
/// shows it. Words, not bytes, so the programs compare it without a `memcmp` call.
pub type Addr = [u32; 4];

/// The IPv4-mapped form of an IPv4 address given as its network-order bytes in a native word.
#[inline(always)]
pub const fn v4_mapped(v4: u32) -> Addr {
    [0, 0, u32::from_ne_bytes([0, 0, 0xff, 0xff]), v4]
}

/// `ip` as the kernel holds it.
pub fn kernel_addr(ip: core::net::IpAddr) -> Addr {
    let words = |b: [u8; 16]| {
        let w = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        [w(0), w(4), w(8), w(12)]
    };
    match ip {
        core::net::IpAddr::V4(v4) => v4_mapped(u32::from_ne_bytes(v4.octets())),
        core::net::IpAddr::V6(v6) => words(v6.octets()),
    }
}

/// The address `addr` stands for (a mapped IPv4 address as IPv4).
pub fn ip_of(addr: &Addr) -> core::net::IpAddr {
    let mut b = [0u8; 16];
    for (i, w) in addr.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    let v6 = core::net::Ipv6Addr::from(b);
    match v6.to_ipv4_mapped() {
        Some(v4) => core::net::IpAddr::V4(v4),
        None => core::net::IpAddr::V6(v6),
    }
}

/// Whether two addresses are equal (word by word: no `memcmp` in the programs).
#[inline(always)]
pub fn same_addr(a: &Addr, b: &Addr) -> bool {
    a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_both_ways() {
        use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let v4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(ip_of(&kernel_addr(v4)), v4);
        assert_eq!(ip_of(&kernel_addr(v6)), v6);
        assert!(!same_addr(&kernel_addr(v4), &kernel_addr(v6)));
        // The kernel's bytes: ::ffff:127.0.0.2, network order.
        let k = kernel_addr(v4);
        let mut b = [0u8; 16];
        for (i, w) in k.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
        assert_eq!(b, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 2]);
    }
}
