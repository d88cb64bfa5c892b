//! Names of the maps and globals, so both sides spell them once.

/// Global in the programs' .rodata: the [`KernelOffsets`](super::KernelOffsets).
pub const OFFSETS: &str = "OFFSETS";
/// Hash map: port (host order) -> [`Watch`](super::Watch): the endpoint on that port
/// whose sockets are counted (an experiment's server, or any address for `trace --port`).
pub const WATCHED_PORTS: &str = "WATCHED_PORTS";
/// Hash map: process (tgid) -> slot. A socket such a process sends or receives on in
/// process context has its connection added to `WATCHED_CONNS` under that slot.
pub const WATCHED_TGIDS: &str = "WATCHED_TGIDS";
/// Hash map: connection ([`FlowKey`](super::FlowKey) with slot 0) -> slot: the sockets
/// adopted from watched processes, each forgotten when it closes.
pub const WATCHED_CONNS: &str = "WATCHED_CONNS";
/// Per-CPU array: flow index -> [`FlowCounters`](super::FlowCounters).
pub const FLOWS: &str = "FLOWS";
/// Array: flow index -> its [`FlowKey`](super::FlowKey) (slot `u32::MAX`: void).
pub const FLOW_KEYS: &str = "FLOW_KEYS";
/// Hash map: [`FlowKey`](super::FlowKey) -> flow index, where a flow's index is found once.
pub const FLOW_INDEX: &str = "FLOW_INDEX";
/// Array of one u64: the next free flow index.
pub const FLOW_NEXT: &str = "FLOW_NEXT";
/// Array: thread slot -> the thread's [`send_decision`](super::send_decision) for its send in
/// progress, packed with its thread id.
pub const SEND_DECISIONS: &str = "SEND_DECISIONS";
/// Per-CPU array of one [`FlowKey`](super::FlowKey): the flow whose pinned skb this CPU is
/// delivering, so page allocations under `skb_copy_ubufs` can be attributed.
pub const DELIVERING: &str = "DELIVERING";
/// Ring buffer of [`Delivery`](super::Delivery) records, one per pinned TCP skb entering
/// local delivery; userspace tells first deliveries from repeated ones by sequence number.
pub const DELIVERIES: &str = "DELIVERIES";
/// Per-CPU scratch buffer for kernel stacks.
pub const STACK_SCRATCH: &str = "STACK_SCRATCH";
/// Per-CPU array, indexed by slot, of [`FlowCounters`](super::FlowCounters): the sockets
/// that found `FLOWS` full, counted together.
pub const OVERFLOW: &str = "OVERFLOW";
/// Per-CPU array, one u64 per [`Skipped`](super::Skipped) reason: events the probes saw
/// but could not count, so a full map never makes a figure silently smaller.
pub const SKIPPED: &str = "SKIPPED";
