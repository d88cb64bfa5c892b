//! Idempotent bootstrap. Every step first looks whether its work is already done, says so, and
//! only then acts: a second run changes nothing and takes seconds.

use std::{
    env,
    ffi::OsString,
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// The toolchain netcopy/build.rs compiles the eBPF crate with.
pub const EBPF_TOOLCHAIN: &str = "nightly";
/// bpf-linker release known to build against the LLVM majors our nightly may carry.
const BPF_LINKER_VERSION: &str = "0.13.0";
const TRACEFS: &str = "/sys/kernel/tracing";

/// What setup leaves for the commands that follow.
pub struct Env {
    /// PATH with bpf-linker's folder in front, for the build that compiles the eBPF crate.
    pub path: OsString,
}

pub fn run() -> Result<Env> {
    ensure_nightly()?;
    ensure_rust_src()?;
    let linker_dir = ensure_bpf_linker()?;
    ensure_tracefs()?;
    ensure_debian_tools()?;
    Ok(Env {
        path: prepend_path(&linker_dir)?,
    })
}

fn report(step: &str, what: &str) {
    eprintln!("setup: {step}: {what}");
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd`; its failure names the command and its exit status.
pub fn status(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

fn nightly(tool: &str) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", EBPF_TOOLCHAIN, tool]);
    cmd
}

fn ensure_nightly() -> Result<()> {
    let installed = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if installed
        .lines()
        .any(|line| line.starts_with(&format!("{EBPF_TOOLCHAIN}-")))
    {
        report("nightly toolchain", "already there");
        return Ok(());
    }
    report("nightly toolchain", "installing");
    status(Command::new("rustup").args([
        "toolchain",
        "install",
        EBPF_TOOLCHAIN,
        "--profile",
        "minimal",
    ]))
}

fn ensure_rust_src() -> Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        EBPF_TOOLCHAIN,
    ]))?;
    if installed.lines().any(|line| line.starts_with("rust-src")) {
        report("nightly rust-src", "already there");
        return Ok(());
    }
    report("nightly rust-src", "installing");
    status(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        EBPF_TOOLCHAIN,
    ]))
}

/// The nightly's LLVM: its sysroot `lib/` folder, the shared library's file name there, and the
/// LLVM major version, all read from the toolchain itself.
struct NightlyLlvm {
    lib_dir: PathBuf,
    file_name: String,
    major: String,
}

fn nightly_llvm() -> Result<NightlyLlvm> {
    let sysroot = output(nightly("rustc").args(["--print", "sysroot"]))?;
    let lib_dir = Path::new(sysroot.trim()).join("lib");
    let version = output(nightly("rustc").arg("-vV"))?;
    let llvm = version
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .context("`rustc -vV` of the nightly names no LLVM version")?;
    let major = llvm.split('.').next().unwrap_or(llvm).trim().to_owned();
    let wanted = format!("libLLVM.so.{major}");
    let file_name = fs::read_dir(&lib_dir)
        .with_context(|| format!("cannot list {}", lib_dir.display()))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with(&wanted))
        .with_context(|| {
            format!(
                "no {wanted}* in {}: the nightly ships no shared LLVM to build bpf-linker against",
                lib_dir.display()
            )
        })?;
    Ok(NightlyLlvm {
        lib_dir,
        file_name,
        major,
    })
}

fn cargo_bin_dir() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
}

/// A bpf-linker that starts: one built against an LLVM the machine no longer has fails here.
fn working_bpf_linker(dir: &Path) -> bool {
    let linker = dir.join("bpf-linker");
    linker.is_file()
        && Command::new(&linker)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
}

fn ensure_bpf_linker() -> Result<PathBuf> {
    let search: Vec<PathBuf> = env::var_os("PATH")
        .map(|path| env::split_paths(&path).collect())
        .unwrap_or_default();
    let cargo_bin = cargo_bin_dir();
    if let Some(dir) = search
        .iter()
        .chain(std::iter::once(&cargo_bin))
        .find(|dir| working_bpf_linker(dir))
    {
        report(
            "bpf-linker",
            &format!("already there ({})", dir.join("bpf-linker").display()),
        );
        return Ok(dir.clone());
    }

    let llvm = nightly_llvm()?;
    report(
        "bpf-linker",
        &format!(
            "building {BPF_LINKER_VERSION} from crates.io against the nightly's LLVM {} ({})",
            llvm.major, llvm.file_name
        ),
    );
    // llvm-sys looks for `lib/libLLVM.so` under LLVM_PREFIX; the nightly ships only the versioned
    // file, so a prefix of two symlinks stands in for a full LLVM install.
    let prefix = env::temp_dir().join(format!("netcopy-llvm-prefix-{}", llvm.major));
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("cannot create {}", prefix_lib.display()))?;
    let target = llvm.lib_dir.join(&llvm.file_name);
    for name in ["libLLVM.so", llvm.file_name.as_str()] {
        let link = prefix_lib.join(name);
        let _ = fs::remove_file(&link);
        symlink(&target, &link).with_context(|| format!("cannot link {}", link.display()))?;
    }
    // The rpath lets bpf-linker find the nightly's libLLVM when it runs outside `rustup run`.
    let rustflags = format!("-C link-arg=-Wl,-rpath,{}", llvm.lib_dir.display());
    status(
        Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                &format!("llvm-{}", llvm.major),
            ])
            .env("LLVM_PREFIX", &prefix)
            .env("RUSTFLAGS", rustflags)
            .env_remove("RUSTUP_TOOLCHAIN"),
    )?;
    if !working_bpf_linker(&cargo_bin) {
        bail!(
            "bpf-linker was installed but {} does not start",
            cargo_bin.join("bpf-linker").display()
        );
    }
    report("bpf-linker", "installed");
    Ok(cargo_bin)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn ensure_tracefs() -> Result<()> {
    if Path::new(TRACEFS).join("events").is_dir() {
        report("tracefs", &format!("already mounted at {TRACEFS}"));
        return Ok(());
    }
    if !is_root() {
        report(
            "tracefs",
            &format!("not mounted at {TRACEFS}, and only root can mount it: skipped"),
        );
        return Ok(());
    }
    report("tracefs", &format!("mounting at {TRACEFS}"));
    status(Command::new("mount").args(["-t", "tracefs", "tracefs", TRACEFS]))
}

/// Programs the tests and the benchmark run beside netcopy, and the Debian package of each:
/// iperf3 (a program netcopy did not write, traced and compared against), iproute2's `ip`
/// (the control paths' namespaces and devices) and chromium (report.html, loaded headless).
const DEBIAN_TOOLS: &[(&str, &str)] = &[
    ("iperf3", "iperf3"),
    ("ip", "iproute2"),
    ("chromium", "chromium"),
];

fn on_path(program: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn ensure_debian_tools() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_TOOLS
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        report("tools", "iperf3, ip and chromium already installed");
        return Ok(());
    }
    if !is_root() || !on_path("apt-get") {
        report(
            "tools",
            &format!(
                "{} missing, and only root with apt-get can install them: skipped",
                missing.join(", ")
            ),
        );
        return Ok(());
    }
    report("tools", &format!("installing {}", missing.join(", ")));
    let apt = || {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    status(apt().args(["-q", "update"]))?;
    status(
        apt()
            .args(["-q", "-y", "install", "--no-install-recommends"])
            .args(&missing),
    )
}

fn prepend_path(dir: &Path) -> Result<OsString> {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(path) = env::var_os("PATH") {
        dirs.extend(env::split_paths(&path));
    }
    env::join_paths(dirs).context("cannot build PATH")
}
