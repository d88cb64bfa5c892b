//! The one error type at the library's edge. The CLI wraps it in anyhow and prints one line.

use std::path::PathBuf;

/// Everything netcopy's library can fail with, each naming what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot read BTF at {path}: {source} (netcopy needs a kernel built with \
         CONFIG_DEBUG_INFO_BTF; NETCOPY_BTF names another file)"
    )]
    BtfRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("BTF at {path} is malformed: {what}")]
    BtfMalformed { path: PathBuf, what: String },
    #[error("this kernel's BTF has no {what}")]
    BtfMissing { what: String },
    #[error(
        "netcopy's eBPF object has no program {program} of the expected type (a build problem)"
    )]
    ProgramMissing { program: &'static str },
    #[error(
        "tracing needs root, or CAP_BPF and CAP_PERFMON (plus CAP_SYSLOG for the deferred \
         copy's pages); run with them, or pass --no-trace to run without the kernel columns"
    )]
    NotPermitted,
    #[error("no probe attaches on this kernel; the first: {why}")]
    NoHookAttached { why: String },
    #[error("cannot load netcopy's eBPF programs: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("cannot load {program} for {hook}: {source} (needs {requirement})")]
    ProgramLoad {
        program: &'static str,
        hook: &'static str,
        requirement: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("cannot attach {program} to {hook}: {source} (needs {requirement})")]
    Attach {
        program: &'static str,
        hook: &'static str,
        requirement: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source} (is another server using the port? pass --port)")]
    Port {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mode {mode} is unavailable on this machine: {reason}")]
    Unavailable { mode: &'static str, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("interrupted")]
    Interrupted,
    #[error("network namespace: {0}")]
    Netns(String),
    #[error("{what}: {source}")]
    Csv {
        what: String,
        #[source]
        source: csv::Error,
    },
    #[error("{what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// plotters' errors are generic over the drawing backend; their text is what is left.
    #[error("drawing plot {plot}: {what}")]
    Plot { plot: String, what: String },
    /// A report template that would not render (a bug: the templates are compiled in).
    #[error("rendering {template}: {what}")]
    Template {
        template: &'static str,
        what: String,
    },
    /// The other end of a request connection said no, or said something out of turn.
    #[error("the server {0}")]
    Peer(String),
    /// An untraced run found some of netcopy's programs attached: its speed figures carry the
    /// observer, so they are not written.
    #[error(
        "{programs} of netcopy's eBPF programs were attached during an untraced run (read from the kernel's link list): its speed figures are withheld"
    )]
    StillAttached { programs: u32 },
    #[error("eBPF map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },
}

impl Error {
    /// An I/O failure, with what netcopy was doing.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
