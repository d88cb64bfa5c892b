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

use netcopy_common::{FlowKey, ip_of};
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
    experiment::KernelFigures,
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
    pub k_deferred_copy_pages: Option<u64>,
    pub k_deferred_copy_pages_required: Option<u64>,
    pub k_fallback_pct: Option<f64>,
    pub k_zc_notifications: Option<u64>,
    pub k_recv_calls: Option<u64>,
    pub k_recv_bytes: Option<u64>,
    pub k_recv_copy_bytes: Option<u64>,
    pub k_note: String,
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
            k_note: k.note(),
        }
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

/// Every socket counted, busiest first.
pub fn rows(tracer: &Tracer) -> Result<Vec<TraceRow>> {
    let unseen = tracer.unseen(true);
    let fed_by = tracer.fed_by_fallback(true);
    let mut rows: Vec<TraceRow> = tracer
        .flows(SLOT)?
        .iter()
        .map(|(key, counters)| {
            let k = KernelFigures {
                counters: *counters,
                unseen: unseen.clone(),
                fed_by: fed_by.clone(),
                ..KernelFigures::default()
            };
            TraceRow::new(key, &k)
        })
        .collect();
    rows.sort_by_key(|r| {
        std::cmp::Reverse(r.k_send_bytes.unwrap_or(0) + r.k_recv_bytes.unwrap_or(0))
    });
    Ok(rows)
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
        "{:>22} {:>22} {:>9} {:>14} {:>14} {:>14} {:>14} {:>14} {:>8} {:>14} {:>8}",
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
        "notifs"
    );
    for r in rows {
        let _ = writeln!(
            o,
            "{:>22} {:>22} {:>9} {:>14} {:>14} {:>14} {:>14} {:>14} {:>8} {:>14} {:>8}",
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
            cell(r.k_zc_notifications)
        );
    }
    o
}

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
