//! What a network device is and which offloads it has, read from the kernel with the ethtool
//! ioctl (no ethtool binary needed), and the one offload netcopy changes: scatter-gather.
//! Every call acts in the calling thread's network namespace.

use std::{io, os::fd::AsRawFd as _};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

use crate::error::{Error, Result};

/// linux/sockios.h and linux/ethtool.h: the legacy one-value commands every kernel keeps.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_GSG: u32 = 0x18;
const ETHTOOL_SSG: u32 = 0x19;
const ETHTOOL_GTSO: u32 = 0x1e;

/// The sending device of a path, as its row records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    /// The kernel driver's name (`e1000`, `veth`); empty when the device names none (lo).
    pub driver: String,
    pub offloads: Offloads,
}

/// The offloads that decide whether a zero-copy send stays zero-copy down to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offloads {
    pub scatter_gather: bool,
    pub tx_checksum: bool,
    pub tso: bool,
}

impl Offloads {
    /// `sg on, tx-checksum on, tso on`: how rows and reports spell them.
    pub fn describe(&self) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        format!(
            "sg {}, tx-checksum {}, tso {}",
            on(self.scatter_gather),
            on(self.tx_checksum),
            on(self.tso)
        )
    }
}

/// struct ethtool_value.
#[repr(C)]
struct Value {
    cmd: u32,
    data: u32,
}

/// struct ethtool_drvinfo: only `driver` is read; the rest is the kernel's to fill.
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    rest: [u8; 4 * 32 + 12 + 5 * 4],
}

/// Issues one ethtool command on `name`; `data` is the command's struct, `cmd` first.
fn ethtool<T>(name: &str, data: &mut T) -> io::Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain data, all-zero valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "name too long"));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (data as *mut T).cast();
    // SAFETY: a live socket, a NUL-terminated name, and ifr_data pointing at a command struct
    // of the size the kernel reads and writes for that command.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn get_flag(name: &str, cmd: u32) -> io::Result<bool> {
    let mut v = Value { cmd, data: 0 };
    ethtool(name, &mut v)?;
    Ok(v.data != 0)
}

/// Reads `name`'s driver and offloads.
pub fn device(name: &str) -> Result<Device> {
    let fail = |what: &str, e: io::Error| Error::Netns(format!("reading {what} of {name}: {e}"));
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        rest: [0; 4 * 32 + 12 + 5 * 4],
    };
    // A device with no driver information (lo on some kernels) has no driver to name.
    let driver = match ethtool(name, &mut info) {
        Ok(()) => {
            let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
            String::from_utf8_lossy(&info.driver[..end]).into_owned()
        }
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => String::new(),
        Err(e) => return Err(fail("the driver", e)),
    };
    let offloads = Offloads {
        scatter_gather: get_flag(name, ETHTOOL_GSG).map_err(|e| fail("scatter-gather", e))?,
        tx_checksum: get_flag(name, ETHTOOL_GTXCSUM).map_err(|e| fail("tx checksum", e))?,
        tso: get_flag(name, ETHTOOL_GTSO).map_err(|e| fail("TSO", e))?,
    };
    Ok(Device {
        name: name.to_owned(),
        driver,
        offloads,
    })
}

/// Turns scatter-gather on or off on `name` (`ethtool -K NAME sg on|off`); the kernel also
/// drops what depends on it (TSO).
pub fn set_scatter_gather(name: &str, on: bool) -> Result<()> {
    let mut v = Value {
        cmd: ETHTOOL_SSG,
        data: u32::from(on),
    };
    ethtool(name, &mut v).map_err(|e| {
        Error::Netns(format!(
            "setting scatter-gather {} on {name}: {e}",
            if on { "on" } else { "off" }
        ))
    })
}
