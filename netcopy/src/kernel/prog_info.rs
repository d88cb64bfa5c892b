//! The kernel's own statistics of each loaded program, read from `bpf_prog_info`
//! (`BPF_OBJ_GET_INFO_BY_FD`): aya's `ProgramInfo` does not expose `recursion_misses`.

use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd};

use super::tracer::Tracer;

/// `BPF_OBJ_GET_INFO_BY_FD` (include/uapi/linux/bpf.h).
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
/// `bpf_prog_info` up to and including `attach_btf_id` (Linux 5.12+), in u64 words.
const INFO_WORDS: usize = 29;
/// `bpf_prog_info.recursion_misses`: byte 208, after `run_time_ns` and `run_cnt`.
const RECURSION_MISSES_WORD: usize = 26;

/// The `info` part of `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// Runs of the program behind `fd` the kernel skipped because another BPF program was
/// already running on that CPU (`recursion_misses`): each is an event nothing counted. An
/// older kernel that reports a shorter `bpf_prog_info` gives None.
pub fn recursion_misses(fd: BorrowedFd<'_>) -> std::io::Result<Option<u64>> {
    let mut info = [0u64; INFO_WORDS];
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: `attr` and `info` outlive the call; the kernel writes at most `info_len` bytes
    // into `info` and its actual length into `attr.info_len`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut InfoAttr,
            std::mem::size_of::<InfoAttr>(),
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let filled = attr.info_len as usize;
    Ok((filled >= (RECURSION_MISSES_WORD + 1) * 8).then_some(info[RECURSION_MISSES_WORD]))
}

impl Tracer {
    /// The programs the gate chose on this kernel, one per attached hook.
    pub(in crate::kernel) fn programs(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.mechanisms().iter().map(|(_, att)| att.program)
    }

    /// Each program's (name, runs, total run time) since load; counted only while run-time
    /// statistics are on (see [`enable_run_stats`]).
    pub fn program_stats(&self) -> Vec<(&'static str, u64, std::time::Duration)> {
        self.programs()
            .filter_map(|name| {
                let info = self.ebpf.program(name)?.info().ok()?;
                Some((name, info.run_count(), info.run_time()))
            })
            .collect()
    }

    /// Each program's runs the kernel skipped since load (see [`recursion_misses`]); a
    /// program whose statistics cannot be read is left out.
    pub fn missed_runs(&self) -> Vec<(&'static str, u64)> {
        self.programs()
            .filter_map(|name| {
                let fd = self.ebpf.program(name)?.fd().ok()?;
                let misses = recursion_misses(fd.as_fd()).ok()??;
                Some((name, misses))
            })
            .collect()
    }
}
