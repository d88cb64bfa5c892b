//! Commands that run one experiment: `bench-one`, `compare`, `explain`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use netcopy::{
    experiment,
    kernel::tracer,
    netpath::Network,
    row::Row,
    units,
    workload::{self, Figures, Mode},
};

use crate::{Usage, cli::*};

/// Bad input before the experiment runs: the folder `--svg` names must exist.
fn svg_destination(path: &std::path::Path) -> Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !folder.is_dir() || path.is_dir() {
        return Err(Usage(format!(
            "--svg {}: not a file in an existing folder",
            path.display()
        ))
        .into());
    }
    Ok(())
}

/// The one experiment `bench-one` and `explain` run: its configuration from the arguments,
/// checked, and bound on its network path (which must outlive it).
fn one_experiment(args: &BenchOne) -> Result<(Network, workload::Prepared)> {
    let mut config = args.run.config(args.mode)?;
    workload::check_fits(&config)?;
    if let Some(port) = args.port {
        config.port = port;
    }
    let network = Network::create(args.run.path)?;
    let prepared = workload::Prepared::bind_on(config, &network)?;
    Ok((network, prepared))
}

pub(crate) fn bench_one(args: BenchOne) -> Result<ExitCode> {
    let (_network, prepared) = one_experiment(&args)?;
    let mut tracer = if args.empty_programs {
        Some(tracer::Tracer::load_empty()?)
    } else {
        args.run.tracer()?
    };
    let _stats = match (&tracer, args.program_stats) {
        (Some(_), true) => Some(tracer::enable_run_stats()?),
        _ => None,
    };
    // Empty programs stay attached while the experiment runs without reading them.
    let counting = tracer.as_mut().filter(|_| !args.empty_programs);
    let outcome = experiment::run(prepared, counting, 1)?;
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
        let copied_pct = outcome.figures.send_counts.copied_pct();
        if let Some(u) = k.underreport_pct(outcome.config.mode, copied_pct) {
            println!(
                "error queue: {u:.1} % of completed sends flagged not copied whose bytes were copied (under-report)"
            );
        }
        println!("checks:     {}", outcome.checks());
        if !outcome.disagreements.is_empty() {
            bail!("kernel and userspace disagree: {}", outcome.checks());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn compare(Compare { run: args }: Compare) -> Result<ExitCode> {
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
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    match network.device() {
        Some(d) => println!(
            "path {} through {} ({}) on kernel {}: {}",
            args.path,
            d.name,
            if d.driver.is_empty() {
                "no driver"
            } else {
                &d.driver
            },
            release.trim(),
            d.offloads.describe()
        ),
        None => println!("path {} on kernel {}", args.path, release.trim()),
    }
    println!(
        "{:<4} {:>9} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}  checks",
        "mode",
        "Gbit/s",
        "copy@send",
        "pinned",
        "referenced",
        "deferred",
        "copy@xmit",
        "to user",
        "fallback",
        "underrep"
    );
    let mut failed = Vec::new();
    for mode in Mode::ALL {
        match workload::Prepared::bind_on(args.config(mode)?, &network)
            .and_then(|p| experiment::run(p, tracer.as_mut(), 1))
        {
            Ok(outcome) => {
                println!("{}", compare_line(&outcome));
                if !outcome.disagreements.is_empty() {
                    failed.push(mode.name());
                }
            }
            Err(err) => {
                println!("{:<4} failed: {err}", mode.name());
                failed.push(mode.name());
            }
        }
    }
    if !failed.is_empty() {
        bail!("{} failed or disagreed", failed.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// One mode's line of `compare`: its figures per byte sent, fallback, under-report, checks.
fn compare_line(outcome: &experiment::Outcome) -> String {
    let sent = outcome.figures.bytes_sent.max(1) as f64;
    let per_byte = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{:.2}", v as f64 / sent));
    let pct = |p: Option<f64>| p.map_or("-".to_owned(), |p| format!("{p:.1} %"));
    let cells: [String; 8] = match &outcome.kernel {
        Some(k) => {
            let c = &k.counters;
            let copied_pct = outcome.figures.send_counts.copied_pct();
            [
                per_byte(k.figure("k_copied_at_send_bytes", c.copied_at_send_bytes())),
                per_byte(k.figure("k_pinned_bytes", c.pinned_bytes())),
                per_byte(k.figure("k_referenced_at_send_bytes", c.tcp_referenced_at_send_bytes)),
                per_byte(k.figure("k_deferred_copy_bytes", c.deferred_copy_bytes)),
                per_byte(k.copied_at_transmit_bytes()),
                per_byte(k.recv_copy_bytes()),
                pct(k.fallback_pct()),
                pct(k.underreport_pct(outcome.config.mode, copied_pct)),
            ]
        }
        None => Default::default(),
    };
    format!(
        "{:<4} {:>9.3} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
        outcome.config.mode.name(),
        outcome.figures.send_gbps(),
        cells[0],
        cells[1],
        cells[2],
        cells[3],
        cells[4],
        cells[5],
        cells[6],
        cells[7],
        if outcome.kernel.is_some() {
            outcome.checks()
        } else {
            "not traced".to_owned()
        }
    )
}

pub(crate) fn print_kernel(k: &experiment::KernelFigures) {
    let c = &k.counters;
    let show = |column: &str, value: u64| k.shown(column, value);
    println!(
        "kernel:     {} send calls, {} bytes: {} copied at send, {} pinned, {} referenced (page cache)",
        show("k_send_calls", c.send_calls),
        show("k_send_bytes", c.send_bytes),
        show("k_copied_at_send_bytes", c.copied_at_send_bytes()),
        show("k_pinned_bytes", c.pinned_bytes()),
        show("k_referenced_at_send_bytes", c.tcp_referenced_at_send_bytes)
    );
    let pages = match k.deferred_copy_pages() {
        Some(pages) => format!("{pages} pages allocated by skb_copy_ubufs"),
        None => "pages not measured".to_owned(),
    };
    println!(
        "            {} bytes copied at delivery (deferred), {} copied again (retransmitted), {pages}; fallback {}",
        show("k_deferred_copy_bytes", c.deferred_copy_bytes),
        show("k_recopied_bytes", c.recopied_bytes),
        k.fallback_pct()
            .map_or("n/a (nothing pinned)".to_owned(), |p| format!("{p:.1} %"))
    );
    println!(
        "            {} bytes copied at transmit (TCP payload reaching the driver in linear memory)",
        k.copied_at_transmit_bytes()
            .map_or_else(|| "- (not seen)".to_owned(), |v| v.to_string()),
    );
    println!(
        "            {} receive calls, {} bytes copied to user; {} zero-copy notifications",
        show("k_recv_calls", c.recv_calls),
        k.recv_copy_bytes()
            .map_or_else(|| "- (not seen)".to_owned(), |v| v.to_string()),
        show("k_zc_notifications", c.zc_notifications)
    );
    let note = k.note();
    if !note.is_empty() {
        println!("note:       {note}");
    }
}

/// Prints one experiment's userspace figures; `traced` says its speed carries the observer.
/// The device a path sends through, when it has one of its own.
fn print_device(config: &workload::Config) {
    if let Some(d) = &config.device {
        let driver = if d.driver.is_empty() {
            "no driver"
        } else {
            &d.driver
        };
        println!(
            "path:       {} through {} ({driver}): {}",
            config.net_path,
            d.name,
            d.offloads.describe()
        );
    }
}

pub(crate) fn print_figures(config: &workload::Config, f: &Figures, traced: bool) {
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
    print_device(config);
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
        f.bytes_sent, f.send_counts.send_calls, f.bytes_received, f.recv_calls, f.verified_messages
    );
    if let Some(zc) = &f.zc_receive {
        println!(
            "zc receive: {} bytes mapped, {} copied ({} of them by read), {} getsockopt calls; TCP_INFO bytes received {}",
            zc.mapped_bytes, zc.copied_bytes, zc.read_bytes, zc.calls, zc.tcp_bytes_received
        );
    }
    if config.mode.is_zero_copy() {
        let p = &f.send_counts;
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

/// Runs one traced experiment and draws what the kernel did with its bytes; with `--svg`, also
/// as the picture report.html draws for each mode.
pub(crate) fn explain(args: Explain) -> Result<ExitCode> {
    if let Some(svg) = &args.svg {
        svg_destination(svg)?;
    }
    let (_network, prepared) = one_experiment(&args.one)?;
    let mut tracer = tracer::Tracer::load()?;
    let outcome = experiment::run(prepared, Some(&mut tracer), 1)?;
    print!("{}", netcopy::explain::draw(&outcome));
    // Which mechanism fed each figure on this kernel.
    for (hook, att) in tracer.mechanisms() {
        if !hook.feeds.is_empty() {
            let udp = if hook.on_demand {
                " (on demand: UDP, trace)"
            } else {
                ""
            };
            println!("hook: {} fed {}{udp}", att.label(), hook.feeds.join(", "));
        }
    }
    if let Some(svg) = &args.svg {
        let row = Row::planned("explain", 1, 1, true, &outcome.config).measured(&outcome);
        netcopy::output::datapath::write_svg(svg, &row)?;
        println!("\ndata path drawn: {}", svg.display());
    }
    if !outcome.disagreements.is_empty() {
        bail!("kernel and userspace disagree: {}", outcome.checks());
    }
    Ok(ExitCode::SUCCESS)
}
