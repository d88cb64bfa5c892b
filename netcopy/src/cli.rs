//! Arguments and commands. Errors reach the user as one line on stderr: bad input exits 2,
//! a failed run exits 1.

use std::{io::Write as _, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use netcopy::{
    experiment, interrupt,
    kernel::{self, btf::Btf, tracer},
    netpath::{NetPath, Network},
    output,
    placement::{self, Placement, Policy},
    row::Row,
    sweep, units,
    workload::{self, Figures, Mode, Workload, message},
};

#[derive(Parser)]
#[command(
    name = "netcopy",
    version,
    about = "Shows, from inside the kernel, what Linux copies when a program sends data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Resolve this kernel's struct offsets from BTF, load and attach every probe, report.
    Check,
    /// Run one experiment and print its figures.
    BenchOne(BenchOne),
    /// Run every send path once and print, side by side, where the kernel copied the bytes.
    Compare(Compare),
    /// Run the grid (modes x sizes x threads x workloads, repeated) and write results.csv,
    /// results.json, plots and report.md into a new folder under --out.
    Sweep(Box<Sweep>),
    /// Run one experiment and draw its data path, stage by stage, with the bytes measured at
    /// each stage and a one-line verdict.
    Explain(BenchOne),
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
struct Serve {
    /// Address to listen on (control and data); loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Control port.
    #[arg(long, default_value_t = netcopy::remote::DEFAULT_CONTROL_PORT)]
    port: u16,
    /// Run without eBPF; the server's kernel columns stay empty.
    #[arg(long)]
    no_trace: bool,
    /// A shared secret every request must carry (or set NETCOPY_TOKEN). Use it whenever the
    /// port is reachable from hosts you do not control.
    #[arg(long)]
    token: Option<String>,
    /// How long a client may stay silent before it is told so and dropped.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    idle_timeout: Duration,
}

#[derive(Args)]
struct Trace {
    /// A port to trace (every socket using it, either end); repeatable.
    #[arg(long = "port", value_parser = parse_trace_port)]
    ports: Vec<u16>,
    /// A running process to trace: every socket it sends or receives on, from its next call.
    #[arg(long)]
    pid: Option<u32>,
    /// Stop after this long (otherwise when the command or process ends, or on Ctrl-C).
    #[arg(long, value_parser = parse_positive_duration)]
    duration: Option<Duration>,
    /// Also write trace.csv and trace.json into this folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The command to start and trace until it exits.
    #[arg(last = true)]
    command: Vec<std::ffi::OsString>,
}

#[derive(Args)]
struct Report {
    /// The run's folder (results/latest, or results/<time>).
    dir: PathBuf,
}

#[derive(Args)]
struct Sweep {
    /// The preset that finishes within a minute (flags below still override it).
    #[arg(long)]
    quick: bool,
    /// Send paths, comma-separated (default a1,a2,a3,a4).
    #[arg(long, value_delimiter = ',', value_parser = parse_mode)]
    modes: Vec<Mode>,
    /// Message sizes, comma-separated, with units: 256,1K,16KiB (default 256,1K,4K,16K,64K).
    #[arg(long, value_delimiter = ',', value_parser = parse_message_size)]
    sizes: Vec<usize>,
    /// Connection counts, comma-separated (default 1,2,4,8).
    #[arg(long, value_delimiter = ',', value_parser = parse_threads)]
    threads: Vec<usize>,
    /// Workloads, comma-separated: stream, rr (default both).
    #[arg(long, value_delimiter = ',', value_parser = parse_workload)]
    workload: Vec<Workload>,
    /// Measured window per experiment (default 200ms; 150ms with --quick).
    #[arg(long, value_parser = parse_positive_duration)]
    duration: Option<Duration>,
    /// Traffic before each window (default 150ms; 100ms with --quick).
    #[arg(long, value_parser = units::parse_duration)]
    warmup: Option<Duration>,
    /// Exactly this many timing repetitions of every point, whatever the interval (sets
    /// --min-reps and --max-reps).
    #[arg(long, value_parser = parse_reps, conflicts_with_all = ["min_reps", "max_reps"])]
    reps: Option<u32>,
    /// Timing repetitions every point gets (default 3).
    #[arg(long, value_parser = parse_reps)]
    min_reps: Option<u32>,
    /// Timing repetitions after which a point stops, converged or not (default 24; 8 with
    /// --quick).
    #[arg(long, value_parser = parse_reps)]
    max_reps: Option<u32>,
    /// Repeat a point until the 95 % confidence interval of its primary figure (stream
    /// throughput, rr median round trip) is within ± this many percent of its mean.
    #[arg(long, value_parser = parse_ci_target)]
    ci_target: Option<f64>,
    /// No repetition beyond --min-reps starts once the sweep has run this long (default 8m;
    /// 45s with --quick).
    #[arg(long, value_parser = parse_positive_duration)]
    budget: Option<Duration>,
    /// Trace every repetition, not only one per point (the speed figures then include the
    /// observer's cost, and the report says so).
    #[arg(long, conflicts_with = "no_trace")]
    trace_all: bool,
    #[command(flatten)]
    placement: PlacementArgs,
    /// rr: receivers spin on non-blocking reads instead of sleeping (no idle wake-ups).
    #[arg(long)]
    busy_poll: bool,
    /// Network path: loopback, veth or ifb-sink.
    #[arg(long, value_parser = parse_path, default_value = "loopback")]
    path: NetPath,
    /// Run the servers in a `netcopy serve` at HOST[:PORT] (default port 7070), possibly on
    /// another host, instead of in this process.
    #[arg(long, value_parser = parse_server, conflicts_with = "path")]
    connect: Option<std::net::SocketAddr>,
    /// The `serve`'s shared secret, if it requires one (or set NETCOPY_TOKEN).
    #[arg(long, requires = "connect")]
    token: Option<String>,
    /// Folder that receives <timestamp>/ and the `latest` link.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Exit 0 even when kernel and userspace disagree (the rows still say so).
    #[arg(long)]
    keep_going: bool,
    /// Run without eBPF (no root needed); the kernel columns stay empty.
    #[arg(long)]
    no_trace: bool,
    /// Run the grid again and again in this one process for this long, printing the
    /// resident memory after each pass (what `cargo xtask soak` watches).
    #[arg(long, hide = true, value_parser = parse_positive_duration)]
    soak: Option<Duration>,
}

impl Sweep {
    fn grid(&self) -> Result<sweep::Grid> {
        let mut grid = if self.quick {
            sweep::Grid::quick()
        } else {
            sweep::Grid::default_run()
        };
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
        grid.warmup = self.warmup.unwrap_or(grid.warmup);
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
        grid.tracing = if self.no_trace {
            sweep::Tracing::Never
        } else if self.trace_all {
            sweep::Tracing::Every
        } else {
            sweep::Tracing::Accounting
        };
        grid.path = if self.connect.is_some() {
            NetPath::Remote
        } else {
            self.path
        };
        Ok(grid)
    }
}

/// The values in first-seen order, each once.
fn dedup<T: PartialEq + Copy>(values: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(v) {
            out.push(*v);
        }
    }
    out
}

