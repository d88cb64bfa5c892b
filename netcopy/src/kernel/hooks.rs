//! Every program netcopy attaches, the ways it can attach on each kernel, and the CSV columns
//! it feeds: the per-hook compatibility gate (`tracer::choose`) reads this table. Adding a
//! fallback is one entry in a hook's `attachments`.

/// How a program attaches to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// A BTF-typed tracepoint: stable arguments, the first choice.
    TpBtf,
    /// Function entry and exit through BTF trampolines: typed arguments, no tracepoint needed.
    FEntry,
    FExit,
    /// Kprobes: untyped registers, every read checked by a helper; the last resort.
    KProbe,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Self::TpBtf => "tp_btf",
            Self::FEntry => "fentry",
            Self::FExit => "fexit",
            Self::KProbe => "kprobe",
        }
    }
}

/// One way to attach a hook: a program of the object and the kernel event it runs at.
pub struct Attachment {
    pub mechanism: Mechanism,
    /// `system:event` for a tracepoint, a kernel function otherwise.
    pub target: &'static str,
    /// Program (function) name in the object.
    pub program: &'static str,
    /// For a function: the parameter types its body reads, as BTF spells them. A function
    /// whose prototype differs is refused before loading (signatures have no stable ABI).
    pub params: &'static [&'static str],
}

impl Attachment {
    /// How `check`, rows and `explain` name it: "tp_btf tcp:tcp_sendmsg_locked".
    pub fn label(&self) -> String {
        format!("{} {}", self.mechanism.name(), self.target)
    }

    /// How `NETCOPY_WITHHOLD_HOOKS` names it alone: "tp_btf/tcp_sendmsg_locked".
    pub fn id(&self) -> String {
        let event = self.target.rsplit(':').next().unwrap_or(self.target);
        format!("{}/{event}", self.mechanism.name())
    }
}

/// One figure's probe: the ranked ways to attach it and the CSV columns it feeds.
pub struct Hook {
    /// The hook's name (its first program's): `NETCOPY_WITHHOLD_HOOKS` withholds it whole.
    pub program: &'static str,
    /// Tried in order (tracepoint, then fentry/fexit, then kprobe); the first this kernel
    /// offers and accepts is used.
    pub attachments: &'static [Attachment],
    /// What the kernel must offer for it, said when it is missing.
    pub requirement: &'static str,
    /// Attached only while something needs it (see `on_demand.rs`); at load it is attached
    /// once and detached, so a kernel that refuses it is known at once.
    pub on_demand: bool,
    /// For an on-demand hook: what its columns read while it is not attached.
    pub when_idle: WhenIdle,
    /// The CSV columns it feeds: empty, with the reason, when this kernel refuses it.
    pub feeds: &'static [&'static str],
    /// Set for a hook on a path only some kernels take: when none of its functions exists,
    /// nothing is missing, and this says why.
    pub absent_means: Option<&'static str>,
}

impl Hook {
    /// The kernel event its first attachment runs at (its tracepoint, when it has one).
    pub fn event(&self) -> &'static str {
        self.attachments[0].target
    }
}

/// Withholds hooks, as if the kernel lacked them: a hook's name withholds it whole, an
/// attachment's id (`fentry/tcp_sendmsg_locked`) only that way of attaching it
/// (comma-separated). How the per-hook fallback is tested on a kernel that has them all.
pub const WITHHOLD_ENV: &str = "NETCOPY_WITHHOLD_HOOKS";

/// What an on-demand hook's columns read while it is not attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenIdle {
    /// Other hooks feed them too (or the hook is never on demand): nothing to say.
    Fed,
    /// Empty, for this reason.
    Empty(&'static str),
    /// Trace's own columns: empty in a trace that did not ask for the hook; an experiment's
    /// rows have no such columns, so an experiment does not list them.
    TraceOnly,
}

/// TCP classification is made in `tcp_sendmsg_locked` and counted in `sock_send_length`.
const SEND_FEEDS: &[&str] = &[
    "k_copied_at_send_bytes",
    "k_pinned_bytes",
    "k_referenced_at_send_bytes",
    "k_unclassified_send_bytes",
];

