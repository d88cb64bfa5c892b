//! The command line's arguments and how they become a configuration (commands: `commands/`).

use std::{path::PathBuf, time::Duration};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::{Usage, parse::*};
use netcopy::{
    kernel::tracer,
    netpath::NetPath,
    placement::{self, Placement, Policy},
    sweep, units,
    workload::{self, Mode, Workload},
};

#[derive(Parser)]
#[command(
    name = "netcopy",
    version,
    about = "Shows, from inside the kernel, what Linux copies when a program sends data"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Resolve this kernel's struct offsets from BTF, load and attach every probe, report.
    Check,
    /// Run one experiment and print its figures.
    BenchOne(BenchOne),
    /// Run every send mode once and print, side by side, where the kernel copied the bytes.
    Compare(Compare),
    /// Run the grid (modes x sizes x threads x workloads, repeated) and write results.csv,
    /// results.json, plots and report.md into a new folder under --out.
    Sweep(Box<Sweep>),
    /// Run one experiment and draw its data path, stage by stage, with the bytes measured at
    /// each stage and a one-line verdict (and, with --svg, the same picture as an SVG file).
    Explain(Explain),
    /// Redraw the plots and report.md of a finished run from its results.csv.
    Report(Report),
    /// Run the receiving ends of experiments for a `sweep --connect` from this or another
    /// host, until Ctrl-C.
    Serve(Serve),
    /// Count the copies of traffic netcopy did not generate: sockets on --port, the
    /// sockets of --pid, or of a command started after `--`, until it ends or Ctrl-C.
    Trace(Trace),
}

#[derive(Args)]
pub(crate) struct Serve {
    /// Address to listen on (requests and data); loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) bind: std::net::IpAddr,
    /// Port for requests (data ports are picked per experiment).
    #[arg(long, default_value_t = netcopy::remote::DEFAULT_REQUEST_PORT)]
    pub(crate) port: u16,
    /// Run without eBPF; the server's kernel columns stay empty.
    #[arg(long)]
    pub(crate) no_trace: bool,
    /// A shared secret every request must carry (or set NETCOPY_TOKEN). Use it whenever the
    /// port is reachable from hosts you do not control.
    #[arg(long, value_parser = parse_token)]
    pub(crate) token: Option<String>,
    /// How long a client may stay silent (not sending, not reading, not connecting) before
    /// it is told so and dropped.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub(crate) idle_timeout: Duration,
    /// The most buffer memory one request may make serve allocate, e.g. 4G (default: half
    /// of MemAvailable when the request arrives).
    #[arg(long, value_parser = parse_max_memory)]
    pub(crate) max_memory: Option<u64>,
}

#[derive(Args)]
pub(crate) struct Trace {
    /// A port to trace (every socket using it, either end); repeatable.
    #[arg(long = "port", value_parser = parse_trace_port)]
    pub(crate) ports: Vec<u16>,
    /// A running process to trace: every socket it sends or receives on, from its next call.
    #[arg(long)]
    pub(crate) pid: Option<u32>,
    /// Stop after this long (otherwise when the command or process ends, or on Ctrl-C).
    #[arg(long, value_parser = parse_positive_duration)]
    pub(crate) duration: Option<Duration>,
    /// Also write trace.csv and trace.json into this folder.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// The command to start and trace until it exits.
    #[arg(last = true)]
    pub(crate) command: Vec<std::ffi::OsString>,
}

#[derive(Args)]
pub(crate) struct Report {
    /// The run's folder (results/latest, or results/<time>).
    pub(crate) dir: PathBuf,
}