/// What every experiment-running command takes.
#[derive(Args)]
struct RunArgs {
    /// Traffic pattern: stream or rr (request-response).
    #[arg(long, value_parser = parse_workload, default_value = "stream")]
    workload: Workload,
    /// Message size (bytes, or with a unit: 1K, 16KiB, 1M).
    #[arg(long, value_parser = parse_message_size, default_value = "16K")]
    size: usize,
    /// Connections, each with its own sender and receiver thread.
    #[arg(long, value_parser = parse_threads, default_value = "1")]
    threads: usize,
    /// Measured window (500ms, 2s, 1m).
    #[arg(long, value_parser = parse_positive_duration, default_value = "2s")]
    duration: Duration,
    /// Traffic before the measured window.
    #[arg(long, value_parser = units::parse_duration, default_value = "500ms")]
    warmup: Duration,
    /// Network path: loopback, veth (TCP into a second namespace) or ifb-sink (UDP out of
    /// a device that frees every packet, where zero-copy really avoids the copy).
    #[arg(long, value_parser = parse_path, default_value = "loopback")]
    path: NetPath,
    /// Run without eBPF (no root needed); kernel figures are left out.
    #[arg(long)]
    no_trace: bool,
    #[command(flatten)]
    placement: PlacementArgs,
    /// rr: receivers spin on non-blocking reads instead of sleeping (no idle wake-ups).
    #[arg(long)]
    busy_poll: bool,
}

