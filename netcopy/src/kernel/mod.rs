//! Everything that talks to the kernel's tracing side: BTF, the programs and their maps.

pub mod attach;
pub mod btf;
mod deliveries;
mod hooks;
pub mod kallsyms;
pub mod netns;
pub mod nic;
mod offsets;
mod on_demand;
pub mod prog_info;
pub mod tracer;

use std::path::PathBuf;

/// Where the kernel's BTF is read from; `NETCOPY_BTF` overrides it (tests point it at a
/// missing file to check the error).
pub fn btf_path() -> PathBuf {
    std::env::var_os("NETCOPY_BTF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/sys/kernel/btf/vmlinux"))
}

/// Shrinks the named maps at load (`NAME=ENTRIES,...`): how tests make a map too small to
/// hold every connection, so the checks must catch what it lost. Never needed otherwise.
pub const MAP_ENTRIES_ENV: &str = "NETCOPY_MAP_ENTRIES";

/// The map sizes [`MAP_ENTRIES_ENV`] asks for.
pub fn map_entries() -> crate::error::Result<Vec<(String, u32)>> {
    let Ok(spec) = std::env::var(MAP_ENTRIES_ENV) else {
        return Ok(Vec::new());
    };
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            item.split_once('=')
                .and_then(|(name, n)| Some((name.trim().to_owned(), n.trim().parse().ok()?)))
                .filter(|(_, n)| *n > 0)
                .ok_or_else(|| {
                    crate::error::Error::Unsupported(format!(
                        "{MAP_ENTRIES_ENV}: {item:?} is not NAME=ENTRIES (ENTRIES > 0)"
                    ))
                })
        })
        .collect()
}

/// capability(7) numbers of what tracing needs.
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// This process's effective capabilities (`CapEff` in /proc/self/status); none if unreadable.
fn effective_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("CapEff:"))?;
            u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
        })
        .unwrap_or(0)
}

/// Whether this process may load and attach the tracing programs: CAP_BPF and CAP_PERFMON
/// (loading tracing programs, reading kernel memory in them), or CAP_SYS_ADMIN, which
/// includes both. Root has them all; so may an unprivileged user given just those.
pub fn can_trace() -> bool {
    let caps = effective_capabilities();
    let has = |cap: u32| caps >> cap & 1 == 1;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
