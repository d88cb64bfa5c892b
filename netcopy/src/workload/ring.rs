//! The messages a sender cycles through.

use std::time::Instant;

use super::{message, send};

/// Messages in a ring asked for `len`: never none.
fn slots(len: usize) -> usize {
    len.max(1)
}

/// A ring of messages and, per slot, the ticket of its last send: a slot is restamped only
/// once the kernel has released it.
pub(super) struct Ring {
    messages: Vec<message::Message>,
    tickets: Vec<send::Ticket>,
}

impl Ring {
    pub(super) fn new(size: usize, len: usize) -> Self {
        Self {
            messages: (0..slots(len))
                .map(|_| message::Message::new(size))
                .collect(),
            tickets: vec![None; slots(len)],
        }
    }

    /// The message bytes [`Ring::new`] allocates for `len` messages of `size` bytes.
    pub(super) fn footprint(size: usize, len: usize) -> u64 {
        slots(len) as u64 * message::Message::footprint(size)
    }

    /// Sends message `seq` through `sender`, reusing its slot only after release. Returns the
    /// nanoseconds the send call(s) took.
    #[inline]
    pub(super) fn send(&mut self, sender: &mut dyn send::Sender, seq: u64) -> std::io::Result<u64> {
        let slot = (seq % self.messages.len() as u64) as usize;
        sender.wait_released(self.tickets[slot])?;
        let msg = &mut self.messages[slot];
        msg.stamp(seq);
        let start = Instant::now();
        self.tickets[slot] = sender.send(msg)?;
        Ok(start.elapsed().as_nanos() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_footprint_is_what_new_allocates() {
        for (size, len) in [(8, 0), (1000, 1), (64 << 10, 16), (12_345, 3)] {
            let ring = Ring::new(size, len);
            let allocated: usize = ring
                .messages
                .iter()
                .flat_map(|m| m.fields().iter().map(|f| f.len()))
                .sum();
            assert_eq!(
                Ring::footprint(size, len),
                allocated as u64,
                "{size} x {len}"
            );
        }
    }
}