#[derive(Args)]
pub(crate) struct Sweep {
    /// The preset that finishes within a minute (flags below still override it).
    #[arg(long)]
    pub(crate) quick: bool,
    /// Send modes, comma-separated (default a1,a2,a3,a4,a5).
    #[arg(long, value_delimiter = ',', value_parser = parse_mode)]
    pub(crate) modes: Vec<Mode>,
    /// Message sizes, comma-separated, with units: 256,1K,16KiB (default 256,1K,4K,16K,64K).
    #[arg(long, value_delimiter = ',', value_parser = parse_message_size)]
    pub(crate) sizes: Vec<usize>,
    /// Connection counts, comma-separated (default 1,2,4,8).
    #[arg(long, value_delimiter = ',', value_parser = parse_threads)]
    pub(crate) threads: Vec<usize>,
    /// Workloads, comma-separated: stream, rr (default both).
    #[arg(long, value_delimiter = ',', value_parser = parse_workload)]
    pub(crate) workload: Vec<Workload>,
    /// Measured window per experiment (default 200ms; 150ms with --quick).
    #[arg(long, value_parser = parse_positive_duration)]
    pub(crate) duration: Option<Duration>,
    /// Traffic before each window, every workload (default 150ms for stream and 25ms for rr;
    /// 100ms and 25ms with --quick).
    #[arg(long, value_parser = units::parse_duration)]
    pub(crate) warmup: Option<Duration>,
    /// Exactly this many timing repetitions of every point, whatever the interval (sets
    /// --min-reps and --max-reps).
    #[arg(long, value_parser = parse_reps, conflicts_with_all = ["min_reps", "max_reps"])]
    pub(crate) reps: Option<u32>,
    /// Timing repetitions every point gets (default 3).
    #[arg(long, value_parser = parse_reps)]
    pub(crate) min_reps: Option<u32>,
    /// Repetitions after which a point stops, converged or not (default 40; 8 with --quick).
    #[arg(long, value_parser = parse_reps)]
    pub(crate) max_reps: Option<u32>,
    /// Repeat a point until the 95 % confidence interval of its primary figure (stream
    /// throughput, rr median round trip) is within ± this many percent of its mean.
    #[arg(long, value_parser = parse_ci_target)]
    pub(crate) ci_target: Option<f64>,
    /// No repetition past --min-reps starts after this long (default 9m; 45s with --quick).
    #[arg(long, value_parser = parse_positive_duration)]
    pub(crate) budget: Option<Duration>,
    /// Trace every repetition, not only one per point (the speed figures then include the
    /// observer's cost, and the report says so).
    #[arg(long, conflicts_with = "no_trace")]
    pub(crate) trace_all: bool,
    #[command(flatten)]
    pub(crate) placement: PlacementArgs,
    /// rr: receivers spin on non-blocking reads instead of sleeping (no idle wake-ups).
    #[arg(long)]
    pub(crate) busy_poll: bool,
    /// stream: receivers map whole pages with TCP_ZEROCOPY_RECEIVE (rr points are left out).
    #[arg(long)]
    pub(crate) zerocopy_receive: bool,
    /// Network path: loopback, veth or ifb-sink.
    #[arg(long, value_parser = parse_path, default_value = "loopback")]
    pub(crate) path: NetPath,
    /// Run the servers in a `netcopy serve` at HOST[:PORT] (default port 7070), maybe remote.
    #[arg(long, value_parser = parse_server, conflicts_with = "path")]
    pub(crate) connect: Option<std::net::SocketAddr>,
    /// The `serve`'s shared secret, if it requires one (or set NETCOPY_TOKEN).
    #[arg(long, requires = "connect", value_parser = parse_token)]
    pub(crate) token: Option<String>,
    /// Folder that receives <timestamp>/ and the `latest` link.
    #[arg(long, default_value = "results")]
    pub(crate) out: PathBuf,
    /// Exit 0 even when kernel and userspace disagree (the rows still say so).
    #[arg(long)]
    pub(crate) keep_going: bool,
    /// Run without eBPF (no root needed); the kernel columns stay empty.
    #[arg(long)]
    pub(crate) no_trace: bool,
    /// Run the grid again and again for this long, printing RSS after each pass (xtask soak).
    #[arg(long, hide = true, value_parser = parse_positive_duration)]
    pub(crate) soak: Option<Duration>,
}

impl Sweep {
    pub(crate) fn grid(&self) -> Result<sweep::Grid> {
        let mut grid = if self.quick {
            sweep::Grid::quick()
        } else {
            sweep::Grid::default_run()
        };
        // A grid the user narrowed runs only what was asked: no zero-copy receive probes.
        let narrowed = [self.modes.len(), self.sizes.len(), self.threads.len()];
        grid.probe_zero_copy_receive &= narrowed == [0; 3] && self.workload.is_empty();
        if !self.modes.is_empty() {
            grid.modes = dedup(&self.modes);
        }
        if !self.sizes.is_empty() {
            grid.sizes = dedup(&self.sizes);
        }
        if !self.threads.is_empty() {
            grid.threads = dedup(&self.threads);
        }
        if !self.workload.is_empty() {
            grid.workloads = dedup(&self.workload);
        }
        grid.duration = self.duration.unwrap_or(grid.duration);
        if let Some(warmup) = self.warmup {
            // Asked for: every workload's.
            grid.warmup = warmup;
            grid.rr_warmup = None;
        }
        let c = &mut grid.confidence;
        c.min_reps = self.reps.or(self.min_reps).unwrap_or(c.min_reps);
        c.max_reps = self
            .reps
            .or(self.max_reps)
            .unwrap_or(c.max_reps.max(c.min_reps));
        if c.max_reps < c.min_reps {
            return Err(Usage(format!(
                "--max-reps {} is below --min-reps {}",
                c.max_reps, c.min_reps
            ))
            .into());
        }
        c.target_pct = self.ci_target.unwrap_or(c.target_pct);
        c.budget = self.budget.or(c.budget);
        grid.placement = self.placement.resolve()?;
        grid.busy_poll = self.busy_poll;
        grid.zerocopy_receive = self.zerocopy_receive;
        grid.tracing = if self.no_trace {
            sweep::Tracing::Never
        } else if self.trace_all {
            sweep::Tracing::Every
        } else {
            sweep::Tracing::Accounting
        };
        grid.net_path = if self.connect.is_some() {
            NetPath::Remote
        } else {
            self.path
        };
        Ok(grid)
    }
}

