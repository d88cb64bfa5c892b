//! Where the bytes travel: loopback, as the course measured it, and two control paths that
//! netcopy builds in private network namespaces of its own, so that the same instruments can
//! be seen reporting both outcomes of a zero-copy send.
//!
//! | path       | transport | receiver                                | zero-copy outcome        |
//! |------------|-----------|-----------------------------------------|--------------------------|
//! | `loopback` | TCP       | 127.0.0.1 in the machine's namespace    | copied at delivery       |
//! | `veth`     | TCP       | a second namespace across a veth pair   | copied at delivery       |
//! | `ifb-sink` | UDP       | none: an ifb device frees what it is sent | pages really not copied |
//! | `nic`      | TCP       | a second namespace across two NICs joined back to back | pages really not copied |
//! | `nic-no-sg`| TCP       | the same, scatter-gather off on the sending NIC | copied at transmit |

mod nic;

use std::{
    marker::PhantomData,
    net::{IpAddr, Ipv4Addr},
    os::fd::{AsFd as _, OwnedFd},
};

use crate::{
    device::{self, Device},
    error::{Error, Result},
    netns,
};

pub use nic::NICS_ENV;

/// Which network path an experiment's bytes take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum NetPath {
    #[default]
    Loopback,
    Veth,
    IfbSink,
    /// TCP through a NIC driver: two NICs joined back to back ([`NICS_ENV`]).
    Nic,
    /// [`NetPath::Nic`] with scatter-gather off on the sending NIC.
    NicNoSg,
    /// TCP to a `netcopy serve` process, possibly on another host (`sweep --connect`).
    Remote,
}

/// Largest UDP payload in one IPv4 datagram: 65535 - 20 (IP) - 8 (UDP).
pub const MAX_DATAGRAM: usize = 65_507;

/// Client and server addresses of the veth pair, and the sink's, inside netcopy's namespaces.
const VETH_CLIENT: &str = "10.203.0.1/24";
const VETH_SERVER: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 2);
const SINK_LOCAL: &str = "10.203.1.1/24";
const SINK_PEER: Ipv4Addr = Ipv4Addr::new(10, 203, 1, 2);

impl NetPath {
    pub const ALL: [NetPath; 5] = [
        NetPath::Loopback,
        NetPath::Veth,
        NetPath::IfbSink,
        NetPath::Nic,
        NetPath::NicNoSg,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NetPath::Loopback => "loopback",
            NetPath::Veth => "veth",
            NetPath::IfbSink => "ifb-sink",
            NetPath::Nic => "nic",
            NetPath::NicNoSg => "nic-no-sg",
            NetPath::Remote => "remote",
        }
    }

    /// What the path is, in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            NetPath::Loopback => "TCP over lo to 127.0.0.1",
            NetPath::Veth => "TCP over a veth pair into a second network namespace",
            NetPath::IfbSink => "UDP out of an ifb device that frees every packet (no receiver)",
            NetPath::Nic => "TCP through a NIC driver into a second namespace (two NICs joined)",
            NetPath::NicNoSg => {
                "TCP through a NIC driver, scatter-gather off on the sending NIC (two NICs joined)"
            }
            NetPath::Remote => "TCP to a netcopy serve process (sweep --connect)",
        }
    }

    /// Whether the path carries datagrams to a sink instead of TCP to a receiver.
    pub fn is_sink(self) -> bool {
        self == NetPath::IfbSink
    }

    /// Whether its TCP leaves through a device driver, which may copy at transmit (loopback's
    /// takes fragments as they are; the sink carries UDP).
    pub fn through_device(self) -> bool {
        matches!(
            self,
            NetPath::Veth | NetPath::Nic | NetPath::NicNoSg | NetPath::Remote
        )
    }

    /// The fallback the kernel is known to take on this path for zero-copy sends, in %.
    /// None where it depends on the hardware between the hosts.
    pub fn expected_fallback_pct(self) -> Option<f64> {
        match self {
            NetPath::Loopback | NetPath::Veth => Some(100.0),
            NetPath::IfbSink | NetPath::Nic => Some(0.0),
            NetPath::NicNoSg | NetPath::Remote => None,
        }
    }
}

