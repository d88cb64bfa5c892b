//! `netcopy trace` holds foreign programs to the sweep's checks: every connection of a
//! program with more connections than the flow map holds is accounted for; a map made too
//! small to count everything fails the trace, naming the check; a UDP zero-copy sender traced
//! by process has every datagram classified, its first included. The programs traced are
//! small Python programs in `tests/programs`, not netcopy's own workloads.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::Mutex,
    time::Duration,
};

use netcopy::trace::{OVERFLOW_NOTE, TraceRow};

/// The tests load the probes and open many connections; one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn program(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(name)
}

fn out_dir(name: &str) -> PathBuf {
    common::out_dir("checks", name)
}

fn read_trace(dir: &Path) -> Vec<TraceRow> {
    common::read_trace(dir)
}

/// Runs `netcopy trace ARGS -- python3 PROGRAM PROGRAM_ARGS` with `env`, at most `limit`.
/// None (said, and only outside CI) when the probes cannot load here.
fn trace(
    test: &str,
    args: &[&str],
    env: &[(&str, &str)],
    command: &[&str],
    limit: Duration,
) -> Option<Output> {
    common::tracer_or_skip(test)?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netcopy"));
    cmd.arg("trace")
        .args(args)
        .arg("--")
        .arg("python3")
        .args(command)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("netcopy trace");
    let pid = child.id();
    // The bound: a trace that hangs is killed, and the test fails.
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(limit);
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
    let output = child.wait_with_output().expect("netcopy trace output");
    assert!(
        !watchdog.is_finished(),
        "{test}: netcopy trace ran past {limit:?}"
    );
    Some(output)
}

fn sum(rows: &[TraceRow], f: impl Fn(&TraceRow) -> Option<u64>) -> u64 {
    rows.iter().map(|r| f(r).expect("figure seen")).sum()
}

#[test]
fn twenty_thousand_connections_are_all_accounted() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // By port (every socket on it counted), then by process (each connection adopted at its
    // first call and forgotten when it closes, so closed ones never fill the map).
    for by_port in [true, false] {
        if !twenty_thousand_connections(by_port) {
            return;
        }
    }
}

/// Traces 20 000 connections of 4 KiB each; false when the probes cannot load here.
fn twenty_thousand_connections(by_port: bool) -> bool {
    const CONNECTIONS: u64 = 20_000;
    const SIZE: u64 = 4096;
    let port = common::free_port().to_string();
    let dir = out_dir("many");
    let mut args = vec!["--out", dir.to_str().unwrap()];
    if by_port {
        args.extend(["--port", &port]);
    }
    let Some(out) = trace(
        "twenty_thousand_connections_are_all_accounted",
        &args,
        &[],
        &[
            program("many_connections.py").to_str().unwrap(),
            &CONNECTIONS.to_string(),
            &SIZE.to_string(),
            &port,
        ],
        Duration::from_secs(180),
    ) else {
        return false;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().next(),
        Some(
            format!(
                "sent {} received {}",
                CONNECTIONS * SIZE,
                CONNECTIONS * SIZE
            )
            .as_str()
        )
    );
    let rows = read_trace(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    // Each connection is two sockets; the flow map holds 8192 of them, and the rest count
    // together in one row.
    let overflow: Vec<&TraceRow> = rows.iter().filter(|r| r.local_addr == "*").collect();
    assert_eq!(overflow.len(), 1, "one aggregate row");
    assert!(overflow[0].k_note.starts_with(OVERFLOW_NOTE));
    assert!(rows.len() <= 8193, "{} rows", rows.len());
    let total = CONNECTIONS * SIZE;
    assert_eq!(sum(&rows, |r| r.k_send_bytes), total);
    assert_eq!(sum(&rows, |r| r.k_copied_at_send_bytes), total);
    assert_eq!(sum(&rows, |r| r.k_recv_bytes), total);
    assert_eq!(sum(&rows, |r| r.k_recv_copy_bytes), total);
    assert_eq!(sum(&rows, |r| r.k_recv_consumed_bytes), total);
    for r in &rows {
        assert_eq!(r.checks, "ok", "{r:?}");
        assert_eq!(r.k_skipped_events, Some(0));
    }
    true
}

#[test]
fn a_map_too_small_fails_the_trace_and_names_the_check() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let port = common::free_port().to_string();
    let dir = out_dir("small");
    // Four sockets fit; the slot's aggregate is gone (slot 1 is past its one entry), so the
    // other sockets' events cannot be counted anywhere.
    let Some(out) = trace(
        "a_map_too_small_fails_the_trace_and_names_the_check",
        &["--port", &port, "--out", dir.to_str().unwrap()],
        &[("NETCOPY_MAP_ENTRIES", "FLOWS=4,OVERFLOW=1")],
        &[
            program("many_connections.py").to_str().unwrap(),
            "20",
            "4096",
            &port,
        ],
        Duration::from_secs(60),
    ) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("trace check failed: events the probes could not count: flow map full: "),
        "{stderr}"
    );
    let rows = read_trace(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(rows.len(), 4, "{rows:?}");
    for r in &rows {
        assert!(r.k_skipped_events.unwrap() > 0);
        assert!(
            r.checks
                .starts_with("events the probes could not count: flow map full: "),
            "{r:?}"
        );
    }
    // The four sockets it did count hold less than the program sent.
    assert!(sum(&rows, |r| r.k_send_bytes) < 20 * 4096);
}

