//! `serve` and `sweep --connect`: the two ends of every experiment in two processes. Across
//! two network namespaces joined by veth (made and removed here), both sides' columns are
//! filled and the cross-checks hold as on loopback; when the server is killed mid-sweep, the
//! rows it takes down are marked failed, the sweep goes on and exits non-zero.

mod common;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use netcopy::output::read_rows;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netcopy-2p-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip");
    assert!(status.success(), "ip {args:?}: {status}");
}

/// Two named namespaces joined by a veth pair; removed on drop, whatever happened.
struct Namespaces {
    client: String,
    server: String,
}

impl Namespaces {
    const CLIENT_ADDR: &str = "10.204.0.1/24";
    const SERVER_IP: &str = "10.204.0.2";

    fn create() -> Self {
        let id = std::process::id();
        let ns = Self {
            client: format!("nc-test-cli-{id}"),
            server: format!("nc-test-srv-{id}"),
        };
        ip(&["netns", "add", &ns.client]);
        ip(&["netns", "add", &ns.server]);
        ip(&[
            "-n", &ns.client, "link", "add", "veth-c", "type", "veth", "peer", "name", "veth-s",
            "netns", &ns.server,
        ]);
        ip(&[
            "-n",
            &ns.client,
            "addr",
            "add",
            Self::CLIENT_ADDR,
            "dev",
            "veth-c",
        ]);
        ip(&[
            "-n",
            &ns.server,
            "addr",
            "add",
            &format!("{}/24", Self::SERVER_IP),
            "dev",
            "veth-s",
        ]);
        for (n, dev) in [(&ns.client, "veth-c"), (&ns.server, "veth-s")] {
            ip(&["-n", n, "link", "set", dev, "up"]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        ns
    }

    fn exec(&self, ns: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_netcopy")]);
        cmd
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Waits until `serve` accepts request connections (its first stderr line says so).
fn wait_listening(server: &mut Child) {
    use std::io::{BufRead as _, BufReader};
    let stderr = server.stderr.take().expect("piped stderr");
    let mut line = String::new();
    BufReader::new(stderr)
        .read_line(&mut line)
        .expect("serve's first line");
    assert!(line.contains("listening"), "serve said: {line}");
}

/// `netcopy serve --no-trace` on this machine's `port`, listening.
fn untraced_serve(port: &str) -> Child {
    let mut server = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .args(["serve", "--no-trace", "--port", port])
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    wait_listening(&mut server);
    server
}

fn stop(mut server: Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    common::wait_bounded(&mut server, Duration::from_secs(60), "serve after SIGTERM");
}

#[test]
fn serve_and_connect_across_namespaces_fill_both_sides() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if common::tracer_or_skip("serve_and_connect_across_namespaces").is_none() {
        return;
    }
    let ns = Namespaces::create();
    let mut server = ns
        .exec(&ns.server)
        .args(["serve", "--bind", Namespaces::SERVER_IP])
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    wait_listening(&mut server);
    let dir = out_dir("veth");
    let out = ns
        .exec(&ns.client)
        .args([
            "sweep",
            "--connect",
            Namespaces::SERVER_IP,
            "--modes",
            "a1,a3",
            "--sizes",
            "16K",
        ])
        .args(["--threads", "2", "--workload", "stream,rr", "--reps", "1"])
        // Every run traced: this test is about both sides' kernel columns.
        .arg("--trace-all")
        .args(["--duration", "400ms", "--warmup", "100ms", "--out"])
        .arg(&dir)
        .output()
        .expect("sweep --connect");
    stop(server);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = read_rows(&dir.join("latest").join("results.csv")).expect("rows");
    assert_eq!(rows.len(), 4);
    for r in &rows {
        let what = format!("{} {}", r.mode, r.workload);
        assert_eq!(
            (r.status.as_str(), r.checks.as_str()),
            ("ok", "ok"),
            "{what}: {}",
            r.error
        );
        assert_eq!(r.path, "remote");
        assert!(
            r.client_task_clock_ms.is_some() && r.server_task_clock_ms.is_some(),
            "{what}"
        );
        assert_eq!(r.k_send_bytes, r.bytes_sent, "{what}");
        assert_eq!(r.k_recv_copy_bytes, r.bytes_received, "{what}");
        assert!(r.bytes_received.unwrap_or(0) > 0, "{what}");
        if r.mode == "a3" {
            // veth into another namespace is still a local delivery: copied there.
            assert_eq!(
                r.k_pinned_bytes,
                r.k_deferred_copy_bytes,
                "{what}: recopied {:?}, pages {:?} of {:?}, note {}",
                r.k_recopied_bytes,
                r.k_deferred_copy_pages,
                r.k_deferred_copy_pages_required,
                r.k_note
            );
            assert_eq!(r.k_fallback_pct, Some(100.0), "{what}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_server_fails_its_rows_and_the_sweep_goes_on() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Untraced on both sides: this is about the workload's failure handling, not eBPF.
    // A port the kernel picks, not a fixed one another program may hold.
    let port = common::free_port().to_string();
    let port = port.as_str();
    let mut server = untraced_serve(port);
    let dir = out_dir("killed");
    let mut sweep = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .args([
            "sweep",
            "--no-trace",
            "--connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "--modes",
            "a1,a2",
            "--sizes",
            "4K",
            "--threads",
            "1",
            "--workload",
            "stream",
        ])
        .args([
            "--reps",
            "4",
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
            "--out",
        ])
        .arg(&dir)
        .stderr(Stdio::null())
        .spawn()
        .expect("sweep --connect");
    let csv = dir.join("latest").join("results.csv");
    let started = Instant::now();
    while read_rows(&csv).map_or(0, |r| r.len()) < 2 {
        assert!(started.elapsed() < Duration::from_secs(30), "no rows");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill().expect("kill serve");
    common::wait_bounded(&mut server, Duration::from_secs(60), "killed serve");
    let status = common::wait_bounded(
        &mut sweep,
        Duration::from_secs(60),
        "sweep after its serve died",
    );
    assert!(
        !status.success(),
        "a sweep with failed rows must exit non-zero"
    );
    let rows = read_rows(&csv).expect("the CSV stays valid");
    assert_eq!(rows.len(), 8, "every experiment has a row");
    assert!(rows.iter().take(2).all(|r| r.status == "ok"));
    let failed: Vec<_> = rows.iter().filter(|r| r.status == "failed").collect();
    assert!(failed.len() >= 5, "rows after the kill: {rows:?}");
    assert!(
        failed
            .iter()
            .all(|r| !r.error.is_empty() && r.send_gbps.is_none())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether any thread of process `pid` is named `prefix`... (its workers have started).
fn has_thread(pid: u32, prefix: &str) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| {
        tasks.flatten().any(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
    })
}

/// README's promise: a peer that stops answering for 10 s turns the experiment into a failed
/// row saying so, rather than a hang. The server is frozen (SIGSTOP) mid-experiment.
#[test]
fn a_stuck_peer_becomes_a_failed_row_after_10_s() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let port = common::free_port().to_string();
    let mut server = untraced_serve(&port);
    let dir = out_dir("stuck");
    let spawned = Instant::now();
    let mut sweep = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .args([
            "sweep",
            "--no-trace",
            "--connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "--modes",
            "a1",
            "--sizes",
            "1K",
            "--threads",
            "1",
            "--workload",
            "rr",
        ])
        .args([
            "--reps",
            "1",
            "--duration",
            "30s",
            "--warmup",
            "100ms",
            "--out",
        ])
        .arg(&dir)
        .stderr(Stdio::null())
        .spawn()
        .expect("sweep --connect");
    let started = Instant::now();
    while !has_thread(server.id(), "rr-server") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the experiment never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGSTOP) };
    let frozen = Instant::now();
    let status = common::wait_bounded(
        &mut sweep,
        Duration::from_secs(60),
        "sweep with a frozen server",
    );
    let waited = frozen.elapsed();
    // SAFETY: as above.
    unsafe { libc::kill(server.id() as i32, libc::SIGCONT) };
    server.kill().expect("kill serve");
    common::wait_bounded(&mut server, Duration::from_secs(60), "serve");
    assert!(!status.success(), "a failed row exits non-zero");
    // The read that times out may have begun before the freeze (a request in flight, or the
    // first one before the server's thread was seen): 10 s after it, never before the sweep.
    let since_spawn = frozen.duration_since(spawned) + waited;
    assert!(
        since_spawn >= Duration::from_secs(10) && waited < Duration::from_secs(25),
        "failed {waited:?} after the freeze, {since_spawn:?} after the sweep started"
    );
    let rows = read_rows(&dir.join("latest").join("results.csv")).expect("rows");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].status, "failed");
    assert!(
        rows[0].error.contains("no data within 10 s"),
        "{}",
        rows[0].error
    );
    let _ = std::fs::remove_dir_all(&dir);
}
