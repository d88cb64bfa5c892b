//! The deferred copy of pinned TCP bytes, counted exactly in userspace from one record per
//! delivered skb (see [`Delivery`]). The programs share no per-flow state between CPUs, so no
//! interleaving and no order of segments can corrupt the figure: each flow's delivered TCP
//! sequence bytes are a union of ranges, kept here exactly (64-bit, unwrapped), however many
//! holes or repeats they have.
//!
//! A thread drains the ring buffer every few milliseconds, so a long experiment or trace never
//! fills it; a record that still finds it full is counted as skipped (`DeliveryRecordLost`).
//! While the programs are detached (a speed figure is being taken) it sleeps without waking.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use netcopy_common::{Delivery, FlowCounters, FlowKey};

/// How often the thread drains the ring buffer: 4 MiB of records last about a second at the
/// fastest loopback rates seen here, so this leaves two orders of magnitude of margin.
const DRAIN_EVERY: Duration = Duration::from_millis(5);

/// One flow's delivered TCP sequence bytes.
#[derive(Debug, Default)]
pub struct FlowDeliveries {
    /// Disjoint [start, end) ranges of unwrapped sequence numbers, keyed by start.
    ranges: BTreeMap<u64, u64>,
    /// The last record's sequence number, raw and unwrapped, to unwrap the next one.
    last: Option<(u32, u64)>,
    /// Sequence bytes in `ranges`.
    union: u64,
    /// Fragment bytes of every record: each was copied by `skb_copy_ubufs` once more.
    copied: u64,
}

impl FlowDeliveries {
    /// Records one delivered segment: `len` sequence bytes from `seq`, `bytes` copied.
    pub fn deliver(&mut self, seq: u32, len: u32, bytes: u64) {
        // Start far from zero so segments before the first one stay positive.
        let at = match self.last {
            None => 1 << 40,
            Some((raw, unwrapped)) => {
                unwrapped.wrapping_add_signed(i64::from(seq.wrapping_sub(raw) as i32))
            }
        };
        self.last = Some((seq, at));
        self.copied += bytes;
        self.insert(at, at + u64::from(len));
    }

    /// Adds [start, end) to the ranges, merging what it touches.
    fn insert(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back()
            && e >= start
        {
            start = s;
            end = end.max(e);
            self.union -= e - s;
            self.ranges.remove(&s);
        }
        while let Some((&s, &e)) = self.ranges.range(start..=end).next() {
            end = end.max(e);
            self.union -= e - s;
            self.ranges.remove(&s);
        }
        self.union += end - start;
        self.ranges.insert(start, end);
    }

    /// Sequence bytes from the first delivered to the last: TCP hands a stream to the socket,
    /// so every one of them was delivered, seen or not.
    pub fn span(&self) -> u64 {
        match (self.ranges.first_key_value(), self.ranges.last_key_value()) {
            (Some((&start, _)), Some((_, &end))) => end - start,
            _ => 0,
        }
    }

    /// (first deliveries, copied again, first deliveries no record showed).
    pub fn figures(&self) -> (u64, u64, u64) {
        let span = self.span();
        (
            span,
            self.copied.saturating_sub(self.union),
            span - self.union,
        )
    }
}

/// Every flow's deliveries since the last clear.
type Flows = HashMap<FlowKey, FlowDeliveries>;

