//! Private network namespaces: experiments that change kernel settings (optmem_max) or build
//! devices run inside one, so the machine's own network is never touched.

use std::{
    fs::File,
    io,
    os::fd::{AsRawFd as _, BorrowedFd, OwnedFd},
    path::Path,
    process::Command,
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
    // SAFETY: setns only changes this thread's namespace; the fd is a live namespace handle.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(Error::Netns(format!(
            "setns: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(())
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
    // SAFETY: unshare only changes this thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(Error::Netns(format!(
            "unshare(CLONE_NEWNET): {} (needs root and network-namespace support)",
            io::Error::last_os_error()
        )));
    }
    set_link_up("lo")
}

/// Sets interface `name` up in the calling thread's namespace.
pub fn set_link_up(name: &str) -> Result<()> {
    let fail = |what: &str| Error::Netns(format!("{what} {name}: {}", io::Error::last_os_error()));
    // SAFETY: a plain datagram socket used only for interface ioctls, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(fail("socket for"));
    }
    // SAFETY: ifreq is plain data; the name fits (checked) and stays NUL-terminated.
    let result = unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        if name.len() >= req.ifr_name.len() {
            libc::close(fd);
            return Err(Error::Netns(format!("interface name '{name}' is too long")));
        }
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) != 0 {
            Err(fail("reading flags of"))
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) != 0 {
                Err(fail("setting up"))
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    result
}

/// Writes a sysctl of the calling thread's network namespace, e.g. `net/core/optmem_max`.
pub fn set_net_sysctl(name: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(name);
    std::fs::write(&path, value)
        .map_err(|e| Error::Netns(format!("writing {value} to {}: {e}", path.display())))
}
