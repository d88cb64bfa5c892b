//! The request protocol's messages, and reading them from a peer that may be hostile: every
//! line is bounded in length and in time, every field of a request is bounded and validated
//! before anything runs, and a signal ends a wait.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Read as _},
    net::{IpAddr, TcpStream},
    time::{Duration, Instant},
};

use netcopy_common::{FlowCounters, FlowKey};
use serde::{Deserialize, Serialize};

use crate::{
    interrupt,
    netpath::NetPath,
    perf::PerfFigures,
    placement::{self, Placement, Policy},
    workload::{Config, Mode, SendCounts, Workload, message, zc_receive::ZcReceiveCounters},
};

/// Longest protocol line accepted, bytes: a request is a few hundred.
pub const MAX_LINE: usize = 16 << 10;
/// Longest warmup and window a client may ask for.
const MAX_WARMUP: Duration = Duration::from_secs(60);
const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Most connections, and most CPUs named, in one request.
const MAX_THREADS: usize = 1024;
const MAX_CPU: usize = 1 << 16;
/// How often a blocked read wakes to see whether a signal asked netcopy to stop.
const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Request {
    pub mode: String,
    pub workload: String,
    pub size: usize,
    pub threads: usize,
    pub warmup_ms: u64,
    pub duration_ms: u64,
    /// The client's placement policy; the server pins its own threads the same way.
    #[serde(default)]
    pub placement: String,
    /// With policy `cpus`, the server threads' CPUs (the server's own numbering).
    #[serde(default)]
    pub server_cpus: Vec<usize>,
    /// The shared secret, when the server requires one.
    #[serde(default)]
    pub token: String,
    /// The server's receivers use zero-copy receive.
    #[serde(default)]
    pub zerocopy_receive: bool,
    /// An untraced run: the server detaches its programs for it and says how many the
    /// kernel still had attached.
    #[serde(default)]
    pub detach: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Ready { port: u16, boot_id: String },
    Report(Box<ServerReport>),
    Failed(String),
}

/// Why a protocol line could not be read.
#[derive(Debug)]
pub enum LineError {
    /// The peer closed the connection before a line began: it is done.
    Closed,
    /// Not a whole line within the time allowed (`what` names the wait).
    TimedOut(&'static str, Duration),
    /// netcopy was asked to stop.
    Interrupted,
    /// Longer than [`MAX_LINE`] without an end.
    TooLong,
    /// The peer closed mid-line.
    Truncated,
    /// Not UTF-8, not JSON, or not the message expected.
    Malformed(String),
    /// The connection failed.
    Io(std::io::Error),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => write!(f, "the peer closed the connection"),
            Self::TimedOut(what, limit) => write!(f, "no {what} within {limit:?}"),
            Self::Interrupted => write!(f, "interrupted"),
            Self::TooLong => write!(f, "a protocol line longer than {MAX_LINE} bytes"),
            Self::Truncated => write!(f, "the peer closed the connection mid-line"),
            Self::Malformed(why) => write!(f, "a malformed protocol message: {why}"),
            Self::Io(e) => write!(f, "the request connection failed: {e}"),
        }
    }
}

/// Reads one message from `reader` within `limit`, waking every [`TICK`] for signals; the
/// line may be at most [`MAX_LINE`] bytes.
pub fn receive<T: for<'de> Deserialize<'de>>(
    reader: &mut BufReader<TcpStream>,
    what: &'static str,
    limit: Duration,
) -> Result<T, LineError> {
    let deadline = Instant::now() + limit;
    reader
        .get_ref()
        .set_read_timeout(Some(TICK))
        .map_err(LineError::Io)?;
    let mut line = Vec::new();
    loop {
        let room = (MAX_LINE + 1).saturating_sub(line.len()) as u64;
        // read_until keeps what it read before an error, so a timed-out read resumes.
        match reader.by_ref().take(room).read_until(b'\n', &mut line) {
            Ok(0) if line.is_empty() => return Err(LineError::Closed),
            Ok(_) if line.ends_with(b"\n") => break,
            Ok(_) if line.len() > MAX_LINE => return Err(LineError::TooLong),
            Ok(0) => return Err(LineError::Truncated),
            Ok(_) => {}
            Err(e) if only_waited(&e) => {}
            Err(e) => return Err(LineError::Io(e)),
        }
        if interrupt::requested() {
            return Err(LineError::Interrupted);
        }
        if Instant::now() >= deadline {
            return Err(LineError::TimedOut(what, limit));
        }
    }
    decode(&line)
}