#[test]
fn a_udp_zero_copy_sender_traced_by_process_has_every_datagram_classified() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const DATAGRAMS: u64 = 8;
    const SIZE: u64 = 16384;
    let dir = out_dir("udp");
    let Some(out) = trace(
        "a_udp_zero_copy_sender_traced_by_process_has_every_datagram_classified",
        &["--out", dir.to_str().unwrap()],
        &[],
        &[
            program("udp_zerocopy_sender.py").to_str().unwrap(),
            &DATAGRAMS.to_string(),
            &SIZE.to_string(),
        ],
        Duration::from_secs(60),
    ) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let port: u16 = stdout
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("the sender's port");
    let rows = read_trace(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let sender: Vec<&TraceRow> = rows.iter().filter(|r| r.local_port == port).collect();
    assert_eq!(sender.len(), 1, "{rows:?}");
    let s = sender[0];
    let total = DATAGRAMS * SIZE;
    assert_eq!(s.k_send_calls, Some(DATAGRAMS));
    assert_eq!(s.k_send_bytes, Some(total));
    // Loopback has scatter-gather and checksum offload: every datagram left pinned, its
    // first included, and every one was copied at local delivery and notified.
    assert_eq!(s.k_pinned_bytes, Some(total), "{s:?}");
    assert_eq!(s.k_copied_at_send_bytes, Some(0));
    assert_eq!(s.k_unclassified_send_bytes, Some(0));
    assert_eq!(s.k_deferred_copy_bytes, Some(total));
    assert_eq!(s.k_zc_notifications, Some(DATAGRAMS));
    assert_eq!(s.checks, "ok");
    // The receiving socket: every byte copied to user.
    assert_eq!(sum(&rows, |r| r.k_recv_copy_bytes), total);
}

/// Compiles `tests/programs/NAME.c` into a temporary directory. None (said, and only outside
/// CI) without a C compiler.
fn compiled(name: &str) -> Option<PathBuf> {
    let exe = out_dir(name).with_extension("bin");
    let source = program(&format!("{name}.c"));
    match Command::new("gcc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&source)
        .status()
    {
        Ok(s) => {
            assert!(s.success(), "gcc failed on {}", source.display());
            Some(exe)
        }
        Err(e) => {
            assert!(!common::in_ci(), "gcc: {e}");
            eprintln!("SKIPPED {name}: no gcc ({e})");
            None
        }
    }
}

/// The program's own `word N` figure from its report line.
fn reported(line: &str, word: &str) -> u64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == word).expect(word);
    words[at + 1].parse().expect("a number")
}

#[test]
fn a_foreign_zero_copy_receiver_has_its_mapped_bytes_counted() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const TOTAL: u64 = 64 << 20;
    let test = "a_foreign_zero_copy_receiver_has_its_mapped_bytes_counted";
    if common::tracer_or_skip(test).is_none() {
        return;
    }
    let Some(exe) = compiled("zc_receiver") else {
        return;
    };
    let dir = out_dir("zc");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netcopy"));
    cmd.arg("trace").arg("--out").arg(&dir).arg("--");
    let out = cmd
        .arg(&exe)
        .arg(TOTAL.to_string())
        .output()
        .expect("netcopy trace");
    let _ = std::fs::remove_file(&exe);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().next().expect("the receiver's report");
    assert_eq!(reported(line, "received"), TOTAL, "{line}");
    let (mapped, copied) = (reported(line, "mapped"), reported(line, "copied"));
    // Loopback delivers the zero-copy sender's pages copied into whole fresh pages, so most
    // of the stream can be mapped.
    assert!(mapped > 0, "{line}");
    let rows = read_trace(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    // Only the receiving socket: the sender is a forked child, which trace does not follow.
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r.remote_port as u64, reported(line, "port"));
    assert_eq!(r.k_recv_consumed_bytes, Some(TOTAL), "{r:?}");
    assert_eq!(r.k_mapped_bytes, Some(mapped), "{r:?}");
    assert_eq!(r.k_recv_copy_bytes, Some(copied), "{r:?}");
    assert_eq!(r.k_recv_bytes, Some(copied), "{r:?}");
    assert_eq!(r.checks, "ok");
}

#[test]
fn two_traces_at_once_each_count_their_own_program() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const CONNECTIONS: u64 = 300;
    const SIZE: u64 = 4096;
    let one = |name: &'static str| {
        std::thread::spawn(move || {
            let port = common::free_port().to_string();
            let dir = out_dir(name);
            let out = trace(
                "two_traces_at_once_each_count_their_own_program",
                &["--out", dir.to_str().unwrap()],
                &[],
                &[
                    program("many_connections.py").to_str().unwrap(),
                    &CONNECTIONS.to_string(),
                    &SIZE.to_string(),
                    &port,
                ],
                Duration::from_secs(60),
            )?;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let rows = read_trace(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            Some((port.parse::<u16>().unwrap(), rows))
        })
    };
    let (a, b) = (one("first"), one("second"));
    for traced in [a.join().unwrap(), b.join().unwrap()] {
        let Some((port, rows)) = traced else {
            return;
        };
        // Only its own program's sockets, each on the port the program listened on.
        for r in &rows {
            assert!(r.local_port == port || r.remote_port == port, "{r:?}");
            assert_eq!(r.checks, "ok", "{r:?}");
        }
        assert_eq!(sum(&rows, |r| r.k_send_bytes), CONNECTIONS * SIZE);
        assert_eq!(sum(&rows, |r| r.k_recv_copy_bytes), CONNECTIONS * SIZE);
    }
}
