//! Zero-copy receive: `getsockopt(TCP_ZEROCOPY_RECEIVE)` maps whole pages of a TCP receive
//! queue into a region mmapped on the socket, instead of copying them (as the kernel selftest
//! tcp_mmap.c does). What cannot be mapped is copied: the tail shorter than a page into a
//! small buffer the same call fills, and anything the kernel says to skip (`recv_skip_hint`:
//! bytes in an skb's linear part, or in a fragment that is not one whole page at offset 0)
//! with an ordinary read.
//!
//! The kernel maps a fragment only if it is exactly one page at offset 0, not part of a
//! compound page and not a page-cache page (`can_map_frag` in net/ipv4/tcp.c): whether
//! anything maps depends on how the sender filled its skbs, which is the finding.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd, RawFd},
};

use serde::{Deserialize, Serialize};

/// `struct tcp_zerocopy_receive` (include/uapi/linux/tcp.h); libc does not define it.
#[repr(C)]
#[derive(Default)]
struct TcpZerocopyReceive {
    address: u64,
    length: u32,
    recv_skip_hint: u32,
    inq: u32,
    err: i32,
    copybuf_address: u64,
    copybuf_len: i32,
    flags: u32,
    msg_control: u64,
    msg_controllen: u64,
    msg_flags: u32,
    reserved: u32,
}

/// Bytes mapped per call: 64 pages.
const MAP_LEN: usize = 64 * 4096;
/// Bytes offered for the copy the getsockopt itself makes: the kernel copies the whole queue
/// there instead of mapping whenever the queue fits, so it is kept under a page (only a
/// queue too short to map is copied that way).
const COPYBUF_LEN: usize = 4095;
/// The buffer for that copy and for the skipped bytes read with `read`.
const COPY_LEN: usize = 64 << 10;

/// What a zero-copy receiver did, as userspace saw it (the getsockopt's own report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZcReceiveCounters {
    /// Bytes the kernel mapped into the region.
    pub mapped_bytes: u64,
    /// Bytes copied instead: the tails it filled into the copy buffer plus the skipped bytes
    /// read with `read`.
    pub copied_bytes: u64,
    /// Bytes read with `read` (the part of `copied_bytes` that went through a receive call).
    pub read_bytes: u64,
    /// `TCP_ZEROCOPY_RECEIVE` calls.
    pub calls: u64,
    /// The kernel's own count of bytes this socket received (`tcpi_bytes_received` from
    /// TCP_INFO at the end of the stream), less the one sequence number of the peer's FIN,
    /// which it counts too.
    pub tcp_bytes_received: u64,
}

impl ZcReceiveCounters {
    pub fn accumulate(&mut self, o: &Self) {
        self.mapped_bytes += o.mapped_bytes;
        self.copied_bytes += o.copied_bytes;
        self.read_bytes += o.read_bytes;
        self.calls += o.calls;
        self.tcp_bytes_received += o.tcp_bytes_received;
    }
}

/// A zero-copy reader of one TCP socket, on the thread that made it (the mapping is its own).
pub struct ZcReceiver<'a> {
    socket: BorrowedFd<'a>,
    map: *mut u8,
    copy: Vec<u8>,
    pub counters: ZcReceiveCounters,
}

impl<'a> ZcReceiver<'a> {
    /// The buffer bytes [`ZcReceiver::new`] allocates: its copy buffer. Its mapping only
    /// reserves address space for pages the socket already holds.
    pub const FOOTPRINT: u64 = COPY_LEN as u64;

