//! The five send modes, one module each, behind one trait. They differ only in how a message's
//! bytes reach the kernel; everything else (message, workload, measurement) is shared.

mod a1_two_copy;
mod a2_one_copy;
mod a3_msg_zerocopy;
mod a4_uring_send_zc;
mod a5_sendfile;

use std::{io, os::fd::BorrowedFd};

use super::message::{FIELDS, Message};
use crate::error::{Error, Result};

/// Which send mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Two copies: the fields are copied into one buffer per message, then `send()`.
    A1,
    /// One copy: `sendmsg()` with an 8-entry iovec; the kernel gathers the fields.
    A2,
    /// `sendmsg(MSG_ZEROCOPY)` on an `SO_ZEROCOPY` socket, completions from the error queue.
    A3,
    /// io_uring `SENDMSG_ZC` with usage reporting, completions from notification CQEs.
    A4,
    /// `sendfile()` from a memfd: page-cache pages attached by reference, no user buffer.
    A5,
}

impl Mode {
    pub const ALL: [Mode; 5] = [Mode::A1, Mode::A2, Mode::A3, Mode::A4, Mode::A5];

    pub fn name(self) -> &'static str {
        match self {
            Mode::A1 => "a1",
            Mode::A2 => "a2",
            Mode::A3 => "a3",
            Mode::A4 => "a4",
            Mode::A5 => "a5",
        }
    }

    /// What the mode does, in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            Mode::A1 => "two-copy: memcpy into one buffer, send()",
            Mode::A2 => "one-copy: sendmsg() with an 8-entry iovec",
            Mode::A3 => "zero-copy: sendmsg(MSG_ZEROCOPY) on an SO_ZEROCOPY socket",
            Mode::A4 => "zero-copy: io_uring SENDMSG_ZC with usage reporting",
            Mode::A5 => "sendfile: page-cache pages by reference, no user buffer",
        }
    }

    /// Whether the kernel is asked to pin the user pages instead of copying them.
    pub fn is_zero_copy(self) -> bool {
        matches!(self, Mode::A3 | Mode::A4)
    }

    /// Message `seq` carries stamp `seq % period` in this mode (a5 sends a file of stamped
    /// messages round and round), or stamp `seq` (None).
    pub fn stamp_period(self, size: usize) -> Option<u64> {
        (self == Mode::A5).then(|| a5_sendfile::file_ring_len(size))
    }

    /// The port this mode's server listens on unless told otherwise.
    pub fn default_port(self) -> u16 {
        8080 + self as u16
    }

    /// The buffer bytes [`Mode::open`] allocates beyond the messages it is given: a1's
    /// contiguous buffer, a5's message file; a2, a3 and a4 send from the messages themselves.
    pub fn footprint(self, size: usize) -> u64 {
        match self {
            Mode::A1 => a1_two_copy::TwoCopy::footprint(size),
            Mode::A5 => a5_sendfile::Sendfile::footprint(size),
            Mode::A2 | Mode::A3 | Mode::A4 => 0,
        }
    }

    /// Opens this send mode on a connected socket, TCP or UDP (the sender keeps its own
    /// handle to it).
    pub fn open(self, socket: BorrowedFd<'_>, size: usize) -> Result<Box<dyn Sender>> {
        let socket = socket
            .try_clone_to_owned()
            .map_err(|e| Error::io("duplicating a socket", e))?;
        Ok(match self {
            Mode::A1 => Box::new(a1_two_copy::TwoCopy::new(socket, size)),
            Mode::A2 => Box::new(a2_one_copy::OneCopy::new(socket)),
            Mode::A3 => Box::new(a3_msg_zerocopy::MsgZerocopy::new(socket)?),
            Mode::A4 => Box::new(a4_uring_send_zc::UringSendZc::new(socket)?),
            Mode::A5 => Box::new(a5_sendfile::Sendfile::new(socket, size)?),
        })
    }
}

named_choice!(Mode, "mode", "a1, a2, a3, a4 or a5");

