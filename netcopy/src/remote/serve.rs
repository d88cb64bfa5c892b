//! `netcopy serve`: the receiving ends of experiments for clients that may be hostile. Every
//! request is checked before anything runs (its fields, its token, the memory its buffers
//! need), every wait has the request's deadline and wakes every [`TICK`], and data
//! connections are taken from the request peer's address only.

use std::{
    io::{BufReader, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{
    boot_id, exchange_timeout,
    guard::{Bench, MemoryCap, Penalties, TICK, Turn},
    protocol::{self, KernelSide, LineError, Reply, ServerReport},
    wire,
};
use crate::{
    error::{Error, Result},
    interrupt,
    kernel::tracer::Tracer,
    workload::{self, Config},
};

/// How `serve` treats its clients.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The shared secret a request must carry, when set (never empty).
    pub token: Option<String>,
    /// How long a client may stay silent (not sending its request, not reading a reply, not
    /// opening its data connections) before it is told so and dropped.
    pub idle: Duration,
    /// The most buffer memory one request may make `serve` allocate.
    pub max_memory: MemoryCap,
}

/// Request connections handled at once; one more is told the server is busy.
const MAX_CLIENTS: usize = 8;

/// What every client thread shares.
struct Shared {
    bind: IpAddr,
    bench: Bench,
    penalties: Penalties,
    options: ServeOptions,
}

/// Serves experiments on `bind`:`port` until Ctrl-C, SIGTERM or SIGHUP. Each request
/// connection has a thread of its own, so a silent or slow client holds up no other;
/// experiments run one at a time (they share the tracer, and would disturb each other's
/// figures). Nothing a client sends can stop `serve`: a bad request gets one error line and
/// the connection is closed.
pub fn serve(bind: IpAddr, port: u16, tracer: Option<Tracer>, options: ServeOptions) -> Result<()> {
    if options.token.as_deref() == Some("") {
        return Err(Error::Unsupported(
            "an empty token protects nothing: give a secret, or no token".to_owned(),
        ));
    }
    let listener = TcpListener::bind((bind, port)).map_err(|source| Error::Port {
        addr: format!("{bind}:{port}"),
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("configuring the request listener", e))?;
    say(format_args!("listening on {bind}:{port}"));
    if !bind.is_loopback() && options.token.is_none() {
        say(format_args!(
            "warning: no --token, so anyone who can reach {bind}:{port} can make this host (as root) run experiments"
        ));
    }
    let shared = Arc::new(Shared {
        bind,
        bench: Bench::new(tracer),
        penalties: Penalties::default(),
        options,
    });
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    while !interrupt::requested() {
        clients.retain(|c| !c.is_finished());
        match listener.accept() {
            Ok((stream, peer)) => {
                let _ = stream.set_nonblocking(false);
                if clients.len() >= MAX_CLIENTS {
                    let mut writer = stream;
                    let busy = Reply::Failed("busy: too many clients".into());
                    let _ = wire::send(&mut writer, &busy, Instant::now() + TICK);
                    continue;
                }
                let shared = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name(format!("request-{peer}"))
                    .spawn(move || {
                        if let Err(e) = serve_client(stream, peer, &shared) {
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
            Err(e) => return Err(Error::io("accepting a request connection", e)),
        }
    }
    // Every client thread's own waits wake within a tick of the signal.
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

/// Tells the client why its connection ends (within `idle`), and ends it.
fn refuse(writer: &mut TcpStream, why: String, idle: Duration) -> Result<()> {
    let _ = wire::send(writer, &Reply::Failed(why.clone()), Instant::now() + idle);
    Err(Error::Unsupported(format!("refused: {why}")))
}

fn serve_client(stream: TcpStream, peer: SocketAddr, shared: &Shared) -> Result<()> {
    let options = &shared.options;
    let mut writer = stream
        .try_clone()
        .map_err(|e| Error::io("duplicating the request connection", e))?;
    let mut reader = BufReader::new(stream);
    loop {
        let request: protocol::Request =
            match protocol::receive(&mut reader, "request", options.idle) {
                Ok(r) => r,
                // The client is done.
                Err(LineError::Closed) | Err(LineError::Interrupted) => return Ok(()),
                Err(e) => return refuse(&mut writer, e.to_string(), options.idle),
            };
        if let Some(token) = &options.token
            && let Err(why) = shared.penalties.check(peer.ip(), token, &request.token)
        {
            return refuse(&mut writer, why, options.idle);
        }
        let config = match request.config(shared.bind) {
            Ok(config) => config,
            Err(why) => return refuse(&mut writer, format!("bad request: {why}"), options.idle),
        };
        if let Err(why) = options
            .max_memory
            .admit(workload::server_footprint(&config))
        {
            return refuse(&mut writer, why, options.idle);
        }
        // One deadline for the whole request: its turn, its data connections, its run and
        // its report.
        let deadline = Instant::now() + exchange_timeout(&config);
        let detach = request.detach;
        let reply = match run_served(&config, detach, peer.ip(), shared, &mut writer, deadline) {
            Ok(reply) => reply,
            Err(Error::Interrupted) => return Ok(()),
            Err(e) => Reply::Failed(e.to_string()),
        };
        wire::send(&mut writer, &reply, deadline)?;
    }
}

/// Runs one experiment's server side, telling the client its data port once ready.
fn run_served(
    config: &Config,
    detach: bool,
    peer: IpAddr,
    shared: &Shared,
    writer: &mut TcpStream,
    deadline: Instant,
) -> Result<Reply> {
    let turn = shared.bench.turn(deadline)?;
    let bind = shared.bind;
    let listener = TcpListener::bind((bind, 0)).map_err(|source| Error::Port {
        addr: format!("{bind}:0"),
        source,
    })?;
    let endpoint = listener
        .local_addr()
        .map_err(|e| Error::io("reading the listener's address", e))?;
    let port = endpoint.port();
    let mut attached = arm_tracer(shared, &turn, detach, endpoint)?;
    // A client silent for `idle` is dropped: it has that long to read the port and connect.
    let idle = deadline.min(Instant::now() + shared.options.idle);
    let ready = Reply::Ready {
        port,
        boot_id: boot_id(),
    };
    // The first few refusals are named; a flood of them is not copied line by line to stderr.
    let mut refused = 0u64;
    let result = wire::send(writer, &ready, idle)
        .and_then(|()| {
            wire::accept_from(&listener, peer, config.threads, idle, |from| {
                refused += 1;
                if refused <= 3 {
                    say(format_args!(
                        "refused a data connection from {from}: only {peer} may connect"
                    ));
                }
            })
        })
        .and_then(|servers| {
            drop(listener);
            workload::run_server(config, servers)
        });
    let kernel = read_kernel_side(shared, &turn, detach, port, &mut attached)?;
    drop(turn);
    if refused > 3 {
        say(format_args!("refused {refused} data connections in all"));
    }
    let f = result?;
    Ok(Reply::Report(Box::new(ServerReport {
        window_bytes_received: f.window_bytes_received,
        bytes_sent: f.bytes_sent,
        bytes_received: f.bytes_received,
        recv_calls: f.recv_calls,
        verified_messages: f.verified_messages,
        send_counts: f.send_counts,
        perf: f.perf,
        kernel,
        zc_receive: f.zc_receive,
        attached_programs: attached,
    })))
}

/// Attaches and clears the programs and watches `endpoint`, or detaches them for an untraced
/// run. Returns how many programs the kernel has attached (an untraced run's should be none).
fn arm_tracer(
    shared: &Shared,
    turn: &Turn<'_>,
    detach: bool,
    endpoint: SocketAddr,
) -> Result<Option<u32>> {
    let attached = shared.bench.with_tracer(turn, |t| {
        if detach {
            t.detach()?;
        } else {
            t.attach()?;
            // A served connection may come from any device.
            t.count_copied_at_transmit(true)?;
            t.clear()?;
            t.watch_endpoint(endpoint, 1)?;
        }
        t.attached_in_kernel()
    })?;
    Ok(attached.flatten())
}

/// The kernel's figures for the served side of `port`, or, untraced, none (and the larger
/// count of attached programs seen at the window's edges into `attached`).
fn read_kernel_side(
    shared: &Shared,
    turn: &Turn<'_>,
    detach: bool,
    port: u16,
    attached: &mut Option<u32>,
) -> Result<Option<KernelSide>> {
    let kernel = shared.bench.with_tracer(turn, |t| {
        if detach {
            *attached = (*attached).max(t.attached_in_kernel()?);
            return Ok(None);
        }
        t.unwatch_port(port)?;
        let flows = t.flows(1)?;
        Ok(Some(KernelSide::split(
            &flows,
            |k| k.local_port == port,
            t.unseen(),
            t.skipped()?,
        )))
    })?;
    Ok(kernel.flatten())
}
