//! Socket plumbing shared by the workloads.

use std::{
    io::{self, Read as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd},
    time::Duration,
};

use nix::{
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sys::socket::{MsgFlags, getsockopt, recv, sockopt},
};

use crate::error::{Error, Result};

/// How long a blocked read may wait before the peer counts as stuck.
pub const STUCK_PEER: Duration = Duration::from_secs(10);

/// One connection to `listener`: (client end, server end), both with a read timeout.
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
    let mut pfd = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(STUCK_PEER).unwrap_or(PollTimeout::MAX);
    if !matches!(poll(&mut pfd, timeout), Ok(n) if n > 0) {
        return Err(Error::io(
            "accepting",
            io::Error::new(io::ErrorKind::TimedOut, "no connection within 10 s"),
        ));
    }
    let (server, _) = listener.accept().map_err(|e| Error::io("accepting", e))?;
    prepare(&server)?;
    Ok(server)
}

/// Gives an accepted or connected stream the read timeout every workload relies on.
pub fn prepare(stream: &TcpStream) -> Result<()> {
    stream
        .set_read_timeout(Some(STUCK_PEER))
        .map_err(|e| Error::io("setting a read timeout", e))
}

/// Nagle off, for request-response: a request or reply must leave when sent, not wait for
/// the previous one's ACK. Stream keeps Nagle on, as bulk senders (and iperf3) do: with it
/// off, a sender on its own CPU pushes one segment per 16 KiB send instead of coalescing to
/// 64 KiB, and loses about a fifth of its throughput (measured under `split`).
pub fn no_delay(stream: &TcpStream) -> Result<()> {
    stream
        .set_nodelay(true)
        .map_err(|e| Error::io("setting TCP_NODELAY", e))
}

/// How a reader waits for bytes that have not arrived yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Asleep in the kernel until data arrives (or [`STUCK_PEER`] passes).
    Block,
    /// Spinning on `MSG_DONTWAIT` reads, yielding the CPU between tries so a peer pinned to
    /// the same CPU can run: no idle wake-up is ever paid. The socket itself stays blocking,
    /// so the senders on it are untouched.
    Spin,
}

impl Wait {
    pub fn new(busy_poll: bool) -> Self {
        if busy_poll { Wait::Spin } else { Wait::Block }
    }
}

/// One read, waiting as `wait` says.
fn read_once(stream: &mut TcpStream, buf: &mut [u8], wait: Wait) -> io::Result<usize> {
    match wait {
        Wait::Block => stream.read(buf),
        Wait::Spin => {
            recv(stream.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT).map_err(io::Error::from)
        }
    }
}

/// Reads exactly `buf.len()` bytes; Ok(false) on a clean EOF before the first byte. Counts the
/// receive calls that returned data into `calls`.
pub fn recv_exact(
    stream: &mut TcpStream,
    buf: &mut [u8],
    calls: &mut u64,
    wait: Wait,
) -> io::Result<bool> {
    let mut at = 0;
    let mut spinning_since: Option<std::time::Instant> = None;
    while at < buf.len() {
        match read_once(stream, &mut buf[at..], wait) {
            Ok(0) if at == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                *calls += 1;
                at += n;
                spinning_since = None;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if wait == Wait::Spin && e.kind() == io::ErrorKind::WouldBlock => {
                let since = *spinning_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > STUCK_PEER {
                    return Err(stuck(e));
                }
                std::thread::yield_now();
            }
            Err(e) => return Err(stuck(e)),
        }
    }
    Ok(true)
}

/// Turns on `SO_ZEROCOPY`: without it `MSG_ZEROCOPY` sends are silently copied and never
/// notified.
pub fn enable_zerocopy(socket: BorrowedFd<'_>) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of the right size that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ZEROCOPY,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A read that timed out after [`STUCK_PEER`] as the error a row shows (the kernel's own
/// says only "Resource temporarily unavailable"); any other error as it is.
pub fn stuck(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the peer is stuck: no data within {} s",
                STUCK_PEER.as_secs()
            ),
        ),
        _ => e,
    }
}

/// The socket's pending error (`SO_ERROR`), clearing it, as `TcpStream::take_error` does for
/// any kind of socket.
pub fn socket_error(socket: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let value = getsockopt(&socket, sockopt::SocketError)?;
    Ok((value != 0).then(|| io::Error::from_raw_os_error(value)))
}
