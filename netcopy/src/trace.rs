//! `netcopy trace`: the copy accounting for traffic netcopy did not generate, selected by port
//! or by process. It only counts; no payload byte is read.

use std::{
    ffi::OsString,
    fmt::Write as _,
    io,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus},
    time::{Duration, Instant},
};

use netcopy_common::{FlowCounters, FlowKey, ip_of};
use nix::{
    sys::{
        signal::{Signal, kill},
        wait::{WaitPidFlag, WaitStatus, waitpid},
    },
    unistd::Pid,
};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    experiment::{
        KernelFigures, classification_check, consumed_check, kernel_checks, missed_since,
    },
    interrupt,
    kernel::tracer::Tracer,
};

/// Every traced socket counts under this slot.
pub const SLOT: u32 = 1;

/// One traced socket; the counters carry the sweep's column names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceRow {
    pub local_addr: String,
    pub local_port: u16,
    pub remote_addr: String,
    pub remote_port: u16,
    pub k_send_calls: Option<u64>,
    pub k_send_bytes: Option<u64>,
    pub k_copied_at_send_bytes: Option<u64>,
    pub k_pinned_bytes: Option<u64>,
    pub k_referenced_at_send_bytes: Option<u64>,
    pub k_unclassified_send_bytes: Option<u64>,
    pub k_deferred_copy_bytes: Option<u64>,
    pub k_recopied_bytes: Option<u64>,
    pub k_deferred_copy_unseen_bytes: Option<u64>,
    pub k_deferred_copy_pages: Option<u64>,
    pub k_deferred_copy_pages_required: Option<u64>,
    pub k_fallback_pct: Option<f64>,
    pub k_zc_notifications: Option<u64>,
    pub k_recv_calls: Option<u64>,
    pub k_recv_bytes: Option<u64>,
    pub k_recv_copy_bytes: Option<u64>,
    /// Bytes the receiver consumed, by the kernel's count (TCP: `copied_seq`'s advance).
    pub k_recv_consumed_bytes: Option<u64>,
    /// Consumed and not copied to user: mapped by `TCP_ZEROCOPY_RECEIVE`.
    pub k_mapped_bytes: Option<u64>,
    /// Events the probes saw and could not count, in the whole trace (any socket's).
    pub k_skipped_events: Option<u64>,
    pub k_note: String,
    /// `ok`, or the kernel's checks that failed (see `experiment::kernel_checks`).
    pub checks: String,
}

impl TraceRow {
    pub fn new(key: &FlowKey, k: &KernelFigures) -> Self {
        let c = &k.counters;
        Self {
            local_addr: ip_of(&key.local_addr).to_string(),
            local_port: key.local_port,
            remote_addr: ip_of(&key.remote_addr).to_string(),
            remote_port: key.remote_port,
            k_send_calls: k.figure("k_send_calls", c.send_calls),
            k_send_bytes: k.figure("k_send_bytes", c.send_bytes),
            k_copied_at_send_bytes: k.figure("k_copied_at_send_bytes", c.copied_at_send_bytes()),
            k_pinned_bytes: k.figure("k_pinned_bytes", c.pinned_bytes()),
            k_referenced_at_send_bytes: k
                .figure("k_referenced_at_send_bytes", c.tcp_referenced_at_send_bytes),
            k_unclassified_send_bytes: k
                .figure("k_unclassified_send_bytes", c.unclassified_send_bytes),
            k_deferred_copy_bytes: k.figure("k_deferred_copy_bytes", c.deferred_copy_bytes),
            k_recopied_bytes: k.figure("k_recopied_bytes", c.recopied_bytes),
            k_deferred_copy_unseen_bytes: k
                .figure("k_deferred_copy_unseen_bytes", c.deferred_copy_unseen_bytes),
            k_deferred_copy_pages: k.deferred_copy_pages(),
            k_deferred_copy_pages_required: k.figure(
                "k_deferred_copy_pages_required",
                c.deferred_copy_pages_required,
            ),
            k_fallback_pct: k.fallback_pct(),
            k_zc_notifications: k.figure("k_zc_notifications", c.zc_notifications),
            k_recv_calls: k.figure("k_recv_calls", c.recv_calls),
            k_recv_bytes: k.figure("k_recv_bytes", c.recv_bytes),
            k_recv_copy_bytes: k.recv_copy_bytes(),
            k_recv_consumed_bytes: k.recv_consumed_bytes(),
            k_mapped_bytes: k.mapped_bytes(),
            k_skipped_events: Some(k.skipped_events()),
            k_note: k.note(),
            checks: checks(&trace_checks(k)),
        }
    }

