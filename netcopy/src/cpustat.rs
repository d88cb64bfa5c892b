//! CPU time per byte without a PMU: the busy time of the CPUs an experiment runs on, from the
//! kernel's per-CPU accounting in /proc/stat, read at the edges of the measured window.
//!
//! Busy means user + nice + system + irq + softirq: every cycle the CPU spent on anything but
//! idling, so the loopback receive work done in softirq context, and by `ksoftirqd` threads,
//! is in it. Steal (the hypervisor running someone else) and iowait are not. The kernel keeps
//! these counts in nanoseconds but prints them in clock ticks (`USER_HZ`, 10 ms here), so a
//! reading is good to one tick per CPU: about 1 % of an 800 ms window.

use std::time::Duration;

use crate::placement::Placement;
use crate::side::Side;

/// Busy and softirq time of each CPU, in clock ticks, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Indexed by CPU number; None for a CPU /proc/stat does not list.
    cpus: Vec<Option<(u64, u64)>>,
}

/// Clock ticks per second of /proc/stat.
fn ticks_per_sec() -> u64 {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(0);
    if hz > 0 { hz as u64 } else { 100 }
}

impl Snapshot {
    /// Reads /proc/stat; None when it cannot be read.
    pub fn read() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// Parses the `cpuN user nice system idle iowait irq softirq steal ...` lines.
    pub fn parse(text: &str) -> Option<Self> {
        let mut cpus: Vec<Option<(u64, u64)>> = Vec::new();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let Some(n) = fields
                .next()
                .and_then(|name| name.strip_prefix("cpu"))
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            let v: Vec<u64> = fields.take(7).filter_map(|f| f.parse().ok()).collect();
            let [user, nice, system, _idle, _iowait, irq, softirq] = v[..] else {
                return None;
            };
            if cpus.len() <= n {
                cpus.resize(n + 1, None);
            }
            cpus[n] = Some((user + nice + system + irq + softirq, softirq));
        }
        (!cpus.is_empty()).then_some(Self { cpus })
    }

    /// Busy and softirq time of `cpus` between `self` and the later `after`.
    fn delta(&self, after: &Self, cpus: &[usize]) -> Option<(Duration, Duration)> {
        let (mut busy, mut softirq) = (0u64, 0u64);
        for &c in cpus {
            let (b0, s0) = (*self.cpus.get(c)?)?;
            let (b1, s1) = (*after.cpus.get(c)?)?;
            busy += b1.saturating_sub(b0);
            softirq += s1.saturating_sub(s0);
        }
        let tick = |t: u64| Duration::from_nanos(t * 1_000_000_000 / ticks_per_sec());
        Some((tick(busy), tick(softirq)))
    }
}

/// The CPU time an experiment used over its window, by the CPUs its workers ran on.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CpuFigures {
    /// Busy time of every CPU either side used.
    pub busy: Option<Duration>,
    /// Of which softirq (loopback's protocol work, when not in a thread's own context).
    pub softirq: Option<Duration>,
    /// Busy time of the clients' CPUs, when no server shares them.
    pub client_busy: Option<Duration>,
    /// Busy time of the servers' CPUs, when no client shares them.
    pub server_busy: Option<Duration>,
    /// Why something above is empty.
    pub note: Option<String>,
}

