//! `netcopy trace` on traffic netcopy did not generate: iperf3 (installed by `cargo xtask
//! setup`), traced by process, must account for exactly the bytes iperf3 says it sent; a port
//! with no traffic reports zero rows cleanly.

mod common;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use netcopy::trace::{self, TraceRow};

/// Both tests load the probes; one at a time keeps their ports apart.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// iperf3 sends this many bytes of test cookie at the start of every data connection, before
/// the test it reports on begins (COOKIE_SIZE in iperf3's iperf.h).
const IPERF3_COOKIE: u64 = 37;

fn out_dir(name: &str) -> PathBuf {
    common::out_dir("trace", name)
}

fn read_trace(dir: &Path) -> Vec<TraceRow> {
    common::read_trace(dir)
}

/// Whether a TCP socket listens on `ip:port` (from /proc/net/tcp: readiness, not a sleep).
fn listening(ip: std::net::Ipv4Addr, port: u16) -> bool {
    // /proc/net/tcp prints the address as the native-order hex of its network-order word.
    let addr = format!("{:08X}:{port:04X}", u32::from_ne_bytes(ip.octets()));
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|t| {
        t.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == addr && f[3] == "0A"
        })
    })
}

/// Waits for `ready`, at most 10 s.
fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a traced iperf3 client run gave: the trace rows of its data connections, the
/// bytes iperf3 reports sending, and the rows of other sockets on the data connections' ports.
struct TracedIperf3 {
    data: Vec<TraceRow>,
    reported: u64,
    connections: u64,
    server_side: Vec<TraceRow>,
}

/// Runs `iperf3 -c` (1 s, two streams, plus `extra`) under `netcopy trace`, against an iperf3
/// server that is not traced. None (said, and only outside CI) without iperf3.
fn traced_iperf3(name: &str, extra: &[&str]) -> Option<TracedIperf3> {
    if Command::new("iperf3").arg("--version").output().is_err() {
        assert!(
            !common::in_ci(),
            "iperf3 missing: cargo xtask setup installs it"
        );
        eprintln!("SKIPPED {name}: iperf3 is not installed (cargo xtask setup installs it)");
        return None;
    }
    let port_number = common::free_port();
    let port = port_number.to_string();
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-B", "127.0.0.1", "-p", &port])
        .stdout(Stdio::null())
        .spawn()
        .expect("iperf3 server");
    wait_until("iperf3 listening", || {
        listening(std::net::Ipv4Addr::LOCALHOST, port_number)
    });
    let dir = out_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("iperf3.json");
    let status = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .args(["trace", "--out"])
        .arg(&dir)
        .args(["--", "iperf3", "-c", "127.0.0.1", "-p", &port])
        .args(["-t", "1", "-P", "2", "-J"])
        .args(extra)
        .arg("--logfile")
        .arg(&report)
        .stdout(Stdio::null())
        .status()
        .expect("netcopy trace");
    common::wait_bounded(&mut server, Duration::from_secs(20), "iperf3");
    assert!(status.success(), "{status}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("iperf3 report"))
            .expect("iperf3 JSON");
    let reported = json["end"]["sum_sent"]["bytes"]
        .as_u64()
        .expect("sum_sent.bytes");
    let data_ports: Vec<u16> = json["start"]["connected"]
        .as_array()
        .expect("connected")
        .iter()
        .map(|c| c["local_port"].as_u64().unwrap() as u16)
        .collect();
    assert_eq!(data_ports.len(), 2);
    let rows = read_trace(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let (data, other): (Vec<TraceRow>, Vec<TraceRow>) = rows
        .into_iter()
        .partition(|r| data_ports.contains(&r.local_port));
    Some(TracedIperf3 {
        data,
        reported,
        connections: data_ports.len() as u64,
        server_side: other
            .into_iter()
            .filter(|r| data_ports.contains(&r.remote_port))
            .collect(),
    })
}

fn sum(rows: &[TraceRow], f: impl Fn(&TraceRow) -> Option<u64>) -> u64 {
    rows.iter().map(|r| f(r).expect("figure seen")).sum()
}

#[test]
fn traced_iperf3_sent_exactly_what_it_reports() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let name = "traced_iperf3_sent_exactly_what_it_reports";
    if common::tracer_or_skip(name).is_none() {
        return;
    }
    let Some(run) = traced_iperf3(name, &[]) else {
        return;
    };
    let traced = sum(&run.data, |r| r.k_send_bytes);
    assert_eq!(
        traced,
        run.reported + IPERF3_COOKIE * run.connections,
        "{:?}",
        run.data
    );
    assert_eq!(sum(&run.data, |r| r.k_copied_at_send_bytes), traced);
    // The server is another process: its sockets are not the traced client's, although their
    // ports are the data connections' peers.
    assert!(run.server_side.is_empty(), "{:?}", run.server_side);
}

/// `iperf3 -Z` sends with sendfile (from a file it maps as its buffer): every data byte it
/// reports is attached by reference, only the cookie is copied, nothing is pinned.
#[test]
fn traced_iperf3_sendfile_is_referenced_not_copied() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let name = "traced_iperf3_sendfile_is_referenced_not_copied";
    if common::tracer_or_skip(name).is_none() {
        return;
    }
    let Some(run) = traced_iperf3(name, &["-Z"]) else {
        return;
    };
    assert_eq!(
        sum(&run.data, |r| r.k_referenced_at_send_bytes),
        run.reported,
        "{:?}",
        run.data
    );
    assert_eq!(
        sum(&run.data, |r| r.k_copied_at_send_bytes),
        IPERF3_COOKIE * run.connections
    );
    assert_eq!(sum(&run.data, |r| r.k_pinned_bytes), 0);
    assert_eq!(sum(&run.data, |r| r.k_deferred_copy_bytes), 0);
    assert!(run.server_side.is_empty(), "{:?}", run.server_side);
}

