//! What `serve` shares between its request connections, each bounded against a hostile
//! client: the turn to run an experiment and the tracer (waits with a deadline, never a lock
//! held across a network write), the memory a request may make it allocate, and a delay for
//! an address that sent a wrong token.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    interrupt,
    kernel::tracer::Tracer,
    units::format_size,
};

/// How often every wait of `serve` wakes to check for a signal and its deadline.
pub(super) const TICK: Duration = Duration::from_millis(100);

/// Sleeps until `deadline` in [`TICK`]s, while `ready()` is false. Ok once ready; Err naming
/// `what` past the deadline, or when netcopy is asked to stop.
pub(super) fn wait_until(
    deadline: Instant,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    loop {
        if ready() {
            return Ok(());
        }
        if interrupt::requested() {
            return Err(Error::Interrupted);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Peer(format!("{what}: past this request's deadline")));
        }
        std::thread::sleep(left.min(TICK));
    }
}

/// The bench experiments run on: one at a time (they share the tracer, and would disturb each
/// other's figures). The turn is a flag, not the tracer's lock, so nothing waits on a lock
/// while its holder writes to a client; the tracer's lock is only held for tracer calls.
pub(super) struct Bench {
    busy: AtomicBool,
    tracer: Mutex<Option<Tracer>>,
}

/// The turn to run an experiment; given back when dropped, however the experiment ends.
pub(super) struct Turn<'a>(&'a Bench);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

/// How long a tracer call waits for the lock. Only the holder of the turn takes it, so it is
/// free at once; the bound only keeps a bug from becoming a hang.
const LOCK_WAIT: Duration = Duration::from_secs(5);

impl Bench {
    pub(super) fn new(tracer: Option<Tracer>) -> Self {
        Self {
            busy: AtomicBool::new(false),
            tracer: Mutex::new(tracer),
        }
    }

    /// Waits for the turn until `deadline`.
    pub(super) fn turn(&self, deadline: Instant) -> Result<Turn<'_>> {
        wait_until(deadline, "waiting for another client's experiment", || {
            self.busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })?;
        Ok(Turn(self))
    }

    /// Runs `f` on the tracer, if there is one, holding its lock only for the call.
    pub(super) fn with_tracer<T>(
        &self,
        _turn: &Turn<'_>,
        f: impl FnOnce(&mut Tracer) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut guard: Option<MutexGuard<'_, Option<Tracer>>> = None;
        wait_until(Instant::now() + LOCK_WAIT, "waiting for the tracer", || {
            guard = match self.tracer.try_lock() {
                Ok(g) => Some(g),
                // Another client's thread panicked holding it; the tracer is still whole.
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            guard.is_some()
        })?;
        let mut guard = guard.expect("locked");
        guard.as_mut().map(f).transpose()
    }
}

/// The most buffer memory one request may make `serve` allocate.
#[derive(Debug, Clone, Copy)]
pub enum MemoryCap {
    /// Set with `--max-memory`.
    Fixed(u64),
    /// Half the kernel's `MemAvailable`, read for each request.
    HalfOfAvailable,
}

impl MemoryCap {
    /// The cap now, and where it comes from.
    fn now(self) -> (u64, String) {
        match self {
            Self::Fixed(bytes) => (bytes, "--max-memory".to_owned()),
            Self::HalfOfAvailable => {
                let available = mem_available().unwrap_or(0);
                (
                    available / 2,
                    format!(
                        "half of MemAvailable, {}; set with --max-memory",
                        format_bytes(available)
                    ),
                )
            }
        }
    }

    /// Ok if `needed` bytes of buffers fit under the cap; else the one line that says why not.
    pub(super) fn admit(self, needed: u64) -> std::result::Result<(), String> {
        let (cap, from) = self.now();
        if needed <= cap {
            return Ok(());
        }
        Err(format!(
            "memory: this request needs {} of buffers, over this server's limit of {} ({from})",
            format_bytes(needed),
            format_bytes(cap)
        ))
    }
}

/// `MemAvailable` from /proc/meminfo, bytes.
fn mem_available() -> Option<u64> {
    use procfs::Current as _;
    procfs::Meminfo::current().ok()?.mem_available
}