/// Splits the busy time between `before` and `after` by `placement`'s sides.
pub fn measure(
    before: Option<&Snapshot>,
    after: Option<&Snapshot>,
    placement: &Placement,
    threads: usize,
) -> CpuFigures {
    let (Some(before), Some(after)) = (before, after) else {
        return CpuFigures {
            note: Some("/proc/stat could not be read".into()),
            ..CpuFigures::default()
        };
    };
    let client = placement.cpus_used(Side::Client, threads);
    let server = placement.cpus_used(Side::Server, threads);
    let mut all = client.clone();
    all.extend(&server);
    all.sort_unstable();
    all.dedup();
    let total = before.delta(after, &all);
    let mut figures = CpuFigures {
        busy: total.map(|t| t.0),
        softirq: total.map(|t| t.1),
        ..CpuFigures::default()
    };
    if client.iter().any(|c| server.contains(c)) {
        figures.note = Some(format!(
            "per-side CPU time needs the sides on separate CPUs (placement {})",
            placement.policy
        ));
    } else {
        figures.client_busy = before.delta(after, &client).map(|t| t.0);
        figures.server_busy = before.delta(after, &server).map(|t| t.0);
    }
    if figures.busy.is_none() {
        figures.note = Some("/proc/stat lists not every CPU the experiment used".into());
    } else if figures.busy == Some(Duration::ZERO) {
        // No tick landed in the window: the CPUs were with another guest (steal), or the
        // window was shorter than a tick. Zero would be a figure; this is none.
        figures = CpuFigures {
            note: Some(NO_TICK.into()),
            ..CpuFigures::default()
        };
    }
    figures
}

/// Why a window has no CPU time: none of its CPUs' ticks was counted busy in it.
pub const NO_TICK: &str = "no busy tick of the experiment's CPUs in the window (/proc/stat counts in ticks; time the hypervisor gave another guest, steal, is not busy)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Policy;

    const BEFORE: &str = "cpu  10 0 10 100 0 0 0 0 0 0\n\
        cpu0 1 0 2 50 9 0 1 5 0 0\n\
        cpu1 3 1 4 50 0 1 2 0 0 0\n\
        intr 1 2 3\n";
    const AFTER: &str = "cpu  99 0 99 100 0 0 0 0 0 0\n\
        cpu0 11 0 12 60 19 0 6 9 0 0\n\
        cpu1 4 1 5 140 0 1 2 0 0 0\n";

    #[test]
    fn a_window_without_a_busy_tick_has_no_cpu_time() {
        let b = Snapshot::parse(BEFORE);
        let same = Placement::resolve(Policy::Split, &[0, 1], &[], &[]).unwrap();
        let f = measure(b.as_ref(), b.as_ref(), &same, 1);
        assert_eq!((f.busy, f.client_busy, f.server_busy), (None, None, None));
        assert_eq!(f.note.as_deref(), Some(NO_TICK));
    }

    #[test]
    fn busy_time_counts_user_system_irq_softirq_not_idle_iowait_steal() {
        let (b, a) = (Snapshot::parse(BEFORE), Snapshot::parse(AFTER));
        let split = Placement::resolve(Policy::Split, &[0, 1], &[], &[]).unwrap();
        let f = measure(b.as_ref(), a.as_ref(), &split, 1);
        let ticks = |t: u64| Some(Duration::from_nanos(t * 1_000_000_000 / ticks_per_sec()));
        // cpu0: user +10, system +10, softirq +5 = 25 ticks; cpu1: user +1, system +1 = 2.
        assert_eq!(f.client_busy, ticks(25));
        assert_eq!(f.server_busy, ticks(2));
        assert_eq!(f.busy, ticks(27));
        assert_eq!(f.softirq, ticks(5));
        assert_eq!(f.note, None);
    }

    #[test]
    fn shared_cpus_leave_the_sides_empty_with_a_reason() {
        let (b, a) = (Snapshot::parse(BEFORE), Snapshot::parse(AFTER));
        let same = Placement::resolve(Policy::Same, &[0, 1], &[], &[]).unwrap();
        let f = measure(b.as_ref(), a.as_ref(), &same, 1);
        assert_eq!(f.client_busy, None);
        assert!(f.note.as_deref().unwrap().contains("separate CPUs"));
        assert!(f.busy.is_some());
        let f = measure(b.as_ref(), None, &same, 1);
        assert_eq!(f.busy, None);
        assert!(f.note.is_some());
    }

    #[test]
    fn malformed_stat_is_refused() {
        assert_eq!(Snapshot::parse("cpu0 1 2\n"), None);
        assert_eq!(Snapshot::parse("intr 1\n"), None);
    }
}
