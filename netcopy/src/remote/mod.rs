//! One experiment, two processes: `netcopy serve` holds the receiving ends, `netcopy sweep
//! --connect` the sending ends, possibly on two hosts. A control connection carries JSON
//! lines: the client's request, the server's data port, and at the end the server's own
//! figures (bytes received, its perf counters and, when traced, its kernel counters), so one
//! row holds both sides.
//!
//! Each side's tracer counts only its own sockets (by port). Deliveries (the deferred copy)
//! are counted by the kernel that receives: when both processes share a kernel (same
//! `boot_id`), both tracers saw the same deliveries and the client's count is kept; across
//! hosts, each side's deliveries are its own and both are added.

mod protocol;

use std::{
    io::{BufReader, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    experiment::{self, KernelFigures, Outcome},
    interrupt,
    kernel::tracer::Tracer,
    netpath::NetPath,
    workload::{self, Config, Figures},
};
use protocol::{KernelSide, LineError, Reply, ServerReport};

/// The control port `serve` listens on unless told otherwise.
pub const DEFAULT_CONTROL_PORT: u16 = 7070;

/// How long either side waits for the other on the control connection: an experiment's
/// warmup and window plus the time its connections need to drain.
fn control_timeout(config: &Config) -> Duration {
    config.warmup + config.duration + Duration::from_secs(30)
}

/// Identifies the running kernel instance: two processes with the same one share a kernel.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn send<T: Serialize>(stream: &mut TcpStream, value: &T) -> Result<()> {
    let mut line = serde_json::to_vec(value).map_err(|source| Error::Json {
        what: "encoding a control message",
        source,
    })?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| Error::io("writing to the control connection", e))
}

/// A control message from the server, as the client's error.
fn receive<T: for<'de> Deserialize<'de>>(
    reader: &mut BufReader<TcpStream>,
    limit: Duration,
) -> Result<T> {
    protocol::receive(reader, "answer from the server", limit)
        .map_err(|e| Error::Peer(format!("control connection: {e}")))
}

/// How `serve` treats its clients.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The shared secret a request must carry, when set.
    pub token: Option<String>,
    /// How long a client may stay silent before it is told so and dropped.
    pub idle: Duration,
}

/// Control connections handled at once; one more is told the server is busy.
const MAX_CLIENTS: usize = 8;

