//! `netcopy serve` runs as root and may listen beyond loopback, so nothing a client sends may
//! crash it or hold it up: malformed, oversized, truncated, out-of-bounds and silent clients,
//! one after another and all at once, each get one error line (or a timeout line) and are
//! dropped, and a good client is served afterwards. Its bounds hold against real sockets: a
//! request over the memory cap, a data connection from another address, a client that stops
//! mid-request, an empty token.

mod common;

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Shutdown, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

/// The serve under test, killed if the test fails before stopping it: no process outlives a
/// test.
struct Serve(Option<Child>, Arc<Mutex<Vec<String>>>);

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
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut child = Serve(
        Some(cmd.spawn().expect("netcopy serve")),
        Arc::clone(&lines),
    );
    // Ready when it says so (a port that merely accepts could be another test's); its later
    // lines are kept, and drained so a full pipe never stalls it.
    let stderr = child.0.as_mut().unwrap().stderr.take().unwrap();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = ready_tx.send(());
            }
            lines.lock().unwrap().push(line);
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

/// A request connection that has sent `request` and read its `Ready`: (control, data port).
fn ready(port: u16, request: &str) -> (BufReader<TcpStream>, u16) {
    let mut control = TcpStream::connect(("127.0.0.1", port)).unwrap();
    control
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    control.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(control);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let reply: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let port = reply["Ready"]["port"]
        .as_u64()
        .unwrap_or_else(|| panic!("not Ready: {line}"));
    (reader, port as u16)
}

/// Whether the server closed `stream` (end of stream or a reset) within 5 s.
fn closed_by_server(mut stream: TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    match stream.read(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// A TCP connection to 127.0.0.1:`port` from the local address `from`.
fn connect_from(from: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd as _;
    let addr = |ip: [u8; 4], port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    };
    let len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket, owned at once; the addresses are live sockaddr_in values.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let local = addr(from, 0);
        if libc::bind(fd, (&raw const local).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = addr([127, 0, 0, 1], port);
        if libc::connect(fd, (&raw const remote).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

#[test]
fn a_request_over_the_memory_cap_is_refused_and_serve_stays_up() {
    let (serve, port) = start_serve(None);
    // rr, 1024 connections of 64 MiB: 192 GiB of buffers for a1, 1088 GiB for a3.
    for mode in ["a1", "a3"] {
        let huge = format!("{GOOD}}}\n")
            .replace("\"a1\"", &format!("\"{mode}\""))
            .replace("\"stream\"", "\"rr\"")
            .replace("\"size\":1024", "\"size\":67108864")
            .replace("\"threads\":1", "\"threads\":1024");
        let lines = exchange(port, huge.as_bytes(), false);
        assert_refused(mode, &lines, "memory");
        assert!(lines[0].contains("MemAvailable"), "{mode}: {}", lines[0]);
        let gib = if mode == "a1" { "192 GiB" } else { "1088 GiB" };
        assert!(lines[0].contains(gib), "{mode}: {}", lines[0]);
    }
    let out = good_client(port, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(serve);
}

#[test]
fn data_connections_come_from_the_control_peer_only_and_no_more_than_asked() {
    let (serve, port) = start_serve(None);
    let two = format!("{GOOD}}}\n").replace("\"threads\":1", "\"threads\":2");
    let (mut control, data) = ready(port, &two);
    let stranger = connect_from([127, 0, 0, 2], data).expect("the handshake itself completes");
    assert!(
        closed_by_server(stranger),
        "a connection from 127.0.0.2 was kept"
    );
    let ours: Vec<TcpStream> = (0..2)
        .map(|_| connect_from([127, 0, 0, 1], data).unwrap())
        .collect();
    // A third from the right address is one more than asked for.
    if let Ok(third) = connect_from([127, 0, 0, 1], data) {
        assert!(closed_by_server(third), "a third data connection was kept");
    }
    drop(ours);
    let mut line = String::new();
    control.read_line(&mut line).unwrap();
    assert!(line.contains("Report") || line.contains("Failed"), "{line}");
    let said = serve.1.lock().unwrap().join("\n");
    assert!(
        said.contains("refused a data connection from 127.0.0.2"),
        "{said}"
    );
    stop(serve);
}

#[test]
fn a_client_that_stops_mid_request_is_answered_by_its_deadline() {
    let (serve, port) = start_serve(None);
    // Four data connections asked for, one opened: the accepts share one deadline, the idle
    // timeout (1 s), not 10 s each.
    let four = format!("{GOOD}}}\n").replace("\"threads\":1", "\"threads\":4");
    let (mut control, data) = ready(port, &four);
    let started = Instant::now();
    let _one = connect_from([127, 0, 0, 1], data).unwrap();
    let mut line = String::new();
    control.read_line(&mut line).unwrap();
    let took = started.elapsed();
    assert!(
        line.contains("Failed") && line.contains("1 of 4 data connections"),
        "{line}"
    );
    // Before the shared deadline, the second accept alone waited 10 s; the bound leaves room
    // for a loaded machine and none for that.
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "answered after {took:?}, deadline 1 s"
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
fn an_empty_token_is_refused_in_one_line() {
    for (args, env) in [(&["--token", ""][..], None), (&[][..], Some(""))] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_netcopy"));
        cmd.args(["serve", "--no-trace", "--port"])
            .arg(common::free_port().to_string())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match env {
            Some(value) => cmd.env("NETCOPY_TOKEN", value),
            None => cmd.env_remove("NETCOPY_TOKEN"),
        };
        let mut child = cmd.spawn().unwrap();
        let status = common::wait_bounded(&mut child, Duration::from_secs(10), "serve");
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("empty"), "{args:?} {env:?}: {stderr}");
    }
}
