//! Environment problems named precisely: a missing BTF file (through the documented
//! `NETCOPY_BTF` override), and no root: without `--no-trace` a clear line saying what to do,
//! with it a run whose kernel columns are empty, never zero.

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use netcopy::output::read_rows;

fn netcopy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netcopy"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn missing_btf_is_named_with_the_override() {
    let out = netcopy()
        .arg("check")
        .env("NETCOPY_BTF", "/nonexistent/vmlinux")
        .output()
        .expect("running netcopy");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("/nonexistent/vmlinux") && err.contains("NETCOPY_BTF"),
        "{err}"
    );
}

/// The same netcopy as an unprivileged user (nobody), when this test runs as root; None
/// (after saying why) otherwise.
fn as_nobody(test: &str) -> Option<Command> {
    if !netcopy::kernel::is_root() {
        eprintln!("SKIPPED {test}: dropping privileges needs root to start from");
        return None;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_netcopy"));
    Some(cmd)
}

#[test]
fn without_root_tracing_says_what_to_do() {
    let Some(mut cmd) = as_nobody("without_root_tracing_says_what_to_do") else {
        return;
    };
    let out = cmd
        .args(["bench-one", "--duration", "100ms"])
        .output()
        .expect("running netcopy");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("root") && err.contains("--no-trace"), "{err}");
}

#[test]
fn without_root_no_trace_runs_with_kernel_columns_empty() {
    let Some(mut cmd) = as_nobody("without_root_no_trace_runs") else {
        return;
    };
    let dir = PathBuf::from(format!("/tmp/netcopy-test-noroot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = cmd
        .args(["sweep", "--no-trace", "--modes", "a1,a3", "--sizes", "4K"])
        .args(["--threads", "1", "--workload", "stream", "--reps", "1"])
        .args(["--duration", "200ms", "--warmup", "50ms", "--out"])
        .arg(&dir)
        .output()
        .expect("running netcopy");
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = read_rows(&dir.join("latest").join("results.csv")).expect("rows");
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r.status, "ok");
        assert!(r.bytes_sent.unwrap_or(0) > 0);
        assert_eq!(r.checks, "not traced");
        assert_eq!(
            (r.k_send_bytes, r.k_pinned_bytes, r.k_fallback_pct),
            (None, None, None),
            "kernel columns must be empty, not zero"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
