//! Detaching the programs while a speed figure is taken, attaching them again for the next
//! traced run, and asking the kernel (not netcopy's own state) which of them are attached.
//!
//! The programs stay loaded and their maps keep their contents: only the links go, so an
//! untraced run pays for no hook at all (and the thread that drains the programs' ring buffer
//! sleeps meanwhile), and a traced run after it needs one attach per hook.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use aya::programs::{links::LinkError, loaded_links};

use super::{Tracer, attach};
use crate::error::{Error, Result};

/// An fexit program runs from a trampoline the kernel rebuilds whenever any program is attached
/// to or detached from the same function. A call already inside the function (a receiver
/// blocked in `sock_recvmsg`, a sender in `__sock_sendmsg`) then returns through the retired
/// trampoline, which the kernel has patched to skip every fexit program (`bpf_tramp_image_put`
/// in kernel/bpf/trampoline.c): that call is never counted. Seen on 6.1, where receives are
/// counted at `sock_recvmsg`'s exit: each attach by another tracer of the same process was one
/// read missing. So this process's tracers change their links only while no traced
/// experiment runs: a change holds this lock for writing, an experiment for reading.
static LINK_CHANGES: RwLock<()> = RwLock::new(());

/// Held by a traced experiment from its first byte to its last count: no tracer of this
/// process attaches or detaches a program meanwhile.
pub fn links_steady() -> RwLockReadGuard<'static, ()> {
    LINK_CHANGES.read().unwrap_or_else(|e| e.into_inner())
}

/// Held while programs are attached or detached (see [`LINK_CHANGES`]).
pub(super) fn changing_links() -> RwLockWriteGuard<'static, ()> {
    LINK_CHANGES.write().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Tracer {
    /// Detaches while no experiment of this process runs; the programs and maps go after.
    fn drop(&mut self) {
        let _changing = changing_links();
        // Nothing to report to: a link left is closed with the object right after.
        let _ = self.detach_links();
    }
}

impl Tracer {
    /// Drops every link (the on-demand hooks' included): from now until [`Tracer::attach`],
    /// no netcopy program runs on any hook.
    pub fn detach(&mut self) -> Result<()> {
        let _changing = changing_links();
        self.detach_links()
    }

    fn detach_links(&mut self) -> Result<()> {
        self.classify_udp(false)?;
        self.count_consumed(false)?;
        self.count_copied_at_transmit(false)?;
        while let Some((hook, att, link)) = self.links.pop() {
            attach::detach(&mut self.ebpf, hook, att, link)?;
        }
        self.deliveries.pause();
        Ok(())
    }

    /// Attaches every hook that was attached at load again, the way the gate chose for it (the
    /// on-demand hooks stay detached until asked for again, see `on_demand.rs`); nothing to do
    /// when they are attached.
    pub fn attach(&mut self) -> Result<()> {
        if !self.links.is_empty() {
            return Ok(());
        }
        let _changing = changing_links();
        self.deliveries.resume();
        for &(hook, att) in &self.chosen {
            if hook.on_demand {
                continue;
            }
            let link = attach::attach(&mut self.ebpf, hook, att)?;
            self.links.push((hook, att, link));
        }
        Ok(())
    }

    /// The kernel's ids of the programs the gate chose (the on-demand ones included).
    fn program_ids(&self) -> Vec<u32> {
        self.programs()
            .filter_map(|name| self.ebpf.program(name)?.info().ok())
            .map(|info| info.id())
            .collect()
    }

    /// How many of this tracer's programs the kernel has attached now: its programs that some
    /// BPF link in the kernel's link list (`BPF_LINK_GET_NEXT_ID`, then each link's info)
    /// points at. Programs are told apart by their kernel ids, so another process's netcopy
    /// counts nothing here. None when this process may not list links (`BPF_LINK_GET_NEXT_ID`
    /// needs CAP_SYS_ADMIN): the column is then empty, not 0.
    pub fn attached_in_kernel(&self) -> Result<Option<u32>> {
        let ours = self.program_ids();
        let mut attached: Vec<u32> = Vec::new();
        for link in loaded_links() {
            let info = match link {
                Ok(info) => info,
                // A link another process closed between listing and opening it (ENOENT), or
                // is attaching right now (EAGAIN: not yet given its id). Neither is ours: our
                // own attach and detach calls have returned before this listing.
                Err(LinkError::SyscallError(e))
                    if matches!(
                        e.io_error.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::WouldBlock
                    ) =>
                {
                    continue;
                }
                Err(LinkError::SyscallError(e))
                    if e.io_error.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    return Ok(None);
                }
                Err(LinkError::SyscallError(e)) => {
                    return Err(Error::io(
                        format!("listing the kernel's BPF links ({})", e.call),
                        e.io_error,
                    ));
                }
                Err(e) => {
                    return Err(Error::io(
                        "listing the kernel's BPF links",
                        std::io::Error::other(e),
                    ));
                }
            };
            let program = info.program_id();
            if ours.contains(&program) && !attached.contains(&program) {
                attached.push(program);
            }
        }
        Ok(Some(attached.len() as u32))
    }
}
