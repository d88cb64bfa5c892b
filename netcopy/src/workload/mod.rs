//! The workloads: real servers and clients on real sockets, sending [`message::Message`]s
//! through one [`path::SendPath`].
//!
//! Measurement lives beside the hot loops, not in them: a loop only stamps, sends and (while
//! the phase says so) records one latency; throughput windows, totals and checks are taken by
//! the coordinator from counters the loops publish once.

pub mod completions;
pub mod errqueue;
pub mod message;
pub mod net;
pub mod path;
mod rr;
mod stream;

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, TcpListener},
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
pub use path::{Mode, PathCounters};

use crate::error::{Error, Result};

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

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown workload '{s}' (expected stream or rr)"))
    }
}

/// One experiment's parameters.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub workload: Workload,
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
    /// Messages per connection that may be in flight (zero-copy keeps their pages pinned).
    pub ring: usize,
}

impl Config {
    /// A config with netcopy's defaults for everything but what defines the experiment.
    pub fn new(mode: Mode, workload: Workload, size: usize, threads: usize) -> Self {
        Self {
            mode,
            workload,
            size,
            threads,
            warmup: Duration::from_millis(500),
            duration: Duration::from_secs(2),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: mode.default_port(),
            sample_every: 1024,
            ring: 16,
        }
    }
}

/// What one experiment measured in userspace.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Length of the measured window.
    pub window: Duration,
    /// Messages the clients sent inside the window.
    pub window_messages: u64,
    /// Bytes the clients sent inside the window, over all connections.
    pub window_bytes_sent: u64,
    /// Bytes the receiving side read inside the window, over all connections.
    pub window_bytes_received: u64,
    /// Every byte sent by every socket of the experiment (both directions for rr), whole run.
    pub bytes_sent: u64,
    /// Every byte read by every socket of the experiment, whole run.
    pub bytes_received: u64,
    /// Receive calls that returned data, whole run.
    pub recv_calls: u64,
    /// Messages whose content was checked byte for byte.
    pub verified_messages: u64,
    /// Send paths' own counts, summed over every sending socket.
    pub path: PathCounters,
    /// Stream: duration of each message's send call(s), ns.
    pub send_latency: Option<Histogram<u64>>,
    /// Rr: round trip per message, ns.
    pub round_trip: Option<Histogram<u64>>,
}

impl Figures {
    fn rate(&self, bytes: u64) -> f64 {
        bytes as f64 * 8.0 / self.window.as_secs_f64() / 1e9
    }

    /// Client bytes per second over the window, in Gbit/s.
    pub fn send_gbps(&self) -> f64 {
        self.rate(self.window_bytes_sent)
    }

    /// Receiver bytes per second over the window, in Gbit/s.
    pub fn recv_gbps(&self) -> f64 {
        self.rate(self.window_bytes_received)
    }

    pub fn messages_per_sec(&self) -> f64 {
        self.window_messages as f64 / self.window.as_secs_f64()
    }
}

/// Histogram for nanosecond latencies from 1 ns to 60 s at 3 significant digits; sized once so
/// recording never allocates.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static bounds are valid")
}

/// Where an experiment is in its life; loops read it once per message.
#[derive(Clone)]
pub struct PhaseClock(Arc<AtomicU8>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Warmup = 0,
    Measure = 1,
    Stop = 2,
}

impl PhaseClock {
    fn new() -> Self {
        Self(Arc::new(AtomicU8::new(Phase::Warmup as u8)))
    }

    fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Release);
    }

    #[inline]
    pub fn get(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            0 => Phase::Warmup,
            1 => Phase::Measure,
            _ => Phase::Stop,
        }
    }
}

/// A bound server socket, ready to run: bind first, so a tracer can watch the port before the
/// first byte moves.
pub struct Prepared {
    config: Config,
    listener: TcpListener,
}

impl Prepared {
    /// Binds the experiment's listening socket.
    pub fn bind(config: Config) -> Result<Self> {
        let listener =
            TcpListener::bind((config.bind, config.port)).map_err(|source| Error::Port {
                addr: format!("{}:{}", config.bind, config.port),
                source,
            })?;
        Ok(Self { config, listener })
    }

    /// The port the server listens on (the one the kernel picked when asked for 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs warmup and the measured window, drains, and returns the figures.
    pub fn run(self) -> Result<Figures> {
        match self.config.workload {
            Workload::Stream => stream::run(&self.config, self.listener),
            Workload::Rr => rr::run(&self.config, self.listener),
        }
    }
}

/// Runs one whole experiment: bind, run, figures.
pub fn run(config: Config) -> Result<Figures> {
    Prepared::bind(config)?.run()
}

/// Runs the experiment's clock on the calling thread: warmup, then the measured window, then
/// stop. Returns the window's length and how many bytes the `received` counters grew by in it.
fn coordinate(config: &Config, clock: &PhaseClock, received: &[Arc<AtomicU64>]) -> (Duration, u64) {
    let sum = || {
        received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    std::thread::sleep(config.warmup);
    let before = sum();
    clock.set(Phase::Measure);
    let start = Instant::now();
    std::thread::sleep(config.duration);
    clock.set(Phase::Stop);
    let window = start.elapsed();
    (window, sum() - before)
}

/// Starts a named worker thread.
fn spawn<T: Send + 'static>(
    name: String,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<std::thread::JoinHandle<std::io::Result<T>>> {
    std::thread::Builder::new()
        .name(name)
        .spawn(work)
        .map_err(|e| Error::io("spawning a worker thread", e))
}

/// Joins a worker, turning a panic into an error instead of taking the process down.
fn join<T>(handle: std::thread::JoinHandle<std::io::Result<T>>, what: &str) -> Result<T> {
    match handle.join() {
        Ok(result) => result.map_err(|e| Error::io(what.to_owned(), e)),
        Err(_) => Err(Error::io(
            what.to_owned(),
            std::io::Error::other("worker panicked"),
        )),
    }
}

/// Joins every worker, folding each one's output in; after all are joined, returns the first
/// failure, if any (a failed worker must not leave the others running).
fn join_all<T>(
    workers: Vec<std::thread::JoinHandle<std::io::Result<T>>>,
    what: &str,
    mut fold: impl FnMut(T),
) -> Result<()> {
    let mut first_error = None;
    for worker in workers {
        match join(worker, what) {
            Ok(out) => fold(out),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A ring of messages and, per slot, the ticket of its last send: a slot is restamped only
/// once the kernel has released it.
struct Ring {
    messages: Vec<message::Message>,
    tickets: Vec<path::Ticket>,
}

impl Ring {
    fn new(size: usize, len: usize) -> Self {
        Self {
            messages: (0..len.max(1))
                .map(|_| message::Message::new(size))
                .collect(),
            tickets: vec![None; len.max(1)],
        }
    }

    /// Sends message `seq` through `path`, reusing its slot only after release. Returns the
    /// nanoseconds the send call(s) took.
    #[inline]
    fn send(&mut self, path: &mut dyn path::SendPath, seq: u64) -> std::io::Result<u64> {
        let slot = (seq % self.messages.len() as u64) as usize;
        path.wait_released(self.tickets[slot])?;
        let msg = &mut self.messages[slot];
        msg.stamp(seq);
        let start = Instant::now();
        self.tickets[slot] = path.send(msg)?;
        Ok(start.elapsed().as_nanos() as u64)
    }
}
