//! Stream: every connection sends as fast as it can for the whole run; its receiver, on its own
//! thread, reads everything and checks sampled messages byte for byte.

use std::{
    io::{self, Read as _},
    net::{Shutdown, TcpStream},
    os::fd::AsFd as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use hdrhistogram::Histogram;

use super::{
    Config, Figures, ObserverClock, Phase, PhaseClock, Ring, coordinate,
    crew::Crew,
    join_all, latency_histogram,
    message::Verifier,
    send::Sender,
    spawn,
    zc_receive::{ZcReceiveCounters, ZcReceiver},
};
use crate::{error::Result, side::Side};

/// Receive buffer per connection: large reads, as a real bulk receiver would make.
const RECV_BUF: usize = 128 << 10;

pub(super) struct SenderOut {
    send_counts: super::SendCounts,
    latency: Histogram<u64>,
    window_messages: u64,
}

struct ReceiverOut {
    bytes: u64,
    calls: u64,
    verified: u64,
    zc: Option<ZcReceiveCounters>,
}

/// Sends as fast as the sender allows until the clock says stop, then waits for every release.
pub(super) fn send_loop(
    mut sender: Box<dyn Sender>,
    mut ring: Ring,
    clock: PhaseClock,
) -> io::Result<SenderOut> {
    let mut latency = latency_histogram();
    let mut window_messages = 0;
    let mut seq = 0;
    loop {
        let phase = clock.get();
        if phase == Phase::Stop {
            break;
        }
        let ns = ring.send(sender.as_mut(), seq)?;
        if phase == Phase::Measure {
            latency.saturating_record(ns);
            window_messages += 1;
        }
        seq += 1;
    }
    // Every pinned page must be released before the messages are freed.
    sender.finish()?;
    Ok(SenderOut {
        send_counts: sender.counters(),
        latency,
        window_messages,
    })
}

/// Starts sender thread `i` with `sender`; `done` runs once every send was released (closing the
/// connection's write side, or the socket).
pub(super) fn spawn_sender(
    i: usize,
    config: &Config,
    clock: &PhaseClock,
    sender: Box<dyn Sender>,
    done: impl FnOnce() -> io::Result<()> + Send + 'static,
) -> Result<JoinHandle<io::Result<SenderOut>>> {
    // The messages are written before the thread starts, so that the warmup begins when the
    // sender can send: under an emulated CPU, writing a 16 x 64 KiB ring took longer than a
    // short test's whole window, which then saw no send at all.
    let ring = Ring::new(config.size, config.ring_len());
    let worker_clock = clock.clone();
    spawn(
        format!("send-{i}"),
        Side::Client,
        i,
        config,
        clock,
        move || {
            let out = send_loop(sender, ring, worker_clock)?;
            done()?;
            Ok(out)
        },
    )
}

/// Joins the senders and folds their counts into `figures`.
pub(super) fn collect_senders(
    config: &Config,
    figures: &mut Figures,
    senders: Vec<JoinHandle<io::Result<SenderOut>>>,
) -> Result<()> {
    let mut latency = latency_histogram();
    let joined = join_all(senders, "sending", |out: SenderOut| {
        figures.send_counts.accumulate(&out.send_counts);
        figures.window_messages += out.window_messages;
        latency.add(&out.latency).expect("same bounds");
    });
    figures.send_latency = Some(latency);
    figures.bytes_sent = figures.send_counts.bytes_sent;
    figures.window_bytes_sent = figures.window_messages * config.size as u64;
    joined
}

/// The buffer bytes one receiver allocates: its read buffer, or the zero-copy receiver's.
pub(super) fn receiver_footprint(config: &Config) -> u64 {
    if config.zerocopy_receive {
        ZcReceiver::FOOTPRINT
    } else {
        RECV_BUF as u64
    }
}

fn receive_loop(
    stream: TcpStream,
    config: &Config,
    progress: Arc<AtomicU64>,
) -> io::Result<ReceiverOut> {
    let mut verifier = Verifier::new(config.size, config.sample_every, config.stamp_period());
    if config.zerocopy_receive {
        return zc_receive_loop(stream, verifier, progress);
    }
    let mut stream = stream;
    let mut buf = vec![0u8; receiver_footprint(config) as usize];
    let (mut bytes, mut calls) = (0u64, 0u64);
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(super::net::stuck(e)),
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
        zc: None,
    })
}

/// [`receive_loop`] with `TCP_ZEROCOPY_RECEIVE`: mapped pages are verified where they are
/// mapped, the rest as it is copied.
fn zc_receive_loop(
    stream: TcpStream,
    mut verifier: Verifier,
    progress: Arc<AtomicU64>,
) -> io::Result<ReceiverOut> {
    let mut receiver = ZcReceiver::new(stream.as_fd())?;
    let mut bytes = 0u64;
    loop {
        let n = receiver
            .receive(|chunk| {
                verifier
                    .feed(chunk)
                    .map_err(|m| io::Error::new(io::ErrorKind::InvalidData, m.to_string()))
            })
            .map_err(super::net::stuck)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        progress.fetch_add(n as u64, Ordering::Relaxed);
    }
    receiver.finish()?;
    Ok(ReceiverOut {
        bytes,
        calls: receiver.counters.calls,
        verified: verifier.checked,
        zc: Some(receiver.counters),
    })
}

/// Runs the ends this process holds: `clients` send, `servers` receive (a local experiment
/// holds both; `serve` and `sweep --connect` one each).
pub fn run(
    config: &Config,
    clients: Vec<TcpStream>,
    servers: Vec<TcpStream>,
    observer: ObserverClock<'_>,
) -> Result<Figures> {
    let workers = clients.len() + servers.len();
    let clock = PhaseClock::new(workers);
    let mut senders = Crew::new(&clock);
    let mut receivers = Crew::new(&clock);
    let mut progress = Vec::with_capacity(servers.len());
    for (i, server) in servers.into_iter().enumerate() {
        let counter = Arc::new(AtomicU64::new(0));
        progress.push(Arc::clone(&counter));
        let cfg = config.clone();
        receivers.push(spawn(
            format!("recv-{i}"),
            Side::Server,
            i,
            config,
            &clock,
            move || receive_loop(server, &cfg, counter),
        )?);
    }
    for (i, client) in clients.into_iter().enumerate() {
        let sender = config.mode.open(client.as_fd(), config.size)?;
        senders.push(spawn_sender(i, config, &clock, sender, move || {
            client.shutdown(Shutdown::Write)
        })?);
    }

    let mut figures = coordinate(config, &clock, workers, &progress, observer);
    let sent = collect_senders(config, &mut figures, senders.into_handles());
    let received = join_all(receivers.into_handles(), "receiving", |out: ReceiverOut| {
        figures.bytes_received += out.bytes;
        figures.recv_calls += out.calls;
        figures.verified_messages += out.verified;
        if let Some(zc) = out.zc {
            figures
                .zc_receive
                .get_or_insert_with(Default::default)
                .accumulate(&zc);
        }
    });
    sent.and(received)?;
    Ok(figures)
}
