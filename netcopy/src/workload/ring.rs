//! The messages a sender cycles through.

use std::time::Instant;

use super::{message, send};

/// A ring of messages and, per slot, the ticket of its last send: a slot is restamped only
/// once the kernel has released it.
pub(super) struct Ring {
    messages: Vec<message::Message>,
    tickets: Vec<send::Ticket>,
}

impl Ring {
    pub(super) fn new(size: usize, len: usize) -> Self {
        Self {
            messages: (0..len.max(1))
                .map(|_| message::Message::new(size))
                .collect(),
            tickets: vec![None; len.max(1)],
        }
    }

    /// Sends message `seq` through `sender`, reusing its slot only after release. Returns the
    /// nanoseconds the send call(s) took.
    #[inline]
    pub(super) fn send(
        &mut self,
        sender: &mut dyn send::SendPath,
        seq: u64,
    ) -> std::io::Result<u64> {
        let slot = (seq % self.messages.len() as u64) as usize;
        sender.wait_released(self.tickets[slot])?;
        let msg = &mut self.messages[slot];
        msg.stamp(seq);
        let start = Instant::now();
        self.tickets[slot] = sender.send(msg)?;
        Ok(start.elapsed().as_nanos() as u64)
    }
}