/// What every experiment-running command takes.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// Traffic pattern: stream or rr (request-response).
    #[arg(long, value_parser = parse_workload, default_value = "stream")]
    pub(crate) workload: Workload,
    /// Message size (bytes, or with a unit: 1K, 16KiB, 1M).
    #[arg(long, value_parser = parse_message_size, default_value = "16K")]
    pub(crate) size: usize,
    /// Connections, each with its own sender and receiver thread.
    #[arg(long, value_parser = parse_threads, default_value = "1")]
    pub(crate) threads: usize,
    /// Measured window (500ms, 2s, 1m).
    #[arg(long, value_parser = parse_positive_duration, default_value = "2s")]
    pub(crate) duration: Duration,
    /// Traffic before the measured window.
    #[arg(long, value_parser = units::parse_duration, default_value = "500ms")]
    pub(crate) warmup: Duration,
    /// Network path: loopback, veth (TCP into a second namespace) or ifb-sink (UDP out of
    /// a device that frees every packet, where zero-copy really avoids the copy).
    #[arg(long, value_parser = parse_path, default_value = "loopback")]
    pub(crate) path: NetPath,
    /// Run without eBPF (no root needed); kernel figures are left out.
    #[arg(long)]
    pub(crate) no_trace: bool,
    #[command(flatten)]
    pub(crate) placement: PlacementArgs,
    /// rr: receivers spin on non-blocking reads instead of sleeping (no idle wake-ups).
    #[arg(long)]
    pub(crate) busy_poll: bool,
    /// stream: receivers map whole pages with TCP_ZEROCOPY_RECEIVE instead of copying them.
    #[arg(long)]
    pub(crate) zerocopy_receive: bool,
}

/// Where worker threads run.
#[derive(Args, Clone)]
pub(crate) struct PlacementArgs {
    /// CPU placement of the worker threads: same (both ends of a connection on one CPU),
    /// split (clients on the first half of the CPUs, servers on the second), or none (the
    /// scheduler decides). --client-cpus and --server-cpus pin each side to explicit lists.
    #[arg(long, value_parser = parse_placement)]
    pub(crate) placement: Option<Policy>,
    /// CPUs for the client threads, e.g. 0 or 0,2-3 (connections wrap round-robin).
    #[arg(long, value_parser = parse_cpus)]
    pub(crate) client_cpus: Option<CpuList>,
    /// CPUs for the server threads.
    #[arg(long, value_parser = parse_cpus)]
    pub(crate) server_cpus: Option<CpuList>,
}

impl PlacementArgs {
    pub(crate) fn resolve(&self) -> Result<Placement> {
        let explicit = self.client_cpus.is_some() || self.server_cpus.is_some();
        let policy = match (self.placement, explicit) {
            (Some(p), true) if p != Policy::Cpus => {
                return Err(Usage(format!(
                    "--placement {p} cannot be combined with --client-cpus/--server-cpus"
                ))
                .into());
            }
            (_, true) => Policy::Cpus,
            (Some(p), false) => p,
            (None, false) => Policy::default(),
        };
        Placement::resolve(
            policy,
            &placement::allowed_cpus(),
            self.client_cpus.as_ref().map_or(&[][..], |c| &c.0),
            self.server_cpus.as_ref().map_or(&[][..], |c| &c.0),
        )
        .map_err(|e| Usage(e).into())
    }
}

impl RunArgs {
    pub(crate) fn config(&self, mode: Mode) -> Result<workload::Config> {
        let mut config = workload::Config::new(mode, self.workload, self.size, self.threads);
        config.duration = self.duration;
        config.warmup = self.warmup;
        config.net_path = self.path;
        config.placement = self.placement.resolve()?;
        config.busy_poll = self.busy_poll;
        config.zerocopy_receive = self.zerocopy_receive;
        Ok(config)
    }

    pub(crate) fn tracer(&self) -> Result<Option<tracer::Tracer>> {
        Ok(if self.no_trace {
            None
        } else {
            Some(tracer::Tracer::load()?)
        })
    }
}

#[derive(Args)]
pub(crate) struct BenchOne {
    /// Send mode: a1 (two-copy), a2 (one-copy), a3 (MSG_ZEROCOPY), a4 (io_uring SENDMSG_ZC).
    #[arg(long, value_parser = parse_mode, default_value = "a3")]
    pub(crate) mode: Mode,
    /// Server port (default: 8080 + mode number, a1 = 8080).
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Also print each eBPF program's runs and mean run time (kernel BPF statistics).
    #[arg(long)]
    pub(crate) program_stats: bool,
    /// Attach every program, each returning at once, and count nothing: the observer's floor.
    #[arg(long, conflicts_with = "no_trace")]
    pub(crate) empty_programs: bool,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Args)]
pub(crate) struct Explain {
    /// Also write the data path as an SVG picture to this file (report.html's drawing).
    #[arg(long, value_name = "PATH")]
    pub(crate) svg: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) one: BenchOne,
}

#[derive(Args)]
pub(crate) struct Compare {
    #[command(flatten)]
    pub(crate) run: RunArgs,
}
