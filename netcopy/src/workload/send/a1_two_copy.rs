//! A1, two copies: the eight fields are copied into one contiguous buffer for every message
//! (the user copy), then `send()` copies that buffer into the kernel (the kernel copy).

use std::{
    io,
    os::fd::{AsRawFd as _, OwnedFd},
};

use super::{SendCounts, Sender, Ticket};
use crate::workload::message::Message;

pub struct TwoCopy {
    socket: OwnedFd,
    /// Allocated once; the hot loop only copies into it.
    buf: Box<[u8]>,
    counters: SendCounts,
}

impl TwoCopy {
    /// The one buffer it allocates: a whole message.
    pub fn footprint(size: usize) -> u64 {
        size as u64
    }

    pub fn new(socket: OwnedFd, size: usize) -> Self {
        Self {
            socket,
            buf: vec![0; Self::footprint(size) as usize].into_boxed_slice(),
            counters: SendCounts::default(),
        }
    }
}

impl Sender for TwoCopy {
    fn send(&mut self, msg: &Message) -> io::Result<Ticket> {
        // The user copy, every message: this is what makes A1 two-copy.
        let mut at = 0;
        for field in msg.fields() {
            self.buf[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        }
        let mut off = 0;
        while off < at {
            // SAFETY: buf[off..at] is live, initialised memory.
            let n = unsafe {
                libc::send(
                    self.socket.as_raw_fd(),
                    self.buf[off..].as_ptr().cast(),
                    at - off,
                    0,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            self.counters.send_calls += 1;
            self.counters.bytes_sent += n as u64;
            off += n as usize;
        }
        Ok(None)
    }

    fn counters(&self) -> SendCounts {
        self.counters
    }
}