/// Serves experiments on `bind`:`control_port` until Ctrl-C, SIGTERM or SIGHUP. Each control
/// connection has a thread of its own, so a silent or slow client holds up no other;
/// experiments run one at a time (they share the tracer, and would disturb each other's
/// figures). Nothing a client sends can stop `serve`: a bad request gets one error line and
/// the connection is closed.
pub fn serve(
    bind: IpAddr,
    control_port: u16,
    tracer: Option<Tracer>,
    options: ServeOptions,
) -> Result<()> {
    let control = TcpListener::bind((bind, control_port)).map_err(|source| Error::Port {
        addr: format!("{bind}:{control_port}"),
        source,
    })?;
    control
        .set_nonblocking(true)
        .map_err(|e| Error::io("configuring the control listener", e))?;
    say(format_args!("listening on {bind}:{control_port}"));
    if !bind.is_loopback() && options.token.is_none() {
        say(format_args!(
            "warning: no --token, so anyone who can reach {bind}:{control_port} can make this host (as root) run experiments"
        ));
    }
    let tracer = Arc::new(Mutex::new(tracer));
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    while !interrupt::requested() {
        clients.retain(|c| !c.is_finished());
        match control.accept() {
            Ok((stream, peer)) => {
                let _ = stream.set_nonblocking(false);
                if clients.len() >= MAX_CLIENTS {
                    let mut writer = stream;
                    let _ = send(&mut writer, &Reply::Failed("busy: too many clients".into()));
                    continue;
                }
                let (tracer, options) = (Arc::clone(&tracer), options.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("control-{peer}"))
                    .spawn(move || {
                        if let Err(e) = serve_client(stream, bind, &tracer, &options) {
                            say(format_args!("client {peer}: {e}"));
                        }
                    });
                match spawned {
                    Ok(handle) => clients.push(handle),
                    Err(e) => say(format_args!("client {peer}: no thread for it: {e}")),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                interrupt::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(Error::io("accepting a control connection", e)),
        }
    }
    // Every client thread wakes within a tick of the signal and ends its wait.
    for client in clients {
        let _ = client.join();
    }
    Ok(())
}

/// One line on stderr. A closed stderr (a terminal gone, a reader that stopped) must not stop
/// `serve`, so a failed write is ignored rather than a panic as in `eprintln!`.
fn say(what: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "netcopy serve: {what}");
}

/// Tells the client why its connection ends, and ends it.
fn refuse(writer: &mut TcpStream, why: String) -> Result<()> {
    let _ = send(writer, &Reply::Failed(why.clone()));
    Err(Error::Unsupported(format!("refused: {why}")))
}

fn serve_client(
    stream: TcpStream,
    bind: IpAddr,
    tracer: &Mutex<Option<Tracer>>,
    options: &ServeOptions,
) -> Result<()> {
    let mut writer = stream
        .try_clone()
        .map_err(|e| Error::io("duplicating the control connection", e))?;
    let mut reader = BufReader::new(stream);
    loop {
        let request: protocol::Request =
            match protocol::receive(&mut reader, "request", options.idle) {
                Ok(r) => r,
                // The client is done.
                Err(LineError::Closed) | Err(LineError::Interrupted) => return Ok(()),
                Err(e) => return refuse(&mut writer, e.to_string()),
            };
        if let Some(token) = &options.token
            && !protocol::token_matches(token, &request.token)
        {
            return refuse(&mut writer, "wrong or missing token".into());
        }
        let config = match request.config(bind) {
            Ok(config) => config,
            Err(why) => return refuse(&mut writer, format!("bad request: {why}")),
        };
        // One experiment at a time; a poisoned lock only means another client's thread
        // panicked, and the tracer is still whole.
        let mut tracer = tracer.lock().unwrap_or_else(|e| e.into_inner());
        let reply = run_served(&config, bind, tracer.as_mut(), &mut writer)?;
        drop(tracer);
        send(&mut writer, &reply)?;
    }
}

/// Runs one experiment's server side, telling the client its data port once ready.
fn run_served(
    config: &Config,
    bind: IpAddr,
    mut tracer: Option<&mut Tracer>,
    writer: &mut TcpStream,
) -> Result<Reply> {
    let listener = TcpListener::bind((bind, 0)).map_err(|source| Error::Port {
        addr: format!("{bind}:0"),
        source,
    })?;
    let endpoint = listener
        .local_addr()
        .map_err(|e| Error::io("reading the listener's address", e))?;
    let port = endpoint.port();
    if let Some(t) = tracer.as_deref_mut() {
        t.clear()?;
        t.watch_endpoint(endpoint, 1)?;
    }
    send(
        writer,
        &Reply::Ready {
            port,
            boot_id: boot_id(),
        },
    )?;
    let result = workload::run_server(config, listener);
    let kernel = match tracer {
        Some(t) => {
            t.unwatch_port(port)?;
            let flows = t.flows(1)?;
            Some(KernelSide::split(
                &flows,
                |k| k.local_port == port,
                t.unseen(config.net_path.is_sink()),
                t.skipped()?,
            ))
        }
        None => None,
    };
    Ok(match result {
        Ok(f) => Reply::Report(Box::new(ServerReport {
            window_bytes_received: f.window_bytes_received,
            bytes_sent: f.bytes_sent,
            bytes_received: f.bytes_received,
            recv_calls: f.recv_calls,
            verified_messages: f.verified_messages,
            send_counts: f.send_counts,
            perf: f.perf,
            kernel,
            zc_receive: f.zc_receive,
        })),
        Err(e) => Reply::Failed(e.to_string()),
    })
}

/// The client's end of the control connection.
pub struct Client {
    addr: SocketAddr,
    /// The server's shared secret, when it requires one.
    token: String,
    control: Option<(BufReader<TcpStream>, TcpStream)>,
}

impl Client {
    /// A client for the server at `addr`; connects on first use, and again after a failure.
    pub fn new(addr: SocketAddr, token: Option<String>) -> Self {
        Self {
            addr,
            token: token.unwrap_or_default(),
            control: None,
        }
    }

    fn control(&mut self) -> Result<&mut (BufReader<TcpStream>, TcpStream)> {
        if self.control.is_none() {
            let stream =
                TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).map_err(|e| {
                    Error::io(format!("connecting to netcopy serve at {}", self.addr), e)
                })?;
            let writer = stream
                .try_clone()
                .map_err(|e| Error::io("duplicating the control connection", e))?;
            self.control = Some((BufReader::new(stream), writer));
        }
        Ok(self.control.as_mut().expect("just connected"))
    }

    /// Runs one experiment with the server; a failure drops the control connection, so the
    /// next experiment starts clean.
    pub fn run(&mut self, config: &Config, tracer: Option<&mut Tracer>) -> Result<Outcome> {
        let result = self.try_run(config, tracer);
        if result.is_err() {
            self.control = None;
        }
        result
    }

    fn try_run(&mut self, config: &Config, mut tracer: Option<&mut Tracer>) -> Result<Outcome> {
        let mut config = config.clone();
        config.net_path = NetPath::Remote;
        let host = self.addr.ip();
        let timeout = control_timeout(&config);
        let token = self.token.clone();
        let (reader, writer) = self.control()?;
        send(
            writer,
            &protocol::Request {
                mode: config.mode.name().to_owned(),
                workload: config.workload.name().to_owned(),
                size: config.size,
                threads: config.threads,
                warmup_ms: config.warmup.as_millis() as u64,
                duration_ms: config.duration.as_millis() as u64,
                placement: config.placement.policy.name().to_owned(),
                server_cpus: config.placement.server_list().to_vec(),
                token,
                zerocopy_receive: config.zerocopy_receive,
            },
        )?;
        let (port, server_boot) = match receive(reader, timeout)? {
            Reply::Ready { port, boot_id } => (port, boot_id),
            Reply::Failed(why) => return Err(Error::Peer(format!("refused: {why}"))),
            Reply::Report(_) => return Err(Error::Peer("answered out of turn".to_owned())),
        };
        let server = SocketAddr::new(host, port);
        if let Some(t) = tracer.as_deref_mut() {
            t.clear()?;
            t.watch_endpoint(server, 1)?;
        }
        let result = workload::run_client(&config, server);
        let client_kernel = match tracer {
            Some(t) => {
                t.unwatch_port(port)?;
                Some(KernelSide::split(
                    &t.flows(1)?,
                    |k| k.local_port != port,
                    t.unseen(config.net_path.is_sink()),
                    t.skipped()?,
                ))
            }
            None => None,
        };
        let mut figures = result?;
        let (reader, _) = self.control()?;
        let report = match receive(reader, timeout)? {
            Reply::Report(report) => report,
            Reply::Failed(why) => return Err(Error::Peer(format!("side failed: {why}"))),
            Reply::Ready { .. } => return Err(Error::Peer("answered out of turn".to_owned())),
        };
        merge(&mut figures, &report);
        let kernel = match (client_kernel, &report.kernel) {
            (Some(c), Some(s)) => {
                let mut counters = c.sockets;
                counters.accumulate(&s.sockets);
                counters.accumulate(&c.deliveries);
                if server_boot != boot_id() {
                    counters.accumulate(&s.deliveries);
                }
                Some(KernelFigures {
                    counters,
                    unseen: c.unseen.into_iter().chain(s.unseen.clone()).collect(),
                    skipped: std::array::from_fn(|i| c.skipped[i] + s.skipped[i]),
                    ..KernelFigures::default()
                })
            }
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
        })
    }
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
