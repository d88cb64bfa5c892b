//! Parsers for the command line's values: each turns one argument into its type, or into the
//! one line clap shows for it.

use std::time::Duration;

use netcopy::{
    netpath::NetPath,
    placement::{self, Policy},
    units,
    workload::{Mode, Workload, message},
};

/// One `--client-cpus`/`--server-cpus` value: a whole list (a newtype, so clap takes the
/// list as one value rather than as many).
#[derive(Clone, Debug)]
pub(crate) struct CpuList(pub(crate) Vec<usize>);

pub(crate) fn parse_cpus(s: &str) -> Result<CpuList, String> {
    placement::parse_cpu_list(s).map(CpuList)
}

/// Most connections an experiment may open: each costs two threads.
const MAX_THREADS: usize = 1024;

pub(crate) fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse()
}

pub(crate) fn parse_workload(s: &str) -> Result<Workload, String> {
    s.parse()
}

pub(crate) fn parse_path(s: &str) -> Result<NetPath, String> {
    s.parse()
}

pub(crate) fn parse_placement(s: &str) -> Result<Policy, String> {
    match s.parse()? {
        Policy::Cpus => {
            Err("placement cpus is set by giving --client-cpus and --server-cpus".into())
        }
        p => Ok(p),
    }
}

pub(crate) fn parse_message_size(s: &str) -> Result<usize, String> {
    let size = units::parse_size(s)?;
    if size < message::MIN_SIZE {
        return Err(format!(
            "size '{s}' is below {} bytes (one byte per field)",
            message::MIN_SIZE
        ));
    }
    if size > message::MAX_SIZE {
        return Err(format!(
            "size '{s}' is above the largest supported message, {}",
            units::format_size(message::MAX_SIZE)
        ));
    }
    Ok(size)
}

pub(crate) fn parse_server(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    let with_port = if s.parse::<std::net::IpAddr>().is_ok() || !s.contains(':') {
        format!("{s}:{}", netcopy::remote::DEFAULT_REQUEST_PORT)
    } else {
        s.to_owned()
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("cannot resolve server '{s}' (expected HOST or HOST:PORT)"))
}

pub(crate) fn parse_trace_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port '{s}' (expected 1 to 65535)")),
    }
}

pub(crate) fn parse_reps(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid repetition count '{s}' (expected 1 to 100)"
        )),
    }
}

pub(crate) fn parse_ci_target(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches('%').trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 100.0 => Ok(v),
        _ => Err(format!(
            "invalid confidence target '{s}' (expected a percentage above 0, e.g. 2.5)"
        )),
    }
}

pub(crate) fn parse_threads(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid thread count '{s}' (expected 1 to {MAX_THREADS})"
        )),
    }
}

pub(crate) fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match units::parse_duration(s)? {
        d if d.is_zero() => Err(format!("duration '{s}' must be above zero")),
        d => Ok(d),
    }
}

/// A shared secret: anything but empty, which would protect nothing.
pub(crate) fn parse_token(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("an empty token protects nothing: give a secret, or no --token".into());
    }
    Ok(s.to_owned())
}

/// `--token`, else NETCOPY_TOKEN; an empty one is refused, as `--token ""` is.
pub(crate) fn token_or_env(token: Option<String>) -> Result<Option<String>, crate::Usage> {
    match token.or_else(|| std::env::var("NETCOPY_TOKEN").ok()) {
        Some(t) if t.is_empty() => Err(crate::Usage(
            "NETCOPY_TOKEN is empty: an empty token protects nothing (give a secret, or unset it)"
                .to_owned(),
        )),
        t => Ok(t),
    }
}

/// `serve --max-memory`: a size above zero.
pub(crate) fn parse_max_memory(s: &str) -> Result<u64, String> {
    match units::parse_size(s)? {
        0 => Err(format!("--max-memory '{s}' must be above zero")),
        n => Ok(n as u64),
    }
}

/// The values in first-seen order, each once.
pub(crate) fn dedup<T: PartialEq + Copy>(values: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(v) {
            out.push(*v);
        }
    }
    out
}
