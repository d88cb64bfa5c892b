//! Reading `MSG_ZEROCOPY` completions from a socket's error queue.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
    time::{Duration, Instant},
};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::completions::Completions;

/// include/uapi/linux/errqueue.h
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

/// Reads every queued notification without blocking; returns how many were read.
pub fn drain(socket: BorrowedFd<'_>, completions: &mut Completions) -> io::Result<usize> {
    // u64 words keep the control buffer aligned for cmsghdr.
    drain_with(socket, completions, &mut [0u64; 16])
}

/// [`drain`] into `control`. A notification that does not fit is an error, not a loss: the
/// kernel truncates it (MSG_CTRUNC) and the sends it covered would never complete.
fn drain_with(
    socket: BorrowedFd<'_>,
    completions: &mut Completions,
    control: &mut [u64],
) -> io::Result<usize> {
    let mut read = 0;
    loop {
        // SAFETY: msghdr is plain data; zeroed is a valid empty header.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_control = control.as_mut_ptr().cast();
        hdr.msg_controllen = size_of_val(control);
        // The a3 send mode drains here between sends: a stack buffer and libc, no allocation
        // (nix's recvmsg takes its control buffer as a Vec).
        // SAFETY: hdr describes a live control buffer and no data buffers.
        let rc = unsafe {
            libc::recvmsg(
                socket.as_raw_fd(),
                &mut hdr,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock => Ok(read),
                io::ErrorKind::Interrupted => continue,
                _ => Err(err),
            };
        }
        if hdr.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a zero-copy notification did not fit the {}-byte control buffer (MSG_CTRUNC)",
                    size_of_val(control)
                ),
            ));
        }
        // SAFETY: the kernel filled hdr's control buffer; the CMSG_* walkers stay inside it.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&hdr);
            while !cmsg.is_null() {
                let c = &*cmsg;
                let recverr = (c.cmsg_level == libc::SOL_IP && c.cmsg_type == libc::IP_RECVERR)
                    || (c.cmsg_level == libc::SOL_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
                if recverr {
                    let ee: libc::sock_extended_err =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    if ee.ee_origin == SO_EE_ORIGIN_ZEROCOPY && ee.ee_errno == 0 {
                        // One notification covers sends ee_info..=ee_data, often many.
                        let copied = ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0;
                        completions.complete_range(ee.ee_info, ee.ee_data, copied);
                        read += 1;
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&hdr, cmsg);
            }
        }
    }
}

/// Waits (bounded by `limit`) until a notification arrives, then drains.
pub fn wait(
    socket: BorrowedFd<'_>,
    completions: &mut Completions,
    limit: Duration,
) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if drain(socket, completions)? > 0 {
            return Ok(());
        }
        // A socket error (reset peer) also raises POLLERR but queues nothing: report it.
        if let Some(err) = super::net::socket_error(socket)? {
            return Err(err);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no zero-copy completion within {limit:?} ({} sends in flight)",
                    completions.in_flight()
                ),
            ));
        }
        // POLLERR is reported whatever `events` asks for: it means the error queue has data.
        let mut pfd = [PollFd::new(socket, PollFlags::empty())];
        let ms =
            PollTimeout::try_from(left.min(Duration::from_secs(1))).unwrap_or(PollTimeout::MAX);
        match poll(&mut pfd, ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{TcpListener, TcpStream},
        os::fd::AsFd as _,
        time::Duration,
    };

    use super::*;

    /// A real notification read into a control buffer too small for it is refused with
    /// MSG_CTRUNC named; read into the normal buffer, it completes the send.
    #[test]
    fn a_truncated_notification_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _server = listener.accept().unwrap();
        let fd = client.as_raw_fd();
        super::super::net::enable_zerocopy(client.as_fd()).expect("SO_ZEROCOPY");
        let buf = [7u8; 4096];
        // nix has no MSG_ZEROCOPY flag. SAFETY: buf outlives the send and its completion
        // (read below).
        let sent = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_ZEROCOPY) };
        assert_eq!(sent, 4096, "{}", io::Error::last_os_error());
        let mut completions = Completions::default();
        completions.issue();
        // Wait for the notification without reading it.
        let mut pfd = [PollFd::new(client.as_fd(), PollFlags::empty())];
        assert_eq!(
            poll(&mut pfd, PollTimeout::from(5000u16)),
            Ok(1),
            "no notification in 5 s"
        );
        let err = drain_with(client.as_fd(), &mut completions, &mut [0u64; 2]).unwrap_err();
        assert!(err.to_string().contains("MSG_CTRUNC"), "{err}");
        // The truncated read consumed that notification: a second send is read whole.
        // SAFETY: as above.
        let sent = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_ZEROCOPY) };
        assert_eq!(sent, 4096);
        completions.issue();
        wait(client.as_fd(), &mut completions, Duration::from_secs(5)).unwrap();
    }
}
