//! Everything that talks to the kernel's tracing side: BTF, the programs and their maps.

pub mod btf;
pub mod kallsyms;
pub mod netns;
pub mod tracer;

use std::path::PathBuf;

/// Where the kernel's BTF is read from; `NETCOPY_BTF` overrides it (tests point it at a
/// missing file to check the error).
pub fn btf_path() -> PathBuf {
    std::env::var_os("NETCOPY_BTF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/sys/kernel/btf/vmlinux"))
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
