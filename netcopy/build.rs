//! Builds netcopy-ebpf for the BPF target with the nightly and leaves the object in OUT_DIR,
//! where `kernel::tracer` embeds it with `include_bytes_aligned!`.
//!
//! The same steps as aya-build's `build_ebpf` (rustup's nightly, `-Z build-std=core`, BTF from
//! bpf-linker), but quiet: aya-build relays every line of the inner cargo's log as a cargo
//! warning, about fifty of them on a first build, which read as problems. Here a build that
//! works says one line, and one that fails shows its whole log.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

/// The package and its binary.
const EBPF: &str = "netcopy-ebpf";

fn main() {
    if let Err(why) = build() {
        eprintln!("{why}");
        std::process::exit(1);
    }
}

fn build() -> Result<(), String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("netcopy sits inside the workspace")?;
    // The programs and the shared types they are built from.
    for dir in [EBPF, "netcopy-common"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    let var = |name: &str| env::var(name).map_err(|_| format!("{name} not set"));
    let out_dir = PathBuf::from(var("OUT_DIR")?);
    let target = match var("CARGO_CFG_TARGET_ENDIAN")?.as_str() {
        "little" => "bpfel-unknown-none",
        "big" => "bpfeb-unknown-none",
        other => return Err(format!("unsupported endian {other}")),
    };
    let arch = var("CARGO_CFG_TARGET_ARCH")?;
    // A target dir of its own: cargo must not lock the one building us.
    let target_dir = out_dir.join("ebpf-target");
    let mut cmd = Command::new("rustup");
    cmd.current_dir(workspace)
        .args([
            "run",
            "nightly",
            "cargo",
            "build",
            "--package",
            EBPF,
            "--bins",
        ])
        .args(["--release", "--target", target, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        // Unit separators between flags; BTF so the loader can relocate and maps can be BTF.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!(
                "--cfg=bpf_target_arch=\"{arch}\"\x1f-Cdebuginfo=2\x1f-Clink-arg=--btf\x1f-Ctarget-cpu=v3"
            ),
        )
        // The outer build's compiler is the stable one: the nightly must pick its own.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    let output = cmd
        .output()
        .map_err(|e| format!("running {cmd:?}: {e} (the nightly toolchain comes from rustup)"))?;
    if !output.status.success() {
        return Err(format!(
            "building the eBPF programs failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let built = target_dir.join(target).join("release").join(EBPF);
    std::fs::copy(&built, out_dir.join(EBPF))
        .map_err(|e| format!("copying {}: {e}", built.display()))?;
    println!("cargo:warning=eBPF programs built ({EBPF}, {target}, nightly)");
    Ok(())
}
