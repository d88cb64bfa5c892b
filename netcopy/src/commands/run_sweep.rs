//! `sweep` and `report`: the grid, its files, plots and report.

use std::{io::Write as _, process::ExitCode};

use anyhow::{Context as _, Result, bail};
use netcopy::{kernel::tracer, netpath::Network, output, row::Row, sweep, workload::Workload};

use crate::{Usage, cli::*, parse::token_or_env};

pub(crate) fn writable_folder(dir: &std::path::Path) -> Result<()> {
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

pub(crate) fn sweep(args: Sweep) -> Result<ExitCode> {
    let grid = args.grid()?;
    writable_folder(&args.out)?;
    refuse_what_cannot_run(&args, &grid)?;
    let mut tracer = (!args.no_trace).then(load_tracer).transpose()?;
    let network = Network::create(args.path)?;
    let mut remote = remote_client(&args)?;
    let mut out = output::ResultsDir::create(&args.out)?;
    let started = std::time::Instant::now();
    for note in grid.notes() {
        eprintln!("netcopy: {note}");
    }
    let mut ended = sweep::Ended::default();
    let result = match args.soak {
        Some(until) => sweep::soak(
            &grid,
            &mut remote,
            &network,
            tracer.as_mut(),
            &mut out,
            &mut ended,
            (started, until),
            |pass| eprintln!("soak: pass {pass} rss_kib {}", sweep::resident_kib()),
        ),
        None => sweep::run(
            &grid,
            sweep::Target::of(&mut remote, &network),
            tracer.as_mut(),
            &mut out,
            &mut ended,
        ),
    };
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
    exit_code(&ended, out.dir(), args.keep_going)
}

/// A grid the path or the receive mode cannot run at all: a usage error before anything runs.
fn refuse_what_cannot_run(args: &Sweep, grid: &sweep::Grid) -> Result<()> {
    if args.path.is_sink() && grid.workloads == [Workload::Rr] {
        return Err(Usage(format!(
            "the {} path cannot run rr (nothing replies from a sink)",
            args.path
        ))
        .into());
    }
    if grid.zerocopy_receive && grid.workloads == [Workload::Rr] {
        return Err(Usage(
            "--zerocopy-receive maps a stream's pages: it cannot run rr alone".to_owned(),
        )
        .into());
    }
    Ok(())
}

/// The tracer, loaded, with the kernel's BPF statistics on where they can be.
fn load_tracer() -> Result<tracer::Tracer> {
    let mut tracer = tracer::Tracer::load()?;
    // The kernel's BPF statistics need CAP_SYS_ADMIN; without them only observer_ms is
    // left empty.
    if let Err(e) = tracer.time_programs() {
        let _ = writeln!(
            std::io::stderr(),
            "netcopy: observer_ms and observer_pct stay empty: {e}"
        );
    }
    Ok(tracer)
}

/// What the sweep's end says to the shell: 130 when interrupted, an error when experiments
/// failed or (without `keep_going`) disagreed.
fn exit_code(ended: &sweep::Ended, dir: &std::path::Path, keep_going: bool) -> Result<ExitCode> {
    if ended.interrupted {
        let _ = writeln!(
            std::io::stderr(),
            "netcopy: interrupted; every finished row is in {}",
            dir.display()
        );
        return Ok(ExitCode::from(130));
    }
    if ended.failed > 0 {
        bail!(
            "{} experiment(s) failed (rows marked failed, with the reason)",
            ended.failed
        );
    }
    if ended.disagreed > 0 && !keep_going {
        bail!(
            "{} experiment(s) where kernel and userspace disagree (see the checks column; --keep-going to exit 0)",
            ended.disagreed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Plots, report.md and report.html from the rows; the rows are already safe on disk whatever
/// happens here.
pub(crate) fn finish_report(
    dir: &std::path::Path,
    run: &str,
    rows: &[Row],
    command: &str,
) -> Result<()> {
    let summary = output::summary::Summary::from_rows(rows);
    output::write_points(&dir.join("points.csv"), &summary)?;
    let plot_dir = dir.join("plots");
    let plots = output::plots::write_all(&plot_dir, &summary)?;
    let machine = output::report::Machine::detect();
    let report = output::report::render(&summary, run, &machine, &plots, command);
    let path = dir.join("report.md");
    std::fs::write(&path, report).with_context(|| format!("writing {}", path.display()))?;
    let html = output::html::render(&summary, run, &machine, &plots, &plot_dir, command)?;
    let path = dir.join("report.html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub(crate) fn report(args: Report) -> Result<ExitCode> {
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

/// The client of `--connect`'s serve, if any. The token matters only to a serve: a local
/// sweep ignores NETCOPY_TOKEN.
fn remote_client(args: &Sweep) -> Result<Option<netcopy::remote::Client>, Usage> {
    let Some(addr) = args.connect else {
        return Ok(None);
    };
    Ok(Some(netcopy::remote::Client::new(
        addr,
        token_or_env(args.token.clone())?,
    )))
}
