//! `netcopy serve` runs as root and may listen beyond loopback, so nothing a client sends may
//! crash it or hold it up: malformed, oversized, truncated, out-of-bounds and silent clients,
//! one after another and all at once, each get one error line (or a timeout line) and are
//! dropped, and a good client is served afterwards.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{Shutdown, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// The serve under test, killed if the test fails before stopping it: no process outlives a
/// test.
struct Serve(Option<Child>);

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A serve on a port the kernel picked, idle timeout 1 s, no tracing (the protocol is what is
/// tested here; `two_processes` traces both sides).
fn start_serve(token: Option<&str>) -> (Serve, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netcopy"));
    cmd.args(["serve", "--no-trace", "--idle-timeout", "1s", "--port"])
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    let mut child = Serve(Some(cmd.spawn().expect("netcopy serve")));
    // Ready when it says so (a port that merely accepts could be another test's); its later
    // lines are drained so a full pipe never stalls it.
    let stderr = child.0.as_mut().unwrap().stderr.take().unwrap();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = ready_tx.send(());
            }
        }
    });
    ready
        .recv_timeout(Duration::from_secs(10))
        .expect("serve said it listens within 10 s");
    (child, port)
}

/// Sends `payload` (then, if `close`, ends the write side) and returns every line the server
/// wrote before closing, within 5 s.
fn exchange(port: u16, payload: &[u8], close: bool) -> Vec<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connecting to serve on {port}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    if !payload.is_empty() {
        // The server may close before taking all of an oversized line.
        let _ = stream.write_all(payload);
    }
    if close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut lines = Vec::new();
    for line in BufReader::new(stream).lines() {
        match line {
            Ok(l) => lines.push(l),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => panic!("no answer in 5 s"),
            Err(_) => break,
        }
    }
    lines
}

const GOOD: &str =
    r#"{"mode":"a1","workload":"stream","size":1024,"threads":1,"warmup_ms":50,"duration_ms":100"#;

/// (what, bytes sent, close the write side after, the error the one line must name).
fn hostile() -> Vec<(&'static str, Vec<u8>, bool, &'static str)> {
    vec![
        ("malformed", b"hello\n".to_vec(), false, "malformed"),
        ("not utf-8", b"\xff\xfe\xfd\n".to_vec(), false, "malformed"),
        ("oversized", vec![b'{'; 100 << 10], false, "longer than"),
        ("truncated", GOOD.as_bytes().to_vec(), true, "mid-line"),
        ("silent", Vec::new(), false, "no request within"),
        (
            "huge size",
            format!("{GOOD}}}\n")
                .replace("\"size\":1024", "\"size\":1000000000000")
                .into_bytes(),
            false,
            "size",
        ),
        (
            "overflowing duration",
            format!("{GOOD}}}\n")
                .replace(
                    "\"duration_ms\":100",
                    "\"duration_ms\":18446744073709551615",
                )
                .into_bytes(),
            false,
            "duration",
        ),
        (
            "no threads",
            format!("{GOOD}}}\n")
                .replace("\"threads\":1", "\"threads\":0")
                .into_bytes(),
            false,
            "threads",
        ),
    ]
}

fn assert_refused(what: &str, lines: &[String], expect: &str) {
    assert_eq!(lines.len(), 1, "{what}: {lines:?}");
    assert!(
        lines[0].contains("Failed") && lines[0].contains(expect),
        "{what}: {}",
        lines[0]
    );
}

/// A good client: one experiment through `sweep --connect`.
fn good_client(port: u16, token: Option<&str>) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("netcopy-serve-good-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netcopy"));
    cmd.args([
        "sweep",
        "--no-trace",
        "--modes",
        "a1",
        "--sizes",
        "1K",
        "--threads",
        "1",
        "--workload",
        "stream",
        "--reps",
        "1",
        "--duration",
        "100ms",
        "--warmup",
        "50ms",
        "--connect",
    ])
    .arg(format!("127.0.0.1:{port}"))
    .arg("--out")
    .arg(&dir);
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    let out = cmd.output().expect("netcopy sweep --connect");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn stop(mut serve: Serve) {
    let serve = serve.0.as_mut().expect("running");
    assert!(
        serve.try_wait().unwrap().is_none(),
        "serve died: {:?}",
        serve.try_wait()
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    loop {
        if let Some(status) = serve.try_wait().unwrap() {
            assert!(status.success(), "serve exited {status}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "serve ignored SIGTERM"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn hostile_clients_get_one_line_each_and_serve_keeps_serving() {
    let (serve, port) = start_serve(None);
    // One after another.
    for (what, payload, close, expect) in hostile() {
        assert_refused(what, &exchange(port, &payload, close), expect);
    }
    // All at once: a silent client holds up nobody.
    let started = Instant::now();
    let handles: Vec<_> = hostile()
        .into_iter()
        .map(|(what, payload, close, expect)| {
            thread::spawn(move || assert_refused(what, &exchange(port, &payload, close), expect))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "hostile clients were served one by one: {:?}",
        started.elapsed()
    );
    let out = good_client(port, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(serve);
}

#[test]
fn a_token_is_required_when_set() {
    let (serve, port) = start_serve(Some("s3cret"));
    assert_refused(
        "no token",
        &exchange(port, format!("{GOOD}}}\n").as_bytes(), false),
        "token",
    );
    let with_wrong = format!("{GOOD},\"token\":\"guess\"}}\n");
    assert_refused(
        "wrong token",
        &exchange(port, with_wrong.as_bytes(), false),
        "token",
    );
    let out = good_client(port, Some("s3cret"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(serve);
}
