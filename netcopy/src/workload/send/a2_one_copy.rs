//! A2, one copy: `sendmsg()` with an iovec entry per field; the kernel gathers the fields
//! straight from where they live (the only copy is the kernel's).

use std::{
    io,
    os::fd::{AsRawFd as _, OwnedFd},
};

use super::{FIELDS, SendCounts, Sender, Ticket, advance, sendmsg};
use crate::workload::message::Message;

pub struct OneCopy {
    socket: OwnedFd,
    counters: SendCounts,
}

impl OneCopy {
    pub fn new(socket: OwnedFd) -> Self {
        Self {
            socket,
            counters: SendCounts::default(),
        }
    }
}

impl Sender for OneCopy {
    fn send(&mut self, msg: &Message) -> io::Result<Ticket> {
        let mut iov = msg.iovecs();
        let mut start = 0;
        while start < FIELDS {
            let n = sendmsg(self.socket.as_raw_fd(), &mut iov, start, 0)?;
            self.counters.send_calls += 1;
            self.counters.bytes_sent += n as u64;
            start = advance(&mut iov, start, n);
        }
        Ok(None)
    }

    fn counters(&self) -> SendCounts {
        self.counters
    }
}