/// Where worker threads run.
#[derive(Args, Clone)]
struct PlacementArgs {
    /// CPU placement of the worker threads: same (both ends of a connection on one CPU),
    /// split (clients on the first half of the CPUs, servers on the second), or none (the
    /// scheduler decides). --client-cpus and --server-cpus pin each side to explicit lists.
    #[arg(long, value_parser = parse_placement)]
    placement: Option<Policy>,
    /// CPUs for the client threads, e.g. 0 or 0,2-3 (connections wrap round-robin).
    #[arg(long, value_parser = parse_cpus)]
    client_cpus: Option<CpuList>,
    /// CPUs for the server threads.
    #[arg(long, value_parser = parse_cpus)]
    server_cpus: Option<CpuList>,
}

/// One `--client-cpus`/`--server-cpus` value: a whole list (a newtype, so clap takes the
/// list as one value rather than as many).
#[derive(Clone, Debug)]
struct CpuList(Vec<usize>);

fn parse_cpus(s: &str) -> Result<CpuList, String> {
    placement::parse_cpu_list(s).map(CpuList)
}

impl PlacementArgs {
    fn resolve(&self) -> Result<Placement> {
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
    fn config(&self, mode: Mode) -> Result<workload::Config> {
        let mut config = workload::Config::new(mode, self.workload, self.size, self.threads);
        config.duration = self.duration;
        config.warmup = self.warmup;
        config.path = self.path;
        config.placement = self.placement.resolve()?;
        config.busy_poll = self.busy_poll;
        Ok(config)
    }

    fn tracer(&self) -> Result<Option<tracer::Tracer>> {
        Ok(if self.no_trace {
            None
        } else {
            Some(tracer::Tracer::load()?)
        })
    }
}

#[derive(Args)]
struct BenchOne {
    /// Send path: a1 (two-copy), a2 (one-copy), a3 (MSG_ZEROCOPY), a4 (io_uring SENDMSG_ZC).
    #[arg(long, value_parser = parse_mode, default_value = "a3")]
    mode: Mode,
    /// Server port (default: 8080 + mode number, a1 = 8080).
    #[arg(long)]
    port: Option<u16>,
    /// Also print each eBPF program's runs and mean run time (kernel BPF statistics).
    #[arg(long)]
    program_stats: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct Compare {
    #[command(flatten)]
    run: RunArgs,
}

/// Most connections an experiment may open: each costs two threads.
const MAX_THREADS: usize = 1024;

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse()
}

fn parse_workload(s: &str) -> Result<Workload, String> {
    s.parse()
}

fn parse_path(s: &str) -> Result<NetPath, String> {
    s.parse()
}

fn parse_placement(s: &str) -> Result<Policy, String> {
    match s.parse()? {
        Policy::Cpus => {
            Err("placement cpus is set by giving --client-cpus and --server-cpus".into())
        }
        p => Ok(p),
    }
}

fn parse_message_size(s: &str) -> Result<usize, String> {
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

fn parse_server(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    let with_port = if s.parse::<std::net::IpAddr>().is_ok() || !s.contains(':') {
        format!("{s}:{}", netcopy::remote::DEFAULT_CONTROL_PORT)
    } else {
        s.to_owned()
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("cannot resolve server '{s}' (expected HOST or HOST:PORT)"))
}

fn parse_trace_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port '{s}' (expected 1 to 65535)")),
    }
}