/// Every send's count and classification.
const SEND_LENGTH_FEEDS: &[&str] = &[
    "k_send_calls",
    "k_send_bytes",
    "k_copied_at_send_bytes",
    "k_pinned_bytes",
    "k_referenced_at_send_bytes",
    "k_unclassified_send_bytes",
];

const SOCK: &str = "struct sock *";
const SOCKET: &str = "struct socket *";
const MSGHDR: &str = "struct msghdr *";

/// A tracepoint attachment whose program is named after its event.
const fn tp(target: &'static str, program: &'static str) -> Attachment {
    Attachment {
        mechanism: Mechanism::TpBtf,
        target,
        program,
        params: &[],
    }
}

/// A function attachment.
const fn func(
    mechanism: Mechanism,
    target: &'static str,
    program: &'static str,
    params: &'static [&'static str],
) -> Attachment {
    Attachment {
        mechanism,
        target,
        program,
        params,
    }
}

/// Every hook, in attach order.
pub const HOOKS: &[Hook] = &[
    Hook {
        program: "tcp_sendmsg_locked",
        // The tracepoint fires per loop iteration, fentry once per call: both see the flags,
        // socket and route the kernel decides with at entry.
        attachments: &[
            tp("tcp:tcp_sendmsg_locked", "tcp_sendmsg_locked"),
            func(
                Mechanism::FEntry,
                "tcp_sendmsg_locked",
                "fentry_tcp_sendmsg_locked",
                &[SOCK, MSGHDR, "size_t"],
            ),
        ],
        requirement: "tracepoint tcp:tcp_sendmsg_locked (Linux 6.16+) or fentry on tcp_sendmsg_locked, and BTF",
        on_demand: false,
        when_idle: WhenIdle::Fed,
        absent_means: None,
        feeds: SEND_FEEDS,
    },
    Hook {
        program: "sock_send_length",
        // `__sock_sendmsg`, where it is a function of its own (6.1.57+ until it was inlined),
        // is where every send ends. Otherwise `tcp_sendmsg`, TCP only: `sock_sendmsg` would
        // miss every send syscall from 6.6 on (they call the inlined `__sock_sendmsg`), and
        // UDP sends unseen there fail the cross-check rather than read as a figure.
        attachments: &[
            tp("sock:sock_send_length", "sock_send_length"),
            func(
                Mechanism::FExit,
                "__sock_sendmsg",
                "fexit_sock_sendmsg_inner",
                &[SOCKET, MSGHDR],
            ),
            func(
                Mechanism::FExit,
                "tcp_sendmsg",
                "fexit_tcp_sendmsg",
                &[SOCK, MSGHDR, "size_t"],
            ),
        ],
        requirement: "tracepoint sock:sock_send_length (Linux 6.3+) or fexit on __sock_sendmsg or tcp_sendmsg, and BTF",
        on_demand: false,
        when_idle: WhenIdle::Fed,
        absent_means: None,
        feeds: SEND_LENGTH_FEEDS,
    },
    Hook {
        program: "tcp_sendpage",
        // sendfile and splice before 6.5: `tcp_sendpage` per pipe buffer, by reference with
        // scatter-gather, no `sock_sendmsg` and no `tcp_sendmsg_locked` on the way.
        attachments: &[func(
            Mechanism::FExit,
            "tcp_sendpage",
            "fexit_tcp_sendpage",
            &[SOCK, "struct page *", "int", "size_t", "int"],
        )],
        requirement: "fexit on tcp_sendpage (kernels before 6.5) and BTF",
        on_demand: false,
        when_idle: WhenIdle::Fed,
        absent_means: Some(
            "no tcp_sendpage on this kernel (6.5+): sendfile goes through tcp_sendmsg_locked with MSG_SPLICE_PAGES",
        ),
        feeds: SEND_LENGTH_FEEDS,
    },
    Hook {
        program: "sock_recv_length",
        attachments: &[
            tp("sock:sock_recv_length", "sock_recv_length"),
            func(
                Mechanism::FExit,
                "sock_recvmsg",
                "fexit_sock_recvmsg",
                &[SOCKET, MSGHDR, "int"],
            ),
        ],
        requirement: "tracepoint sock:sock_recv_length (Linux 6.3+) or fexit on sock_recvmsg, and BTF",
        on_demand: false,
        when_idle: WhenIdle::Fed,
        absent_means: None,
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
        attachments: &[tp("tcp:tcp_rcv_space_adjust", "tcp_rcv_space_adjust")],
        requirement: "tracepoint tcp:tcp_rcv_space_adjust (Linux 4.19+) and tp_btf (BTF)",
        on_demand: true,
        when_idle: WhenIdle::TraceOnly,
        absent_means: None,
        feeds: &["k_recv_consumed_bytes", "k_mapped_bytes"],
    },
    Hook {
        program: "skb_copy_datagram_iovec",
        attachments: &[tp("skb:skb_copy_datagram_iovec", "skb_copy_datagram_iovec")],
        requirement: "tracepoint skb:skb_copy_datagram_iovec and tp_btf (BTF)",
        on_demand: false,
        when_idle: WhenIdle::Fed,
        absent_means: None,
        feeds: &["k_recv_copy_bytes", "k_mapped_bytes"],
    },
    Hook {
        program: "net_dev_start_xmit",
        attachments: &[tp("net:net_dev_start_xmit", "net_dev_start_xmit")],
        requirement: "tracepoint net:net_dev_start_xmit and tp_btf (BTF)",
        // Every packet on the machine passes here, and only UDP needs it: about 4 % of a
        // traced small-message TCP run's throughput when left on.
        on_demand: true,
        when_idle: WhenIdle::Fed,
        // UDP has no splice classification: copied or pinned as each datagram leaves.
        absent_means: None,
        feeds: &[
            "k_copied_at_send_bytes",
            "k_pinned_bytes",
            "k_unclassified_send_bytes",
        ],
    },
    Hook {
        program: "copied_at_transmit",
        attachments: &[tp("net:net_dev_start_xmit", "copied_at_transmit")],
        requirement: "tracepoint net:net_dev_start_xmit and tp_btf (BTF)",
        // Every packet on the machine passes here, and only a path through a device driver can
        // copy at transmit: about 1 % of a traced 16 KiB zero-copy run on loopback when left on.
        on_demand: true,
        when_idle: WhenIdle::Empty(
            "attached only on paths through a device driver (veth, nic, remote): loopback's driver takes an skb's fragments as they are",
        ),
        absent_means: None,
        feeds: &["k_copied_at_transmit_bytes"],
    },
    Hook {
        program: "netif_receive_skb",
        attachments: &[tp("net:netif_receive_skb", "netif_receive_skb")],
        requirement: "tracepoint net:netif_receive_skb and tp_btf (BTF)",
        on_demand: false,
        when_idle: WhenIdle::Fed,
        absent_means: None,
        feeds: &[
            "k_deferred_copy_bytes",
            "k_recopied_bytes",
            "k_deferred_copy_unseen_bytes",
            "k_deferred_copy_pages",
            "k_deferred_copy_pages_required",
            "k_fallback_pct",
        ],
    },
    Hook {
        program: "mm_page_alloc",
        attachments: &[tp("kmem:mm_page_alloc", "mm_page_alloc")],
        requirement: "tracepoint kmem:mm_page_alloc, tp_btf (BTF) and bpf_get_stack",
        on_demand: false,
        when_idle: WhenIdle::Fed,
        absent_means: None,
        feeds: &["k_deferred_copy_pages"],
    },
    Hook {
        program: "inet_sk_error_report",
        attachments: &[tp("sock:inet_sk_error_report", "inet_sk_error_report")],
        requirement: "tracepoint sock:inet_sk_error_report (Linux 5.16+) and tp_btf (BTF)",
        on_demand: false,
        when_idle: WhenIdle::Fed,
        absent_means: None,
        feeds: &["k_zc_notifications"],
    },
    Hook {
        program: "inet_sock_set_state",
        attachments: &[tp("sock:inet_sock_set_state", "inet_sock_set_state")],
        requirement: "tracepoint sock:inet_sock_set_state (Linux 4.16+) and tp_btf (BTF)",
        on_demand: false,
        when_idle: WhenIdle::Fed,
        absent_means: None,
        feeds: &[],
    },
];
