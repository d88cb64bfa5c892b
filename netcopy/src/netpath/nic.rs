//! The NIC paths: TCP through a real NIC driver, between two NICs joined back to back (as
//! `cargo xtask vm --nic-pair` gives a guest). Each NIC is moved into one of netcopy's private
//! namespaces, addressed from 192.0.2.0/24 (TEST-NET-1) there, and moved back when the path is
//! dropped: the machine's own namespace never sees an address or a packet of it.

use std::{
    net::Ipv4Addr,
    os::fd::{AsFd as _, OwnedFd},
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    device as nic,
    error::{Error, Result},
    netns,
};

/// The pair's interface names, sender first, separated by a space or a comma.
pub const NICS_ENV: &str = "NETCOPY_NICS";

const CLIENT_ADDR: &str = "192.0.2.1/24";
pub const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// How long a NIC may take to report its link up (e1000's watchdog, under an emulated CPU).
const LINK_WAIT: Duration = Duration::from_secs(20);

/// The two NICs while netcopy holds them.
pub struct Pair {
    pub client: String,
    pub server: String,
    /// Set when netcopy turned scatter-gather off on the client NIC: turned back on at drop.
    pub sg_turned_off: bool,
    /// Which NICs sit in netcopy's namespaces (and must go back).
    pub moved: [bool; 2],
}

/// The pair named in [`NICS_ENV`], checked unused: down and without an address.
pub fn names() -> Result<(String, String)> {
    let missing = || {
        Error::Netns(format!(
            "the nic paths need two NICs joined back to back, named in {NICS_ENV} (sender \
             first), as `cargo xtask vm --nic-pair` gives a guest"
        ))
    };
    let value = std::env::var(NICS_ENV).map_err(|_| missing())?;
    let names: Vec<&str> = value.split([' ', ',']).filter(|s| !s.is_empty()).collect();
    let [client, server] = names[..] else {
        return Err(missing());
    };
    for name in [client, server] {
        check_unused(name)?;
    }
    Ok((client.to_owned(), server.to_owned()))
}

/// Refuses a NIC that is up or addressed: netcopy takes it away for the run, and must never
/// take a NIC something else uses.
fn check_unused(name: &str) -> Result<()> {
    if netns::link_flags(name)? & libc::IFF_UP as libc::c_short != 0 {
        return Err(Error::Netns(format!(
            "{name} is up: the nic paths take only NICs nothing uses (down, no address)"
        )));
    }
    let out = Command::new("ip")
        .args(["-o", "addr", "show", "dev", name])
        .output()
        .map_err(|e| Error::Netns(format!("running ip addr show dev {name}: {e}")))?;
    if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
        return Err(Error::Netns(format!(
            "{name} has an address: the nic paths take only NICs nothing uses"
        )));
    }
    Ok(())
}

/// Moves `name` from the calling thread's namespace into `to`'s.
pub fn move_to(name: &str, to: &OwnedFd) -> Result<()> {
    netns::ip(&["link", "set", name, "netns", &netns::proc_path(to.as_fd())])
}

/// Addresses the client NIC (in the calling thread's namespace), with scatter-gather off if
/// asked, and brings it up.
pub fn configure_client(pair: &mut Pair, sg_off: bool) -> Result<()> {
    netns::ip(&["addr", "add", CLIENT_ADDR, "dev", &pair.client])?;
    if sg_off {
        nic::set_scatter_gather(&pair.client, false)?;
        pair.sg_turned_off = true;
    }
    netns::set_link_up(&pair.client)
}

/// Addresses the server NIC (in the calling thread's namespace) and brings it up.
pub fn configure_server(pair: &Pair) -> Result<()> {
    let addr = format!("{SERVER}/24");
    netns::ip(&["addr", "add", &addr, "dev", &pair.server])?;
    netns::set_link_up(&pair.server)
}

/// Waits until `name` (in the calling thread's namespace) has its link up.
pub fn wait_running(name: &str) -> Result<()> {
    let start = Instant::now();
    while netns::link_flags(name)? & libc::IFF_RUNNING as libc::c_short == 0 {
        if start.elapsed() > LINK_WAIT {
            return Err(Error::Netns(format!(
                "{name} has no link after {} s: are the two NICs joined?",
                LINK_WAIT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
