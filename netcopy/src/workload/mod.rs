//! The workloads: real servers and clients on real sockets, sending [`message::Message`]s
//! through one [`send::Sender`].
//!
//! Measurement lives beside the hot loops, not in them: a loop only stamps, sends and (while
//! the phase says so) records one latency; throughput windows, totals and checks are taken by
//! the coordinator from counters the loops publish once.

mod clock;
pub mod completions;
mod config;
mod crew;
pub mod errqueue;
pub mod message;
pub mod net;
mod ring;
mod rr;
pub mod send;
mod sink;
mod stream;
pub mod zc_receive;

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clock::measure_slices;
pub use clock::{Phase, PhaseClock, SLICE};
pub use config::{Config, Workload, check_fits};
use hdrhistogram::Histogram;
use ring::Ring;
pub use send::{Mode, SendCounts};

use crate::{
    cpustat::{self, CpuFigures},
    error::{Error, Result},
    interrupt,
    netpath::Network,
    perf::{self, PerfFigures},
    placement,
    side::Side,
};

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
    /// The senders' own counts, summed over every sending socket.
    pub send_counts: SendCounts,
    /// Stream: duration of each message's send call(s), ns.
    pub send_latency: Option<Histogram<u64>>,
    /// Rr: round trip per message, ns.
    pub round_trip: Option<Histogram<u64>>,
    /// CPU counters over the window, per side.
    pub perf: PerfFigures,
    /// Busy time of the experiment's CPUs over the window.
    pub cpu: CpuFigures,
    /// Run time of the observer's eBPF programs, and the experiment CPUs' busy time, over the
    /// warmup, when traced with run-time statistics (see [`RunTimeClock`]).
    pub observer_time: Option<(Duration, Duration)>,
    /// With zero-copy receive: what the receivers mapped and copied.
    pub zc_receive: Option<zc_receive::ZcReceiveCounters>,
    /// The receivers' rate in each [`SLICE`] of the window, Gbit/s (stream: the data; rr:
    /// the requests); empty when this process receives nothing (a sink, a `--connect`
    /// client). Their spread is the window's own noise, which a longer window averages out.
    pub slice_gbps: Vec<f64>,
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

/// How long the coordinator waits for every worker to start before counting without it.
const START_WAIT: Duration = Duration::from_secs(5);

/// The observer's run-time clock: `start` turns the kernel's statistics of its programs on
/// and reads their total run time, `stop` reads it and turns them off. The warmup's edges
/// call them: the statistics' clock reads would slow the window (see `run_time.rs`).
pub trait RunTimeClock {
    fn start(&self) -> Option<Duration>;
    fn stop(&self) -> Option<Duration>;
}
pub type ObserverClock<'a> = Option<&'a dyn RunTimeClock>;

