//! `netcopy trace` on traffic netcopy did not generate: iperf3 (installed by `cargo xtask
//! setup`), traced by process, must account for exactly the bytes iperf3 says it sent; a port
//! with no traffic reports zero rows cleanly.

mod common;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::Duration,
};

use netcopy::trace::TraceRow;

/// Both tests load the probes; one at a time keeps their ports apart.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// iperf3 sends this many bytes of test cookie at the start of every data connection, before
/// the test it reports on begins (COOKIE_SIZE in iperf3's iperf.h).
const IPERF3_COOKIE: u64 = 37;

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netcopy-trace-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn read_trace(dir: &Path) -> Vec<TraceRow> {
    csv::Reader::from_path(dir.join("trace.csv"))
        .expect("trace.csv")
        .deserialize()
        .collect::<Result<_, _>>()
        .expect("trace rows parse")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn traced_iperf3_sent_exactly_what_it_reports() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if common::tracer_or_skip("traced_iperf3_sent_exactly_what_it_reports").is_none() {
        return;
    }
    if Command::new("iperf3").arg("--version").output().is_err() {
        assert!(
            !common::in_ci(),
            "iperf3 missing: cargo xtask setup installs it"
        );
        eprintln!("SKIPPED traced_iperf3: iperf3 is not installed (cargo xtask setup installs it)");
        return;
    }
    let port = free_port().to_string();
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-p", &port])
        .stdout(Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(300));
    let dir = out_dir("iperf3");
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("iperf3.json");
    let status = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .args(["trace", "--out"])
        .arg(&dir)
        .args([
            "--",
            "iperf3",
            "-c",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "1",
            "-P",
            "2",
            "-J",
        ])
        .arg("--logfile")
        .arg(&report)
        .stdout(Stdio::null())
        .status()
        .expect("netcopy trace");
    let _ = server.wait();
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
    let traced: u64 = rows
        .iter()
        .filter(|r| data_ports.contains(&r.local_port))
        .map(|r| r.k_send_bytes)
        .sum();
    assert_eq!(
        traced,
        reported + IPERF3_COOKIE * data_ports.len() as u64,
        "{rows:?}"
    );
    // The receiving ends were traced too (their ports are the data connections' peers). The
    // trace ends when the client exits, and the server may still be reading its queue then,
    // so the server's copies are at most what was sent.
    let received: u64 = rows
        .iter()
        .filter(|r| data_ports.contains(&r.remote_port))
        .map(|r| r.k_recv_copy_bytes)
        .sum();
    assert!(received > 0 && received <= traced, "{received} of {traced}");
    let _ = std::fs::remove_dir_all(&dir);
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
            &free_port().to_string(),
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