/// Identifies a message's last zero-copy send, so its memory can be reused once released.
/// `None`: the kernel copied the bytes before the send call returned.
pub type Ticket = Option<u64>;

/// What a send mode did, as userspace saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SendCounts {
    /// System calls (or io_uring submissions) that sent bytes.
    pub send_calls: u64,
    /// Bytes those calls accepted.
    pub bytes_sent: u64,
    /// Zero-copy sends issued (each gets a notification id).
    pub zc_sends: u64,
    /// Zero-copy sends completed, summed over `[ee_info, ee_data]` ranges.
    pub zc_completed: u64,
    /// Completed sends flagged as copied by the kernel (`SO_EE_CODE_ZEROCOPY_COPIED` or
    /// `IORING_NOTIF_USAGE_ZC_COPIED`).
    pub zc_copied: u64,
    /// Notifications received (one may complete many sends).
    pub zc_notifications: u64,
    /// Sends refused with ENOBUFS (pinned memory over optmem_max), retried after draining.
    pub enobufs_retries: u64,
}

impl SendCounts {
    pub fn accumulate(&mut self, o: &SendCounts) {
        self.send_calls += o.send_calls;
        self.bytes_sent += o.bytes_sent;
        self.zc_sends += o.zc_sends;
        self.zc_completed += o.zc_completed;
        self.zc_copied += o.zc_copied;
        self.zc_notifications += o.zc_notifications;
        self.enobufs_retries += o.enobufs_retries;
    }

    /// Percentage of completed zero-copy sends the kernel copied; None when none completed.
    pub fn copied_pct(&self) -> Option<f64> {
        (self.zc_completed > 0).then(|| self.zc_copied as f64 * 100.0 / self.zc_completed as f64)
    }
}

/// One way of getting a message's bytes into the kernel.
pub trait Sender: Send {
    /// Sends the whole message, however many calls that takes.
    fn send(&mut self, msg: &Message) -> io::Result<Ticket>;
    /// Returns once the kernel no longer reads the memory of the send behind `ticket`. A
    /// copying sender holds nothing once its send call returns.
    fn wait_released(&mut self, _ticket: Ticket) -> io::Result<()> {
        Ok(())
    }
    /// Waits for every outstanding completion.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn counters(&self) -> SendCounts;
}

/// Moves `iov[start..]` past `n` sent bytes; returns the new start (== FIELDS when all sent).
fn advance(iov: &mut [libc::iovec; FIELDS], mut start: usize, mut n: usize) -> usize {
    while start < FIELDS && n >= iov[start].iov_len {
        n -= iov[start].iov_len;
        start += 1;
    }
    if start < FIELDS && n > 0 {
        // SAFETY: n < iov_len, so the new base stays inside the same field.
        iov[start].iov_base = unsafe { iov[start].iov_base.cast::<u8>().add(n).cast() };
        iov[start].iov_len -= n;
    }
    start
}

/// `sendmsg` over `iov[start..]`, retrying on EINTR.
fn sendmsg(
    fd: i32,
    iov: &mut [libc::iovec; FIELDS],
    start: usize,
    flags: i32,
) -> io::Result<usize> {
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = iov[start..].as_mut_ptr();
    hdr.msg_iovlen = FIELDS - start;
    loop {
        // SAFETY: hdr points at live iovecs that describe live message memory.
        let n = unsafe { libc::sendmsg(fd, &hdr, flags) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_walks_across_fields() {
        let msg = Message::new(80);
        let mut iov = msg.iovecs();
        assert_eq!(advance(&mut iov, 0, 25), 2);
        assert_eq!(iov[2].iov_len, 5);
        assert_eq!(advance(&mut iov, 2, 5), 3);
        assert_eq!(advance(&mut iov, 3, 50), FIELDS);
    }

    #[test]
    fn modes_parse_and_reject() {
        assert_eq!("A3".parse::<Mode>(), Ok(Mode::A3));
        assert_eq!("a5".parse::<Mode>(), Ok(Mode::A5));
        assert!("a6".parse::<Mode>().unwrap_err().contains("a6"));
    }
}
