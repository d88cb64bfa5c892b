//! Which zero-copy sends the kernel has released, by id.
//!
//! The kernel numbers a socket's zero-copy sends 0, 1, 2, ... and reports completions as
//! inclusive ranges `[lo, hi]` that may merge many sends: a range completes `hi - lo + 1` sends,
//! never one. A fixed window of flags (no allocation after start) tracks the ids in flight.

/// Sends allowed in flight at once; the workloads keep far fewer.
const WINDOW: u64 = 1 << 16;

pub struct Completions {
    /// Next id the kernel will give a send.
    next_id: u64,
    /// Every id below this one has completed.
    low_water: u64,
    done: Box<[bool]>,
    /// Sends completed, summed over ranges.
    pub completed: u64,
    /// Of those, sends whose notification said the kernel copied the bytes after all.
    pub copied: u64,
    /// Notifications (ranges) received.
    pub notifications: u64,
}

impl Default for Completions {
    fn default() -> Self {
        Self {
            next_id: 0,
            low_water: 0,
            done: vec![false; WINDOW as usize].into_boxed_slice(),
            completed: 0,
            copied: 0,
            notifications: 0,
        }
    }
}

impl Completions {
    /// Records that a send was issued; returns its id.
    pub fn issue(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends issued so far.
    pub fn issued(&self) -> u64 {
        self.next_id
    }

    /// Forgets send `id` without a notification (io_uring: a send that will get none).
    pub fn abandon(&mut self, id: u64) {
        self.mark(id);
    }

    fn mark(&mut self, id: u64) {
        if id < self.next_id && id >= self.low_water {
            self.done[(id % WINDOW) as usize] = true;
        }
        while self.low_water < self.next_id && self.done[(self.low_water % WINDOW) as usize] {
            self.done[(self.low_water % WINDOW) as usize] = false;
            self.low_water += 1;
        }
    }

    /// Sends issued and not yet completed.
    pub fn in_flight(&self) -> u64 {
        self.next_id - self.low_water
    }

    /// True when the window is full and the caller must wait for completions first.
    pub fn window_full(&self) -> bool {
        self.in_flight() >= WINDOW
    }

    /// Records the completion of ids `lo..=hi` (32-bit kernel ids, widened by our count).
    pub fn complete_range(&mut self, lo: u32, hi: u32, copied: bool) {
        self.notifications += 1;
        let count = u64::from(hi.wrapping_sub(lo)) + 1;
        self.completed += count;
        if copied {
            self.copied += count;
        }
        // Kernel ids are u32 and wrap; place them relative to the oldest id in flight.
        let base = self.low_water;
        let lo = base + u64::from(lo.wrapping_sub(base as u32));
        for id in lo..lo + count {
            self.mark(id);
        }
    }

    /// True once send `id` and every send before it completed.
    pub fn released(&self, id: u64) -> bool {
        id < self.low_water
    }

    /// The newest send's id: once it is released, all are. None before the first send.
    pub fn last(&self) -> Option<u64> {
        self.next_id.checked_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merged_range_completes_every_send_in_it() {
        let mut c = Completions::default();
        for _ in 0..10 {
            c.issue();
        }
        c.complete_range(0, 6, true);
        assert_eq!((c.completed, c.copied, c.notifications), (7, 7, 1));
        assert!(c.released(6) && !c.released(7));
        c.complete_range(7, 9, false);
        assert_eq!((c.completed, c.copied, c.notifications), (10, 7, 2));
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn out_of_order_ranges_release_only_a_contiguous_prefix() {
        let mut c = Completions::default();
        for _ in 0..4 {
            c.issue();
        }
        c.complete_range(2, 3, true);
        assert!(!c.released(0));
        c.complete_range(0, 1, true);
        assert_eq!(c.in_flight(), 0);
    }
}
