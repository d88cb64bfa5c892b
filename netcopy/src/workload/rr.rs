//! Request-response: each connection sends one message and waits for the peer's reply of the
//! same size, sent back through the same send mode. Round trips are timed one by one.

use std::{
    io,
    net::{Shutdown, TcpStream},
    os::fd::AsFd as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use hdrhistogram::Histogram;

use super::{
    Config, Figures, ObserverClock, Phase, PhaseClock, Ring, SendCounts, coordinate, crew::Crew,
    join_all, latency_histogram, message::Verifier, net, send::Sender, spawn,
};
use crate::{error::Result, side::Side};

struct SideOut {
    send_counts: SendCounts,
    bytes_received: u64,
    recv_calls: u64,
    verified: u64,
    round_trip: Option<Histogram<u64>>,
    window_messages: u64,
}

fn verify(verifier: &mut Verifier, buf: &[u8]) -> io::Result<()> {
    verifier
        .feed(buf)
        .map_err(|m| io::Error::new(io::ErrorKind::InvalidData, m.to_string()))
}

fn client_loop(
    mut stream: TcpStream,
    mut sender: Box<dyn Sender>,
    config: Config,
    clock: PhaseClock,
) -> io::Result<SideOut> {
    let mut ring = Ring::new(config.size, config.ring_len());
    let mut reply = vec![0u8; request_len(&config)];
    let wait = net::Wait::new(config.busy_poll);
    let mut verifier = Verifier::new(config.size, config.sample_every, config.stamp_period());
    let mut round_trip = latency_histogram();
    let (mut seq, mut calls, mut window_messages) = (0u64, 0u64, 0u64);
    loop {
        let phase = clock.get();
        if phase == Phase::Stop {
            break;
        }
        let start = Instant::now();
        ring.send(sender.as_mut(), seq)?;
        if !net::recv_exact(&mut stream, &mut reply, &mut calls, wait)? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let ns = start.elapsed().as_nanos() as u64;
        if phase == Phase::Measure {
            round_trip.saturating_record(ns);
            window_messages += 1;
        }
        verify(&mut verifier, &reply)?;
        seq += 1;
    }
    sender.finish()?;
    stream.shutdown(Shutdown::Write)?;
    // The server answers our EOF with its own once its replies are all released.
    let mut tail = [0u8; 1];
    if net::recv_exact(&mut stream, &mut tail, &mut calls, wait)? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "reply after the last request",
        ));
    }
    Ok(SideOut {
        send_counts: sender.counters(),
        bytes_received: seq * config.size as u64,
        recv_calls: calls,
        verified: verifier.checked,
        round_trip: Some(round_trip),
        window_messages,
    })
}

/// The buffer bytes one answering connection allocates: its ring of replies, the request it
/// reads into, and what its sender holds (see [`server_loop`] and [`run`]).
pub(super) fn server_footprint(config: &Config) -> u64 {
    Ring::footprint(config.size, config.ring_len())
        + request_len(config) as u64
        + config.mode.footprint(config.size)
}

/// The buffer a request (or a reply) is read into: one whole message.
fn request_len(config: &Config) -> usize {
    config.size
}

fn server_loop(
    mut stream: TcpStream,
    mut sender: Box<dyn Sender>,
    config: Config,
    progress: Arc<AtomicU64>,
) -> io::Result<SideOut> {
    let mut ring = Ring::new(config.size, config.ring_len());
    let mut request = vec![0u8; request_len(&config)];
    let mut verifier = Verifier::new(config.size, config.sample_every, config.stamp_period());
    let (mut seq, mut calls) = (0u64, 0u64);
    let wait = net::Wait::new(config.busy_poll);
    while net::recv_exact(&mut stream, &mut request, &mut calls, wait)? {
        progress.fetch_add(config.size as u64, Ordering::Relaxed);
        verify(&mut verifier, &request)?;
        ring.send(sender.as_mut(), seq)?;
        seq += 1;
    }
    sender.finish()?;
    stream.shutdown(Shutdown::Write)?;
    Ok(SideOut {
        send_counts: sender.counters(),
        bytes_received: seq * config.size as u64,
        recv_calls: calls,
        verified: verifier.checked,
        round_trip: None,
        window_messages: 0,
    })
}

/// Runs the ends this process holds: `clients` send requests, `servers` answer them.
pub fn run(
    config: &Config,
    clients: Vec<TcpStream>,
    servers: Vec<TcpStream>,
    observer: ObserverClock<'_>,
) -> Result<Figures> {
    for stream in clients.iter().chain(&servers) {
        net::no_delay(stream)?;
    }
    let workers_count = clients.len() + servers.len();
    let clock = PhaseClock::new(workers_count);
    let mut workers = Crew::new(&clock);
    let mut progress = Vec::with_capacity(servers.len());
    for (i, server) in servers.into_iter().enumerate() {
        let server_sender = config.mode.open(server.as_fd(), config.size)?;
        let counter = Arc::new(AtomicU64::new(0));
        progress.push(Arc::clone(&counter));
        let cfg = config.clone();
        workers.push(spawn(
            format!("rr-server-{i}"),
            Side::Server,
            i,
            config,
            &clock,
            move || server_loop(server, server_sender, cfg, counter),
        )?);
    }
    for (i, client) in clients.into_iter().enumerate() {
        let client_sender = config.mode.open(client.as_fd(), config.size)?;
        let (cfg, worker_clock) = (config.clone(), clock.clone());
        workers.push(spawn(
            format!("rr-client-{i}"),
            Side::Client,
            i,
            config,
            &clock,
            move || client_loop(client, client_sender, cfg, worker_clock),
        )?);
    }

    let mut figures = Figures {
        round_trip: Some(latency_histogram()),
        ..coordinate(config, &clock, workers_count, &progress, observer)
    };
    join_all(
        workers.into_handles(),
        "request-response",
        |out: SideOut| {
            figures.send_counts.accumulate(&out.send_counts);
            figures.bytes_received += out.bytes_received;
            figures.recv_calls += out.recv_calls;
            figures.verified_messages += out.verified;
            figures.window_messages += out.window_messages;
            if let (Some(all), Some(one)) = (figures.round_trip.as_mut(), out.round_trip) {
                all.add(&one).expect("same bounds");
            }
        },
    )?;
    figures.bytes_sent = figures.send_counts.bytes_sent;
    figures.window_bytes_sent = figures.window_messages * config.size as u64;
    Ok(figures)
}
