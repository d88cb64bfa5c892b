//! A4, io_uring `SENDMSG_ZC`: the same 8-entry iovec as A3, submitted through io_uring. Each
//! send's result CQE carries `IORING_CQE_F_MORE` when a notification CQE will follow; with
//! `IORING_SEND_ZC_REPORT_USAGE` that notification's `res` says whether the kernel copied.
//! It needs no `SO_ZEROCOPY`.

use std::{
    io,
    os::fd::{AsRawFd as _, OwnedFd},
    time::Duration,
};

use io_uring::{IoUring, Probe, cqueue, opcode, types};

use super::{FIELDS, SendCounts, Sender, Ticket, advance};
use crate::{
    error::{Error, Result},
    workload::{completions::Completions, message::Message},
};

/// include/uapi/linux/io_uring.h; the io-uring crate does not export these two.
const IORING_SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
const IORING_NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;
/// How long one wait for a CQE may block before it counts as stalled.
const CQE_WAIT: Duration = Duration::from_secs(1);
const STALL_LIMIT: u32 = 10;

pub struct UringSendZc {
    socket: OwnedFd,
    ring: IoUring,
    completions: Completions,
    counters: SendCounts,
    /// Result of the send in flight, once its CQE arrived.
    result: Option<(u64, i32, bool)>,
    /// The header and iovecs the kernel reads while a send is in flight: boxed, so their
    /// addresses stay put however `self` moves.
    hdr: Box<libc::msghdr>,
    iov: Box<[libc::iovec; FIELDS]>,
}

// SAFETY: the raw pointers in hdr/iov only ever point into this value's own boxes or a Message
// the caller keeps alive; nothing is shared across threads.
unsafe impl Send for UringSendZc {}

impl UringSendZc {
    pub fn new(socket: OwnedFd) -> Result<Self> {
        let unavailable = |reason: String| Error::Unavailable { mode: "a4", reason };
        let ring = IoUring::new(64).map_err(|e| unavailable(format!("io_uring_setup: {e}")))?;
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| unavailable(format!("io_uring probe: {e}")))?;
        if !probe.is_supported(opcode::SendMsgZc::CODE) {
            return Err(unavailable(
                "this kernel's io_uring has no SENDMSG_ZC".into(),
            ));
        }
        Ok(Self {
            socket,
            ring,
            completions: Completions::default(),
            counters: SendCounts::default(),
            result: None,
            // SAFETY: msghdr is plain data; zeroed is a valid empty header.
            hdr: Box::new(unsafe { std::mem::zeroed() }),
            iov: Box::new(
                [libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                }; FIELDS],
            ),
        })
    }

    /// Reads every available CQE: send results into `self.result`, notifications into the
    /// completions.
    fn reap(&mut self) {
        for cqe in self.ring.completion() {
            let id = cqe.user_data();
            let flags = cqe.flags();
            if cqueue::notif(flags) {
                let copied = cqe.result() as u32 & IORING_NOTIF_USAGE_ZC_COPIED != 0;
                self.completions
                    .complete_range(id as u32, id as u32, copied);
            } else {
                self.result = Some((id, cqe.result(), cqueue::more(flags)));
            }
        }
    }

    /// Submits what is queued and waits (bounded) for at least one CQE.
    fn wait_cqe(&mut self) -> io::Result<()> {
        let ts = types::Timespec::from(CQE_WAIT);
        let args = types::SubmitArgs::new().timespec(&ts);
        for _ in 0..STALL_LIMIT {
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if !self.ring.completion().is_empty() {
                return Ok(());
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no io_uring completion within {:?} ({} sends in flight)",
                CQE_WAIT * STALL_LIMIT,
                self.completions.in_flight()
            ),
        ))
    }

    /// Sends `iov[start..]` once; returns bytes sent.
    fn send_once(&mut self, start: usize) -> io::Result<usize> {
        self.hdr.msg_iov = self.iov[start..].as_mut_ptr();
        self.hdr.msg_iovlen = FIELDS - start;
        let id = self.completions.issue();
        let entry =
            opcode::SendMsgZc::new(types::Fd(self.socket.as_raw_fd()), &raw const *self.hdr)
                .ioprio(IORING_SEND_ZC_REPORT_USAGE)
                .build()
                .user_data(id);
        // SAFETY: the header, iovecs and message memory stay alive until the result CQE, and
        // the message until its notification (wait_released).
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        self.result = None;
        loop {
            self.wait_cqe()?;
            self.reap();
            if let Some((done, res, more)) = self.result.take()
                && done == id
            {
                if more {
                    self.counters.zc_sends += 1;
                } else {
                    self.completions.abandon(id);
                }
                if res < 0 {
                    return Err(io::Error::from_raw_os_error(-res));
                }
                return Ok(res as usize);
            }
        }
    }
}

impl Sender for UringSendZc {
    fn send(&mut self, msg: &Message) -> io::Result<Ticket> {
        *self.iov = msg.iovecs();
        let mut start = 0;
        let mut last = None;
        while start < FIELDS {
            match self.send_once(start) {
                Ok(n) => {
                    self.counters.send_calls += 1;
                    self.counters.bytes_sent += n as u64;
                    last = Some(self.completions.issued() - 1);
                    start = advance(&mut self.iov, start, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.counters.enobufs_retries += 1;
                    self.wait_cqe()?;
                    self.reap();
                }
                Err(e) => return Err(e),
            }
        }
        Ok(last)
    }

    fn wait_released(&mut self, ticket: Ticket) -> io::Result<()> {
        let Some(id) = ticket else { return Ok(()) };
        while !self.completions.released(id) {
            self.wait_cqe()?;
            self.reap();
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        // Completions release in order, so the newest send's release covers all of them.
        self.wait_released(self.completions.last())
    }

    fn counters(&self) -> SendCounts {
        SendCounts {
            zc_completed: self.completions.completed,
            zc_copied: self.completions.copied,
            zc_notifications: self.completions.notifications,
            ..self.counters
        }
    }
}
