//! `trace`: traffic netcopy did not generate.

use std::process::ExitCode;

use anyhow::Result;
use netcopy::{kernel::tracer, output};

use crate::{Usage, cli::*, commands::run_sweep::writable_folder};

pub(crate) fn trace(args: Trace) -> Result<ExitCode> {
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
    let missed_before = tracer.missed_runs();
    // Traffic netcopy did not generate may be UDP.
    tracer.classify_udp(true)?;
    // And a receiver may map what it consumes: only trace counts that.
    tracer.count_consumed(true)?;
    // And it may leave through any device.
    tracer.count_copied_at_transmit(true)?;
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
    let traced = trace::rows(&mut tracer, &missed_before)?;
    drop(tracer);
    print!("{}", trace::table(&traced.rows));
    if let Some(out) = &args.out {
        trace::write(out, &traced.rows)?;
        output::give_to_invoking_user(out);
    }
    if !traced.failed.is_empty() {
        // As the sweep does: figures two observers disagree on are not a result.
        for failed in &traced.failed {
            eprintln!("trace check failed: {failed}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(match status.and_then(|s| s.code()) {
        Some(code) => ExitCode::from(code.clamp(0, 255) as u8),
        None if status.is_some() => ExitCode::FAILURE,
        None => ExitCode::SUCCESS,
    })
}