    /// The row of the sockets that found the flow map full, counted together.
    fn overflow(slot: u32, k: &KernelFigures) -> Self {
        let mut row = Self::new(
            &FlowKey {
                slot,
                ..FlowKey::default()
            },
            k,
        );
        row.local_addr = "*".to_owned();
        row.remote_addr = "*".to_owned();
        row.k_note = [OVERFLOW_NOTE, &row.k_note]
            .iter()
            .filter(|n| !n.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("; ");
        row
    }
}

/// The `k_note` of the aggregate row.
pub const OVERFLOW_NOTE: &str =
    "sockets that found the flow map full, counted together (addresses and ports `*`, 0)";

/// The sweep's kernel checks, its classification check against the kernel's own bytes sent,
/// and the receive side's: copied + mapped = consumed.
fn trace_checks(k: &KernelFigures) -> Vec<String> {
    let mut failed = kernel_checks(k);
    if let Some(sent) = k.figure("k_send_bytes", k.counters.send_bytes) {
        failed.extend(classification_check(k, sent, true));
    }
    failed.extend(consumed_check(k));
    failed
}

/// `ok`, or the failed checks, `; `-separated: a `checks` cell.
fn checks(failed: &[String]) -> String {
    if failed.is_empty() {
        "ok".to_owned()
    } else {
        failed.join("; ")
    }
}

/// Finds `program` the way a shell would: a path as given, a bare name on `PATH`.
pub fn resolve_command(program: &OsString) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(p))
            .find(|candidate| candidate.is_file())
    })
}

/// Starts `command` stopped, so its process can be watched before it runs a single
/// instruction of its own: a shell stops itself, then execs the command in place (same pid).
pub fn spawn_stopped(command: &[OsString]) -> Result<Child> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("kill -STOP $$; exec \"$@\"")
        .arg("netcopy-trace")
        .args(command);
    // Same process group: Ctrl-C reaches the command as it would without netcopy.
    let child = cmd
        .spawn()
        .map_err(|e| Error::io("starting the traced command", e))?;
    let stopped = waitpid(pid_of(&child), Some(WaitPidFlag::WUNTRACED));
    if !matches!(stopped, Ok(WaitStatus::Stopped(..))) {
        return Err(Error::io(
            "starting the traced command",
            io::Error::other("it did not reach its start line"),
        ));
    }
    Ok(child)
}

/// `child`'s pid, as nix takes it.
fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(child.id() as i32)
}

/// Lets a child started by [`spawn_stopped`] run.
pub fn resume(child: &Child) {
    let _ = kill(pid_of(child), Signal::SIGCONT);
}

/// Ends a command [`wait`] did not see exit: SIGTERM, and SIGKILL after a grace second.
pub fn stop(child: &Child) {
    let pid = pid_of(child);
    let _ = kill(pid, Signal::SIGTERM);
    for _ in 0..50 {
        if !matches!(
            waitpid(pid, Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::StillAlive)
        ) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

/// The exit status std would report for a reaped child, from nix's account of it.
fn exit_status(status: WaitStatus) -> Option<ExitStatus> {
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        WaitStatus::Exited(_, code) => Some(ExitStatus::from_raw((code & 0xff) << 8)),
        WaitStatus::Signaled(_, signal, core) => Some(ExitStatus::from_raw(
            signal as i32 | if core { 0x80 } else { 0 },
        )),
        _ => None,
    }
}

/// What ends a trace, besides Ctrl-C: the first of these to happen.
#[derive(Default)]
pub struct Until<'a> {
    /// The traced command exits.
    pub exit: Option<&'a Child>,
    /// Process `pid` is gone.
    pub gone: Option<u32>,
    /// This long has passed.
    pub elapsed: Option<Duration>,
}

/// Waits until the trace should end; the command's exit status when it exited.
pub fn wait(until: Until<'_>) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        // Polling our own child without blocking (this reaps it).
        if let Some(status) = until
            .exit
            .and_then(|child| waitpid(pid_of(child), Some(WaitPidFlag::WNOHANG)).ok())
            .and_then(exit_status)
        {
            return Some(status);
        }
        if until
            .gone
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
            || until.elapsed.is_some_and(|d| started.elapsed() >= d)
            || !interrupt::sleep(Duration::from_millis(20))
        {
            return None;
        }
    }
}

/// What a trace found: a row per socket, busiest first (and one for the sockets beyond the
/// flow map, if any), and the checks the whole trace failed.
pub struct Traced {
    pub rows: Vec<TraceRow>,
    /// The kernel's checks over all sockets together, each failure once.
    pub failed: Vec<String>,
}

