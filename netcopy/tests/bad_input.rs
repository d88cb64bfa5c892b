//! Bad input: one line on stderr that names the bad value, exit code 2, never a panic. None of
//! these needs root: every one is refused before anything is loaded or built.

use std::{net::TcpListener, process::Command};

/// (arguments, text the one line must contain)
const BAD: &[(&[&str], &str)] = &[
    (&["serve", "--bind", "nowhere"], "nowhere"),
    (&["serve", "--idle-timeout", "0s"], "'0s'"),
    (&["serve", "--port", "99999"], "99999"),
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
    (&["sweep", "--modes", "a6"], "a6"),
    (&["sweep", "--zerocopy-receive", "--workload", "rr"], "rr"),
    (
        &["bench-one", "--zerocopy-receive", "--workload", "rr"],
        "stream",
    ),
    (&["bench-one", "--mode", "a5", "--path", "ifb-sink"], "a5"),
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
    (
        &["explain", "--svg", "/nonexistent-dir/path.svg"],
        "/nonexistent-dir/path.svg",
    ),
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

/// Why `args` was not refused as bad input should be (exit 2, one line naming `names`, no
/// panic), or None when it was.
fn not_refused(args: &[&str], names: &str) -> Option<String> {
    let (code, stderr) = run(args);
    if code != Some(2) {
        return Some(format!("{args:?}: exit {code:?}, stderr: {stderr}"));
    }
    if stderr.lines().count() != 1 {
        return Some(format!("{args:?}: not one line: {stderr}"));
    }
    if !stderr.contains(names) {
        return Some(format!("{args:?}: does not name {names}: {stderr}"));
    }
    if stderr.contains("panicked") || stderr.contains("backtrace") {
        return Some(format!("{args:?}: {stderr}"));
    }
    None
}

fn assert_refused(args: &[&str], names: &str) {
    if let Some(why) = not_refused(args, names) {
        panic!("{why}");
    }
}

#[test]
fn every_bad_invocation_gets_one_line_and_exit_2() {
    // Every case is run, and every failure reported, not just the first.
    let failures: Vec<String> = BAD
        .iter()
        .filter_map(|(args, names)| not_refused(args, names))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every command that takes input has bad cases of its own.
    let covered: std::collections::BTreeSet<&str> = BAD.iter().map(|(args, _)| args[0]).collect();
    for command in [
        "bench-one",
        "compare",
        "sweep",
        "explain",
        "report",
        "serve",
        "trace",
    ] {
        assert!(
            covered.contains(command),
            "no bad input tried for {command}"
        );
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
