//! Guest kernels: Debian's generic kernel packages, fetched with `apt-get download` and unpacked
//! with `dpkg-deb -x` into `target/vm/kernels/<package>/`, never installed. The modules stay in
//! that folder; virtme-ng finds them beside the image and links them into the guest's
//! `/lib/modules`, so the host's `/lib/modules` is never written.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::tools;

/// The kernels `--kernel` knows by name: one line each. To add one, find the package with
/// `apt-cache search linux-image-<version>` (the generic `-amd64` flavour: `-cloud` has no 9p,
/// which the guest's root filesystem needs), add a line, and run `cargo xtask vm --kernel NAME
/// -- check`.
pub const KERNELS: &[(&str, &str)] = &[
    // Debian 12's own kernel (bookworm main, point release 12.13).
    ("6.1", "linux-image-6.1.0-50-amd64"),
    // The newest 6.12 Debian 12 offers (bookworm-security; no backports source needed).
    ("6.12", "linux-image-6.12.118+deb12-amd64"),
];

/// A kernel the guest boots: its image, and its release when known before booting.
pub struct Kernel {
    pub image: PathBuf,
    pub release: Option<String>,
}

pub fn names() -> String {
    KERNELS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--kernel`: a pinned name, or the path of a kernel image of the user's own.
pub fn resolve(cache: &Path, choice: &str) -> Result<Kernel> {
    validate(choice)?;
    if let Some((_, package)) = KERNELS.iter().find(|(name, _)| *name == choice) {
        return fetch(cache, package);
    }
    Ok(Kernel {
        image: Path::new(choice).canonicalize()?,
        release: None,
    })
}

/// Refuses a `--kernel` that is neither pinned nor a file, before anything is built.
pub fn validate(choice: &str) -> Result<()> {
    if KERNELS.iter().any(|(name, _)| *name == choice) || Path::new(choice).is_file() {
        return Ok(());
    }
    bail!(
        "--kernel {choice}: neither a known kernel ({}) nor a kernel image file",
        names()
    )
}

/// Downloads and unpacks `package` once; later runs find it in the cache.
fn fetch(cache: &Path, package: &str) -> Result<Kernel> {
    let dir = cache.join("kernels").join(package);
    if let Some(kernel) = unpacked(&dir)? {
        eprintln!(
            "vm: kernel {package}: already unpacked in {}",
            dir.display()
        );
        return Ok(kernel);
    }
    tools::ensure_apt_source(package)?;
    let debs = cache.join("debs");
    fs::create_dir_all(&debs).with_context(|| format!("cannot create {}", debs.display()))?;
    eprintln!("vm: kernel {package}: apt-get download");
    tools::status(
        Command::new("apt-get")
            // As root, apt downloads as its user _apt, who cannot write into the cache folder.
            .args(["download", "-q", "-o", "APT::Sandbox::User=root", package])
            .current_dir(&debs),
    )
    .with_context(|| format!("cannot download {package}"))?;
    let deb = fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .with_context(|| format!("apt-get download left no {package}_*.deb"))?;
    // Unpack beside the final folder and rename, so an interrupted run leaves no half kernel.
    let partial = cache.join("kernels").join(format!("{package}.partial"));
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial)?;
    eprintln!("vm: kernel {package}: dpkg-deb -x into {}", dir.display());
    tools::status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
    let kernel = unpacked(&partial)?
        .with_context(|| format!("{} holds no boot/vmlinuz-*", deb.display()))?;
    depmod(&partial, kernel.release.as_deref().unwrap_or_default())?;
    fs::rename(&partial, &dir)?;
    let _ = fs::remove_file(&deb);
    unpacked(&dir)?.context("the unpacked kernel vanished")
}

/// The image in an unpacked package, and the release its file name carries.
fn unpacked(dir: &Path) -> Result<Option<Kernel>> {
    let boot = dir.join("boot");
    if !boot.is_dir() {
        return Ok(None);
    }
    for entry in fs::read_dir(&boot)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(release) = name.strip_prefix("vmlinuz-") {
            return Ok(Some(Kernel {
                release: Some(release.to_owned()),
                image: path.clone(),
            }));
        }
    }
    Ok(None)
}

/// The package ships no modules.dep (the host's postinst would make it); the guest's modprobe
/// needs one. Written into the cache folder, never into the host's /lib/modules.
fn depmod(root: &Path, release: &str) -> Result<()> {
    if root.join("lib/modules").join(release).is_dir() {
        tools::status(Command::new("depmod").arg("-b").arg(root).arg(release))?;
    }
    Ok(())
}
