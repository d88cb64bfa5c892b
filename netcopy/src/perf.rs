//! CPU counters per side of an experiment, through perf_event_open (the perf-event2 crate).
//!
//! Each worker thread gets its own counter groups, opened by the coordinator from the thread's
//! id (no counter code runs on a worker), enabled when the measured window opens and disabled
//! when it closes, so warmup is never counted. Counts include kernel mode: the copies netcopy
//! is about happen there. A counter the machine cannot give is `None` with its reason, never 0.

use std::{fs, io, path::Path};

use crate::side::Side;

use perf_event::{
    Builder, Counter, Group,
    events::{Cache, CacheId, CacheOp, CacheResult, Event, Hardware, Software},
};

/// Counts for one side, summed over its threads (and over PMUs on hybrid CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SideCounts {
    pub cycles: Option<u64>,
    pub instructions: Option<u64>,
    pub cache_misses: Option<u64>,
    pub llc_load_misses: Option<u64>,
    pub l1d_load_misses: Option<u64>,
    pub task_clock_ns: Option<u64>,
    pub context_switches: Option<u64>,
    pub cpu_migrations: Option<u64>,
    pub page_faults: Option<u64>,
}

/// Both sides' counts and what could not be counted.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PerfFigures {
    pub client: SideCounts,
    pub server: SideCounts,
    /// Why hardware counters are missing, when they are.
    pub hw_unavailable: Option<String>,
    /// Why software counters are missing, when they are.
    pub sw_unavailable: Option<String>,
    /// Lowest share of its enabled time a hardware group was on the PMU (multiplexing), %.
    pub hw_running_pct: Option<f64>,
}

impl PerfFigures {
    fn side_mut(&mut self, side: Side) -> &mut SideCounts {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Instructions per cycle over both sides.
    pub fn ipc(&self) -> Option<f64> {
        let cycles = sum(self.client.cycles, self.server.cycles)?;
        let instructions = sum(self.client.instructions, self.server.instructions)?;
        (cycles > 0).then(|| instructions as f64 / cycles as f64)
    }

    /// Both sides' cycles per byte of `bytes`.
    pub fn cycles_per_byte(&self, bytes: u64) -> Option<f64> {
        let cycles = sum(self.client.cycles, self.server.cycles)?;
        (bytes > 0).then(|| cycles as f64 / bytes as f64)
    }
}

fn sum(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

const HARDWARE: [&str; 5] = [
    "cycles",
    "instructions",
    "cache_misses",
    "llc_load_misses",
    "l1d_load_misses",
];
const SOFTWARE: [Software; 4] = [
    Software::TASK_CLOCK,
    Software::CONTEXT_SWITCHES,
    Software::CPU_MIGRATIONS,
    Software::PAGE_FAULTS,
];

fn read_miss(which: CacheId) -> Cache {
    Cache {
        which,
        operation: CacheOp::READ,
        result: CacheResult::MISS,
    }
}

/// The core PMUs: `cpu_core` and `cpu_atom` on hybrid Intel CPUs (counted on each, summed),
/// otherwise the generic hardware type. Empty when the machine has no CPU PMU at all.
fn core_pmus() -> Vec<Option<u64>> {
    let devices = Path::new("/sys/bus/event_source/devices");
    let hybrid: Vec<Option<u64>> = ["cpu_core", "cpu_atom"]
        .iter()
        .filter_map(|pmu| fs::read_to_string(devices.join(pmu).join("type")).ok())
        .filter_map(|t| t.trim().parse().ok().map(Some))
        .collect();
    if !hybrid.is_empty() {
        hybrid
    } else if devices.join("cpu").exists() {
        vec![None]
    } else {
        Vec::new()
    }
}

fn builder_for<E: Event>(event: E, tid: i32, pmu: Option<u64>) -> Builder<'static> {
    let mut b = Builder::new(event);
    b.observe_pid(tid).any_cpu().include_kernel();
    if let Some(pmu) = pmu {
        // Extended hardware type: the PMU's type in the config's upper half.
        b.attrs_mut().config |= pmu << 32;
    }
    b
}

/// One group on one thread: its members in a fixed order.
struct ThreadGroup {
    side: Side,
    group: Group,
    members: Vec<Counter>,
}

impl ThreadGroup {
    fn hardware(side: Side, tid: i32, pmu: Option<u64>) -> io::Result<Self> {
        let mut group = Group::builder()
            .observe_pid(tid)
            .any_cpu()
            .include_kernel()
            .build_group()?;
        let members = vec![
            group.add(&builder_for(Hardware::CPU_CYCLES, tid, pmu))?,
            group.add(&builder_for(Hardware::INSTRUCTIONS, tid, pmu))?,
            group.add(&builder_for(Hardware::CACHE_MISSES, tid, pmu))?,
            group.add(&builder_for(read_miss(CacheId::LL), tid, pmu))?,
            group.add(&builder_for(read_miss(CacheId::L1D), tid, pmu))?,
        ];
        Ok(Self {
            side,
            group,
            members,
        })
    }

