//! End to end through the real kernel: the send and receive counts the probes make for a
//! watched port equal, exactly, what userspace did on that connection, and nothing else counts.

mod common;

use std::{
    io::Read as _,
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    thread,
};

/// What one side of a connection did, as userspace counted it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    calls: u64,
    bytes: u64,
}

/// Sends `messages` messages of `size` bytes with one `send()` per call, counting the calls
/// (a short send is followed by another call for the rest, and both are counted).
fn send_messages(stream: &TcpStream, messages: usize, size: usize) -> Tally {
    let buf = vec![0xa5u8; size];
    let mut tally = Tally::default();
    for _ in 0..messages {
        let mut off = 0;
        while off < size {
            // SAFETY: buf outlives the call; the pointer and length describe its tail.
            let n = unsafe {
                libc::send(
                    stream.as_raw_fd(),
                    buf[off..].as_ptr().cast(),
                    size - off,
                    0,
                )
            };
            assert!(n > 0, "send failed: {}", std::io::Error::last_os_error());
            tally.calls += 1;
            tally.bytes += n as u64;
            off += n as usize;
        }
    }
    tally
}

/// Reads until EOF, counting the calls that returned data.
fn receive_all(mut stream: TcpStream) -> Tally {
    let mut buf = vec![0u8; 64 * 1024];
    let mut tally = Tally::default();
    loop {
        let n = stream.read(&mut buf).expect("read");
        if n == 0 {
            return tally;
        }
        tally.calls += 1;
        tally.bytes += n as u64;
    }
}

/// One connection to `listener`: returns (sender's tally, receiver's tally).
fn exchange(listener: &TcpListener, messages: usize, size: usize) -> (Tally, Tally) {
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).unwrap();
    client.set_nodelay(true).unwrap();
    let (server, _) = listener.accept().unwrap();
    let receiver = thread::spawn(move || receive_all(server));
    let sent = send_messages(&client, messages, size);
    drop(client);
    (sent, receiver.join().unwrap())
}

#[test]
fn kernel_counts_equal_userspace_for_the_watched_port_only() {
    let Some(mut tracer) = common::tracer_or_skip("kernel_counts_equal_userspace") else {
        return;
    };
    const SLOT: u32 = 7;
    let watched = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let watched_port = watched.local_addr().unwrap().port();
    let other_port = other.local_addr().unwrap().port();
    tracer.watch_port(watched_port, SLOT).unwrap();

    let (sent, received) = exchange(&watched, 1000, 4096);
    let (other_sent, _) = exchange(&other, 300, 1000);
    assert_eq!(sent.bytes, 1000 * 4096);
    assert_eq!(received.bytes, sent.bytes);
    assert!(other_sent.bytes > 0);

    let flows = tracer.flows(SLOT).unwrap();
    let totals = tracer.totals(SLOT).unwrap();
    assert_eq!(totals.send_calls, sent.calls, "send calls: {flows:?}");
    assert_eq!(totals.send_bytes, sent.bytes, "send bytes: {flows:?}");
    assert_eq!(totals.send_errors, 0);
    assert_eq!(totals.recv_calls, received.calls, "recv calls: {flows:?}");
    assert_eq!(totals.recv_bytes, received.bytes, "recv bytes: {flows:?}");

    // Two sockets, the client's and the accepted one, each keyed by its own ports; the other
    // connection's ports appear nowhere.
    assert_eq!(flows.len(), 2, "{flows:?}");
    for key in flows.keys() {
        assert!(
            key.local_port == watched_port || key.remote_port == watched_port,
            "{key:?}"
        );
        assert!(
            key.local_port != other_port && key.remote_port != other_port,
            "{key:?}"
        );
    }
    let client = flows
        .iter()
        .find(|(k, _)| k.remote_port == watched_port)
        .unwrap()
        .1;
    assert_eq!((client.send_bytes, client.recv_bytes), (sent.bytes, 0));

    tracer.clear().unwrap();
    assert!(tracer.flows(SLOT).unwrap().is_empty());
}

#[test]
fn unwatched_ports_are_not_counted() {
    let Some(mut tracer) = common::tracer_or_skip("unwatched_ports_are_not_counted") else {
        return;
    };
    // Both watched, then one unwatched before any traffic: only the other counts, exactly,
    // so a tracer that counted nothing would fail here too.
    let kept = TcpListener::bind("127.0.0.1:0").unwrap();
    let dropped = TcpListener::bind("127.0.0.1:0").unwrap();
    let (kept_port, dropped_port) = (
        kept.local_addr().unwrap().port(),
        dropped.local_addr().unwrap().port(),
    );
    tracer.watch_port(kept_port, 1).unwrap();
    tracer.watch_port(dropped_port, 2).unwrap();
    tracer.unwatch_port(dropped_port).unwrap();
    let (sent, received) = exchange(&kept, 10, 512);
    exchange(&dropped, 10, 512);
    assert!(tracer.flows(2).unwrap().is_empty());
    let totals = tracer.totals(1).unwrap();
    assert_eq!(
        (totals.send_calls, totals.send_bytes),
        (sent.calls, sent.bytes)
    );
    assert_eq!(
        (totals.recv_calls, totals.recv_bytes),
        (received.calls, received.bytes)
    );
    tracer.unwatch_port(kept_port).unwrap();
}

/// UDP copies a small (linear) datagram to user without passing the receive-copy tracepoint;
/// the copy is counted from the receive call's result instead, and a receive whose result is
/// not the bytes copied (MSG_TRUNC) leaves the figure empty with its reason, never 0.
#[test]
fn udp_copy_to_user_is_counted_or_empty_with_its_reason() {
    let Some(mut tracer) = common::tracer_or_skip("udp_copy_to_user_is_counted_or_empty") else {
        return;
    };
    tracer.classify_udp(true).unwrap();
    for (slot, truncate) in [(21, false), (22, true)] {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        tracer.watch_endpoint(to, slot).unwrap();
        // Connected, so its own socket names the receiver's endpoint too.
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.connect(to).unwrap();
        let datagram = [0x3cu8; 1000];
        for _ in 0..50 {
            assert_eq!(sender.send(&datagram).unwrap(), 1000);
        }
        let mut buf = [0u8; 2000];
        let mut received = 0u64;
        for _ in 0..50 {
            let flags = if truncate { libc::MSG_TRUNC } else { 0 };
            // SAFETY: buf is valid for its length for the duration of the call.
            let n = unsafe {
                libc::recv(
                    receiver.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    flags,
                )
            };
            assert_eq!(n, 1000, "{}", std::io::Error::last_os_error());
            received += n as u64;
        }
        tracer.unwatch_port(to.port()).unwrap();
        let kernel = netcopy::experiment::KernelFigures {
            counters: tracer.totals(slot).unwrap(),
            ..Default::default()
        };
        let c = &kernel.counters;
        assert_eq!((c.recv_calls, c.recv_bytes), (50, received));
        assert_eq!((c.send_calls, c.send_bytes), (50, 50_000));
        assert_eq!(c.copied_at_send_bytes(), 50_000);
        if truncate {
            assert_eq!(kernel.recv_copy_bytes(), None);
            assert!(kernel.note().contains("MSG_TRUNC"), "{}", kernel.note());
        } else {
            assert_eq!(kernel.recv_copy_bytes(), Some(received));
            assert_eq!(kernel.note(), "");
        }
    }
}
