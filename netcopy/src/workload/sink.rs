//! Sink: every connection sends datagrams as fast as it can to an address where nothing
//! listens; the device frees them. Only the sending side is measured, which is the point: it is
//! where a zero-copy send can keep its promise on one machine.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::AsFd as _,
};

use super::{Config, Figures, ObserverClock, PhaseClock, coordinate, crew::Crew, stream};
use crate::error::{Error, Result};

pub fn run(config: &Config, sink: SocketAddr, observer: ObserverClock<'_>) -> Result<Figures> {
    let clock = PhaseClock::new(config.threads);
    let any = match sink.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let mut senders = Crew::new(&clock);
    for i in 0..config.threads {
        // Connected, so the kernel sees the sink's port on the socket and the tracer can
        // attribute its datagrams.
        let socket = UdpSocket::bind((any, 0))
            .and_then(|s| s.connect(sink).map(|()| s))
            .map_err(|e| Error::io(format!("opening a UDP socket to {sink}"), e))?;
        let sender = config.mode.open(socket.as_fd(), config.size)?;
        senders.push(stream::spawn_sender(
            i,
            config,
            &clock,
            sender,
            move || {
                drop(socket);
                Ok(())
            },
        )?);
    }
    let mut figures = coordinate(config, &clock, config.threads, &[], observer);
    stream::collect_senders(config, &mut figures, senders.into_handles())?;
    Ok(figures)
}
