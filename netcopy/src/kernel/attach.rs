//! The compatibility gate, in one place: per hook, the first of its ranked attachments that
//! this kernel offers (by inspecting its BTF) and accepts (by loading and attaching it).

use aya::{
    Ebpf,
    programs::{
        BtfTracePoint, FEntry, FExit, KProbe, Program, ProgramError, fentry::FEntryLinkId,
        fexit::FExitLinkId, kprobe::KProbeLinkId, tp_btf::BtfTracePointLinkId,
    },
};

use super::{
    btf::Btf,
    hooks::{Attachment, Hook, Mechanism, WITHHOLD_ENV},
};
use crate::error::{Error, Result};

/// One attached program's link, whatever its mechanism: what detaching it needs.
pub enum AnyLink {
    TpBtf(BtfTracePointLinkId),
    FEntry(FEntryLinkId),
    FExit(FExitLinkId),
    KProbe(KProbeLinkId),
}

/// What the gate made of one hook on this kernel.
pub enum Choice {
    /// Attached this way, with its link (None: an on-demand hook, detached again at once).
    Attached(&'static Attachment, Option<AnyLink>),
    /// The path it watches does not exist here: nothing is missing (see `Hook::absent_means`).
    Absent(&'static str),
    /// No way worked: every attempt, in order, with why.
    Missing(String),
}

/// Prints each refused attempt's whole error (verifier log included) to stderr when set.
const LOG_ENV: &str = "NETCOPY_HOOK_LOG";

/// Why this kernel does not offer `att`, read from its BTF; None when it does.
pub fn not_offered(att: &Attachment, btf: &Btf) -> Option<String> {
    match att.mechanism {
        Mechanism::TpBtf => {
            let event = att.target.rsplit(':').next().unwrap_or(att.target);
            (!btf.has_tracepoint(event))
                .then(|| format!("no tracepoint {} on this kernel", att.target))
        }
        Mechanism::FEntry | Mechanism::FExit | Mechanism::KProbe => {
            match btf.function_params(att.target) {
                None => Some(format!("no function {} in this kernel's BTF", att.target)),
                Some(found) if found != att.params => Some(format!(
                    "{} takes ({}), the probe reads ({})",
                    att.target,
                    found.join(", "),
                    att.params.join(", ")
                )),
                Some(_) => None,
            }
        }
    }
}

/// Picks `hook`'s attachment: the first one not withheld, offered, loaded and attached.
pub fn choose(
    ebpf: &mut Ebpf,
    hook: &'static Hook,
    btf: &Btf,
    aya_btf: &aya::Btf,
    withheld: &[&str],
) -> Choice {
    if withheld.contains(&hook.program) {
        return Choice::Missing(format!("withheld by {WITHHOLD_ENV}"));
    }
    let mut tried = Vec::new();
    let mut some_function_exists = false;
    for att in hook.attachments {
        if withheld.contains(&att.id().as_str()) {
            tried.push(format!("{}: withheld by {WITHHOLD_ENV}", att.label()));
            continue;
        }
        if att.mechanism != Mechanism::TpBtf && btf.function_params(att.target).is_some() {
            some_function_exists = true;
        }
        if let Some(why) = not_offered(att, btf) {
            tried.push(why);
            continue;
        }
        match load_and_attach(ebpf, hook, att, aya_btf) {
            Ok(link) => return Choice::Attached(att, link),
            Err(err) => {
                if std::env::var_os(LOG_ENV).is_some() {
                    eprintln!("{}: {err:?}", att.label());
                }
                // The cause's first line: a verifier log would bury the reason, and the
                // requirement is said once for the hook.
                let text =
                    std::error::Error::source(&err).map_or(err.to_string(), |e| e.to_string());
                tried.push(format!(
                    "{}: {}",
                    att.label(),
                    text.lines().next().unwrap_or_default()
                ));
            }
        }
    }
    match hook.absent_means {
        Some(why) if !some_function_exists => Choice::Absent(why),
        _ => Choice::Missing(tried.join("; ")),
    }
}

/// Loads `att`'s program and attaches it; its link, or None for an on-demand hook, which is
/// detached again at once (attached only while something needs it).
fn load_and_attach(
    ebpf: &mut Ebpf,
    hook: &'static Hook,
    att: &'static Attachment,
    btf: &aya::Btf,
) -> Result<Option<AnyLink>> {
    let program = ebpf.program_mut(att.program).ok_or(Error::ProgramMissing {
        program: att.program,
    })?;
    let load_err = |source: ProgramError| Error::ProgramLoad {
        program: att.program,
        hook: att.target,
        requirement: hook.requirement,
        source: Box::new(source),
    };
    let wrong_type = || Error::ProgramMissing {
        program: att.program,
    };
    match att.mechanism {
        Mechanism::TpBtf => {
            let p: &mut BtfTracePoint = program.try_into().map_err(|_| wrong_type())?;
            let event = att.target.rsplit(':').next().unwrap_or(att.target);
            p.load(event, btf).map_err(load_err)?;
        }
        Mechanism::FEntry => {
            let p: &mut FEntry = program.try_into().map_err(|_| wrong_type())?;
            p.load(att.target, btf).map_err(load_err)?;
        }
        Mechanism::FExit => {
            let p: &mut FExit = program.try_into().map_err(|_| wrong_type())?;
            p.load(att.target, btf).map_err(load_err)?;
        }
        Mechanism::KProbe => {
            let p: &mut KProbe = program.try_into().map_err(|_| wrong_type())?;
            p.load().map_err(load_err)?;
        }
    }
    let link = attach(ebpf, hook, att)?;
    if hook.on_demand {
        detach(ebpf, hook, att, link)?;
        return Ok(None);
    }
    Ok(Some(link))
}

/// `att`'s program in the object, and what an attach or detach failure of it says.
fn program_of<'e>(
    ebpf: &'e mut Ebpf,
    hook: &'static Hook,
    att: &'static Attachment,
) -> Result<(&'e mut Program, impl Fn(ProgramError) -> Error)> {
    let program = ebpf.program_mut(att.program).ok_or(Error::ProgramMissing {
        program: att.program,
    })?;
    let attach_err = move |source: ProgramError| Error::Attach {
        program: att.program,
        hook: att.target,
        requirement: hook.requirement,
        source: Box::new(source),
    };
    Ok((program, attach_err))
}

/// Attaches `att`'s loaded program.
pub fn attach(ebpf: &mut Ebpf, hook: &'static Hook, att: &'static Attachment) -> Result<AnyLink> {
    let (program, attach_err) = program_of(ebpf, hook, att)?;
    let wrong_type = |_| Error::ProgramMissing {
        program: att.program,
    };
    Ok(match att.mechanism {
        Mechanism::TpBtf => {
            let p: &mut BtfTracePoint = program.try_into().map_err(wrong_type)?;
            AnyLink::TpBtf(p.attach().map_err(attach_err)?)
        }
        Mechanism::FEntry => {
            let p: &mut FEntry = program.try_into().map_err(wrong_type)?;
            AnyLink::FEntry(p.attach().map_err(attach_err)?)
        }
        Mechanism::FExit => {
            let p: &mut FExit = program.try_into().map_err(wrong_type)?;
            AnyLink::FExit(p.attach().map_err(attach_err)?)
        }
        Mechanism::KProbe => {
            let p: &mut KProbe = program.try_into().map_err(wrong_type)?;
            AnyLink::KProbe(p.attach(att.target, 0).map_err(attach_err)?)
        }
    })
}

/// Detaches `link`, made by [`attach`] for `att`.
pub fn detach(
    ebpf: &mut Ebpf,
    hook: &'static Hook,
    att: &'static Attachment,
    link: AnyLink,
) -> Result<()> {
    let (program, attach_err) = program_of(ebpf, hook, att)?;
    let wrong_type = |_| Error::ProgramMissing {
        program: att.program,
    };
    match link {
        AnyLink::TpBtf(l) => <&mut BtfTracePoint>::try_from(program)
            .map_err(wrong_type)?
            .detach(l),
        AnyLink::FEntry(l) => <&mut FEntry>::try_from(program)
            .map_err(wrong_type)?
            .detach(l),
        AnyLink::FExit(l) => <&mut FExit>::try_from(program)
            .map_err(wrong_type)?
            .detach(l),
        AnyLink::KProbe(l) => <&mut KProbe>::try_from(program)
            .map_err(wrong_type)?
            .detach(l),
    }
    .map_err(attach_err)
}
