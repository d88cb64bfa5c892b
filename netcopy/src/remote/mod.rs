//! One experiment, two processes: `netcopy serve` holds the receiving ends, `netcopy sweep
//! --connect` the sending ends, possibly on two hosts. A request connection carries JSON
//! lines: the client's request, the server's data port, and at the end the server's own
//! figures (bytes received, its perf counters and, when traced, its kernel counters), so one
//! row holds both sides.
//!
//! Each side's tracer counts only its own sockets (by port). Deliveries (the deferred copy)
//! are counted by the kernel that receives: when both processes share a kernel (same
//! `boot_id`), both tracers saw the same deliveries and the client's count is kept; across
//! hosts, each side's deliveries are its own and both are added.

mod guard;
mod protocol;
mod serve;
mod wire;

use std::{
    io::BufReader,
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use serde::Deserialize;

pub use guard::MemoryCap;
pub use serve::{ServeOptions, serve};

use crate::{
    error::{Error, Result},
    experiment::{self, KernelFigures, Observer, Outcome},
    kernel::tracer::Tracer,
    netpath::NetPath,
    workload::{self, Config, Figures},
};
use protocol::{KernelSide, Reply, ServerReport};

/// The port `serve` takes requests on unless told otherwise.
pub const DEFAULT_REQUEST_PORT: u16 = 7070;

/// How long either side waits for the other on the request connection: an experiment's
/// warmup and window plus the time its connections need to drain.
fn exchange_timeout(config: &Config) -> Duration {
    config.warmup + config.duration + Duration::from_secs(30)
}

/// Identifies the running kernel instance: two processes with the same one share a kernel.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A protocol message from the server, as the client's error.
fn receive<T: for<'de> Deserialize<'de>>(
    reader: &mut BufReader<TcpStream>,
    limit: Duration,
) -> Result<T> {
    protocol::receive(reader, "answer from the server", limit)
        .map_err(|e| Error::Peer(format!("request connection: {e}")))
}

/// The client's end of the request connection.
pub struct Client {
    addr: SocketAddr,
    /// The server's shared secret, when it requires one.
    token: String,
    connection: Option<(BufReader<TcpStream>, TcpStream)>,
}

impl Client {
    /// A client for the server at `addr`; connects on first use, and again after a failure.
    pub fn new(addr: SocketAddr, token: Option<String>) -> Self {
        Self {
            addr,
            token: token.unwrap_or_default(),
            connection: None,
        }
    }

    fn connection(&mut self) -> Result<&mut (BufReader<TcpStream>, TcpStream)> {
        if self.connection.is_none() {
            let stream =
                TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).map_err(|e| {
                    Error::io(format!("connecting to netcopy serve at {}", self.addr), e)
                })?;
            let writer = stream
                .try_clone()
                .map_err(|e| Error::io("duplicating the request connection", e))?;
            self.connection = Some((BufReader::new(stream), writer));
        }
        Ok(self.connection.as_mut().expect("just connected"))
    }

    /// Runs one experiment with the server; a failure drops the request connection, so the
    /// next experiment starts clean.
    pub fn run(&mut self, config: &Config, observer: Observer<'_>) -> Result<Outcome> {
        let result = self.try_run(config, observer);
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    fn try_run(&mut self, config: &Config, observer: Observer<'_>) -> Result<Outcome> {
        let detach = !matches!(observer, Observer::Traced(_));
        let (mut tracer, detached) = observer.split()?;
        let mut config = config.clone();
        config.net_path = NetPath::Remote;
        let host = self.addr.ip();
        let timeout = exchange_timeout(&config);
        let request = protocol::Request::of(&config, self.token.clone(), detach);
        let (reader, writer) = self.connection()?;
        wire::send(writer, &request, Instant::now() + timeout)?;
        let (port, server_boot) = match receive(reader, timeout)? {
            Reply::Ready { port, boot_id } => (port, boot_id),
            Reply::Failed(why) => return Err(Error::Peer(format!("refused: {why}"))),
            Reply::Report(_) => return Err(Error::Peer("answered out of turn".to_owned())),
        };
        let server = SocketAddr::new(host, port);
        // This side's programs only: the server's are not reported over the protocol.
        let missed_before = tracer
            .as_deref()
            .map(Tracer::missed_runs)
            .unwrap_or_default();
        if let Some(t) = tracer.as_deref_mut() {
            t.count_copied_at_transmit(true)?;
            t.clear()?;
            t.watch_endpoint(server, 1)?;
        }
        let mut attached = attached_now(&tracer, &detached)?;
        let result = workload::run_client(&config, server);
        if let Some(t) = detached {
            attached = attached.max(t.attached_in_kernel()?);
        }
        let mut missed_runs = Vec::new();
        let client_kernel = match tracer {
            Some(t) => {
                t.unwatch_port(port)?;
                missed_runs = experiment::missed_since(&missed_before, &t.missed_runs());
                Some(KernelSide::split(
                    &t.flows(1)?,
                    |k| k.local_port != port,
                    t.unseen(),
                    t.skipped()?,
                ))
            }
            None => None,
        };
        let mut figures = result?;
        let (reader, _) = self.connection()?;
        let report = match receive(reader, timeout)? {
            Reply::Report(report) => report,
            Reply::Failed(why) => return Err(Error::Peer(format!("side failed: {why}"))),
            Reply::Ready { .. } => return Err(Error::Peer("answered out of turn".to_owned())),
        };
        merge(&mut figures, &report);
        // Both kernels' counts: either side's programs would have slowed the run.
        let attached = match (attached, report.attached_programs) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        if detach && let Some(programs) = attached.filter(|n| *n > 0) {
            return Err(Error::StillAttached { programs });
        }
        let kernel = match (client_kernel, &report.kernel) {
            (Some(c), Some(s)) => Some(both_sides(c, s, server_boot == boot_id(), missed_runs)),
            _ => None,
        };
        let disagreements = kernel
            .as_ref()
            .map(|k| experiment::cross_check(&config, &figures, k))
            .unwrap_or_default();
        Ok(Outcome {
            config,
            figures,
            kernel,
            disagreements,
            attached_programs: attached,
        })
    }
}

/// The kernel figures of both sides of a run; the server's deliveries count only when it runs
/// on another machine (`same_boot` false): on one, they are the client's, counted already.
fn both_sides(
    c: KernelSide,
    s: &KernelSide,
    same_boot: bool,
    missed_runs: Vec<(String, u64)>,
) -> KernelFigures {
    let mut counters = c.sockets;
    counters.accumulate(&s.sockets);
    counters.accumulate(&c.deliveries);
    if !same_boot {
        counters.accumulate(&s.deliveries);
    }
    KernelFigures {
        counters,
        unseen: c.unseen.into_iter().chain(s.unseen.clone()).collect(),
        skipped: std::array::from_fn(|i| c.skipped[i] + s.skipped[i]),
        missed_runs,
        ..KernelFigures::default()
    }
}

/// How many of this side's programs the kernel has attached now, when it loaded any.
fn attached_now(
    tracer: &Option<&mut Tracer>,
    detached: &Option<&mut Tracer>,
) -> Result<Option<u32>> {
    tracer
        .as_deref()
        .or(detached.as_deref())
        .map(Tracer::attached_in_kernel)
        .transpose()
        .map(Option::flatten)
}

/// Folds the server's side into the client's figures.
fn merge(figures: &mut Figures, report: &ServerReport) {
    figures.window_bytes_received = report.window_bytes_received;
    figures.bytes_sent += report.bytes_sent;
    figures.bytes_received += report.bytes_received;
    figures.recv_calls += report.recv_calls;
    figures.verified_messages += report.verified_messages;
    figures.send_counts.accumulate(&report.send_counts);
    figures.perf.server = report.perf.server;
    if let Some(zc) = &report.zc_receive {
        figures
            .zc_receive
            .get_or_insert_with(Default::default)
            .accumulate(zc);
    }
    if figures.perf.hw_unavailable.is_none() {
        figures.perf.hw_unavailable = report.perf.hw_unavailable.clone();
    }
}
