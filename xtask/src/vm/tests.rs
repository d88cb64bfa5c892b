//! `cargo xtask vm -- test`: the kernel-facing test binaries, built on the host, run in the
//! guest as root with `CI=true` (a test that cannot attach fails instead of skipping), one after
//! the other, each timed.

use std::{
    fs,
    path::PathBuf,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use super::{Args, Job, guest::Outcome, quote};
use crate::{cmd, setup};

/// The test binaries `test` runs when none is named: the ones that load, attach or measure
/// through the kernel.
const KERNEL_TESTS: &[&str] = &[
    "btf_offsets",
    "socket_accounting",
    "copy_accounting",
    "send_paths",
    "attribution",
    "hook_compat",
    "control_paths",
    "trace_command",
    "two_processes",
];

/// The guest suite `cargo xtask test` runs on 6.1: the accounting of a1-a5 and zero-copy
/// receive (copy_accounting), the per-socket counts (socket_accounting) and the trace of a
/// foreign program (trace_command).
const CI_GUEST_TESTS: &[&str] = &["copy_accounting", "socket_accounting", "trace_command"];
const CI_GUEST_KERNEL: &str = "6.1";

/// Whether `cargo xtask test` runs the guest suite without being asked (`--guest`): on since
/// those tests pass on 6.1.
pub const GUEST_SUITE_IN_CI: bool = true;

/// A test binary cargo built: its target name and executable.
struct TestBinary {
    name: String,
    exe: PathBuf,
}

/// Builds the netcopy test binaries on the host and lists them.
fn build(env: &setup::Env) -> Result<Vec<TestBinary>> {
    eprintln!("vm: building the test binaries");
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(cmd::workspace_root())
        .env("PATH", &env.path)
        .args(["test", "--package", "netcopy", "--tests", "--no-run"])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start cargo")?;
    if !out.status.success() {
        bail!("building the test binaries failed ({})", out.status);
    }
    let mut binaries = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_test = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        if let (true, Some(exe), Some(name)) = (
            is_test,
            msg["executable"].as_str(),
            msg["target"]["name"].as_str(),
        ) {
            binaries.push(TestBinary {
                name: name.to_owned(),
                exe: exe.into(),
            });
        }
    }
    Ok(binaries)
}

/// The guest's job for `test [NAME...] [FILTER...]`: words naming a test binary select it, the
/// other words go to every selected binary (libtest filters and flags). `default` replaces
/// [`KERNEL_TESTS`] when no binary is named.
pub fn job(env: &setup::Env, words: &[String], default: &[&str]) -> Result<Job> {
    let built = build(env)?;
    let (names, filters): (Vec<&String>, Vec<&String>) = words
        .iter()
        .partition(|w| built.iter().any(|b| &b.name == *w));
    if !filters.is_empty() {
        let words: Vec<&str> = filters.iter().map(|f| f.as_str()).collect();
        eprintln!(
            "vm: no test binary is named {}: given to each binary as libtest arguments",
            words.join(" ")
        );
    }
    let wanted: Vec<&str> = if !names.is_empty() {
        names.iter().map(|n| n.as_str()).collect()
    } else if !default.is_empty() {
        default.to_vec()
    } else {
        KERNEL_TESTS.to_vec()
    };
    let mut lines = vec![
        "export CI=true".to_owned(),
        "failed=0".to_owned(),
        // One line per binary in $R/tests: name, exit status, seconds.
        "t() { local s=$(date +%s%N); (cd \"$1\" && \"$3\" \"${@:4}\"); local rc=$?; \
         echo \"$2 $rc $((($(date +%s%N)-s)/1000000))\" >> \"$R/tests\"; \
         [ $rc = 0 ] || failed=1; }"
            .to_owned(),
    ];
    let package_dir = cmd::workspace_root().join("netcopy");
    for name in &wanted {
        let bin = built
            .iter()
            .find(|b| b.name == *name)
            .with_context(|| format!("no test binary named {name}"))?;
        let mut line = format!(
            "t {} {} {}",
            quote(&package_dir.display().to_string()),
            quote(name),
            quote(&bin.exe.display().to_string())
        );
        for f in &filters {
            line.push(' ');
            line.push_str(&quote(f));
        }
        lines.push(line);
    }
    lines.push("exit $failed".to_owned());
    Ok(Job {
        // A subshell, so that `exit` ends the tests and not the script that records the status.
        body: format!("(\n{}\n)", lines.join("\n")),
        label: format!("test {}", wanted.join(" ")),
    })
}

/// Prints one line per test binary from the guest's `tests` file, timed by the host's clock
/// (the time since the previous binary ended, its start-up over 9p included).
pub(super) fn summary(run_dir: &std::path::Path, outcome: &Outcome) {
    let text = fs::read_to_string(run_dir.join("tests")).unwrap_or_default();
    let mut previous = outcome.boot;
    for (line, mark) in text.lines().zip(&outcome.test_marks) {
        if let [name, rc, _guest_ms] = line.split_whitespace().collect::<Vec<_>>()[..] {
            let verdict = if rc == "0" { "passed" } else { "FAILED" };
            let secs = mark.saturating_sub(previous).as_secs_f64();
            eprintln!("vm: {name:<20} {verdict} in {secs:.1} s");
        }
        previous = *mark;
    }
}

/// `cargo xtask test`'s guest suite: [`CI_GUEST_TESTS`] in the 6.1 guest, timed.
pub fn ci_suite(env: &setup::Env) -> Result<()> {
    timed_suite(env, "guest suite", CI_GUEST_KERNEL, CI_GUEST_TESTS, false)
}

/// Runs `tests` in a guest of `kernel` (with the NIC pair when `nic_pair`), prints how long
/// it took, and fails when any failed.
pub(super) fn timed_suite(
    env: &setup::Env,
    what: &str,
    kernel: &str,
    tests: &[&str],
    nic_pair: bool,
) -> Result<()> {
    let start = Instant::now();
    let args = Args {
        kernel: kernel.to_owned(),
        accel: None,
        memory: "2G".to_owned(),
        cpus: 2,
        nic_pair,
        timeout: 1800,
        args: Vec::new(),
    };
    let job = job(env, &[], tests)?;
    let outcome = super::boot(&args, &job)?;
    let passed = outcome.status == 0;
    eprintln!(
        "xtask test: {what} on {} under {}: {} in {:.0} s (boot {:.0} s, tests {:.0} s)",
        outcome.release,
        outcome.accel.name(),
        if passed { "passed" } else { "FAILED" },
        start.elapsed().as_secs_f64(),
        outcome.boot.as_secs_f64(),
        outcome.command.as_secs_f64()
    );
    if !passed {
        bail!("the {what} failed on {}", outcome.release);
    }
    Ok(())
}
