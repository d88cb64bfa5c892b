//! Bad input: one line on stderr that names the bad value, exit code 2, never a panic. None of
//! these needs root: every one is refused before anything is loaded or built.

use std::{net::TcpListener, process::Command};

/// (arguments, text the one line must contain)
const BAD: &[(&[&str], &str)] = &[
    (&["sweep", "--sizes", "0"], "'0'"),
    (&["sweep", "--sizes", "7"], "'7'"),
    (&["sweep", "--sizes", "128M"], "128M"),
    (&["sweep", "--sizes", "12Q"], "12Q"),
    (&["sweep", "--sizes", "1K,,4K"], "''"),
    (&["sweep", "--sizes", "1.5K"], "1.5K"),
    (&["sweep", "--threads", "0"], "'0'"),
    (&["sweep", "--threads", "100000"], "100000"),
    (&["sweep", "--threads", "abc"], "abc"),
    (&["sweep", "--duration", "0"], "'0'"),
    (&["sweep", "--duration", "5parsecs"], "5parsecs"),
    (&["sweep", "--duration", "2h"], "2h"),
    (&["sweep", "--warmup", "soon"], "soon"),
    (&["sweep", "--modes", "a5"], "a5"),
    (&["sweep", "--modes", "a1,zerocopy"], "zerocopy"),
    (&["sweep", "--workload", "bulk"], "bulk"),
    (&["sweep", "--path", "wifi"], "wifi"),
    (&["sweep", "--reps", "0"], "'0'"),
    (&["sweep", "--reps", "many"], "many"),
    (
        &["sweep", "--out", "/proc/netcopy-cannot-write-here"],
        "/proc/netcopy-cannot-write-here",
    ),
    (&["sweep", "--bogus-flag"], "--bogus-flag"),
    (&["frobnicate"], "frobnicate"),
    (&["bench-one", "--mode", "zz"], "zz"),
    (&["bench-one", "--port", "70000"], "70000"),
    (&["bench-one", "--port", "x"], "'x'"),
    (&["bench-one", "--size", "64MiB1"], "64MiB1"),
    (
        &[
            "bench-one",
            "--no-trace",
            "--path",
            "ifb-sink",
            "--workload",
            "rr",
        ],
        "rr",
    ),
    (
        &[
            "bench-one",
            "--no-trace",
            "--path",
            "ifb-sink",
            "--size",
            "64K",
        ],
        "65536",
    ),
    (&["explain", "--size", "0"], "'0'"),
    (&["compare", "--threads", "-1"], "-1"),
    (&["compare", "--workload", ""], "''"),
    (&["trace"], "nothing to trace"),
    (&["trace", "--port", "0"], "'0'"),
    (&["trace", "--pid", "999999999"], "999999999"),
    (
        &["trace", "--", "netcopy-no-such-command"],
        "netcopy-no-such-command",
    ),
    (&["report", "/nonexistent-results"], "/nonexistent-results"),
    (&["sweep", "--placement", "diagonal"], "diagonal"),
    (&["sweep", "--placement", "cpus"], "--client-cpus"),
    (&["sweep", "--client-cpus", "0"], "--server-cpus"),
    (
        &["bench-one", "--client-cpus", "9999", "--server-cpus", "0"],
        "9999",
    ),
    (
        &["bench-one", "--client-cpus", "1-0", "--server-cpus", "0"],
        "1-0",
    ),
    (
        &[
            "sweep",
            "--placement",
            "split",
            "--client-cpus",
            "0",
            "--server-cpus",
            "0",
        ],
        "split",
    ),
    (&["sweep", "--ci-target", "0"], "'0'"),
    (
        &["sweep", "--min-reps", "5", "--max-reps", "3"],
        "--max-reps 3",
    ),
    (&["sweep", "--budget", "0"], "'0'"),
];

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("running netcopy");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_refused(args: &[&str], names: &str) {
    let (code, stderr) = run(args);
    assert_eq!(code, Some(2), "{args:?}: exit {code:?}, stderr: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: not one line: {stderr}"
    );
    assert!(
        stderr.contains(names),
        "{args:?}: does not name {names}: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{args:?}: {stderr}"
    );
}

#[test]
fn every_bad_invocation_gets_one_line_and_exit_2() {
    assert!(BAD.len() >= 25);
    for (args, names) in BAD {
        assert_refused(args, names);
    }
}

#[test]
fn a_busy_port_is_bad_input() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = taken.local_addr().unwrap().port().to_string();
    assert_refused(
        &[
            "bench-one",
            "--no-trace",
            "--port",
            &port,
            "--duration",
            "100ms",
        ],
        &port,
    );
}
