//! Socket plumbing shared by the workloads.

use std::{
    io::{self, Read as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::{AsRawFd as _, BorrowedFd},
    time::Duration,
};

use crate::error::{Error, Result};

/// How long a blocked read may wait before the peer counts as stuck.
pub const STUCK_PEER: Duration = Duration::from_secs(10);

/// One connection to `listener`: (client end, server end), both with Nagle off (small
/// messages must leave when sent, not when batched) and a read timeout.
pub fn connected_pair(listener: &TcpListener) -> Result<(TcpStream, TcpStream)> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the listener's address", e))?;
    let client = connect(addr)?;
    Ok((client, accept(listener)?))
}

/// A client connection to `addr`, prepared.
pub fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let client = TcpStream::connect_timeout(&addr, STUCK_PEER)
        .map_err(|e| Error::io(format!("connecting to {addr}"), e))?;
    prepare(&client)?;
    Ok(client)
}

/// The next connection on `listener`, prepared; a peer that never connects is an error after
/// [`STUCK_PEER`], not a hang.
pub fn accept(listener: &TcpListener) -> Result<TcpStream> {
    let fd = listener.as_raw_fd();
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, STUCK_PEER.as_millis() as i32) };
    if ready <= 0 {
        return Err(Error::io(
            "accepting",
            io::Error::new(io::ErrorKind::TimedOut, "no connection within 10 s"),
        ));
    }
    let (server, _) = listener.accept().map_err(|e| Error::io("accepting", e))?;
    prepare(&server)?;
    Ok(server)
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

/// The socket's pending error (`SO_ERROR`), clearing it, as `TcpStream::take_error` does for
/// any kind of socket.
pub fn socket_error(socket: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid fd and an int-sized option buffer.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((value != 0).then(|| io::Error::from_raw_os_error(value)))
}