/// Runs the experiment's clock on the calling thread: perf counters opened on every worker,
/// warmup (the observer's run time and CPU time read at its edges), then the measured window
/// (counters enabled, CPU time read at both edges), then stop. Returns the figures a workload
/// starts from: the window's, with nothing sent or received yet.
fn coordinate(
    config: &Config,
    clock: &PhaseClock,
    workers: usize,
    received: &[Arc<AtomicU64>],
    observer: ObserverClock<'_>,
) -> Figures {
    let sum = || {
        received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let started = Instant::now();
    while clock.threads().len() < workers && started.elapsed() < START_WAIT {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut counters = perf::Session::open(&clock.threads());
    let observer_before = observer.and_then(|o| o.start());
    let warm_cpu = observer_before.and_then(|_| cpustat::Snapshot::read());
    clock.wait(config.warmup);
    let before = sum();
    let observer_after = observer.and_then(|o| o.stop());
    let cpu_before = cpustat::Snapshot::read();
    counters.enable();
    clock.set(Phase::Measure);
    let start = Instant::now();
    let slice_gbps = measure_slices(clock, config.duration, start, before, sum);
    clock.set(Phase::Stop);
    counters.disable();
    let window = start.elapsed();
    let cpu_after = cpustat::Snapshot::read();
    let observer_time = match (observer_before, observer_after) {
        (Some(a), Some(b)) => {
            let warm = cpustat::measure(
                warm_cpu.as_ref(),
                cpu_before.as_ref(),
                &config.placement,
                config.threads,
            );
            warm.busy.map(|busy| (b.saturating_sub(a), busy))
        }
        _ => None,
    };
    Figures {
        window,
        window_bytes_received: sum() - before,
        perf: counters.read(),
        cpu: cpustat::measure(
            cpu_before.as_ref(),
            cpu_after.as_ref(),
            &config.placement,
            config.threads,
        ),
        observer_time,
        slice_gbps: if received.is_empty() {
            Vec::new()
        } else {
            slice_gbps
        },
        ..Figures::default()
    }
}

/// Starts worker `i` of `side`, pinned where the placement says; it pins itself and
/// registers its thread id with the clock before any work.
fn spawn<T: Send + 'static>(
    name: String,
    side: Side,
    i: usize,
    config: &Config,
    clock: &PhaseClock,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<std::thread::JoinHandle<std::io::Result<T>>> {
    if crew::injected_spawn_failure() {
        return Err(Error::io(
            "spawning a worker thread",
            std::io::Error::other("failure injected by NETCOPY_FAIL_SPAWN"),
        ));
    }
    let clock = clock.clone();
    let cpu = config.placement.cpu(side, i);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            if let Some(cpu) = cpu {
                placement::pin_current_thread(cpu).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("pinning to CPU {cpu}: {e}"))
                })?;
            }
            clock.register(side);
            let result = work();
            if result.is_err() {
                clock.fail();
            }
            result
        })
        .map_err(|e| Error::io("spawning a worker thread", e))
}

/// The receiving end of an experiment.
enum Server {
    /// A TCP listener; the workload connects to it.
    Listener(TcpListener),
    /// An address that swallows datagrams; nothing receives them.
    Sink(SocketAddr),
}

/// A bound server socket, ready to run: bind first, so a tracer can watch the port before the
/// first byte moves.
pub struct Prepared {
    config: Config,
    server: Server,
}

impl Prepared {
    /// Binds the experiment's listening socket on the machine's loopback.
    pub fn bind(config: Config) -> Result<Self> {
        Self::bind_on(config, &Network::loopback())
    }

    /// Binds the experiment's receiving end on `network` (the calling thread must be the
    /// one that built it).
    pub fn bind_on(mut config: Config, network: &Network) -> Result<Self> {
        config.net_path = network.path();
        config.device = network.device();
        check_fits(&config)?;
        let addr = network.server_addr(config.bind);
        if config.net_path.is_sink() {
            let port = match config.port {
                0 => config.mode.default_port(),
                port => port,
            };
            let server = Server::Sink(SocketAddr::new(addr, port));
            return Ok(Self { config, server });
        }
        let listener = network
            .in_server_namespace(|| TcpListener::bind((addr, config.port)))?
            .map_err(|source| Error::Port {
                addr: format!("{addr}:{}", config.port),
                source,
            })?;
        Ok(Self {
            config,
            server: Server::Listener(listener),
        })
    }

    /// The server's address: where it listens (with the port the kernel picked when asked
    /// for 0), or the sink's.
    pub fn endpoint(&self) -> Result<SocketAddr> {
        match &self.server {
            Server::Listener(l) => l
                .local_addr()
                .map_err(|e| Error::io("reading the listener's address", e)),
            Server::Sink(addr) => Ok(*addr),
        }
    }