named_choice!(
    NetPath,
    "path",
    "loopback, veth, ifb-sink, nic or nic-no-sg"
);

/// A network path, built. For the control paths the calling thread has moved into netcopy's
/// client namespace (sockets take the namespace of the thread that creates them, and threads
/// inherit it); dropping the `Network` moves it back. The namespaces, and the devices in them,
/// vanish with their last handle and socket, so nothing outlives the process.
pub struct Network {
    path: NetPath,
    namespaces: Option<Namespaces>,
    /// The NICs the nic paths hold in their namespaces.
    nics: Option<nic::Pair>,
    /// Namespace membership is per thread: the value must be dropped where it was made.
    _same_thread: PhantomData<*const ()>,
}

struct Namespaces {
    original: OwnedFd,
    /// The receiving end's namespace (veth only).
    server: Option<OwnedFd>,
}

impl Network {
    /// The machine's own loopback; nothing is built.
    pub fn loopback() -> Self {
        Self {
            path: NetPath::Loopback,
            namespaces: None,
            nics: None,
            _same_thread: PhantomData,
        }
    }

    /// Builds `path`: loopback needs nothing; veth and ifb-sink need root and iproute2.
    pub fn create(path: NetPath) -> Result<Self> {
        if path == NetPath::Loopback {
            return Ok(Self::loopback());
        }
        let original = netns::current()?;
        let mut network = Self {
            path,
            namespaces: Some(Namespaces {
                original,
                server: None,
            }),
            nics: None,
            _same_thread: PhantomData,
        };
        if matches!(path, NetPath::Nic | NetPath::NicNoSg) {
            network.build_nics(path == NetPath::NicNoSg)?;
            return Ok(network);
        }
        // From here on, an error drops `network`, which moves the thread back.
        let server = if path == NetPath::Veth {
            netns::enter_private()?;
            Some(netns::current()?)
        } else {
            None
        };
        netns::enter_private()?;
        match &server {
            Some(server) => build_veth(server)?,
            None => build_sink()?,
        }
        if let Some(ns) = network.namespaces.as_mut() {
            ns.server = server;
        }
        Ok(network)
    }

    pub fn path(&self) -> NetPath {
        self.path
    }

    /// The address the receiving end listens on (or the sink's), given the address asked
    /// for on loopback.
    pub fn server_addr(&self, loopback: IpAddr) -> IpAddr {
        match self.path {
            NetPath::Loopback | NetPath::Remote => loopback,
            NetPath::Veth => IpAddr::V4(VETH_SERVER),
            NetPath::IfbSink => IpAddr::V4(SINK_PEER),
            NetPath::Nic | NetPath::NicNoSg => IpAddr::V4(nic::SERVER),
        }
    }

    /// The device the path sends through, with its driver and offloads as the kernel reports
    /// them now; None for a remote server, or when the kernel will not say.
    pub fn device(&self) -> Option<Device> {
        let name = match self.path {
            NetPath::Loopback => "lo",
            NetPath::Veth => "nc-client",
            NetPath::IfbSink => "nc-sink",
            NetPath::Nic | NetPath::NicNoSg => &self.nics.as_ref()?.client,
            NetPath::Remote => return None,
        };
        device::device(name).ok()
    }

