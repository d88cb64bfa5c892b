//! What booting a guest needs on the host, installed when missing: QEMU, busybox and kmod from
//! Debian, and virtme-ng from PyPI in a venv under `target/vm/venv`.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// virtme-ng release the guest runs under (its flags and its `--rwdir` behaviour are relied on).
pub const VIRTME_NG_VERSION: &str = "1.42";

/// Programs the guest machinery runs, and the Debian package of each.
const HOST_TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    // virtme-ng builds the guest's initramfs around a static busybox.
    ("busybox", "busybox-static"),
    ("depmod", "kmod"),
    // virtme-ng reads the kernel's release from the image with `file`.
    ("file", "file"),
    ("dpkg-deb", "dpkg"),
];

pub use crate::setup::status;

fn on_path(program: &str) -> bool {
    let dirs = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&dirs)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(program).is_file())
}

fn apt() -> Command {
    let mut cmd = Command::new("apt-get");
    // Another apt run on the machine holds the lock for a while: wait for it rather than fail.
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-q", "-o", "DPkg::Lock::Timeout=300"]);
    cmd
}

pub fn ensure_host_tools() -> Result<()> {
    let missing: Vec<&str> = HOST_TOOLS
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        eprintln!("vm: qemu, busybox, kmod: already installed");
        return Ok(());
    }
    if !crate::setup::is_root() || !on_path("apt-get") {
        bail!(
            "the guest needs the Debian packages {}: install them as root (apt-get install {})",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!("vm: installing {}", missing.join(", "));
    status(apt().arg("update"))?;
    status(
        apt()
            .args(["-y", "install", "--no-install-recommends"])
            .args(&missing),
    )
    .with_context(|| format!("cannot install {}", missing.join(", ")))
}

/// Makes sure an apt source offers `package`, refreshing the lists once when it does not.
pub fn ensure_apt_source(package: &str) -> Result<()> {
    let offered = || -> Result<bool> {
        let out = Command::new("apt-cache")
            .args(["policy", package])
            .output()
            .context("cannot start apt-cache")?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .lines()
            .any(|l| l.trim().starts_with("Candidate:") && !l.contains("(none)")))
    };
    if offered()? {
        return Ok(());
    }
    status(apt().arg("update"))?;
    if !offered()? {
        bail!(
            "no apt source offers {package}: add the Debian suite that has it \
             (bookworm, bookworm-security or bookworm-backports) to /etc/apt/sources.list.d"
        );
    }
    Ok(())
}

/// `vng` from a venv of its own, installed at the pinned version when missing or different.
pub fn ensure_vng(cache: &Path) -> Result<PathBuf> {
    let venv = cache.join("venv");
    let vng = venv.join("bin/vng");
    let installed = Command::new(&vng)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(VIRTME_NG_VERSION));
    if installed {
        eprintln!(
            "vm: virtme-ng {VIRTME_NG_VERSION}: already in {}",
            venv.display()
        );
        return Ok(vng);
    }
    eprintln!(
        "vm: installing virtme-ng {VIRTME_NG_VERSION} into {}",
        venv.display()
    );
    if !venv.join("bin/pip").is_file() {
        status(Command::new("python3").arg("-m").arg("venv").arg(&venv))
            .context("cannot create a Python venv (Debian: apt-get install python3-venv)")?;
    }
    status(
        Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check"])
            .arg(format!("virtme-ng=={VIRTME_NG_VERSION}")),
    )
    .context("cannot install virtme-ng from PyPI")?;
    Ok(vng)
}
