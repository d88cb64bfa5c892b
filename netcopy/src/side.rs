//! Which end of an experiment a thread works for: where placement pins it, whose counters
//! and CPU time its work adds to.

/// Which end of an experiment a thread works for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Threads that send the stream, or send requests (rr).
    Client,
    /// Threads that receive the stream, or answer requests (rr).
    Server,
}
