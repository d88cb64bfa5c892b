//! Stream: every connection sends as fast as it can for the whole run; its receiver, on its own
//! thread, reads everything and checks sampled messages byte for byte.

use std::{
    io::{self, Read as _},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use hdrhistogram::Histogram;

use super::{
    Config, Figures, Phase, PhaseClock, Ring, coordinate, join_all, latency_histogram,
    message::Verifier, net, path::SendPath, spawn,
};
use crate::error::Result;

/// Receive buffer per connection: large reads, as a real bulk receiver would make.
const RECV_BUF: usize = 128 << 10;

struct SenderOut {
    path: super::PathCounters,
    latency: Histogram<u64>,
    window_messages: u64,
}

struct ReceiverOut {
    bytes: u64,
    calls: u64,
    verified: u64,
}

fn send_loop(
    stream: TcpStream,
    mut path: Box<dyn SendPath>,
    config: Config,
    clock: PhaseClock,
) -> io::Result<SenderOut> {
    let mut ring = Ring::new(config.size, config.ring);
    let mut latency = latency_histogram();
    let mut window_messages = 0;
    let mut seq = 0;
    loop {
        let phase = clock.get();
        if phase == Phase::Stop {
            break;
        }
        let ns = ring.send(path.as_mut(), seq)?;
        if phase == Phase::Measure {
            latency.saturating_record(ns);
            window_messages += 1;
        }
        seq += 1;
    }
    // Every pinned page must be released before the messages are freed.
    path.finish()?;
    stream.shutdown(Shutdown::Write)?;
    Ok(SenderOut {
        path: path.counters(),
        latency,
        window_messages,
    })
}

fn receive_loop(
    mut stream: TcpStream,
    size: usize,
    sample_every: u64,
    progress: Arc<AtomicU64>,
) -> io::Result<ReceiverOut> {
    let mut buf = vec![0u8; RECV_BUF];
    let mut verifier = Verifier::new(size, sample_every);
    let (mut bytes, mut calls) = (0u64, 0u64);
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        bytes += n as u64;
        calls += 1;
        progress.fetch_add(n as u64, Ordering::Relaxed);
        verifier
            .feed(&buf[..n])
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidData, m.to_string()))?;
    }
    Ok(ReceiverOut {
        bytes,
        calls,
        verified: verifier.checked,
    })
}

pub fn run(config: &Config, listener: TcpListener) -> Result<Figures> {
    let clock = PhaseClock::new();
    let mut senders = Vec::with_capacity(config.threads);
    let mut receivers = Vec::with_capacity(config.threads);
    let mut progress = Vec::with_capacity(config.threads);
    for i in 0..config.threads {
        let (client, server) = net::connected_pair(&listener)?;
        let path = config.mode.open(&client, config.size)?;
        let counter = Arc::new(AtomicU64::new(0));
        progress.push(Arc::clone(&counter));
        let (size, sample) = (config.size, config.sample_every);
        receivers.push(spawn(format!("recv-{i}"), move || {
            receive_loop(server, size, sample, counter)
        })?);
        let (config, clock) = (config.clone(), clock.clone());
        senders.push(spawn(format!("send-{i}"), move || {
            send_loop(client, path, config, clock)
        })?);
    }
    drop(listener);

    let (window, window_bytes_received) = coordinate(config, &clock, &progress);

    let mut figures = Figures {
        window,
        window_bytes_received,
        send_latency: Some(latency_histogram()),
        ..Figures::default()
    };
    let sent = join_all(senders, "sending", |out: SenderOut| {
        figures.path.accumulate(&out.path);
        figures.window_messages += out.window_messages;
        if let Some(h) = figures.send_latency.as_mut() {
            h.add(&out.latency).expect("same bounds");
        }
    });
    let received = join_all(receivers, "receiving", |out: ReceiverOut| {
        figures.bytes_received += out.bytes;
        figures.recv_calls += out.calls;
        figures.verified_messages += out.verified;
    });
    sent.and(received)?;
    figures.bytes_sent = figures.path.bytes_sent;
    figures.window_bytes_sent = figures.window_messages * config.size as u64;
    Ok(figures)
}
