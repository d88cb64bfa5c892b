//! The message every send mode sends: eight separately heap-allocated fields.
//!
//! A `size`-byte message has fields of `size / 8` bytes; when `size` is not a multiple of 8 the
//! first `size % 8` fields carry one byte more, so a message is always exactly `size` bytes.
//! Sizes below 8 are rejected: every field holds at least one byte.
//!
//! Content is deterministic so a receiver can check it: byte `j` of field `f` is
//! [`pattern`]`(f, j)`, except that the first bytes of field 0 carry the message's sequence
//! number (little-endian, as many bytes as field 0 holds, at most 8).

/// Fields per message.
pub const FIELDS: usize = 8;
/// Smallest message: one byte per field.
pub const MIN_SIZE: usize = FIELDS;
/// Largest message netcopy sends (64 MiB): beyond it a message no longer fits socket buffers.
pub const MAX_SIZE: usize = 64 << 20;

/// Length of field `field` in a `size`-byte message.
pub const fn field_len(size: usize, field: usize) -> usize {
    size / FIELDS + if field < size % FIELDS { 1 } else { 0 }
}

/// The filler byte at offset `j` of field `field`.
pub const fn pattern(field: usize, j: usize) -> u8 {
    (field as u8).wrapping_mul(37) ^ (j as u8).wrapping_mul(11) ^ ((j >> 8) as u8)
}

/// How many bytes of field 0 carry the sequence number.
const fn stamp_len(size: usize) -> usize {
    let first = field_len(size, 0);
    if first < 8 { first } else { 8 }
}

/// The byte at `offset` of message number `seq` of `size` bytes.
pub fn expected_byte(size: usize, seq: u64, offset: usize) -> u8 {
    let mut field = 0;
    let mut j = offset;
    while j >= field_len(size, field) {
        j -= field_len(size, field);
        field += 1;
    }
    if field == 0 && j < stamp_len(size) {
        seq.to_le_bytes()[j]
    } else {
        pattern(field, j)
    }
}

/// One message: eight boxes, allocated one by one.
pub struct Message {
    fields: [Box<[u8]>; FIELDS],
    size: usize,
    /// The sequence number last stamped.
    seq: u64,
}

impl Message {
    /// A message of `size` bytes filled with the pattern. `size` must already be validated.
    pub fn new(size: usize) -> Self {
        assert!(
            (MIN_SIZE..=MAX_SIZE).contains(&size),
            "size {size} not validated"
        );
        let fields = std::array::from_fn(|f| {
            (0..field_len(size, f))
                .map(|j| pattern(f, j))
                .collect::<Box<[u8]>>()
        });
        Self {
            fields,
            size,
            seq: 0,
        }
    }

    /// The bytes [`Message::new`] allocates for a `size`-byte message: its fields' lengths.
    pub fn footprint(size: usize) -> u64 {
        (0..FIELDS).map(|f| field_len(size, f) as u64).sum()
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// The sequence number last stamped (0 before any).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn fields(&self) -> &[Box<[u8]>; FIELDS] {
        &self.fields
    }

    /// Writes sequence number `seq` into field 0. The caller must know the kernel no longer
    /// reads this message's pages (zero-copy sends keep them pinned until completion).
    pub fn stamp(&mut self, seq: u64) {
        let n = stamp_len(self.size);
        self.fields[0][..n].copy_from_slice(&seq.to_le_bytes()[..n]);
        self.seq = seq;
    }

    /// The eight fields as an iovec array, pointing into this message.
    pub fn iovecs(&self) -> [libc::iovec; FIELDS] {
        std::array::from_fn(|f| libc::iovec {
            iov_base: self.fields[f].as_ptr() as *mut libc::c_void,
            iov_len: self.fields[f].len(),
        })
    }
}

/// Checks sampled messages of a byte stream against [`expected_byte`] as chunks arrive.
pub struct Verifier {
    size: usize,
    sample_every: u64,
    /// Message `seq` carries stamp `seq % stamp_period` (a5 sends a file of pre-stamped
    /// messages round and round); `None`: stamp `seq`.
    stamp_period: Option<u64>,
    offset: u64,
    /// Sampled messages whose bytes were all checked.
    pub checked: u64,
}

/// A byte that differed from what the sender stamped and filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    pub seq: u64,
    pub offset: usize,
    pub expected: u8,
    pub found: u8,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "message {} byte {}: expected {:#04x}, received {:#04x}",
            self.seq, self.offset, self.expected, self.found
        )
    }
}

impl Verifier {
    /// Checks message 0 and every `sample_every`-th after it.
    pub fn new(size: usize, sample_every: u64, stamp_period: Option<u64>) -> Self {
        Self {
            size,
            sample_every: sample_every.max(1),
            stamp_period: stamp_period.filter(|&p| p > 0),
            offset: 0,
            checked: 0,
        }
    }

    /// Feeds the next `chunk` of the stream.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Mismatch> {
        let size = self.size as u64;
        let mut at = 0usize;
        while at < chunk.len() {
            let seq = self.offset / size;
            let within = (self.offset % size) as usize;
            let take = (self.size - within).min(chunk.len() - at);
            if seq.is_multiple_of(self.sample_every) {
                let stamp = self.stamp_period.map_or(seq, |p| seq % p);
                for (k, &found) in chunk[at..at + take].iter().enumerate() {
                    let expected = expected_byte(self.size, stamp, within + k);
                    if found != expected {
                        return Err(Mismatch {
                            seq,
                            offset: within + k,
                            expected,
                            found,
                        });
                    }
                }
                if within + take == self.size {
                    self.checked += 1;
                }
            }
            at += take;
            self.offset += take as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatten(msg: &Message) -> Vec<u8> {
        msg.fields()
            .iter()
            .flat_map(|f| f.iter().copied())
            .collect()
    }

    #[test]
    fn sizes_not_a_multiple_of_eight_put_the_rest_in_the_first_fields() {
        let msg = Message::new(8 * 100 + 3);
        let lens: Vec<usize> = msg.fields().iter().map(|f| f.len()).collect();
        assert_eq!(lens, [101, 101, 101, 100, 100, 100, 100, 100]);
        assert_eq!(lens.iter().sum::<usize>(), 803);
    }

    #[test]
    fn expected_bytes_match_a_stamped_message() {
        for size in [8, 13, 64, 256, 1000, 4096] {
            let mut msg = Message::new(size);
            msg.stamp(0x0102_0304_0506_0708);
            let bytes = flatten(&msg);
            for (i, &b) in bytes.iter().enumerate() {
                assert_eq!(
                    b,
                    expected_byte(size, 0x0102_0304_0506_0708, i),
                    "size {size} byte {i}"
                );
            }
        }
    }

    #[test]
    fn verifier_follows_chunk_boundaries_and_finds_corruption() {
        let size = 100;
        let mut stream = Vec::new();
        let mut msg = Message::new(size);
        for seq in 0..10 {
            msg.stamp(seq);
            stream.extend(flatten(&msg));
        }
        let mut verifier = Verifier::new(size, 3, None);
        for chunk in stream.chunks(37) {
            verifier.feed(chunk).unwrap();
        }
        assert_eq!(verifier.checked, 4); // messages 0, 3, 6, 9
        stream[3 * size + 50] ^= 0xff;
        let mut verifier = Verifier::new(size, 3, None);
        let err = stream
            .chunks(64)
            .try_for_each(|c| verifier.feed(c))
            .unwrap_err();
        assert_eq!((err.seq, err.offset), (3, 50));
    }
}
