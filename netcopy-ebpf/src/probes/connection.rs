//! Connections: an adopted socket is forgotten when it closes.

use aya_ebpf::programs::BtfTracePointContext;

use super::{OrSkip as _, Skip};
use crate::{
    maps::CONSUMED,
    sock::{closing_connection, forget, watched},
};

/// include/net/tcp_states.h
const TCP_CLOSE: i32 = 7;

/// `sock:inet_sock_set_state(sk, oldstate, newstate)`: a TCP socket changing state. Fired
/// before a closing socket is unhashed, so its addresses and ports are still there to read.
pub fn try_inet_sock_set_state(ctx: &BtfTracePointContext) -> Result<(), Skip> {
    let sk: *const u8 = ctx.arg(0);
    let newstate: i32 = ctx.arg(2);
    if newstate != TCP_CLOSE {
        return Err(Skip);
    }
    let conn = closing_connection(sk).or_skip()?;
    // A later connection with the same addresses and ports starts from nothing consumed.
    if let Some(key) = watched(conn) {
        let _ = CONSUMED.remove(key);
    }
    forget(conn).or_skip()
}