/// Reads what `tracer` counted; `missed_before` is `Tracer::missed_runs` when it started.
pub fn rows(tracer: &mut Tracer, missed_before: &[(&str, u64)]) -> Result<Traced> {
    let figures = KernelFigures {
        unseen: tracer.unseen_in_trace(),
        fed_by: tracer.fed_by_fallback(),
        skipped: tracer.skipped()?,
        missed_runs: missed_since(missed_before, &tracer.missed_runs()),
        ..KernelFigures::default()
    };
    let with = |counters: FlowCounters| KernelFigures {
        counters,
        ..figures.clone()
    };
    let mut rows: Vec<TraceRow> = tracer
        .flows(SLOT)?
        .iter()
        .map(|(key, counters)| TraceRow::new(key, &with(*counters)))
        .collect();
    rows.sort_by_key(|r| {
        std::cmp::Reverse(r.k_send_bytes.unwrap_or(0) + r.k_recv_bytes.unwrap_or(0))
    });
    let overflow = tracer.overflow(SLOT)?;
    if overflow != FlowCounters::default() {
        // First: it is the busiest row, and the one a reader must not miss.
        rows.insert(0, TraceRow::overflow(SLOT, &with(overflow)));
    }
    let mut failed = trace_checks(&with(tracer.totals(SLOT)?));
    // A socket's own failure (not only the trace-wide ones every row repeats).
    let own = |r: &&TraceRow| r.checks.split("; ").any(|c| !failed.iter().any(|f| f == c));
    let sockets: Vec<&TraceRow> = rows
        .iter()
        .filter(|r| r.checks != "ok")
        .filter(own)
        .collect();
    if let Some(first) = sockets.first() {
        failed.push(format!(
            "{} socket(s) failed their own checks, e.g. {} -> {}: {}",
            sockets.len(),
            endpoint(&first.local_addr, first.local_port),
            endpoint(&first.remote_addr, first.remote_port),
            first.checks
        ));
    }
    Ok(Traced { rows, failed })
}

/// A figure, or `-` where no hook could see it (`k_note` says why).
fn cell(v: Option<u64>) -> String {
    v.map_or("-".to_owned(), |v| v.to_string())
}

/// `addr:port`, with an IPv6 address in brackets.
fn endpoint(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// The table printed at the end.
pub fn table(rows: &[TraceRow]) -> String {
    let mut o = String::new();
    if rows.is_empty() {
        return "no traffic on the traced sockets\n".to_owned();
    }
    let _ = writeln!(
        o,
        "{:>22} {:>22} {:>9} {:>14} {:>14} {:>14} {:>14} {:>14} {:>8} {:>14} {:>14} {:>8}",
        "local",
        "remote",
        "sends",
        "sent B",
        "copied@send B",
        "pinned B",
        "referenced B",
        "deferred B",
        "fallbk%",
        "to user B",
        "mapped B",
        "notifs"
    );
    for r in rows.iter().take(TABLE_ROWS) {
        let _ = writeln!(
            o,
            "{:>22} {:>22} {:>9} {:>14} {:>14} {:>14} {:>14} {:>14} {:>8} {:>14} {:>14} {:>8}",
            endpoint(&r.local_addr, r.local_port),
            endpoint(&r.remote_addr, r.remote_port),
            cell(r.k_send_calls),
            cell(r.k_send_bytes),
            cell(r.k_copied_at_send_bytes),
            cell(r.k_pinned_bytes),
            cell(r.k_referenced_at_send_bytes),
            cell(r.k_deferred_copy_bytes),
            r.k_fallback_pct
                .map_or("-".to_owned(), |p| format!("{p:.1}")),
            cell(r.k_recv_copy_bytes),
            cell(r.k_mapped_bytes),
            cell(r.k_zc_notifications)
        );
    }
    if rows.len() > TABLE_ROWS {
        let _ = writeln!(
            o,
            "... and {} more rows, the quietest (every row is in trace.csv with --out)",
            rows.len() - TABLE_ROWS
        );
    }
    o
}

/// Rows the printed table shows at most.
const TABLE_ROWS: usize = 40;

/// Writes `trace.csv` and `trace.json` into `dir`.
pub fn write(dir: &Path, rows: &[TraceRow]) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let csv_err = |source| Error::Csv {
        what: "writing trace.csv".to_owned(),
        source,
    };
    // The header is written first, so a trace without rows still names its columns.
    let mut csv = csv::WriterBuilder::new()
        .has_headers(false)
        .from_path(dir.join("trace.csv"))
        .map_err(csv_err)?;
    csv.write_record(crate::row::csv_columns::<TraceRow>())
        .map_err(csv_err)?;
    for r in rows {
        csv.serialize(r).map_err(csv_err)?;
    }
    csv.flush().map_err(|e| Error::io("writing trace.csv", e))?;
    let json = serde_json::to_string_pretty(rows).map_err(|source| Error::Json {
        what: "writing trace.json",
        source,
    })?;
    std::fs::write(dir.join("trace.json"), json + "\n")
        .map_err(|e| Error::io("writing trace.json", e))
}