    /// The port the server listens on (the one the kernel picked when asked for 0).
    pub fn port(&self) -> u16 {
        self.endpoint().map_or(0, |a| a.port())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs warmup and the measured window, drains, and returns the figures. An experiment
    /// cut short by Ctrl-C or SIGTERM is abandoned: its figures would not mean anything.
    pub fn run(self) -> Result<Figures> {
        self.run_observed(None)
    }

    /// [`Prepared::run`], reading `observer`'s run time at the window's edges.
    pub fn run_observed(self, observer: ObserverClock<'_>) -> Result<Figures> {
        let figures = match self.server {
            Server::Listener(listener) => {
                let mut clients = Vec::with_capacity(self.config.threads);
                let mut servers = Vec::with_capacity(self.config.threads);
                for _ in 0..self.config.threads {
                    let (client, server) = net::connected_pair(&listener)?;
                    clients.push(client);
                    servers.push(server);
                }
                drop(listener);
                run_ends(&self.config, clients, servers, observer)
            }
            Server::Sink(addr) => sink::run(&self.config, addr, observer),
        }?;
        if interrupt::requested() {
            return Err(Error::Interrupted);
        }
        Ok(figures)
    }
}

/// Runs the workload over the ends this process holds (both, or one side of a two-process
/// experiment).
fn run_ends(
    config: &Config,
    clients: Vec<TcpStream>,
    servers: Vec<TcpStream>,
    observer: ObserverClock<'_>,
) -> Result<Figures> {
    match config.workload {
        Workload::Stream => stream::run(config, clients, servers, observer),
        Workload::Rr => rr::run(config, clients, servers, observer),
    }
}

/// The client half of a two-process experiment: `config.threads` connections to `server`,
/// each sending. Receive-side figures are the server's to report.
pub fn run_client(config: &Config, server: SocketAddr) -> Result<Figures> {
    let clients = (0..config.threads)
        .map(|_| net::connect(server))
        .collect::<Result<Vec<_>>>()?;
    let figures = run_ends(config, clients, Vec::new(), None)?;
    if interrupt::requested() {
        return Err(Error::Interrupted);
    }
    Ok(figures)
}

/// The server half: serves `servers`, the `config.threads` connections its caller accepted
/// (and prepared with [`net::prepare`]).
pub fn run_server(config: &Config, servers: Vec<TcpStream>) -> Result<Figures> {
    run_ends(config, Vec::new(), servers, None)
}

/// The buffer bytes the server half of `config` allocates, from the functions the allocating
/// code sizes its buffers with: per connection, a stream receiver's read buffer, or an rr
/// answerer's ring, request buffer and sender's own. `serve` refuses a request over its
/// memory cap with this figure before allocating any of it.
pub fn server_footprint(config: &Config) -> u64 {
    let per_connection = match config.workload {
        Workload::Stream => stream::receiver_footprint(config),
        Workload::Rr => rr::server_footprint(config),
    };
    per_connection.saturating_mul(config.threads as u64)
}

/// Runs one whole experiment on loopback: bind, run, figures.
pub fn run(config: Config) -> Result<Figures> {
    Prepared::bind(config)?.run()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The request issue 26 found unbounded: rr, 1024 connections of 64 MiB messages.
    #[test]
    fn the_largest_rr_request_needs_its_rings_and_request_buffers() {
        let mib64 = message::MAX_SIZE as u64;
        let footprint = |mode| server_footprint(&Config::new(mode, Workload::Rr, 64 << 20, 1024));
        // a3/a4: 16 messages in the ring and one request buffer per connection.
        assert_eq!(footprint(Mode::A3), 1024 * 17 * mib64);
        assert_eq!(footprint(Mode::A4), 1024 * 17 * mib64);
        // a1: one message, one request buffer, the two-copy buffer.
        assert_eq!(footprint(Mode::A1), 1024 * 3 * mib64);
        assert_eq!(footprint(Mode::A2), 1024 * 2 * mib64);
        // a5: one message, one request buffer, the one-message file and its content.
        assert_eq!(footprint(Mode::A5), 1024 * 5 * mib64);
        let stream = Config::new(Mode::A3, Workload::Stream, 64 << 20, 1024);
        assert_eq!(server_footprint(&stream), 1024 * (128 << 10));
    }
}