/// A read or write that only timed out, would block, or was interrupted: the connection is
/// still whole, and the caller looks at its deadline and signals before trying again.
pub fn only_waited(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

/// One protocol line's message.
pub fn decode<T: for<'de> Deserialize<'de>>(line: &[u8]) -> Result<T, LineError> {
    let text = std::str::from_utf8(line).map_err(|e| LineError::Malformed(e.to_string()))?;
    serde_json::from_str(text.trim_end()).map_err(|e| LineError::Malformed(e.to_string()))
}

/// Whether `given` is `expected`, in time that does not depend on where they differ.
pub fn token_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Request {
    /// What a client asks for to run `config` on the server's side.
    /// `detach` asks the server to run it with its programs detached (an untraced run).
    pub fn of(config: &Config, token: String, detach: bool) -> Self {
        Self {
            mode: config.mode.name().to_owned(),
            workload: config.workload.name().to_owned(),
            size: config.size,
            threads: config.threads,
            warmup_ms: config.warmup.as_millis() as u64,
            duration_ms: config.duration.as_millis() as u64,
            placement: config.placement.policy.name().to_owned(),
            server_cpus: config.placement.server_list().to_vec(),
            token,
            zerocopy_receive: config.zerocopy_receive,
            detach,
        }
    }

    /// The experiment this request asks for, every field within its bounds; or why not.
    pub fn config(&self, bind: IpAddr) -> Result<Config, String> {
        let mode: Mode = self.mode.parse()?;
        let workload: Workload = self.workload.parse()?;
        if !(message::MIN_SIZE..=message::MAX_SIZE).contains(&self.size) {
            return Err(format!(
                "size {} outside {}..={} bytes",
                self.size,
                message::MIN_SIZE,
                message::MAX_SIZE
            ));
        }
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return Err(format!(
                "threads {} outside 1..={MAX_THREADS}",
                self.threads
            ));
        }
        let warmup = Duration::from_millis(self.warmup_ms);
        let duration = Duration::from_millis(self.duration_ms);
        if warmup > MAX_WARMUP {
            return Err(format!("warmup {warmup:?} over {MAX_WARMUP:?}"));
        }
        if duration.is_zero() || duration > MAX_DURATION {
            return Err(format!(
                "duration {duration:?} outside 1ms..={MAX_DURATION:?}"
            ));
        }
        if self.server_cpus.len() > MAX_THREADS || self.server_cpus.iter().any(|&c| c >= MAX_CPU) {
            return Err(format!(
                "server CPUs: at most {MAX_THREADS}, each below {MAX_CPU}"
            ));
        }
        let mut config = Config::new(mode, workload, self.size, self.threads);
        config.warmup = warmup;
        config.duration = duration;
        config.bind = bind;
        config.port = 0;
        config.net_path = NetPath::Remote;
        config.zerocopy_receive = self.zerocopy_receive;
        if !self.placement.is_empty() {
            let policy: Policy = self.placement.parse()?;
            let cpus = &self.server_cpus;
            // Only the server's side runs here: its list stands for both.
            config.placement = Placement::resolve(policy, &placement::allowed_cpus(), cpus, cpus)
                .map_err(|e| e.to_string())?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests;

/// What the server measured on its side of one experiment.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct ServerReport {
    pub(super) window_bytes_received: u64,
    pub(super) bytes_sent: u64,
    pub(super) bytes_received: u64,
    pub(super) recv_calls: u64,
    pub(super) verified_messages: u64,
    pub(super) send_counts: SendCounts,
    pub(super) perf: PerfFigures,
    pub(super) kernel: Option<KernelSide>,
    /// With zero-copy receive: what the server's receivers mapped and copied.
    #[serde(default)]
    pub(super) zc_receive: Option<ZcReceiveCounters>,
    /// How many of the server's programs the kernel had attached at the window's edges;
    /// None when it loaded none.
    #[serde(default)]
    pub(super) attached_programs: Option<u32>,
}

/// One side's kernel counters, split as the module comment explains.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(super) struct KernelSide {
    pub(super) sockets: FlowCounters,
    pub(super) deliveries: FlowCounters,
    pub(super) unseen: std::collections::BTreeMap<String, String>,
    /// Events this side's probes could not count (see `KernelFigures::skipped`).
    #[serde(default)]
    pub(super) skipped: [u64; 4],
}

impl KernelSide {
    /// Splits `flows`: socket counters of the flows `own` says are this side's, and every
    /// delivery this kernel saw.
    pub(super) fn split(
        flows: &BTreeMap<FlowKey, FlowCounters>,
        own: impl Fn(&FlowKey) -> bool,
        unseen: std::collections::BTreeMap<String, String>,
        skipped: [u64; 4],
    ) -> Self {
        let mut side = Self {
            unseen,
            skipped,
            ..Self::default()
        };
        for (key, counters) in flows {
            if own(key) {
                side.sockets.accumulate(&counters.socket_part());
            }
            side.deliveries.accumulate(&counters.delivery_part());
        }
        side
    }
}
