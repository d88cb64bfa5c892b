//! Environment problems named precisely: a missing BTF file (through the documented
//! `NETCOPY_BTF` override), and no root: without `--no-trace` a clear line saying what to do,
//! with it a run whose kernel columns are empty, never zero.

mod common;

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
/// (after saying why) otherwise, and a failure under CI, which runs as root.
fn as_nobody(test: &str) -> Option<Command> {
    as_nobody_with(test, &[])
}

/// Like [`as_nobody`], keeping exactly the capabilities `caps` (names as setpriv takes them).
fn as_nobody_with(test: &str, caps: &[&str]) -> Option<Command> {
    if !netcopy::kernel::is_root() {
        assert!(
            !common::in_ci(),
            "{test}: CI runs as root, so this must not skip"
        );
        eprintln!("SKIPPED {test}: dropping privileges needs root to start from");
        return None;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    if !caps.is_empty() {
        let set: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
        let set = set.join(",");
        cmd.arg(format!("--inh-caps={set}"))
            .arg(format!("--ambient-caps={set}"));
    }
    cmd.arg("--").arg(env!("CARGO_BIN_EXE_netcopy"));
    Some(cmd)
}

/// README's promise: root is not needed, only CAP_BPF and CAP_PERFMON (and CAP_SYSLOG for the
/// deferred copy's pages). With exactly those, an unprivileged user traces an experiment and
/// every check holds; with CAP_BPF alone, it is told what is missing.
#[test]
fn the_named_capabilities_suffice_for_tracing() {
    let Some(mut cmd) = as_nobody_with(
        "the_named_capabilities_suffice",
        &["bpf", "perfmon", "syslog"],
    ) else {
        return;
    };
    let out = cmd
        .args(["bench-one", "--mode", "a3", "--size", "16K", "--port", "0"])
        .args(["--duration", "200ms", "--warmup", "50ms"])
        .output()
        .expect("running netcopy");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{}", text, stderr(&out));
    assert!(text.contains("checks:     ok"), "{text}");
    assert!(text.contains("pages allocated by skb_copy_ubufs"), "{text}");

    let Some(mut cmd) = as_nobody_with("the_named_capabilities_suffice", &["bpf"]) else {
        return;
    };
    let out = cmd
        .args(["bench-one", "--port", "0", "--duration", "100ms"])
        .output()
        .expect("running netcopy");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("CAP_PERFMON") && err.contains("--no-trace"),
        "{err}"
    );
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

/// README's promise: a run under sudo hands its files to the user who ran sudo (SUDO_UID and
/// SUDO_GID), so they can be read, moved and deleted without root.
#[test]
fn files_are_handed_to_the_sudo_user() {
    if !netcopy::kernel::is_root() {
        assert!(!common::in_ci(), "CI runs as root, so this must not skip");
        eprintln!("SKIPPED files_are_handed_to_the_sudo_user: chown needs root");
        return;
    }
    let dir = PathBuf::from(format!("/tmp/netcopy-test-sudo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .args(["sweep", "--no-trace", "--modes", "a1", "--sizes", "1K"])
        .args(["--threads", "1", "--workload", "stream", "--reps", "1"])
        .args(["--duration", "50ms", "--warmup", "20ms", "--out"])
        .arg(&dir)
        .output()
        .expect("running netcopy");
    assert!(out.status.success(), "{}", stderr(&out));
    use std::os::unix::fs::MetadataExt as _;
    let run = std::fs::read_link(dir.join("latest")).expect("latest");
    let mut checked = 0;
    let mut stack = vec![dir.join(run)];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (65534, 65534),
            "{}",
            path.display()
        );
        checked += 1;
        if meta.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    // The folder, results.csv/json, points.csv, report.md, the plots folder and its files.
    assert!(checked >= 8, "only {checked} entries");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `netcopy explain ... | head -0`: the reader is gone before netcopy prints; netcopy ends
/// quietly, as Unix tools do (by SIGPIPE), never with a panic on stderr.
#[test]
fn a_reader_that_leaves_early_gets_no_panic() {
    use std::io::Read as _;
    use std::os::unix::process::ExitStatusExt as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .args([
            "explain",
            "--no-trace",
            "--mode",
            "a1",
            "--size",
            "1K",
            "--port",
            "0",
        ])
        .args(["--duration", "100ms", "--warmup", "50ms"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("netcopy explain");
    // The pipe's read end is closed before netcopy writes anything.
    drop(child.stdout.take());
    let status = common::wait_bounded(&mut child, std::time::Duration::from_secs(30), "explain");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        status.success() || status.signal() == Some(libc::SIGPIPE),
        "{status}: {err}"
    );
}
