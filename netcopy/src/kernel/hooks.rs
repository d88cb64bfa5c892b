//! Every program netcopy attaches, the kernel hook it needs, and the CSV columns it feeds: the
//! per-hook compatibility gate reads this table.

/// One eBPF program and the kernel hook it needs.
pub struct Hook {
    /// Program (function) name in the object.
    pub program: &'static str,
    /// Tracepoint it attaches to, as tp_btf.
    pub tracepoint: &'static str,
    /// What the kernel must offer for it, said when it is missing.
    pub requirement: &'static str,
    /// Attached only while something needs it (see `Tracer::classify_udp`,
    /// `Tracer::count_consumed`); at load it is
    /// attached once and detached, so a kernel that refuses it is known at once.
    pub on_demand: bool,
    /// The CSV columns it feeds: empty, with the reason, when this kernel refuses it.
    pub feeds: &'static [&'static str],
}

/// Withholds the named hooks (comma-separated program names), as if the kernel lacked them:
/// how the per-hook fallback is tested on a kernel that has them all.
pub const WITHHOLD_ENV: &str = "NETCOPY_WITHHOLD_HOOKS";

/// TCP classification is made in `tcp_sendmsg_locked` and counted in `sock_send_length`.
const SEND_FEEDS: &[&str] = &[
    "k_copied_at_send_bytes",
    "k_pinned_bytes",
    "k_referenced_at_send_bytes",
    "k_unclassified_send_bytes",
];

/// Every hook, in attach order.
pub const HOOKS: &[Hook] = &[
    Hook {
        program: "tcp_sendmsg_locked",
        tracepoint: "tcp_sendmsg_locked",
        requirement: "tracepoint tcp:tcp_sendmsg_locked (Linux 6.6+) and tp_btf (BTF)",
        on_demand: false,
        feeds: SEND_FEEDS,
    },
    Hook {
        program: "sock_send_length",
        tracepoint: "sock_send_length",
        requirement: "tracepoint sock:sock_send_length (Linux 6.3+) and tp_btf (BTF)",
        on_demand: false,
        feeds: &[
            "k_send_calls",
            "k_send_bytes",
            "k_copied_at_send_bytes",
            "k_pinned_bytes",
            "k_referenced_at_send_bytes",
            "k_unclassified_send_bytes",
        ],
    },
    Hook {
        program: "sock_recv_length",
        tracepoint: "sock_recv_length",
        requirement: "tracepoint sock:sock_recv_length (Linux 6.3+) and tp_btf (BTF)",
        on_demand: false,
        feeds: &[
            "k_recv_calls",
            "k_recv_bytes",
            "k_recv_copy_bytes",
            "k_recv_consumed_bytes",
            "k_mapped_bytes",
        ],
    },
    Hook {
        program: "tcp_rcv_space_adjust",
        tracepoint: "tcp_rcv_space_adjust",
        requirement: "tracepoint tcp:tcp_rcv_space_adjust (Linux 4.19+) and tp_btf (BTF)",
        on_demand: true,
        feeds: &["k_recv_consumed_bytes", "k_mapped_bytes"],
    },
    Hook {
        program: "skb_copy_datagram_iovec",
        tracepoint: "skb_copy_datagram_iovec",
        requirement: "tracepoint skb:skb_copy_datagram_iovec and tp_btf (BTF)",
        on_demand: false,
        feeds: &["k_recv_copy_bytes", "k_mapped_bytes"],
    },
    Hook {
        program: "net_dev_start_xmit",
        tracepoint: "net_dev_start_xmit",
        requirement: "tracepoint net:net_dev_start_xmit and tp_btf (BTF)",
        // Every packet on the machine passes here, and only UDP needs it: about 4 % of a
        // traced small-message TCP run's throughput when left on.
        on_demand: true,
        // UDP has no splice classification: copied or pinned as each datagram leaves.
        feeds: &[
            "k_copied_at_send_bytes",
            "k_pinned_bytes",
            "k_unclassified_send_bytes",
        ],
    },
    Hook {
        program: "netif_receive_skb",
        tracepoint: "netif_receive_skb",
        requirement: "tracepoint net:netif_receive_skb and tp_btf (BTF)",
        on_demand: false,
        feeds: &[
            "k_deferred_copy_bytes",
            "k_recopied_bytes",
            "k_deferred_copy_pages",
            "k_deferred_copy_pages_required",
            "k_fallback_pct",
        ],
    },
    Hook {
        program: "mm_page_alloc",
        tracepoint: "mm_page_alloc",
        requirement: "tracepoint kmem:mm_page_alloc, tp_btf (BTF) and bpf_get_stack",
        on_demand: false,
        feeds: &["k_deferred_copy_pages"],
    },
    Hook {
        program: "inet_sk_error_report",
        tracepoint: "inet_sk_error_report",
        requirement: "tracepoint sock:inet_sk_error_report (Linux 5.16+) and tp_btf (BTF)",
        on_demand: false,
        feeds: &["k_zc_notifications"],
    },
    Hook {
        program: "inet_sock_set_state",
        tracepoint: "inet_sock_set_state",
        requirement: "tracepoint sock:inet_sock_set_state (Linux 4.16+) and tp_btf (BTF)",
        on_demand: false,
        feeds: &[],
    },
];
