//! `cargo xtask vm`: netcopy, or its kernel-facing tests, inside a guest booted under QEMU from
//! a distribution kernel package, with the host's root filesystem shared read-only. Results
//! land in the host's `results/`; the guest command's exit status is this command's.

mod guest;
mod kernels;
mod nic;
mod tests;
mod tools;

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context as _, Result};

use crate::{cmd, setup};
use guest::{Accel, Boot, Outcome};

pub use nic::ci_suite as nic_ci_suite;
pub use tests::{GUEST_SUITE_IN_CI, ci_suite};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// The guest's kernel: a pinned Debian package by name (6.1, 6.12) or a kernel image path.
    #[arg(long, default_value = "6.1")]
    kernel: String,
    /// Accelerator: `kvm` or `tcg`. Default: KVM when /dev/kvm opens, TCG when it fails.
    #[arg(long, value_parser = ["kvm", "tcg"])]
    accel: Option<String>,
    /// Guest memory (QEMU's -m).
    #[arg(long, default_value = "2G")]
    memory: String,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    cpus: u32,
    /// Give the guest two e1000 NICs joined back to back by a QEMU socket netdev on a free
    /// 127.0.0.1 port (no host device, no traffic outside the guest).
    #[arg(long)]
    nic_pair: bool,
    /// Stop the guest after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// After `--`: netcopy's arguments (`check`, `bench-one --mode a3 --size 16K`, ...), or
    /// `test [NAME...] [FILTER...]` for the kernel-facing test binaries, or `nic` for
    /// zero-copy through the NIC pair (loopback, nic and nic-no-sg side by side, then serve
    /// and sweep --connect across the pair).
    #[arg(last = true, required = true)]
    args: Vec<String>,
}

/// What the guest runs, as the body of its script.
pub struct Job {
    pub body: String,
    pub label: String,
}

/// `cargo xtask vm`: its exit status is the guest command's.
pub fn main(args: Args) -> ExitCode {
    match run(&args) {
        Ok(outcome) => ExitCode::from(outcome.status.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("xtask vm: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<Outcome> {
    kernels::validate(&args.kernel)?;
    let env = setup::run()?;
    let job = if args.args.first().map(String::as_str) == Some("test") {
        tests::job(&env, &args.args[1..], &[])?
    } else if args.args == ["nic"] {
        if !args.nic_pair {
            eprintln!("vm: nic runs with --nic-pair");
        }
        let args = Args {
            nic_pair: true,
            ..args.clone()
        };
        return boot(&args, &nic::job(&env)?);
    } else {
        let netcopy = cmd::build_release(&env)?;
        Job {
            body: shell_words(
                std::iter::once(netcopy.display().to_string()).chain(args.args.clone()),
            ),
            label: format!("netcopy {}", args.args.join(" ")),
        }
    };
    boot(args, &job)
}

/// Boots `args.kernel` and runs `job` in it; prints what came back.
fn boot(args: &Args, job: &Job) -> Result<Outcome> {
    let workspace = cmd::workspace_root();
    let cache = workspace.join("target/vm");
    fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    tools::ensure_host_tools()?;
    let vng = tools::ensure_vng(&cache)?;
    let kernel = kernels::resolve(&cache, &args.kernel)?;
    let run_dir = new_run_dir(&cache)?;
    let results = workspace.join("results");
    fs::create_dir_all(&results)?;
    fs::write(
        run_dir.join("guest.sh"),
        script(&run_dir, &job.body, args.nic_pair),
    )?;
    let qemu_opts = args.nic_pair.then(nic_pair_opts).transpose()?;
    eprintln!(
        "vm: kernel {}, running: {}",
        kernel.release.as_deref().unwrap_or(&args.kernel),
        job.label
    );
    let boot = Boot {
        vng: &vng,
        image: &kernel.image,
        workspace: &workspace,
        run_dir: &run_dir,
        rw_dirs: vec![results],
        memory: &args.memory,
        cpus: args.cpus,
        qemu_opts,
        timeout: Duration::from_secs(args.timeout),
        timed_out: Default::default(),
    };
    let marker = cache.join("kvm-failed");
    let before = result_dirs(&boot.rw_dirs[0]);
    let outcome = boot.run(&accels(args.accel.as_deref(), &marker)?, &marker)?;
    label_results(&boot.rw_dirs[0], &before, &outcome)?;
    tests::summary(&run_dir, &outcome);
    if args.nic_pair {
        let nics = fs::read_to_string(run_dir.join("nics")).unwrap_or_default();
        eprintln!("vm: the guest's e1000 pair: {}", nics.trim());
    }
    eprintln!(
        "vm: guest kernel {} under {}: up in {:.1} s, command {:.1} s, {:.1} s in all; {} exited {}",
        outcome.release,
        outcome.accel.name(),
        outcome.boot.as_secs_f64(),
        outcome.command.as_secs_f64(),
        outcome.total.as_secs_f64(),
        job.label,
        outcome.status
    );
    Ok(outcome)
}

/// The accelerators to try in order. KVM is skipped when /dev/kvm does not open, or when it
/// failed before on this host kernel (the marker file holds that kernel's release).
fn accels(choice: Option<&str>, kvm_failed: &Path) -> Result<Vec<Accel>> {
    Ok(match choice {
        Some("kvm") => vec![Accel::Kvm],
        Some(_) => vec![Accel::Tcg],
        None => {
            let opens = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .is_ok();
            let failed = fs::read_to_string(kvm_failed).is_ok_and(|r| r == host_release());
            if failed {
                eprintln!(
                    "vm: KVM failed here before ({}; delete it to try again): TCG",
                    kvm_failed.display()
                );
            }
            if opens && !failed {
                vec![Accel::Kvm, Accel::Tcg]
            } else {
                vec![Accel::Tcg]
            }
        }
    })
}

fn result_dirs(results: &Path) -> Vec<PathBuf> {
    fs::read_dir(results)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir() && !p.is_symlink())
                .collect()
        })
        .unwrap_or_default()
}

