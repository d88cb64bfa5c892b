//! The commands that build, test and run netcopy once setup is done.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::setup;

/// The netcopy command `cargo xtask run` runs: the main job, the whole study. Arguments that
/// start with a flag (`cargo xtask run -- --quick`) are the sweep's.
const MAIN_JOB: &str = "sweep";

pub fn workspace_root() -> PathBuf {
    // xtask lives one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent folder")
        .to_path_buf()
}

fn cargo(env: &setup::Env) -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root()).env("PATH", &env.path);
    cmd
}

fn run_status(mut cmd: Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

pub fn build_release(env: &setup::Env) -> Result<PathBuf> {
    let mut cmd = cargo(env);
    cmd.args(["build", "--release", "--package", "netcopy"]);
    run_status(cmd)?;
    Ok(workspace_root().join("target/release/netcopy"))
}

pub fn build() -> Result<()> {
    let env = setup::run()?;
    build_release(&env).map(|_| ())
}

/// Where the quick sweep test leaves its screenshot of report.html (netcopy/tests/report_html).
const SCREENSHOT: &str = "target/tmp/report-html/report.png";

/// The tests that hold figures exact (the deferred copy above all): a rare race shows only
/// over many runs, so CI runs each of them five times (README, Reliability).
const EXACT_TESTS: [&str; 3] = ["control_paths", "copy_accounting", "exact_reordering"];

/// The whole suite, the exact-figure tests four more times, then (`guest`) the accounting
/// tests inside the 6.1 guest; with `repeat`, only the named tests (default: the exact ones).
pub fn test(repeat: Option<u32>, filters: &[String], args: &[String], guest: bool) -> Result<()> {
    let exact: Vec<String> = EXACT_TESTS.iter().map(|t| (*t).to_owned()).collect();
    let env = setup::run()?;
    match repeat {
        Some(times) if filters.is_empty() => return repeat_tests(&env, times, &exact, args),
        Some(times) => return repeat_tests(&env, times, filters, args),
        None if !filters.is_empty() => bail!("test names need --repeat N (how many runs)"),
        None => {}
    }
    let mut cmd = cargo(&env);
    cmd.args(["test", "--workspace", "--exclude", "netcopy-ebpf"]);
    if !args.is_empty() {
        cmd.arg("--").args(args);
    }
    let started = std::time::SystemTime::now();
    let result = run_status(cmd);
    // Only a screenshot this run took: an older one would show another build's page.
    let shot = workspace_root().join(SCREENSHOT);
    if std::fs::metadata(&shot)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= started)
    {
        eprintln!("report.html screenshot: {}", shot.display());
    }
    result?;
    repeat_tests(&env, 4, &exact, args)?;
    if guest {
        crate::vm::ci_suite(&env)?;
        crate::vm::nic_ci_suite(&env)?;
    }
    Ok(())
}

/// Runs each `target[:filter]` `times` times, stopping at the first failure.
fn repeat_tests(env: &setup::Env, times: u32, filters: &[String], args: &[String]) -> Result<()> {
    for run in 1..=times {
        for filter in filters {
            let (target, name) = filter.split_once(':').unwrap_or((filter, ""));
            let mut cmd = cargo(env);
            cmd.args(["test", "--package", "netcopy", "--test", target, "--"]);
            if !name.is_empty() {
                cmd.arg(name);
            }
            cmd.args(args);
            run_status(cmd).with_context(|| format!("{filter}: run {run} of {times}"))?;
        }
        eprintln!("xtask: run {run} of {times} passed: {}", filters.join(" "));
    }
    Ok(())
}

pub fn run(args: &[String]) -> Result<()> {
    let env = setup::run()?;
    let netcopy = build_release(&env)?;
    let mut cmd = Command::new(netcopy);
    cmd.current_dir(workspace_root());
    if args.first().is_none_or(|a| a.starts_with('-')) {
        cmd.arg(MAIN_JOB);
    }
    cmd.args(args);
    run_status(cmd)
}