    /// Reserves the mapping region on `socket` (which must outlive the receiver).
    pub fn new(socket: BorrowedFd<'a>) -> io::Result<Self> {
        let fd = socket.as_raw_fd();
        // SAFETY: a fresh shared read-only mapping of a TCP socket reserves address space the
        // kernel fills in getsockopt; nothing else uses it.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAP_LEN,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            socket,
            map: map.cast(),
            copy: vec![0; COPY_LEN],
            counters: ZcReceiveCounters::default(),
        })
    }

    /// Receives the next bytes, handing them to `consume` in stream order; 0 at end of
    /// stream. Blocks (in `read`) only when nothing is queued.
    pub fn receive(
        &mut self,
        mut consume: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        let mut zc = TcpZerocopyReceive {
            address: self.map as u64,
            length: MAP_LEN as u32,
            copybuf_address: self.copy.as_mut_ptr() as u64,
            copybuf_len: COPYBUF_LEN as i32,
            ..Default::default()
        };
        // Its addresses are this receiver's mapping and copy buffer.
        if let Err(err) = tcp_getsockopt(self.socket.as_raw_fd(), &mut zc) {
            // EIO: nothing queued and the peer's FIN seen (the kernel's end of stream).
            if err.raw_os_error() == Some(libc::EIO) {
                return Ok(0);
            }
            return Err(err);
        }
        if zc.err != 0 {
            return Err(io::Error::from_raw_os_error(zc.err.abs()));
        }
        self.counters.calls += 1;
        let mapped = zc.length as usize;
        if mapped > 0 {
            // SAFETY: the kernel mapped `mapped` bytes at the region's start, read-only.
            let bytes = unsafe { std::slice::from_raw_parts(self.map, mapped) };
            consume(bytes)?;
            self.counters.mapped_bytes += mapped as u64;
            // Unmap the pages now: their references go back to the sender's skbs' owners
            // (a page-cache page stays pinned while mapped here).
            // SAFETY: the range is this receiver's mapping.
            unsafe { libc::madvise(self.map.cast(), mapped, libc::MADV_DONTNEED) };
        }
        let copied = usize::try_from(zc.copybuf_len).unwrap_or(0);
        if copied > 0 {
            consume(&self.copy[..copied])?;
            self.counters.copied_bytes += copied as u64;
        }
        let mut read = 0;
        if zc.recv_skip_hint > 0 || mapped + copied == 0 {
            // Bytes the kernel will not map, or nothing queued yet: an ordinary (blocking)
            // read, which also sees the end of the stream.
            let want = match zc.recv_skip_hint as usize {
                0 => COPY_LEN,
                hint => hint.min(COPY_LEN),
            };
            read = loop {
                match nix::unistd::read(self.socket, &mut self.copy[..want]) {
                    Ok(n) => break n,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            consume(&self.copy[..read])?;
            self.counters.copied_bytes += read as u64;
            self.counters.read_bytes += read as u64;
        }
        Ok(mapped + copied + read)
    }

    /// Records the kernel's own count of bytes received on the socket (at end of stream).
    pub fn finish(&mut self) -> io::Result<()> {
        // SAFETY: tcp_info is plain data; all-zero is valid.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        tcp_getsockopt(self.socket.as_raw_fd(), &mut info)?;
        // The stream ended with the peer's FIN (the last receive returned 0), whose sequence
        // number tcpi_bytes_received includes.
        self.counters.tcp_bytes_received = info.tcpi_bytes_received.saturating_sub(1);
        Ok(())
    }
}

/// A TCP socket option's value: plain integers, valid whatever bytes the kernel writes.
trait TcpOption {
    const NAME: libc::c_int;
}

impl TcpOption for TcpZerocopyReceive {
    const NAME: libc::c_int = libc::TCP_ZEROCOPY_RECEIVE;
}

impl TcpOption for libc::tcp_info {
    const NAME: libc::c_int = libc::TCP_INFO;
}

/// `getsockopt(fd, IPPROTO_TCP, T::NAME)` into `value`, which the kernel reads and writes
/// (nix wraps neither TCP_ZEROCOPY_RECEIVE nor TCP_INFO).
fn tcp_getsockopt<T: TcpOption>(fd: RawFd, value: &mut T) -> io::Result<()> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a live, writable T of `len` bytes, plain data (TcpOption); the kernel
    // writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            T::NAME,
            std::ptr::from_mut(value).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Drop for ZcReceiver<'_> {
    fn drop(&mut self) {
        // SAFETY: the mapping was created in `new` and is unmapped once.
        unsafe { libc::munmap(self.map.cast(), MAP_LEN) };
    }
}