/// Drains the programs' delivery records on a thread of its own.
pub struct Collector {
    ring: Arc<Mutex<RingBuf<MapData>>>,
    flows: Arc<Mutex<Flows>>,
    stop: Arc<AtomicBool>,
    /// Set while no program is attached: nothing can arrive, so the thread parks.
    paused: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Reads every record waiting in `ring` into `flows`.
fn drain(ring: &Mutex<RingBuf<MapData>>, flows: &Mutex<Flows>) {
    let mut ring = ring.lock().unwrap_or_else(|e| e.into_inner());
    let mut flows = flows.lock().unwrap_or_else(|e| e.into_inner());
    while let Some(item) = ring.next() {
        if item.len() < size_of::<Delivery>() {
            continue;
        }
        // SAFETY: the program writes whole `Delivery` values (plain integers); the read is
        // unaligned-safe.
        let d: Delivery = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        flows
            .entry(d.key)
            .or_default()
            .deliver(d.seq, d.len, d.bytes);
    }
}

impl Collector {
    pub fn start(ring: RingBuf<MapData>) -> Self {
        let ring = Arc::new(Mutex::new(ring));
        let flows = Arc::new(Mutex::new(Flows::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let thread = {
            let (ring, flows) = (ring.clone(), flows.clone());
            let (stop, paused) = (stop.clone(), paused.clone());
            std::thread::Builder::new()
                .name("deliveries".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        if paused.load(Ordering::Acquire) {
                            // Woken by `resume` or `drop`; a spurious wake-up loops back here.
                            std::thread::park();
                            continue;
                        }
                        drain(&ring, &flows);
                        std::thread::sleep(DRAIN_EVERY);
                    }
                })
                .ok()
        };
        Self {
            ring,
            flows,
            stop,
            paused,
            thread,
        }
    }

    /// Stops the draining thread from waking (every program is detached): an untraced run
    /// shares its CPUs with no part of the observer. Records still waiting stay in the ring.
    pub fn pause(&self) {
        self.paused.store(true, Ordering::Release);
    }

    /// Drains every few milliseconds again (the programs are attached again).
    pub fn resume(&self) {
        self.paused.store(false, Ordering::Release);
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }

    /// Adds each of `slot`'s flows' TCP delivery figures to its counters (a flow with
    /// deliveries and no counters gets an entry).
    pub fn add_to(&self, slot: u32, counters: &mut BTreeMap<FlowKey, FlowCounters>) {
        drain(&self.ring, &self.flows);
        let flows = self.flows.lock().unwrap_or_else(|e| e.into_inner());
        for (key, flow) in flows.iter().filter(|(k, _)| k.slot == slot) {
            let (first, again, unseen) = flow.figures();
            let c = counters.entry(*key).or_default();
            c.deferred_copy_bytes += first;
            c.recopied_bytes += again;
            c.deferred_copy_unseen_bytes += unseen;
        }
    }

    /// Forgets every flow (the records already waiting are read and dropped first).
    pub fn clear(&self) {
        drain(&self.ring, &self.flows);
        self.flows.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(segments: &[(u32, u32)]) -> (u64, u64, u64) {
        let mut f = FlowDeliveries::default();
        for &(seq, len) in segments {
            f.deliver(seq, len, u64::from(len));
        }
        f.figures()
    }

    #[test]
    fn in_order_segments_are_all_first_deliveries() {
        assert_eq!(flow(&[(1000, 100), (1100, 100), (1200, 50)]), (250, 0, 0));
    }

    #[test]
    fn repeats_are_copied_again() {
        assert_eq!(
            flow(&[(0, 100), (100, 100), (0, 100), (150, 100)]),
            (250, 150, 0)
        );
    }

    #[test]
    fn any_order_gives_the_same_union() {
        // Ten segments, every one late, with six holes open at once (more than any fixed
        // number of slots), then all filled.
        let order = [9u32, 7, 5, 3, 1, 0, 2, 4, 6, 8];
        let segs: Vec<_> = order.iter().map(|&i| (i * 100, 100)).collect();
        assert_eq!(flow(&segs), (1000, 0, 0));
    }

    #[test]
    fn a_hole_no_record_showed_is_unseen_not_lost() {
        // 100..300 delivered with no record: inside the span, so counted apart.
        assert_eq!(flow(&[(0, 100), (300, 100)]), (400, 0, 200));
    }

    #[test]
    fn sequence_numbers_wrap() {
        assert_eq!(
            flow(&[(u32::MAX - 99, 100), (0, 100), (u32::MAX - 99, 100)]),
            (200, 100, 0)
        );
        // And a segment from before the first one.
        assert_eq!(flow(&[(50, 50), (0, 50)]), (100, 0, 0));
    }
}