    fn software(side: Side, tid: i32) -> io::Result<Self> {
        let mut group = Group::builder()
            .observe_pid(tid)
            .any_cpu()
            .include_kernel()
            .build_group()?;
        let members = SOFTWARE
            .iter()
            .map(|event| group.add(&builder_for(*event, tid, None)))
            .collect::<io::Result<_>>()?;
        Ok(Self {
            side,
            group,
            members,
        })
    }

    /// Member values, scaled up when the group was multiplexed, and the running share.
    fn read(&mut self) -> io::Result<(Vec<u64>, f64)> {
        let data = self.group.read()?;
        let enabled = data.time_enabled().map_or(0, |d| d.as_nanos());
        let running = data.time_running().map_or(0, |d| d.as_nanos());
        let scale = if running > 0 && running < enabled {
            enabled as f64 / running as f64
        } else {
            1.0
        };
        let values = self
            .members
            .iter()
            .map(|c| data.get(c).map_or(0, |e| (e.value() as f64 * scale) as u64))
            .collect();
        let share = if enabled > 0 {
            running as f64 * 100.0 / enabled as f64
        } else {
            100.0
        };
        Ok((values, share))
    }
}

/// Open counters for one experiment's threads.
pub struct Session {
    hardware: Vec<ThreadGroup>,
    software: Vec<ThreadGroup>,
    hw_unavailable: Option<String>,
    sw_unavailable: Option<String>,
}

impl Session {
    /// Opens, disabled, every counter for every `(side, thread id)`. What cannot be opened is
    /// remembered with its reason; the experiment runs either way.
    pub fn open(threads: &[(Side, i32)]) -> Self {
        let mut session = Self {
            hardware: Vec::new(),
            software: Vec::new(),
            hw_unavailable: None,
            sw_unavailable: None,
        };
        let pmus = core_pmus();
        if pmus.is_empty() {
            session.hw_unavailable = Some(
                "no hardware PMU (/sys/bus/event_source/devices has no cpu, cpu_core or cpu_atom)"
                    .into(),
            );
        }
        for &(side, tid) in threads {
            if session.hw_unavailable.is_none() {
                for &pmu in &pmus {
                    match ThreadGroup::hardware(side, tid, pmu) {
                        Ok(g) => session.hardware.push(g),
                        Err(e) => {
                            session.hw_unavailable =
                                Some(format!("perf_event_open({}): {e}", HARDWARE.join(", ")));
                            session.hardware.clear();
                            break;
                        }
                    }
                }
            }
            if session.sw_unavailable.is_none() {
                match ThreadGroup::software(side, tid) {
                    Ok(g) => session.software.push(g),
                    Err(e) => {
                        session.sw_unavailable = Some(format!(
                            "perf_event_open(task-clock, context-switches, ...): {e}"
                        ));
                        session.software.clear();
                    }
                }
            }
        }
        session
    }

    fn groups(&mut self) -> impl Iterator<Item = &mut ThreadGroup> {
        self.hardware.iter_mut().chain(self.software.iter_mut())
    }

    /// Starts counting (the measured window opens).
    pub fn enable(&mut self) {
        for g in self.groups() {
            // A thread that already exited cannot be counted; its group reads as it stood.
            let _ = g.group.enable();
        }
    }

    /// Stops counting (the measured window closed).
    pub fn disable(&mut self) {
        for g in self.groups() {
            let _ = g.group.disable();
        }
    }

    /// Reads and sums every group per side.
    pub fn read(mut self) -> PerfFigures {
        let mut figures = PerfFigures {
            hw_unavailable: self.hw_unavailable.take(),
            sw_unavailable: self.sw_unavailable.take(),
            ..PerfFigures::default()
        };
        let add = |slot: &mut Option<u64>, v: u64| *slot = Some(slot.unwrap_or(0) + v);
        for g in &mut self.hardware {
            let Ok((v, share)) = g.read() else { continue };
            let side = figures.side_mut(g.side);
            add(&mut side.cycles, v[0]);
            add(&mut side.instructions, v[1]);
            add(&mut side.cache_misses, v[2]);
            add(&mut side.llc_load_misses, v[3]);
            add(&mut side.l1d_load_misses, v[4]);
            figures.hw_running_pct = Some(figures.hw_running_pct.map_or(share, |s| s.min(share)));
        }
        for g in &mut self.software {
            let Ok((v, _)) = g.read() else { continue };
            let side = figures.side_mut(g.side);
            add(&mut side.task_clock_ns, v[0]);
            add(&mut side.context_switches, v[1]);
            add(&mut side.cpu_migrations, v[2]);
            add(&mut side.page_faults, v[3]);
        }
        figures
    }
}

/// The calling thread's id, for [`Session::open`].
pub fn current_tid() -> i32 {
    nix::unistd::gettid().as_raw()
}
