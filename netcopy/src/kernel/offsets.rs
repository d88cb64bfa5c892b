//! The kernel struct offsets the programs read, resolved from this kernel's BTF.

use netcopy_common::KernelOffsets;

use super::btf::Btf;
use crate::error::{Error, Result};

/// skb_frag_t's length member: `struct skb_frag.len` since 6.x (netmem), `bio_vec.bv_len`
/// before.
fn frag_layout(btf: &Btf) -> Result<(u32, u32)> {
    match btf.member_offset("skb_frag", "len") {
        Ok(len) => Ok((btf.struct_size("skb_frag")?, len)),
        Err(_) => Ok((
            btf.struct_size("bio_vec")?,
            btf.member_offset("bio_vec", "bv_len")?,
        )),
    }
}

fn enum_bit(btf: &Btf, enum_name: &str, variant: &str) -> Result<u32> {
    let value = btf.enum_value(enum_name, variant)?;
    u32::try_from(value).map_err(|_| Error::BtfMissing {
        what: format!("a small non-negative {variant} (found {value})"),
    })
}

/// The kernel's page size (4096 when the system will not say).
fn page_size() -> u32 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(4096)
}

/// Resolves every offset the programs need from this kernel's BTF. The address range of
/// `skb_copy_ubufs` is left at zero; [`Tracer::load`] fills it from kallsyms.
pub fn resolve_offsets(btf: &Btf) -> Result<KernelOffsets> {
    let (frag_size, frag_len) = frag_layout(btf)?;
    let (skb_end, skb_end_size) = btf.member_layout("sk_buff", "end")?;
    let skbfl = btf.enum_value("", "SKBFL_ZEROCOPY_ENABLE")?;
    Ok(KernelOffsets {
        sock_local_port: btf.member_offset("sock", "__sk_common.skc_num")?,
        sock_remote_port: btf.member_offset("sock", "__sk_common.skc_dport")?,
        sock_family: btf.member_offset("sock", "__sk_common.skc_family")?,
        sock_v4_local: btf.member_offset("sock", "__sk_common.skc_rcv_saddr")?,
        sock_v4_remote: btf.member_offset("sock", "__sk_common.skc_daddr")?,
        sock_v6_local: btf.member_offset("sock", "__sk_common.skc_v6_rcv_saddr")?,
        sock_v6_remote: btf.member_offset("sock", "__sk_common.skc_v6_daddr")?,
        sock_flags: btf.member_offset("sock", "__sk_common.skc_flags")?,
        sock_route_caps: btf.member_offset("sock", "sk_route_caps")?,
        sock_protocol: btf.member_offset("sock", "sk_protocol")?,
        sock_err: btf.member_offset("sock", "sk_err")?,
        msghdr_flags: btf.member_offset("msghdr", "msg_flags")?,
        msghdr_ubuf: btf.member_offset("msghdr", "msg_ubuf")?,
        skb_sk: btf.member_offset("sk_buff", "sk")?,
        skb_head: btf.member_offset("sk_buff", "head")?,
        skb_end,
        skb_network_header: btf.member_offset("sk_buff", "network_header")?,
        skb_data_len: btf.member_offset("sk_buff", "data_len")?,
        shinfo_flags: btf.member_offset("skb_shared_info", "flags")?,
        shinfo_nr_frags: btf.member_offset("skb_shared_info", "nr_frags")?,
        shinfo_frag_list: btf.member_offset("skb_shared_info", "frag_list")?,
        shinfo_frags: btf.member_offset("skb_shared_info", "frags")?,
        frag_size,
        frag_len,
        sock_zerocopy_bit: enum_bit(btf, "sock_flags", "SOCK_ZEROCOPY")?,
        netif_sg_bit: enum_bit(btf, "", "NETIF_F_SG_BIT")?,
        skbfl_zerocopy_enable: u32::try_from(skbfl).unwrap_or(0),
        // A 4-byte `end` is an offset from head (NET_SKBUFF_DATA_USES_OFFSET).
        skb_end_is_offset: u32::from(skb_end_size == 4),
        max_skb_frags: btf.array_len("skb_shared_info", "frags")?,
        page_size: page_size(),
        skb_len: btf.member_offset("sk_buff", "len")?,
        tcp_copied_seq: btf.member_offset("tcp_sock", "copied_seq")?,
        tcp_rcv_nxt: btf.member_offset("tcp_sock", "rcv_nxt")?,
        tcp_bytes_received: btf.member_offset("tcp_sock", "bytes_received")?,
        inet_sport: btf.member_offset("inet_sock", "inet_sport")?,
        count_nothing: 0,
        skb_copy_ubufs_start: 0,
        skb_copy_ubufs_end: 0,
        socket_sk: btf.member_offset("socket", "sk")?,
        _pad: 0,
    })
}
