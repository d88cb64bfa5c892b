//! A3, `MSG_ZEROCOPY`: the kernel pins the fields' pages instead of copying them, and reports on
//! the socket's error queue when it has let go of them.
//!
//! The three things peers got wrong are each handled here: `SO_ZEROCOPY` is set (without it the
//! flag is silently ignored), completions are counted per `[ee_info, ee_data]` range, and the
//! error queue is drained whenever the kernel answers ENOBUFS (pinned memory over optmem_max).

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _, OwnedFd},
    time::Duration,
};

use super::{FIELDS, SendCounts, Sender, Ticket, advance, sendmsg};
use crate::{
    error::{Error, Result},
    workload::{completions::Completions, errqueue, message::Message, net},
};

pub struct MsgZerocopy {
    socket: OwnedFd,
    completions: Completions,
    enobufs_retries: u64,
    send_calls: u64,
    bytes_sent: u64,
}

impl MsgZerocopy {
    pub fn new(socket: OwnedFd) -> Result<Self> {
        net::enable_zerocopy(socket.as_fd()).map_err(|e| Error::Unavailable {
            mode: "a3",
            reason: format!("setsockopt(SO_ZEROCOPY): {e}"),
        })?;
        Ok(Self {
            socket,
            completions: Completions::default(),
            enobufs_retries: 0,
            send_calls: 0,
            bytes_sent: 0,
        })
    }

    /// Blocks until at least one notification was read (or fails after a bounded wait).
    fn wait_for_completion(&mut self) -> io::Result<()> {
        if self.completions.in_flight() == 0 {
            return Err(io::Error::other(
                "no zero-copy send in flight to wait for (is optmem_max too small for one send?)",
            ));
        }
        errqueue::wait(
            self.socket.as_fd(),
            &mut self.completions,
            Duration::from_secs(10),
        )
    }
}

impl Sender for MsgZerocopy {
    fn send(&mut self, msg: &Message) -> io::Result<Ticket> {
        let mut iov = msg.iovecs();
        let mut start = 0;
        let mut last = None;
        while start < FIELDS {
            if self.completions.window_full() {
                self.wait_for_completion()?;
            }
            match sendmsg(self.socket.as_raw_fd(), &mut iov, start, libc::MSG_ZEROCOPY) {
                Ok(n) => {
                    // Every call that sent bytes got the next notification id.
                    last = Some(self.completions.issue());
                    self.send_calls += 1;
                    self.bytes_sent += n as u64;
                    start = advance(&mut iov, start, n);
                }
                Err(err) if err.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.enobufs_retries += 1;
                    if errqueue::drain(self.socket.as_fd(), &mut self.completions)? == 0 {
                        self.wait_for_completion()?;
                    }
                }
                Err(err) => return Err(err),
            }
        }
        Ok(last)
    }

    fn wait_released(&mut self, ticket: Ticket) -> io::Result<()> {
        let Some(id) = ticket else { return Ok(()) };
        while !self.completions.released(id) {
            if errqueue::drain(self.socket.as_fd(), &mut self.completions)? == 0 {
                self.wait_for_completion()?;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        // Completions release in order, so the newest send's release covers all of them.
        self.wait_released(self.completions.last())
    }

    fn counters(&self) -> SendCounts {
        SendCounts {
            send_calls: self.send_calls,
            bytes_sent: self.bytes_sent,
            zc_sends: self.completions.issued(),
            zc_completed: self.completions.completed,
            zc_copied: self.completions.copied,
            zc_notifications: self.completions.notifications,
            enobufs_retries: self.enobufs_retries,
        }
    }
}
