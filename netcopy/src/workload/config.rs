//! What an experiment is: its workload, send mode, sizes, placement and options.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use super::Mode;
use crate::{
    device::Device,
    error::{Error, Result},
    netpath::{MAX_DATAGRAM, NetPath},
    placement::{Placement, Policy},
};

/// Which traffic pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// Each connection sends as fast as it can; the receiver reads everything.
    Stream,
    /// Each connection sends a message and waits for a same-sized reply.
    Rr,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::Stream, Workload::Rr];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Stream => "stream",
            Workload::Rr => "rr",
        }
    }
}

named_choice!(Workload, "workload", "stream or rr");

/// One experiment's parameters.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub workload: Workload,
    /// The network path the bytes take (set from the [`Network`] the experiment binds on).
    pub net_path: NetPath,
    /// Message size in bytes.
    pub size: usize,
    /// Connections, each with its own sender and receiver thread.
    pub threads: usize,
    /// Traffic before the measured window; it counts in totals but not in rates.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Address the server binds (loopback unless told otherwise).
    pub bind: IpAddr,
    /// Port the server listens on; 0 picks a free one.
    pub port: u16,
    /// Content of message 0 and every `sample_every`-th after it is checked byte for byte.
    pub sample_every: u64,
    /// Messages per connection a zero-copy mode may have in flight (their pages stay pinned
    /// until completion); see [`Config::ring_len`].
    pub ring: usize,
    /// Which CPU each worker thread is pinned to.
    pub placement: Placement,
    /// rr: receivers spin on non-blocking reads instead of sleeping in the kernel, so a round
    /// trip pays no idle wake-up.
    pub busy_poll: bool,
    /// stream: receivers map whole pages with `TCP_ZEROCOPY_RECEIVE` instead of copying
    /// (see [`zc_receive`]).
    pub zerocopy_receive: bool,
    /// The device the path sends through, read from the kernel when the path was bound.
    pub device: Option<Device>,
}

impl Config {
    /// Messages the sender cycles through. A copying mode's buffer is free again when the
    /// send returns, so it reuses one, cache-hot, as real senders (and iperf3) do; a
    /// zero-copy mode must leave a buffer alone until its completion, so it needs a pool.
    pub fn stamp_period(&self) -> Option<u64> {
        self.mode.stamp_period(self.size)
    }

    pub fn ring_len(&self) -> usize {
        if self.mode.is_zero_copy() {
            self.ring
        } else {
            1
        }
    }

    /// A config with netcopy's defaults for everything but what defines the experiment.
    pub fn new(mode: Mode, workload: Workload, size: usize, threads: usize) -> Self {
        Self {
            mode,
            workload,
            net_path: NetPath::Loopback,
            size,
            threads,
            warmup: Duration::from_millis(500),
            duration: Duration::from_secs(2),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: mode.default_port(),
            sample_every: 1024,
            ring: 16,
            placement: Placement::on_this_machine(Policy::default())
                .unwrap_or_else(|_| Placement::unpinned()),
            busy_poll: false,
            zerocopy_receive: false,
            device: None,
        }
    }
}

/// Refuses what a path cannot carry: replies from a sink, datagrams over the UDP maximum.
pub fn check_fits(config: &Config) -> Result<()> {
    if config.zerocopy_receive && (config.workload != Workload::Stream || config.net_path.is_sink())
    {
        return Err(Error::Unsupported(
            "zero-copy receive maps a TCP stream's pages: it needs --workload stream on a TCP path"
                .to_owned(),
        ));
    }
    if !config.net_path.is_sink() {
        return Ok(());
    }
    if config.workload == Workload::Rr {
        return Err(Error::Unsupported(format!(
            "workload rr cannot run on the {} path: nothing there replies (use --workload stream)",
            config.net_path
        )));
    }
    if config.mode == Mode::A5 {
        return Err(Error::Unsupported(format!(
            "mode a5 (sendfile) runs on TCP paths, not on the {} path (UDP)",
            config.net_path
        )));
    }
    if config.size > MAX_DATAGRAM {
        return Err(Error::Unsupported(format!(
            "size {} does not fit one UDP datagram on the {} path (at most {MAX_DATAGRAM} bytes)",
            config.size, config.net_path
        )));
    }
    Ok(())
}