    /// Takes the two NICs into two fresh namespaces, client's and server's, and addresses
    /// them; the calling thread ends in the client's.
    fn build_nics(&mut self, sg_off: bool) -> Result<()> {
        let (client_nic, server_nic) = nic::names()?;
        let ns = self.namespaces.as_mut().expect("built with namespaces");
        netns::enter_private()?;
        let server = netns::current()?;
        netns::enter(ns.original.as_fd())?;
        netns::enter_private()?;
        let client = netns::current()?;
        netns::enter(ns.original.as_fd())?;
        ns.server = Some(server);
        let pair = self.nics.insert(nic::Pair {
            client: client_nic,
            server: server_nic,
            sg_turned_off: false,
            moved: [false; 2],
        });
        let server = ns.server.as_ref().expect("set above");
        nic::move_to(&pair.client, &client)?;
        pair.moved[0] = true;
        nic::move_to(&pair.server, server)?;
        pair.moved[1] = true;
        netns::enter(server.as_fd())?;
        let served = nic::configure_server(pair);
        netns::enter(client.as_fd())?;
        served?;
        nic::configure_client(pair, sg_off)?;
        nic::wait_running(&pair.client)?;
        netns::enter(server.as_fd())?;
        let linked = nic::wait_running(&pair.server);
        netns::enter(client.as_fd())?;
        linked
    }

    /// Gives the NICs back to the namespace they came from, as they were. The thread is in
    /// the client's namespace.
    fn return_nics(&mut self) {
        let (Some(pair), Some(ns)) = (self.nics.take(), self.namespaces.as_ref()) else {
            return;
        };
        // Nothing sensible is left to do if these fail: the namespaces' end returns the NICs.
        if pair.sg_turned_off {
            let _ = device::set_scatter_gather(&pair.client, true);
        }
        if pair.moved[0] {
            let _ = nic::move_to(&pair.client, &ns.original);
        }
        if let (true, Some(server)) = (pair.moved[1], ns.server.as_ref())
            && netns::enter(server.as_fd()).is_ok()
        {
            let _ = nic::move_to(&pair.server, &ns.original);
        }
    }

    /// Runs `f` with the calling thread in the receiving end's namespace, then moves it back.
    pub fn in_server_namespace<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let Some(server) = self.namespaces.as_ref().and_then(|n| n.server.as_ref()) else {
            return Ok(f());
        };
        let client = netns::current()?;
        netns::enter(server.as_fd())?;
        let out = f();
        netns::enter(client.as_fd())?;
        Ok(out)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.return_nics();
        if let Some(ns) = &self.namespaces {
            // Nothing sensible is left to do if this fails; the thread stays where it is.
            let _ = netns::enter(ns.original.as_fd());
        }
    }
}

/// A veth pair from the calling thread's namespace (client) into `server`'s, addressed.
fn build_veth(server: &OwnedFd) -> Result<()> {
    let server_path = netns::proc_path(server.as_fd());
    netns::ip(&[
        "link",
        "add",
        "nc-client",
        "type",
        "veth",
        "peer",
        "name",
        "nc-server",
        "netns",
        &server_path,
    ])?;
    netns::ip(&["addr", "add", VETH_CLIENT, "dev", "nc-client"])?;
    netns::set_link_up("nc-client")?;
    let client = netns::current()?;
    netns::enter(server.as_fd())?;
    let server_addr = format!("{VETH_SERVER}/24");
    let built = netns::ip(&["addr", "add", &server_addr, "dev", "nc-server"])
        .and_then(|()| netns::set_link_up("nc-server"));
    netns::enter(client.as_fd())?;
    built
}

/// An ifb device that frees every packet it is sent, with the largest MTU, so a datagram of
/// up to [`MAX_DATAGRAM`] bytes leaves whole (a fragmented one is copied at send time).
fn build_sink() -> Result<()> {
    netns::ip(&["link", "add", "nc-sink", "type", "ifb"])
        .map_err(|e| Error::Netns(format!("{e} (the ifb-sink path needs the ifb module)")))?;
    netns::ip(&["link", "set", "nc-sink", "mtu", "65535"])?;
    netns::ip(&["addr", "add", SINK_LOCAL, "dev", "nc-sink"])?;
    netns::set_link_up("nc-sink")
}
