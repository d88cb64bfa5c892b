//! Network setup: private network namespaces, interfaces brought up, a namespace's sysctls.
//! Experiments that change kernel settings (optmem_max) or build devices run inside their own
//! namespace, so the machine's own network is never touched.

use std::{
    fs::File,
    io,
    os::fd::{AsRawFd as _, BorrowedFd, OwnedFd},
    path::Path,
    process::Command,
};

use nix::{
    sched::{CloneFlags, setns, unshare},
    sys::socket::{AddressFamily, SockFlag, SockType, socket},
};

use crate::error::{Error, Result};

/// A handle on the calling thread's current network namespace; it keeps the namespace alive.
pub fn current() -> Result<OwnedFd> {
    File::open("/proc/thread-self/ns/net")
        .map(OwnedFd::from)
        .map_err(|e| Error::Netns(format!("opening /proc/thread-self/ns/net: {e}")))
}

/// Moves the calling thread into the namespace behind `ns`.
pub fn enter(ns: BorrowedFd<'_>) -> Result<()> {
    setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| Error::Netns(format!("setns: {e}")))
}

/// A path that names `ns` for another process (iproute2's `netns` argument).
pub fn proc_path(ns: BorrowedFd<'_>) -> String {
    format!("/proc/{}/fd/{}", std::process::id(), ns.as_raw_fd())
}

/// Runs iproute2's `ip` with `args` in the calling thread's namespace (a child inherits the
/// namespace of the thread that starts it).
pub fn ip(args: &[&str]) -> Result<()> {
    let output = Command::new("ip").args(args).output().map_err(|e| {
        Error::Netns(format!(
            "running ip {}: {e} (control paths need iproute2)",
            args.join(" ")
        ))
    })?;
    if !output.status.success() {
        return Err(Error::Netns(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// Moves the calling thread (not the process) into a fresh network namespace and brings its
/// loopback up. Threads it spawns afterwards inherit the namespace; the namespace goes away
/// with the last thread and socket in it.
pub fn enter_private() -> Result<()> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
        Error::Netns(format!(
            "unshare(CLONE_NEWNET): {e} (needs root and network-namespace support)"
        ))
    })?;
    set_link_up("lo")
}

/// Sets interface `name` up in the calling thread's namespace.
pub fn set_link_up(name: &str) -> Result<()> {
    let (socket, mut req) = flags_request(name)?;
    // SAFETY: flags_request filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: a live socket and an ifreq whose name fits and stays NUL-terminated; the
    // kernel only reads req.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(Error::Netns(format!(
            "setting up {name}: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Interface `name`'s flags (IFF_UP, IFF_RUNNING...) in the calling thread's namespace.
pub fn link_flags(name: &str) -> Result<libc::c_short> {
    let (_socket, req) = flags_request(name)?;
    // SAFETY: flags_request filled the flags member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_flags })
}

/// A socket for the interface ioctls and an ifreq holding `name`'s flags.
fn flags_request(name: &str) -> Result<(OwnedFd, libc::ifreq)> {
    // A plain datagram socket, only for the interface ioctls; closed when dropped.
    let socket = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::Netns(format!("socket for {name}: {e}")))?;
    // SAFETY: ifreq is plain data, all-zero valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(Error::Netns(format!("interface name '{name}' is too long")));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // nix wraps no interface-flag ioctl. SAFETY: a live socket and an ifreq whose name fits
    // and stays NUL-terminated (checked above); the kernel writes only ifr_ifru.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(Error::Netns(format!(
            "reading flags of {name}: {}",
            io::Error::last_os_error()
        )));
    }
    Ok((socket, req))
}

/// Writes a sysctl of the calling thread's network namespace, e.g. `net/core/optmem_max`.
pub fn set_net_sysctl(name: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(name);
    std::fs::write(&path, value)
        .map_err(|e| Error::Netns(format!("writing {value} to {}: {e}", path.display())))
}
