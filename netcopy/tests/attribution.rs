//! Flows are told apart by whole address: another program on the same port number, at another
//! address or in the other family, never counts in an experiment's figures, even while it
//! sends zero-copy (so its pinned pages reach the same delivery probes).

mod common;

use std::{
    io::Read as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    os::fd::{AsFd as _, AsRawFd as _},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use netcopy::{
    experiment,
    workload::{Config, Mode, Prepared, Workload},
};
use netcopy_common::ip_of;

/// A program that is not the experiment: a server on `addr` and one client sending to it with
/// MSG_ZEROCOPY until `stop`. Returns the bytes the client sent.
fn other_program(listener: TcpListener, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    let addr = listener.local_addr().unwrap();
    let reader = thread::spawn(move || {
        let (mut server, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        while server.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    thread::spawn(move || {
        let client = TcpStream::connect(addr).unwrap();
        let fd = client.as_raw_fd();
        netcopy::workload::net::enable_zerocopy(client.as_fd()).expect("SO_ZEROCOPY");
        let buf = vec![0x5au8; 16 << 10];
        let mut notes = [0u8; 256];
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: buf outlives the call (its pages stay pinned until the kernel is done).
            let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_ZEROCOPY) };
            if n > 0 {
                sent += n as u64;
            }
            // Reap completions (contents unused) so pinned memory never runs out.
            // SAFETY: notes is a valid buffer for the call.
            while unsafe {
                libc::recv(
                    fd,
                    notes.as_mut_ptr().cast(),
                    notes.len(),
                    libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
                )
            } >= 0
            {}
        }
        drop(client);
        reader.join().unwrap();
        sent
    })
}

/// A port free on 127.0.0.1, 127.0.0.2 and ::1 at once, with listeners holding the last two.
fn shared_port() -> (u16, TcpListener, TcpListener) {
    for _ in 0..50 {
        let v4 = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).unwrap();
        let port = v4.local_addr().unwrap().port();
        let Ok(v6) = TcpListener::bind((Ipv6Addr::LOCALHOST, port)) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return (port, v4, v6);
        }
    }
    panic!("no port free on 127.0.0.1, 127.0.0.2 and ::1 in 50 tries");
}

#[test]
fn an_experiment_counts_its_own_address_only() {
    let Some(mut tracer) = common::tracer_or_skip("an_experiment_counts_its_own_address_only")
    else {
        return;
    };
    for (slot, mode) in [(1, Mode::A1), (2, Mode::A3)] {
        let (port, v4, v6) = shared_port();
        let stop = Arc::new(AtomicBool::new(false));
        let others = [
            other_program(v4, Arc::clone(&stop)),
            other_program(v6, Arc::clone(&stop)),
        ];
        let mut config = Config::new(mode, Workload::Stream, 16 << 10, 1);
        config.port = port;
        config.warmup = Duration::from_millis(100);
        config.duration = Duration::from_millis(400);
        let prepared = Prepared::bind(config).expect("bind 127.0.0.1 on the shared port");
        assert_eq!(prepared.port(), port);
        let outcome = experiment::run(prepared, Some(&mut tracer), slot);
        stop.store(true, Ordering::Relaxed);
        let other_sent: Vec<u64> = others.map(|h| h.join().unwrap()).to_vec();
        let outcome = outcome.expect("experiment");
        assert!(
            other_sent.iter().all(|&b| b > 0),
            "{mode}: the other programs sent {other_sent:?}"
        );

        let f = &outcome.figures;
        let c = &outcome.kernel.as_ref().expect("traced").counters;
        assert_eq!(outcome.checks(), "ok", "{mode}: {c:?}");
        assert_eq!(c.send_bytes, f.bytes_sent, "{mode}");
        assert_eq!(c.send_calls, f.send_counts.send_calls, "{mode}");
        assert_eq!(c.recv_bytes, f.bytes_received, "{mode}");
        assert_eq!(c.recv_copy_bytes, f.bytes_received, "{mode}");
        if mode.is_zero_copy() {
            assert_eq!(c.pinned_bytes(), f.bytes_sent, "{mode}");
            assert_eq!(c.deferred_copy_bytes, f.bytes_sent, "{mode}: {c:?}");
        } else {
            assert_eq!(c.copied_at_send_bytes(), f.bytes_sent, "{mode}");
            assert_eq!(c.deferred_copy_bytes, 0, "{mode}: {c:?}");
        }
        let here = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let flows = tracer.flows(slot).unwrap();
        assert_eq!(flows.len(), 2, "{mode}: {flows:?}");
        for key in flows.keys() {
            let ends = (
                SocketAddr::new(ip_of(&key.local_addr), key.local_port),
                SocketAddr::new(ip_of(&key.remote_addr), key.remote_port),
            );
            assert!(
                ends.0.ip() == here && ends.1.ip() == here,
                "{mode}: {ends:?}"
            );
            assert!(ends.0.port() == port || ends.1.port() == port, "{ends:?}");
        }
    }
}