/// Bytes for people, exact when they are a whole number of units.
fn format_bytes(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    if bytes >= GIB {
        if bytes.is_multiple_of(GIB) {
            return format!("{} GiB ({bytes} bytes)", bytes / GIB);
        }
        return format!("{:.1} GiB ({bytes} bytes)", bytes as f64 / GIB as f64);
    }
    format!("{} ({bytes} bytes)", format_size(bytes as usize))
}

/// The first wrong token from an address costs it this long before its next is checked;
/// each further one doubles it, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// Addresses remembered at once; beyond it, those whose delay has passed are forgotten.
const MAX_REMEMBERED: usize = 4096;

/// Wrong tokens per address, and when that address's next token may be checked: an address
/// gets one guess per delay, the delay doubling with each wrong one, so a token cannot be
/// guessed by trying fast.
#[derive(Default)]
pub(super) struct Penalties {
    by_address: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Penalties {
    fn delay(failures: u32) -> Duration {
        FIRST_DELAY
            .saturating_mul(1 << failures.saturating_sub(1).min(16))
            .min(MAX_DELAY)
    }

    /// Checks `given` against `expected` for a client at `from`, first waiting out that
    /// address's delay. A concurrent guess from the same address queues behind it; one that
    /// would wait more than [`MAX_DELAY`] is refused unchecked.
    pub(super) fn check(
        &self,
        from: IpAddr,
        expected: &str,
        given: &str,
    ) -> std::result::Result<(), String> {
        let lock = || self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let wait_until = {
            let mut map = lock();
            match map.get_mut(&from) {
                None => now,
                Some((failures, next)) => {
                    let at = (*next).max(now);
                    if at - now > MAX_DELAY {
                        return Err(format!(
                            "wrong tokens from {from}: its next one is checked in {:?}",
                            at - now
                        ));
                    }
                    // This guess takes the slot; the next one waits a whole delay after it.
                    *next = at + Self::delay(*failures);
                    at
                }
            }
        };
        if wait_until > now && !interrupt::sleep(wait_until - now) {
            return Err("interrupted".to_owned());
        }
        let mut map = lock();
        if super::protocol::token_matches(expected, given) {
            map.remove(&from);
            return Ok(());
        }
        if map.len() >= MAX_REMEMBERED {
            let now = Instant::now();
            map.retain(|_, (_, next)| *next > now);
        }
        let entry = map.entry(from).or_insert((0, Instant::now()));
        entry.0 += 1;
        entry.1 = entry.1.max(Instant::now() + Self::delay(entry.0));
        Err("wrong or missing token".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_token_delays_the_next_guess_from_its_address() {
        let penalties = Penalties::default();
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        assert!(penalties.check(a, "s3cret", "guess").is_err());
        let started = Instant::now();
        assert!(penalties.check(a, "s3cret", "s3cret").is_ok());
        assert!(started.elapsed() >= FIRST_DELAY, "{:?}", started.elapsed());
        // Another address is not held up, and a right token clears the delay.
        let started = Instant::now();
        assert!(penalties.check(b, "s3cret", "s3cret").is_ok());
        assert!(penalties.check(a, "s3cret", "s3cret").is_ok());
        assert!(started.elapsed() < FIRST_DELAY, "{:?}", started.elapsed());
    }

    #[test]
    fn delays_double_up_to_their_bound() {
        assert_eq!(Penalties::delay(1), FIRST_DELAY);
        assert_eq!(Penalties::delay(2), 2 * FIRST_DELAY);
        assert_eq!(Penalties::delay(4), 8 * FIRST_DELAY);
        assert_eq!(Penalties::delay(40), MAX_DELAY);
    }

    #[test]
    fn a_request_over_the_cap_is_refused_naming_both_figures() {
        let cap = MemoryCap::Fixed(1 << 30);
        assert!(cap.admit(1 << 30).is_ok());
        let why = cap.admit(3 << 40).unwrap_err();
        assert!(why.starts_with("memory: "), "{why}");
        assert!(why.contains("3072 GiB") && why.contains("1 GiB"), "{why}");
        assert!(MemoryCap::HalfOfAvailable.now().0 > 0);
    }
}