/// Leaves `vm.txt` in every results folder the guest made: which kernel, under which
/// accelerator, so that no one reads an emulated CPU's speed as the host's.
fn label_results(results: &Path, before: &[PathBuf], outcome: &Outcome) -> Result<()> {
    for dir in result_dirs(results).iter().filter(|d| !before.contains(d)) {
        let text = format!(
            "made inside a QEMU guest by cargo xtask vm\nkernel: {}\naccelerator: {}\n",
            outcome.release,
            outcome.accel.describe()
        );
        fs::write(dir.join("vm.txt"), text)
            .with_context(|| format!("cannot write {}", dir.join("vm.txt").display()))?;
        eprintln!("vm: results in {}", dir.display());
    }
    Ok(())
}

pub fn host_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn new_run_dir(cache: &Path) -> Result<PathBuf> {
    let stamp = String::from_utf8(
        std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%dT%H-%M-%S"])
            .output()?
            .stdout,
    )?;
    let dir = cache
        .join("runs")
        .join(format!("{}-{}", stamp.trim(), std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The guest's script: marks the boot, records the release, runs the body with its output in
/// `output.log`, and leaves the body's exit status in `status`.
fn script(run_dir: &Path, body: &str, nic_pair: bool) -> String {
    let dir = quote(&run_dir.display().to_string());
    let nics = if nic_pair { NIC_PAIR_SETUP } else { "" };
    format!(
        "R={dir}\n\
         echo up > \"$R/booted\"\n\
         uname -r > \"$R/release\"\n\
         mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing\n\
         {nics}\
         {{\n{body}\n}} > \"$R/output.log\" 2>&1 < /dev/null\n\
         echo $? > \"$R/status\"\n"
    )
}

/// With `--nic-pair`: loads the driver (no udev in the guest to do it), and hands the guest
/// command the pair's interface names in `NETCOPY_VM_NICS`, also left in `$R/nics`, and in
/// `NETCOPY_NICS`, where netcopy's nic paths find them. Their addresses are the command's to
/// give, from 192.0.2.0/24 only.
const NIC_PAIR_SETUP: &str = "modprobe e1000\n\
    NETCOPY_VM_NICS=\n\
    for d in /sys/class/net/*; do\n\
    [ \"$(basename \"$(readlink \"$d/device/driver\")\")\" = e1000 ] && \
    NETCOPY_VM_NICS=\"$NETCOPY_VM_NICS${NETCOPY_VM_NICS:+ }$(basename \"$d\")\"\n\
    done\n\
    export NETCOPY_VM_NICS\n\
    export NETCOPY_NICS=\"$NETCOPY_VM_NICS\"\n\
    echo \"$NETCOPY_VM_NICS\" > \"$R/nics\"\n";

/// The QEMU options of two e1000 NICs joined back to back over 127.0.0.1.
fn nic_pair_opts() -> Result<String> {
    // A port the kernel says is free now; QEMU listens on it a moment later.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    eprintln!("vm: two e1000 NICs joined over 127.0.0.1:{port}");
    Ok(format!(
        "-netdev socket,id=nc0,listen=127.0.0.1:{port} -device e1000,netdev=nc0 \
         -netdev socket,id=nc1,connect=127.0.0.1:{port} -device e1000,netdev=nc1"
    ))
}

/// POSIX shell single quoting.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

pub fn shell_words(words: impl IntoIterator<Item = String>) -> String {
    words
        .into_iter()
        .map(|w| quote(&w))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod unit {
    use super::*;

    /// Each pinned package is the generic flavour: `-cloud` has no 9p, `-rt` is another kernel.
    #[test]
    fn pinned_kernels_are_generic_flavour() {
        for (name, package) in kernels::KERNELS {
            assert!(package.starts_with("linux-image-"), "{name}: {package}");
            assert!(package.ends_with("-amd64"), "{name}: {package}");
            assert!(
                !package.contains("-cloud") && !package.contains("-rt-"),
                "{name}: {package}"
            );
        }
    }

    /// The quoted words reach a real shell unchanged, whatever they hold.
    #[test]
    fn quoted_words_reach_the_shell_unchanged() {
        let words = [
            "plain",
            "two words",
            "it's",
            "$HOME",
            "`id`",
            "a\"b",
            "",
            "-- x",
        ];
        let script = format!(
            "printf '%s\\n' {}",
            shell_words(words.iter().map(|w| w.to_string()))
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh runs");
        let printed = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(printed.lines().collect::<Vec<_>>(), words);
    }

    /// The guest script records the body's own exit status, not the script's.
    #[test]
    fn the_script_records_the_commands_exit_status() {
        let dir = std::env::temp_dir().join(format!("xtask-vm-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let text = script(&dir, "echo out; echo err >&2; (exit 7)", false);
        let status = std::process::Command::new("bash")
            .args(["-c", &text])
            .status()
            .expect("bash runs");
        assert!(status.success());
        let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(read("status"), "7\n");
        assert_eq!(read("output.log"), "out\nerr\n");
        assert_eq!(read("booted"), "up\n");
        fs::remove_dir_all(&dir).unwrap();
    }
}
