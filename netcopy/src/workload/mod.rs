//! The workloads: real servers and clients on real sockets, sending [`message::Message`]s
//! through one [`path::SendPath`].
//!
//! Measurement lives beside the hot loops, not in them: a loop only stamps, sends and (while
//! the phase says so) records one latency; throughput windows, totals and checks are taken by
//! the coordinator from counters the loops publish once.

pub mod completions;
mod crew;
pub mod errqueue;
pub mod message;
pub mod net;
pub mod path;
mod rr;
mod sink;
mod stream;
pub mod zc_receive;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
pub use path::{Mode, PathCounters};

use crate::{
    cpustat::{self, CpuFigures},
    error::{Error, Result},
    interrupt,
    netpath::{MAX_DATAGRAM, NetPath, Network},
    perf::{self, PerfFigures, Side},
    placement::{self, Placement, Policy},
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
    pub path: NetPath,
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
            path: NetPath::Loopback,
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
    /// CPU counters over the window, per side.
    pub perf: PerfFigures,
    /// Busy time of the experiment's CPUs over the window.
    pub cpu: CpuFigures,
    /// Run time of the observer's eBPF programs over the window, when traced with run-time
    /// statistics on.
    pub observer_time: Option<Duration>,
    /// With zero-copy receive: what the receivers mapped and copied.
    pub zc_receive: Option<zc_receive::ZcReceiveCounters>,
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

/// Where an experiment is in its life; loops read it once per message. It also collects the
/// worker threads' ids as they start, so counters can be opened on them from outside.
#[derive(Clone)]
pub struct PhaseClock {
    phase: Arc<AtomicU8>,
    threads: Arc<Mutex<Vec<(Side, i32)>>>,
    /// Set by a worker that failed: the experiment is over, however long its window.
    failed: Arc<AtomicBool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Warmup = 0,
    Measure = 1,
    Stop = 2,
}

impl PhaseClock {
    /// A clock for `workers` threads. Their registry is sized up front, so registering
    /// allocates nothing on a worker's thread.
    fn new(workers: usize) -> Self {
        Self {
            phase: Arc::new(AtomicU8::new(Phase::Warmup as u8)),
            threads: Arc::new(Mutex::new(Vec::with_capacity(workers))),
            failed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Waits `d`, or less when netcopy is asked to stop or a worker failed (its error ends
    /// the experiment now, not at the end of its window).
    fn wait(&self, d: Duration) {
        interrupt::sleep_unless(d, || self.failed.load(Ordering::Relaxed));
    }

    fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    #[inline]
    pub fn get(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Warmup,
            1 => Phase::Measure,
            _ => Phase::Stop,
        }
    }

    fn register(&self, side: Side) {
        let tid = perf::current_tid();
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((side, tid));
    }

    fn threads(&self) -> Vec<(Side, i32)> {
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// How long the coordinator waits for every worker to start before counting without it.
const START_WAIT: Duration = Duration::from_secs(5);

/// Reads the observer's total run time so far (the eBPF programs' kernel statistics): the
/// window's edges read it, so the observer's share of the window's CPU time can be told.
pub type ObserverClock<'a> = Option<&'a dyn Fn() -> Option<Duration>>;

/// Runs the experiment's clock on the calling thread: perf counters opened on every worker,
/// warmup, then the measured window (counters enabled, CPU time and the observer's run time
/// read at both edges), then stop. Returns the figures a workload starts from: the window's,
/// with nothing sent or received yet.
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
    clock.wait(config.warmup);
    let before = sum();
    let observer_before = observer.and_then(|o| o());
    let cpu_before = cpustat::Snapshot::read();
    counters.enable();
    clock.set(Phase::Measure);
    let start = Instant::now();
    clock.wait(config.duration);
    clock.set(Phase::Stop);
    counters.disable();
    let window = start.elapsed();
    let cpu_after = cpustat::Snapshot::read();
    let observer_time = match (observer_before, observer.and_then(|o| o())) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
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
                clock.failed.store(true, Ordering::Relaxed);
                clock.set(Phase::Stop);
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
        config.path = network.path();
        check_fits(&config)?;
        let addr = network.server_addr(config.bind);
        if config.path.is_sink() {
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

/// The server half: accepts `config.threads` connections on `listener` and serves them.
pub fn run_server(config: &Config, listener: TcpListener) -> Result<Figures> {
    let servers = (0..config.threads)
        .map(|_| net::accept(&listener))
        .collect::<Result<Vec<_>>>()?;
    drop(listener);
    run_ends(config, Vec::new(), servers, None)
}

/// Refuses what a path cannot carry: replies from a sink, datagrams over the UDP maximum.
pub fn check_fits(config: &Config) -> Result<()> {
    if config.zerocopy_receive && (config.workload != Workload::Stream || config.path.is_sink()) {
        return Err(Error::Unsupported(
            "zero-copy receive maps a TCP stream's pages: it needs --workload stream on a TCP path"
                .to_owned(),
        ));
    }
    if !config.path.is_sink() {
        return Ok(());
    }
    if config.workload == Workload::Rr {
        return Err(Error::Unsupported(format!(
            "workload rr cannot run on the {} path: nothing there replies (use --workload stream)",
            config.path
        )));
    }
    if config.mode == Mode::A5 {
        return Err(Error::Unsupported(format!(
            "mode a5 (sendfile) runs on TCP paths, not on the {} path (UDP)",
            config.path
        )));
    }
    if config.size > MAX_DATAGRAM {
        return Err(Error::Unsupported(format!(
            "size {} does not fit one UDP datagram on the {} path (at most {MAX_DATAGRAM} bytes)",
            config.size, config.path
        )));
    }
    Ok(())
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
