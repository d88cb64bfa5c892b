//! A5, sendfile: the messages live in a file, and `sendfile(2)` hands the socket the file's
//! page-cache pages by reference (`MSG_SPLICE_PAGES`). No user buffer is read at all.
//!
//! The file is a memfd: its pages are shmem page cache, like a tmpfs file's, but it needs no
//! mounted filesystem, no path, and nothing is left behind. A regular file would behave the
//! same once cached, but its first read may come from disk and writeback touches its pages.
//!
//! The file holds [`file_ring_len`] messages, stamped once with sequence numbers 0, 1, ... and
//! sent round and round. The stamps are never rewritten: a page still referenced by an skb in
//! a receive queue must not change under it (sendfile has no completion to say when it is
//! released), so the receiver expects stamp `seq % file_ring_len` instead of `seq`.

use std::{io, os::fd::OwnedFd};

use nix::{
    errno::Errno,
    sys::{
        memfd::{MFdFlags, memfd_create},
        sendfile::sendfile,
    },
};

use super::{SendCounts, Sender, Ticket};
use crate::{
    error::{Error, Result},
    workload::message::Message,
};

/// Messages in the file: up to 16, and at most 64 MiB of file.
pub fn file_ring_len(size: usize) -> u64 {
    (64usize << 20).div_euclid(size).clamp(1, 16) as u64
}

/// Bytes of the message file for `size`-byte messages.
fn file_len(size: usize) -> usize {
    size * file_ring_len(size) as usize
}

pub struct Sendfile {
    socket: OwnedFd,
    file: OwnedFd,
    size: usize,
    ring_len: u64,
    counters: SendCounts,
}

impl Sendfile {
    pub fn new(socket: OwnedFd, size: usize) -> Result<Self> {
        let file = memfd_create(c"netcopy-a5", MFdFlags::MFD_CLOEXEC).map_err(|e| {
            Error::io(
                "creating the a5 message file (memfd_create)",
                io::Error::from(e),
            )
        })?;
        let ring_len = file_ring_len(size);
        let mut content = Vec::with_capacity(file_len(size));
        let mut msg = Message::new(size);
        for seq in 0..ring_len {
            msg.stamp(seq);
            for field in msg.fields() {
                content.extend_from_slice(field);
            }
        }
        let mut file = std::fs::File::from(file);
        io::Write::write_all(&mut file, &content)
            .map_err(|e| Error::io("writing the a5 message file", e))?;
        Ok(Self {
            socket,
            file: file.into(),
            size,
            ring_len,
            counters: SendCounts::default(),
        })
    }
}

impl Sendfile {
    /// What [`Sendfile::new`] holds at its peak: the file's pages (shmem, kept), the content
    /// it writes them from and the message it stamps (both freed once written).
    pub fn footprint(size: usize) -> u64 {
        2 * file_len(size) as u64 + Message::footprint(size)
    }
}

impl Sender for Sendfile {
    /// Sends the file's copy of message `msg`'s slot; `msg` itself only gives the sequence
    /// number (its stamp), so this sender reads no user memory.
    fn send(&mut self, msg: &Message) -> io::Result<Ticket> {
        let seq = msg.seq();
        let mut offset = ((seq % self.ring_len) * self.size as u64) as libc::off_t;
        let mut left = self.size;
        while left > 0 {
            let n = match sendfile(&self.socket, &self.file, Some(&mut offset), left) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.counters.send_calls += 1;
            self.counters.bytes_sent += n as u64;
            left -= n as usize;
        }
        Ok(None)
    }

    fn counters(&self) -> SendCounts {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_ring_stays_within_64_mib() {
        assert_eq!(file_ring_len(256), 16);
        assert_eq!(file_ring_len(8 << 20), 8);
        assert_eq!(file_ring_len(64 << 20), 1);
    }
}
