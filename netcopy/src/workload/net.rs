//! Socket plumbing shared by the workloads.

use std::{
    io::{self, Read as _},
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use crate::error::{Error, Result};

/// How long a blocked read may wait before the peer counts as stuck.
pub const STUCK_PEER: Duration = Duration::from_secs(10);

/// Connects with Nagle off: small messages must leave when sent, not when batched.
pub fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let stream =
        TcpStream::connect(addr).map_err(|e| Error::io(format!("connecting to {addr}"), e))?;
    prepare(&stream)?;
    Ok(stream)
}

/// Accepts `n` connections, each with Nagle off and a read timeout.
pub fn accept(listener: &TcpListener, n: usize) -> Result<Vec<TcpStream>> {
    (0..n)
        .map(|_| {
            let (stream, _) = listener.accept().map_err(|e| Error::io("accepting", e))?;
            prepare(&stream)?;
            Ok(stream)
        })
        .collect()
}

fn prepare(stream: &TcpStream) -> Result<()> {
    stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(STUCK_PEER)))
        .map_err(|e| Error::io("setting TCP_NODELAY and a read timeout", e))
}

/// Reads exactly `buf.len()` bytes; Ok(false) on a clean EOF before the first byte. Counts the
/// receive calls that returned data into `calls`.
pub fn recv_exact(stream: &mut TcpStream, buf: &mut [u8], calls: &mut u64) -> io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        match stream.read(&mut buf[at..]) {
            Ok(0) if at == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                *calls += 1;
                at += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
