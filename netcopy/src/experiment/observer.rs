//! How an experiment is observed: traced, or with every program detached (the kernel's own
//! link list then says how many were attached), or with nothing loaded.

use super::{Outcome, run};
use crate::{
    error::{Error, Result},
    kernel::tracer::Tracer,
    workload::Prepared,
};

/// Runs `prepared` untraced, with every one of `tracer`'s programs detached: the kernel's link
/// list is read before and after, and any program found attached fails the run
/// ([`Error::StillAttached`]) so an observed speed is never written as an untraced one.
pub fn run_detached(prepared: Prepared, tracer: &mut Tracer) -> Result<Outcome> {
    tracer.detach()?;
    let before = tracer.attached_in_kernel()?;
    let mut outcome = run(prepared, None, 0)?;
    let programs = before.max(tracer.attached_in_kernel()?);
    if let Some(programs) = programs.filter(|n| *n > 0) {
        return Err(Error::StillAttached { programs });
    }
    outcome.attached_programs = programs;
    Ok(outcome)
}

/// How one experiment is observed: by the tracer, or with the tracer's programs detached (the
/// kernel's link list then says how many were attached), or with no programs loaded at all.
pub enum Observer<'a> {
    Traced(&'a mut Tracer),
    Detached(&'a mut Tracer),
    Unloaded,
}

impl<'a> Observer<'a> {
    /// `tracer` counting when `traced`, detached otherwise.
    pub fn new(tracer: Option<&'a mut Tracer>, traced: bool) -> Self {
        match tracer {
            Some(t) if traced => Observer::Traced(t),
            Some(t) => Observer::Detached(t),
            None => Observer::Unloaded,
        }
    }

    /// The tracer to count with (attached) or the one to keep detached (detached), at most
    /// one of them: for callers that run the experiment themselves (`serve`, `--connect`).
    pub fn split(self) -> Result<(Option<&'a mut Tracer>, Option<&'a mut Tracer>)> {
        Ok(match self {
            Observer::Traced(t) => {
                t.attach()?;
                (Some(t), None)
            }
            Observer::Detached(t) => {
                t.detach()?;
                (None, Some(t))
            }
            Observer::Unloaded => (None, None),
        })
    }

    /// Runs `prepared` so observed.
    pub fn run(self, prepared: Prepared) -> Result<Outcome> {
        match self {
            Observer::Traced(t) => run(prepared, Some(t), 1),
            Observer::Detached(t) => run_detached(prepared, t),
            Observer::Unloaded => run(prepared, None, 1),
        }
    }
}