fn parse_reps(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid repetition count '{s}' (expected 1 to 100)"
        )),
    }
}

fn parse_ci_target(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches('%').trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 100.0 => Ok(v),
        _ => Err(format!(
            "invalid confidence target '{s}' (expected a percentage above 0, e.g. 2.5)"
        )),
    }
}

fn parse_threads(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid thread count '{s}' (expected 1 to {MAX_THREADS})"
        )),
    }
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match units::parse_duration(s)? {
        d if d.is_zero() => Err(format!("duration '{s}' must be above zero")),
        d => Ok(d),
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            if !err.use_stderr() {
                // --help and --version.
                let _ = err.print();
                return ExitCode::SUCCESS;
            }
            eprintln!("netcopy: {}", first_line(&err.to_string()));
            return ExitCode::from(2);
        }
    };
    if let Err(err) = interrupt::install() {
        eprintln!("netcopy: cannot handle Ctrl-C: {err}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Check => check(),
        Command::BenchOne(args) => bench_one(args),
        Command::Compare(args) => compare(args),
        Command::Sweep(args) => sweep(*args),
        Command::Explain(args) => explain(args),
        Command::Report(args) => report(args),
        Command::Trace(args) => trace(args),
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // Bad input found only once running (a path that cannot carry the request, an
            // output folder that cannot be written) is still bad input: exit 2.
            let usage = err.downcast_ref::<Usage>().is_some()
                || matches!(
                    err.downcast_ref::<netcopy::Error>(),
                    Some(netcopy::Error::Unsupported(_) | netcopy::Error::Port { .. })
                );
            // Ignored if stderr is gone (a closed terminal): the exit code still says it.
            let _ = writeln!(
                std::io::stderr(),
                "netcopy: {}",
                one_line(&format!("{err:#}"))
            );
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// Bad input discovered after parsing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

/// An error as one line: whatever its sources said, joined.
fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// clap's message, reduced to its one informative line ("error: ..." without the prefix).
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text);
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

fn check() -> Result<ExitCode> {
    let path = kernel::btf_path();
    let btf = Btf::from_file(&path)?;
    let offsets = tracer::resolve_offsets(&btf)?;
    println!("BTF:      {}", path.display());
    println!(
        "offsets:  struct sock -> skc_num at byte {}, skc_dport at byte {}",
        offsets.sock_local_port, offsets.sock_remote_port
    );
    let mut tracer = tracer::Tracer::load().context("loading the probes")?;
    let skipped: u64 = tracer.skipped()?.iter().sum();
    println!("skipped:  {skipped} events the probes could not count (per reason in each row)");
    let missing = tracer.missing_hooks();
    for hook in tracer::HOOKS {
        match missing.iter().find(|(h, _)| h.program == hook.program) {
            None => println!("attached: {} (tp_btf/{})", hook.program, hook.tracepoint),
            Some((_, why)) => println!(
                "missing:  {} (tp_btf/{}): {why}; empties {}",
                hook.program,
                hook.tracepoint,
                if hook.feeds.is_empty() {
                    "no column".to_owned()
                } else {
                    hook.feeds.join(", ")
                }
            ),
        }
    }
    if missing.is_empty() {
        println!("ok: every probe loads and attaches on this kernel");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "partial: {} of {} probes attach; the columns above stay empty, with the reason",
            tracer::HOOKS.len() - missing.len(),
            tracer::HOOKS.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

fn bench_one(args: BenchOne) -> Result<ExitCode> {
    let mut config = args.run.config(args.mode)?;
    workload::check_fits(&config)?;
    if let Some(port) = args.port {
        config.port = port;
    }
    let mut tracer = args.run.tracer()?;
    let _stats = match (&tracer, args.program_stats) {
        (Some(_), true) => Some(tracer::enable_run_stats()?),
        _ => None,
    };
    let network = Network::create(args.run.path)?;
    let prepared = workload::Prepared::bind_on(config, &network)?;
    let outcome = experiment::run(prepared, tracer.as_mut(), 1)?;
    print_figures(&outcome.config, &outcome.figures, outcome.kernel.is_some());
    if let Some(tracer) = tracer.as_ref().filter(|_| args.program_stats) {
        for (name, runs, time) in tracer.program_stats() {
            let mean = if runs > 0 {
                time.as_nanos() as f64 / runs as f64
            } else {
                0.0
            };
            println!(
                "program:    {name:<24} {runs:>10} runs, {mean:>7.0} ns each, {:>8.1} ms total",
                time.as_secs_f64() * 1e3
            );
        }
    }
    if let Some(k) = &outcome.kernel {
        print_kernel(k);
        println!("checks:     {}", outcome.checks());
        if !outcome.disagreements.is_empty() {
            bail!("kernel and userspace disagree: {}", outcome.checks());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn compare(Compare { run: args }: Compare) -> Result<ExitCode> {
    workload::check_fits(&args.config(Mode::A1)?)?;
    let mut tracer = args.tracer()?;
    let network = Network::create(args.path)?;
    println!(
        "{} {} x {} connection(s), {:.1}s per mode after {:.1}s warmup, {}; bytes per byte sent:",
        args.workload,
        units::format_size(args.size),
        args.threads,
        args.duration.as_secs_f64(),
        args.warmup.as_secs_f64(),
        if tracer.is_some() {
            "traced (Gbit/s include the observer's cost; --no-trace to time the modes)"
        } else {
            "untraced"
        }
    );
    println!(
        "{:<4} {:>9} {:>10} {:>8} {:>9} {:>9} {:>9}  checks",
        "mode", "Gbit/s", "copy@send", "pinned", "deferred", "to user", "fallback"
    );
    let mut failed = Vec::new();
    for mode in Mode::ALL {
        let outcome = match workload::Prepared::bind_on(args.config(mode)?, &network)
            .and_then(|p| experiment::run(p, tracer.as_mut(), 1))
        {
            Ok(outcome) => outcome,
            Err(err) => {
                println!("{:<4} failed: {err}", mode.name());
                failed.push(mode.name());
                continue;
            }
        };
        let sent = outcome.figures.bytes_sent.max(1) as f64;
        let per_byte = |v: u64| format!("{:.2}", v as f64 / sent);
        let (copied, pinned, deferred, to_user, fallback) = match &outcome.kernel {
            Some(k) => (
                per_byte(k.counters.copied_at_send_bytes()),
                per_byte(k.counters.pinned_bytes()),
                per_byte(k.counters.deferred_copy_bytes),
                per_byte(k.counters.recv_copy_bytes),
                k.fallback_pct()
                    .map_or("-".to_owned(), |p| format!("{p:.0} %")),
            ),
            None => Default::default(),
        };
        println!(
            "{:<4} {:>9.3} {:>10} {:>8} {:>9} {:>9} {:>9}  {}",
            mode.name(),
            outcome.figures.send_gbps(),
            copied,
            pinned,
            deferred,
            to_user,
            fallback,
            if outcome.kernel.is_some() {
                outcome.checks()
            } else {
                "not traced".to_owned()
            }
        );
        if !outcome.disagreements.is_empty() {
            failed.push(mode.name());
        }
    }
    if !failed.is_empty() {
        bail!("{} failed or disagreed", failed.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_kernel(k: &experiment::KernelFigures) {
    let c = &k.counters;
    println!(
        "kernel:     {} send calls, {} bytes: {} copied at send, {} pinned",
        c.send_calls,
        c.send_bytes,
        c.copied_at_send_bytes(),
        c.pinned_bytes()
    );
    let pages = match k.deferred_copy_pages() {
        Some(pages) => format!("{pages} pages allocated by skb_copy_ubufs"),
        None => format!("pages not measured ({})", k.note()),
    };
    println!(
        "            {} bytes copied at delivery (deferred), {} copied again (retransmitted), {pages}; fallback {}",
        c.deferred_copy_bytes,
        c.recopied_bytes,
        k.fallback_pct()
            .map_or("n/a (nothing pinned)".to_owned(), |p| format!("{p:.1} %"))
    );
    println!(
        "            {} receive calls, {} bytes copied to user; {} zero-copy notifications",
        c.recv_calls, c.recv_copy_bytes, c.zc_notifications
    );
}

/// Prints one experiment's userspace figures; `traced` says its speed carries the observer.
fn print_figures(config: &workload::Config, f: &Figures, traced: bool) {
    println!(
        "experiment: {} ({}), {}, {} x {}, {:.2}s window after {:.2}s warmup",
        config.mode,
        config.mode.describe(),
        config.workload,
        units::format_size(config.size),
        if config.threads == 1 {
            "1 connection".to_owned()
        } else {
            format!("{} connections", config.threads)
        },
        f.window.as_secs_f64(),
        config.warmup.as_secs_f64()
    );
    println!("placement:  {}", config.placement);
    println!(
        "throughput: {:.3} Gbit/s sent, {:.3} Gbit/s received, {:.0} messages/s{}",
        f.send_gbps(),
        f.recv_gbps(),
        f.messages_per_sec(),
        if traced {
            " (traced: includes the observer's cost; --no-trace to time it)"
        } else {
            " (untraced)"
        }
    );
    if let Some(h) = &f.send_latency {
        println!(
            "send call:  p50 {:.2} us, p99 {:.2} us",
            h.value_at_quantile(0.5) as f64 / 1e3,
            h.value_at_quantile(0.99) as f64 / 1e3
        );
    }
    if let Some(h) = &f.round_trip {
        println!(
            "round trip: p50 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, mean {:.2} us ({} round trips)",
            h.value_at_quantile(0.5) as f64 / 1e3,
            h.value_at_quantile(0.99) as f64 / 1e3,
            h.value_at_quantile(0.999) as f64 / 1e3,
            h.mean() / 1e3,
            h.len()
        );
    }
    println!(
        "totals:     {} bytes sent in {} calls, {} bytes received in {} calls, {} messages verified",
        f.bytes_sent, f.path.send_calls, f.bytes_received, f.recv_calls, f.verified_messages
    );
    if config.mode.is_zero_copy() {
        let p = &f.path;
        println!(
            "zero-copy:  {} sends, {} completed in {} notifications, {} flagged copied ({}), {} ENOBUFS retries",
            p.zc_sends,
            p.zc_completed,
            p.zc_notifications,
            p.zc_copied,
            p.copied_pct()
                .map_or("n/a".to_owned(), |pct| format!("{pct:.1} %")),
            p.enobufs_retries
        );
    }
}

/// Fails with a usage error unless `dir` exists (or can be made) and can be written.
fn writable_folder(dir: &std::path::Path) -> Result<()> {
    let bad = |e: std::io::Error| {
        Usage(format!(
            "cannot write to output folder {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(bad)?;
    let probe = dir.join(".netcopy-write-test");
    std::fs::write(&probe, b"").map_err(bad)?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn sweep(args: Sweep) -> Result<ExitCode> {
    let grid = args.grid()?;
    writable_folder(&args.out)?;
    if args.path.is_sink() && grid.workloads == [Workload::Rr] {
        return Err(Usage(format!(
            "the {} path cannot run rr (nothing replies from a sink)",
            args.path
        ))
        .into());
    }
    let mut tracer = if args.no_trace {
        None
    } else {
        let mut tracer = tracer::Tracer::load()?;
        // The kernel's BPF statistics need CAP_SYS_ADMIN; without them only observer_ms is
        // left empty.
        if let Err(e) = tracer.time_programs() {
            let _ = writeln!(
                std::io::stderr(),
                "netcopy: observer_ms and observer_pct stay empty: {e}"
            );
        }
        Some(tracer)
    };
    let network = Network::create(args.path)?;
    let token = args.token.clone().or_else(token_from_env);
    let mut remote = args
        .connect
        .map(|addr| netcopy::remote::Client::new(addr, token));
    let mut out = output::ResultsDir::create(&args.out)?;
    let started = std::time::Instant::now();
    for note in grid.notes() {
        eprintln!("netcopy: {note}");
    }
    let mut ended = sweep::Ended::default();
    let mut result = sweep::run(
        &grid,
        target(&mut remote, &network),
        tracer.as_mut(),
        &mut out,
        &mut ended,
    );
    if let Some(soak) = args.soak {
        let mut pass = 1;
        while result.is_ok() {
            eprintln!("soak: pass {pass} rss_kib {}", resident_kib());
            if ended.interrupted || started.elapsed() >= soak {
                break;
            }
            // Keep only the last pass's rows in memory: the file has them all.
            ended.rows.clear();
            result = sweep::run(
                &grid,
                target(&mut remote, &network),
                tracer.as_mut(),
                &mut out,
                &mut ended,
            );
            pass += 1;
        }
    }
    // Detach before the slow part: plots and report need no kernel.
    drop(tracer);
    drop(remote);
    drop(network);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let written = finish_report(out.dir(), out.id(), &ended.rows, &command);
    output::give_to_invoking_user(out.dir());
    output::give_to_invoking_user(&args.out.join("latest"));
    // A closed terminal (SIGHUP) must not turn this line into a panic: the files are written.
    let _ = writeln!(
        std::io::stdout(),
        "{} rows in {:.0}s: {}",
        ended.rows.len(),
        started.elapsed().as_secs_f64(),
        out.dir().display()
    );
    // The rows, plots and report are written whatever stopped the sweep; now say what did.
    result?;
    written?;
    if ended.interrupted {
        let _ = writeln!(
            std::io::stderr(),
            "netcopy: interrupted; every finished row is in {}",
            out.dir().display()
        );
        return Ok(ExitCode::from(130));
    }
    if ended.failed > 0 {
        bail!(
            "{} experiment(s) failed (rows marked failed, with the reason)",
            ended.failed
        );
    }
    if ended.disagreed > 0 && !args.keep_going {
        bail!(
            "{} experiment(s) where kernel and userspace disagree (see the checks column; --keep-going to exit 0)",
            ended.disagreed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Plots and report.md from the rows; the rows are already safe on disk whatever happens here.
fn finish_report(dir: &std::path::Path, run: &str, rows: &[Row], command: &str) -> Result<()> {
    let summary = output::summary::Summary::from_rows(rows);
    output::write_points(&dir.join("points.csv"), &summary)?;
    let plots = output::plots::write_all(&dir.join("plots"), &summary)
        .map_err(|e| anyhow::anyhow!("drawing the plots: {e}"))?;
    let machine = output::report::Machine::detect();
    let report = output::report::render(&summary, run, &machine, &plots, command);
    let path = dir.join("report.md");
    std::fs::write(&path, report).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn report(args: Report) -> Result<ExitCode> {
    let csv = args.dir.join("results.csv");
    if !csv.is_file() {
        return Err(Usage(format!("no results.csv in {}", args.dir.display())).into());
    }
    let rows = output::read_rows(&csv)?;
    let run = rows.first().map_or_else(String::new, |r| r.run.clone());
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    finish_report(&args.dir, &run, &rows, &command)?;
    output::give_to_invoking_user(&args.dir);
    println!("{}", args.dir.join("report.md").display());
    Ok(ExitCode::SUCCESS)
}

fn explain(args: BenchOne) -> Result<ExitCode> {
    let mut config = args.run.config(args.mode)?;
    workload::check_fits(&config)?;
    if let Some(port) = args.port {
        config.port = port;
    }
    let mut tracer = tracer::Tracer::load()?;
    let network = Network::create(args.run.path)?;
    let prepared = workload::Prepared::bind_on(config, &network)?;
    let outcome = experiment::run(prepared, Some(&mut tracer), 1)?;
    print!("{}", netcopy::explain::draw(&outcome));
    if !outcome.disagreements.is_empty() {
        bail!("kernel and userspace disagree: {}", outcome.checks());
    }
    Ok(ExitCode::SUCCESS)
}

fn trace(args: Trace) -> Result<ExitCode> {
    use netcopy::trace::{self, Until};
    if args.ports.is_empty() && args.pid.is_none() && args.command.is_empty() {
        return Err(Usage("nothing to trace: give --port, --pid or -- COMMAND".into()).into());
    }
    if let Some(pid) = args.pid
        && (pid == 0 || !std::path::Path::new(&format!("/proc/{pid}")).exists())
    {
        return Err(Usage(format!("no process with pid {pid}")).into());
    }
    if let Some(program) = args.command.first()
        && trace::resolve_command(program).is_none()
    {
        return Err(Usage(format!("command not found: {}", program.to_string_lossy())).into());
    }
    if let Some(out) = &args.out {
        writable_folder(out)?;
    }
    let mut tracer = tracer::Tracer::load()?;
    // Traffic netcopy did not generate may be UDP.
    tracer.classify_udp(true)?;
    for &port in &args.ports {
        tracer.watch_port(port, trace::SLOT)?;
    }
    if let Some(pid) = args.pid {
        tracer.watch_process(pid, trace::SLOT)?;
    }
    let child = if args.command.is_empty() {
        None
    } else {
        let child = trace::spawn_stopped(&args.command)?;
        tracer.watch_process(child.id(), trace::SLOT)?;
        trace::resume(&child);
        Some(child)
    };
    let status = trace::wait(Until {
        exit: child.as_ref(),
        gone: args.pid,
        elapsed: args.duration,
    });
    if let (Some(child), None) = (&child, status) {
        // Ended by Ctrl-C or --duration: the command goes too; nothing is left behind.
        trace::stop(child);
    }
    let rows = trace::rows(&tracer)?;
    drop(tracer);
    print!("{}", trace::table(&rows));
    if let Some(out) = &args.out {
        trace::write(out, &rows)?;
        output::give_to_invoking_user(out);
    }
    Ok(match status.and_then(|s| s.code()) {
        Some(code) => ExitCode::from(code.clamp(0, 255) as u8),
        None if status.is_some() => ExitCode::FAILURE,
        None => ExitCode::SUCCESS,
    })
}

/// This process's resident memory, KiB.
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The shared secret from NETCOPY_TOKEN, when set and not empty.
fn token_from_env() -> Option<String> {
    std::env::var("NETCOPY_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
}

/// The sweep's servers: a `netcopy serve` when one was given, else this process.
fn target<'a>(
    remote: &'a mut Option<netcopy::remote::Client>,
    network: &'a Network,
) -> sweep::Target<'a> {
    match remote {
        Some(client) => sweep::Target::Remote(client),
        None => sweep::Target::Local(network),
    }
}

fn serve(args: Serve) -> Result<ExitCode> {
    let tracer = if args.no_trace {
        None
    } else {
        Some(tracer::Tracer::load()?)
    };
    let options = netcopy::remote::ServeOptions {
        token: args.token.or_else(token_from_env),
        idle: args.idle_timeout,
    };
    netcopy::remote::serve(args.bind, args.port, tracer, options)?;
    Ok(ExitCode::SUCCESS)
}