#[test]
fn a_quiet_port_reports_zero_rows_cleanly() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if common::tracer_or_skip("a_quiet_port_reports_zero_rows_cleanly").is_none() {
        return;
    }
    let dir = out_dir("quiet");
    let out = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .args([
            "trace",
            "--port",
            &common::free_port().to_string(),
            "--duration",
            "300ms",
            "--out",
        ])
        .arg(&dir)
        .output()
        .expect("netcopy trace");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("no traffic"));
    assert!(read_trace(&dir).is_empty());
    let json = std::fs::read_to_string(dir.join("trace.json")).expect("trace.json");
    assert_eq!(json.trim(), "[]");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server traced by process: only its own sockets count. Another process on the same port
/// number at another address, and that process's client sending to the port, do not.
#[test]
fn a_traced_server_counts_its_own_sockets_only() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut tracer) = common::tracer_or_skip("a_traced_server_counts_its_own_sockets_only")
    else {
        return;
    };
    assert!(
        Command::new("iperf3").arg("--version").output().is_ok() || !common::in_ci(),
        "iperf3 missing: cargo xtask setup installs it"
    );
    if Command::new("iperf3").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED a_traced_server: iperf3 is not installed (cargo xtask setup installs it)"
        );
        return;
    }
    let (ours, theirs) = (
        std::net::Ipv4Addr::LOCALHOST,
        std::net::Ipv4Addr::new(127, 0, 0, 2),
    );
    let port = loop {
        let p = common::free_port();
        if TcpListener::bind((theirs, p)).is_ok() {
            break p;
        }
    };
    let server = |ip: std::net::Ipv4Addr| {
        let child = Command::new("iperf3")
            .args(["-s", "-1", "-B", &ip.to_string(), "-p", &port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("iperf3 server");
        wait_until("iperf3 listening", || listening(ip, port));
        child
    };
    let mut traced_server = server(ours);
    tracer
        .watch_process(traced_server.id(), trace::SLOT)
        .expect("watch the server");
    let mut other_server = server(theirs);
    let dir = out_dir("server");
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("iperf3.json");
    let client = |ip: std::net::Ipv4Addr, json: Option<&Path>| {
        let mut c = Command::new("iperf3");
        c.args(["-c", &ip.to_string(), "-p", &port.to_string(), "-t", "1"])
            .stdout(Stdio::null());
        if let Some(path) = json {
            c.arg("-J").arg("--logfile").arg(path);
        }
        c.spawn().expect("iperf3 client")
    };
    let mut other_client = client(theirs, None);
    let mut our_client = client(ours, Some(&report));
    assert!(common::wait_bounded(&mut our_client, Duration::from_secs(20), "iperf3").success());
    assert!(common::wait_bounded(&mut other_client, Duration::from_secs(20), "iperf3").success());
    assert!(common::wait_bounded(&mut traced_server, Duration::from_secs(20), "iperf3").success());
    assert!(common::wait_bounded(&mut other_server, Duration::from_secs(20), "iperf3").success());

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("iperf3 report"))
            .expect("iperf3 JSON");
    let received = json["end"]["sum_received"]["bytes"]
        .as_u64()
        .expect("sum_received.bytes");
    let data_port = json["start"]["connected"][0]["local_port"]
        .as_u64()
        .expect("the data connection's port") as u16;
    let traced = trace::rows(&mut tracer, &[]).expect("rows");
    assert_eq!(traced.failed, Vec::<String>::new());
    let rows = traced.rows;
    for r in &rows {
        assert_eq!(r.checks, "ok", "{r:?}");
        assert_eq!(
            (r.local_addr.as_str(), r.local_port),
            ("127.0.0.1", port),
            "a socket that is not the traced server's: {rows:?}"
        );
    }
    // The data connection: what the server read, exactly as iperf3 reports it, plus the
    // cookie the client sends first.
    let data: Vec<&TraceRow> = rows.iter().filter(|r| r.remote_port == data_port).collect();
    assert_eq!(data.len(), 1, "{rows:?}");
    assert_eq!(
        data[0].k_recv_bytes,
        Some(received + IPERF3_COOKIE),
        "{rows:?}"
    );
    assert_eq!(data[0].k_recv_copy_bytes, Some(received + IPERF3_COOKIE));
    let _ = std::fs::remove_dir_all(&dir);
}
