//! The two network waits of a request besides reading its line, each bounded by the request's
//! deadline and waking every [`TICK`]: writing a protocol message to a peer that may not read,
//! and accepting the data connections, from the request peer's address only.

use std::{
    io::Write as _,
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    time::Instant,
};

use serde::Serialize;

use super::guard::{TICK, wait_until};
use crate::{
    error::{Error, Result},
    interrupt,
    workload::net,
};

/// Writes `value` as one line of the protocol, giving up at `deadline` (a peer that stops reading
/// fills the socket buffer; its write then waits in [`TICK`]s, not forever).
pub(super) fn send<T: Serialize>(
    stream: &mut TcpStream,
    value: &T,
    deadline: Instant,
) -> Result<()> {
    let mut line = serde_json::to_vec(value).map_err(|source| Error::Json {
        what: "encoding a protocol message",
        source,
    })?;
    line.push(b'\n');
    let io = |e| Error::io("writing to the request connection", e);
    stream.set_write_timeout(Some(TICK)).map_err(io)?;
    let mut at = 0;
    while at < line.len() {
        match stream.write(&line[at..]) {
            Ok(0) => return Err(io(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => at += n,
            Err(e) if super::protocol::only_waited(&e) => {
                if interrupt::requested() {
                    return Err(Error::Interrupted);
                }
                if Instant::now() >= deadline {
                    return Err(Error::Peer(
                        "the peer read no protocol message before the deadline".to_owned(),
                    ));
                }
            }
            Err(e) => return Err(io(e)),
        }
    }
    Ok(())
}

/// Connections taken (or refused) between two looks at the deadline.
const MAX_ACCEPTS_PER_TICK: usize = 256;

/// Accepts `count` data connections on `listener`, all by one `deadline`, from `peer` only:
/// a connection from any other address is closed at once and handed to `refused`. Once
/// `count` are in, the caller drops the listener, so any further one is refused by the kernel.
pub(super) fn accept_from(
    listener: &TcpListener,
    peer: IpAddr,
    count: usize,
    deadline: Instant,
    mut refused: impl FnMut(SocketAddr),
) -> Result<Vec<TcpStream>> {
    let io = |e| Error::io("accepting a data connection", e);
    listener.set_nonblocking(true).map_err(io)?;
    let mut streams = Vec::with_capacity(count);
    let mut failure = None;
    let waited = wait_until(deadline, "data connections", || {
        // At most a tick's worth of accepts between deadline checks, so a flood of
        // connections cannot keep this loop from its deadline.
        for _ in 0..MAX_ACCEPTS_PER_TICK {
            if streams.len() == count {
                return true;
            }
            match listener.accept() {
                Ok((stream, from)) if from.ip().to_canonical() == peer.to_canonical() => {
                    let prepared = stream
                        .set_nonblocking(false)
                        .map_err(io)
                        .and_then(|()| net::prepare(&stream));
                    match prepared {
                        Ok(()) => streams.push(stream),
                        Err(e) => failure = Some(e),
                    }
                }
                // Dropped unread: closed before anything of the experiment reaches it.
                Ok((_, from)) => refused(from),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) => failure = Some(io(e)),
            }
            if failure.is_some() {
                return true;
            }
        }
        streams.len() == count
    });
    if let Some(e) = failure {
        return Err(e);
    }
    match waited {
        Ok(()) => Ok(streams),
        Err(Error::Peer(_)) => Err(Error::Peer(format!(
            "{} of {count} data connections from {peer} before the deadline",
            streams.len()
        ))),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_peer_that_does_not_read_gets_no_more_than_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let silent = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        // Far more than both sockets' buffers hold. Without the deadline the write blocks for
        // as long as the peer does not read: here, for good, so the answer must come first.
        let (done, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let line = "x".repeat(16 << 20);
            let _ = done.send(send(
                &mut server,
                &line,
                Instant::now() + Duration::from_millis(300),
            ));
        });
        let result = answer
            .recv_timeout(Duration::from_secs(60))
            .expect("the write gave up by its deadline");
        assert!(
            matches!(&result, Err(Error::Peer(why)) if why.contains("deadline")),
            "{result:?}"
        );
        drop(silent);
    }

    #[test]
    fn data_connections_from_another_address_are_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let _ours = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut refused = Vec::new();
        let peer = IpAddr::from([127, 0, 0, 3]);
        let deadline = Instant::now() + Duration::from_millis(300);
        let result = accept_from(&listener, peer, 1, deadline, |from| refused.push(from.ip()));
        assert!(
            matches!(&result, Err(Error::Peer(why)) if why.contains("0 of 1")),
            "{result:?}"
        );
        assert_eq!(refused, [IpAddr::from([127, 0, 0, 1])]);
    }
}
