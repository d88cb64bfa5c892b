//! The commands: each turns parsed arguments into work. `check` and `serve` are short
//! enough to live here.

mod one;
pub(crate) mod run_sweep;
mod trace;

pub(crate) use one::{bench_one, compare, explain};
pub(crate) use run_sweep::{report, sweep};
pub(crate) use trace::trace;

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use netcopy::kernel::{self, btf::Btf, tracer};

use crate::{cli::*, parse::token_or_env};

pub(crate) fn check() -> Result<ExitCode> {
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
    // Runs the kernel skipped since load (another program was running on that CPU); every
    // sweep row and trace checks its own.
    let missed = tracer.missed_runs();
    let total: u64 = missed.iter().map(|(_, n)| n).sum();
    let each: Vec<String> = missed.iter().map(|(p, n)| format!("{p} {n}")).collect();
    println!(
        "missed:   {total} program runs the kernel skipped ({})",
        each.join(", ")
    );
    let missing = tracer.missing_hooks();
    for hook in tracer::HOOKS {
        println!("{}", hook_line(&tracer, hook));
    }
    if missing.is_empty() {
        println!("ok: every probe loads and attaches on this kernel");
        Ok(ExitCode::SUCCESS)
    } else {
        let needed = tracer::HOOKS.len() - tracer.absent_hooks().len();
        println!(
            "partial: {} of {needed} probes attach; the columns above stay empty, with the reason",
            needed - missing.len(),
        );
        Ok(ExitCode::FAILURE)
    }
}

/// One line of `check`: how `hook` is attached here, or why it is not and what that empties.
fn hook_line(tracer: &tracer::Tracer, hook: &'static tracer::Hook) -> String {
    let feeds = if hook.feeds.is_empty() {
        "no column".to_owned()
    } else {
        hook.feeds.join(", ")
    };
    if let Some((_, att)) = tracer
        .mechanisms()
        .iter()
        .find(|(h, _)| h.program == hook.program)
    {
        return format!(
            "attached: {} by {} (feeds {feeds})",
            hook.program,
            att.label()
        );
    }
    if let Some((_, why)) = tracer
        .absent_hooks()
        .iter()
        .find(|(h, _)| h.program == hook.program)
    {
        return format!("absent:   {}: {why}; not needed here", hook.program);
    }
    let why = tracer
        .missing_hooks()
        .iter()
        .find(|(h, _)| h.program == hook.program)
        .map_or("", |(_, why)| why.as_str());
    format!(
        "missing:  {} ({}): {why}; empties {feeds}",
        hook.program,
        hook.event()
    )
}

pub(crate) fn serve(args: Serve) -> Result<ExitCode> {
    let options = netcopy::remote::ServeOptions {
        token: token_or_env(args.token)?,
        idle: args.idle_timeout,
        max_memory: args
            .max_memory
            .map_or(netcopy::remote::MemoryCap::HalfOfAvailable, |bytes| {
                netcopy::remote::MemoryCap::Fixed(bytes)
            }),
    };
    let tracer = if args.no_trace {
        None
    } else {
        Some(tracer::Tracer::load()?)
    };
    netcopy::remote::serve(args.bind, args.port, tracer, options)?;
    Ok(ExitCode::SUCCESS)
}
