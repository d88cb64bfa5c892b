//! One experiment: the workload runs while the tracer counts its connections; the two
//! observers' figures are joined and cross-checked.

use netcopy_common::FlowCounters;

use crate::{
    error::Result,
    kernel::tracer::Tracer,
    workload::{Config, Figures, Prepared},
};

/// What the kernel saw for one experiment, and what it could not see.
#[derive(Debug, Clone, Default)]
pub struct KernelFigures {
    pub counters: FlowCounters,
    /// Why `deferred_copy_pages` is not measured here, when it is not.
    pub pages_unavailable: Option<String>,
}

impl KernelFigures {
    /// Deferred-copied bytes as a percentage of pinned bytes; None when nothing was pinned.
    pub fn fallback_pct(&self) -> Option<f64> {
        self.counters.fallback_pct()
    }
}

/// One experiment's figures from both observers and the result of comparing them.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub config: Config,
    pub figures: Figures,
    /// None when run without tracing.
    pub kernel: Option<KernelFigures>,
    /// Every disagreement between kernel and userspace; empty means all checks passed.
    pub disagreements: Vec<String>,
}

impl Outcome {
    /// `ok`, or what disagreed, `; `-separated: the CSV's `checks` cell.
    pub fn checks(&self) -> String {
        if self.disagreements.is_empty() {
            "ok".to_owned()
        } else {
            self.disagreements.join("; ")
        }
    }
}

/// Largest difference, in percentage points, between the kernel's byte-weighted fallback and
/// the per-send copied share from notifications. Both are 0 or 100 unless a run mixes paths.
const FALLBACK_TOLERANCE_PP: f64 = 0.5;

/// Compares what both observers saw. Every figure both can see must agree.
pub fn cross_check(config: &Config, f: &Figures, k: &KernelFigures) -> Vec<String> {
    let c = &k.counters;
    let mut out = Vec::new();
    let mut expect = |name: &str, kernel: u64, user: u64| {
        if kernel != user {
            out.push(format!("{name}: kernel {kernel} != userspace {user}"));
        }
    };
    expect("send bytes", c.send_bytes, f.bytes_sent);
    expect("send calls", c.send_calls, f.path.send_calls);
    expect("receive bytes", c.recv_bytes, f.bytes_received);
    expect("receive copy bytes", c.recv_copy_bytes, f.bytes_received);
    expect(
        "classified send bytes",
        c.copied_at_send_bytes() + c.pinned_bytes(),
        f.bytes_sent,
    );
    if config.mode.is_zero_copy() {
        match (k.fallback_pct(), f.path.copied_pct()) {
            (Some(kernel), Some(user)) if (kernel - user).abs() > FALLBACK_TOLERANCE_PP => out
                .push(format!(
                    "fallback: kernel {kernel:.1} % != error-queue copied {user:.1} %"
                )),
            (None, Some(user)) => out.push(format!(
                "fallback: kernel saw no pinned bytes, error queue says {user:.1} % copied"
            )),
            _ => {}
        }
    } else {
        expect("pinned bytes of a copying mode", c.pinned_bytes(), 0);
    }
    out
}

/// Runs `prepared` with `tracer` (if any) counting its connections under `slot`.
pub fn run(prepared: Prepared, tracer: Option<&mut Tracer>, slot: u32) -> Result<Outcome> {
    let config = prepared.config().clone();
    let endpoint = prepared.endpoint()?;
    let port = endpoint.port();
    let Some(tracer) = tracer else {
        let figures = prepared.run()?;
        return Ok(Outcome {
            config,
            figures,
            kernel: None,
            disagreements: Vec::new(),
        });
    };
    tracer.clear()?;
    tracer.classify_udp(config.path.is_sink())?;
    tracer.watch_endpoint(endpoint, slot)?;
    let result = {
        let observer = || tracer.run_time();
        prepared.run_observed(Some(&observer))
    };
    // Stop counting before reading, whatever happened: the next experiment may reuse the port.
    tracer.unwatch_port(port)?;
    let figures = result?;
    let kernel = KernelFigures {
        counters: tracer.totals(slot)?,
        pages_unavailable: tracer.pages_unavailable().map(str::to_owned),
    };
    let disagreements = cross_check(&config, &figures, &kernel);
    Ok(Outcome {
        config,
        figures,
        kernel: Some(kernel),
        disagreements,
    })
}
