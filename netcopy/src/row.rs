//! One flat row per experiment and repetition: the one place where a measured figure becomes
//! a column. Every writer (CSV, JSON, plots, report) reads rows and nothing else.
//!
//! An empty cell (`None`) means "not measured", with the reason in a text column
//! (`k_note`, `hw_counters`, `checks`, `error`); it never means 0.

use serde::{Deserialize, Serialize};

use std::time::Duration;

use crate::{
    cpustat::CpuFigures,
    experiment::{KernelFigures, Outcome},
    perf::{PerfFigures, SideCounts},
    placement::cpu_list,
    side::Side,
    workload::{Config, Figures, Mode, SendCounts, Workload},
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub run: String,
    pub experiment: u32,
    pub rep: u32,
    /// The sweep's round the experiment ran in (0: the traced round); empty outside a sweep
    /// and in results written before the column existed.
    #[serde(default)]
    pub round: Option<u32>,
    pub traced: bool,
    pub started_utc: String,
    /// Seconds from the sweep's start to the experiment's; empty outside a sweep.
    #[serde(default)]
    pub sweep_s: Option<f64>,
    /// The release of the kernel the experiment ran on (`uname -r`). Defaulted when reading a
    /// results.csv written before the column existed.
    #[serde(default)]
    pub kernel: String,
    pub elapsed_s: Option<f64>,
    pub mode: String,
    pub path: String,
    /// The path's sending device, its driver and its offloads, as its kernel reported them.
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub device_driver: String,
    #[serde(default)]
    pub device_offloads: String,
    pub workload: String,
    pub size: u64,
    pub threads: u32,
    pub placement: String,
    pub client_cpus: String,
    pub server_cpus: String,
    pub busy_poll: bool,
    pub zerocopy_receive: bool,
    pub ci_target_pct: Option<f64>,
    /// The sweep's time budget, s: no timing run past the minimum starts after it.
    #[serde(default)]
    pub budget_s: Option<f64>,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// The receivers' rate in each 50 ms slice of the window, Gbit/s, space-separated.
    #[serde(default)]
    pub slice_gbps: String,
    pub status: String,
    pub error: String,
    pub send_gbps: Option<f64>,
    pub recv_gbps: Option<f64>,
    pub messages_per_s: Option<f64>,
    pub bytes_sent: Option<u64>,
    pub bytes_received: Option<u64>,
    pub send_calls: Option<u64>,
    pub recv_calls: Option<u64>,
    pub verified_messages: Option<u64>,
    pub user_copy_bytes: Option<u64>,
    pub send_call_p50_us: Option<f64>,
    pub send_call_p99_us: Option<f64>,
    pub rtt_p50_us: Option<f64>,
    pub rtt_p99_us: Option<f64>,
    pub rtt_p999_us: Option<f64>,
    pub rtt_mean_us: Option<f64>,
    pub zc_sends: Option<u64>,
    pub zc_completed: Option<u64>,
    pub zc_notifications: Option<u64>,
    pub zc_copied: Option<u64>,
    pub zc_copied_pct: Option<f64>,
    pub enobufs_retries: Option<u64>,
    pub zc_mapped_bytes: Option<u64>,
    pub zc_copied_bytes: Option<u64>,
    pub k_send_calls: Option<u64>,
    pub k_send_bytes: Option<u64>,
    pub k_copied_at_send_bytes: Option<u64>,
    pub k_pinned_bytes: Option<u64>,
    pub k_referenced_at_send_bytes: Option<u64>,
    pub k_unclassified_send_bytes: Option<u64>,
    pub k_deferred_copy_bytes: Option<u64>,
    pub k_recopied_bytes: Option<u64>,
    pub k_deferred_copy_unseen_bytes: Option<u64>,
    pub k_deferred_copy_pages: Option<u64>,
    pub k_deferred_copy_pages_required: Option<u64>,
    pub k_fallback_pct: Option<f64>,
    pub k_copied_at_transmit_bytes: Option<u64>,
    pub zc_underreport_pct: Option<f64>,
    pub k_zc_notifications: Option<u64>,
    pub k_recv_calls: Option<u64>,
    pub k_recv_bytes: Option<u64>,
    pub k_recv_copy_bytes: Option<u64>,
    pub k_skipped_events: Option<u64>,
    pub k_note: String,
    pub copies_per_byte: Option<f64>,
    pub client_cycles: Option<u64>,
    pub client_instructions: Option<u64>,
    pub client_cache_misses: Option<u64>,
    pub client_llc_load_misses: Option<u64>,
    pub client_l1d_load_misses: Option<u64>,
    pub client_task_clock_ms: Option<f64>,
    pub client_context_switches: Option<u64>,
    pub client_cpu_migrations: Option<u64>,
    pub client_page_faults: Option<u64>,
    pub server_cycles: Option<u64>,
    pub server_instructions: Option<u64>,
    pub server_cache_misses: Option<u64>,
    pub server_llc_load_misses: Option<u64>,
    pub server_l1d_load_misses: Option<u64>,
    pub server_task_clock_ms: Option<f64>,
    pub server_context_switches: Option<u64>,
    pub server_cpu_migrations: Option<u64>,
    pub server_page_faults: Option<u64>,
    pub cpu_busy_ms: Option<f64>,
    pub cpu_softirq_ms: Option<f64>,
    pub client_cpu_busy_ms: Option<f64>,
    pub server_cpu_busy_ms: Option<f64>,
    pub cpu_ns_per_byte: Option<f64>,
    pub client_cpu_ns_per_byte: Option<f64>,
    pub server_cpu_ns_per_byte: Option<f64>,
    pub cpu_note: String,
    pub observer_ms: Option<f64>,
    pub observer_pct: Option<f64>,
    pub attached_programs: Option<u32>,
    pub hw_counters: String,
    pub hw_running_pct: Option<f64>,
    pub ipc: Option<f64>,
    pub cycles_per_byte: Option<f64>,
    pub checks: String,
}

/// `status` of a row whose experiment ran to the end.
pub const OK: &str = "ok";
/// `status` of a row whose experiment failed; `error` says why.
pub const FAILED: &str = "failed";

/// The error queue's copied share of a zero-copy mode's completed sends.
fn p_copied_pct(f: &crate::workload::Figures) -> Option<f64> {
    f.send_counts.copied_pct()
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// The `slice_gbps` cell: each slice's rate, space-separated.
fn slices_cell(rates: &[f64]) -> String {
    let cells: Vec<String> = rates.iter().map(|r| format!("{r:.4}")).collect();
    cells.join(" ")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Row {
    /// The columns every row has, whatever happened: what was asked for, and when it began
    /// (`started_utc`, from the wall clock).
    pub fn planned(run: &str, experiment: u32, rep: u32, traced: bool, config: &Config) -> Self {
        let p = &config.placement;
        Self {
            run: run.to_owned(),
            experiment,
            rep,
            traced,
            started_utc: crate::timestamp::utc_now(true),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            mode: config.mode.name().to_owned(),
            path: config.net_path.name().to_owned(),
            workload: config.workload.name().to_owned(),
            size: config.size as u64,
            threads: config.threads as u32,
            placement: p.policy.name().to_owned(),
            client_cpus: cpu_list(&p.cpus_used(Side::Client, config.threads)),
            server_cpus: cpu_list(&p.cpus_used(Side::Server, config.threads)),
            busy_poll: config.busy_poll,
            zerocopy_receive: config.zerocopy_receive,
            warmup_s: config.warmup.as_secs_f64(),
            duration_s: config.duration.as_secs_f64(),
            ..Self::default()
        }
        .with_device(config)
    }

    fn with_device(mut self, config: &Config) -> Self {
        if let Some(d) = &config.device {
            self.device = d.name.clone();
            self.device_driver = d.driver.clone();
            self.device_offloads = d.offloads.describe();
        }
        self
    }

    /// A row for an experiment that could not run or finish.
    pub fn failed(mut self, error: &str) -> Self {
        self.status = FAILED.to_owned();
        self.error = error.replace('\n', " ");
        self.checks = "not run".to_owned();
        self
    }

    /// Every figure of a finished experiment.
    pub fn measured(mut self, outcome: &Outcome) -> Self {
        self = self.with_device(&outcome.config);
        let f = &outcome.figures;
        self.status = OK.to_owned();
        self.send_gbps = Some(f.send_gbps());
        self.recv_gbps = (outcome.config.workload == Workload::Rr
            || !outcome.config.net_path.is_sink())
        .then(|| f.recv_gbps());
        self.messages_per_s = Some(f.messages_per_sec());
        self.slice_gbps = slices_cell(&f.slice_gbps);
        self.bytes_sent = Some(f.bytes_sent);
        self.bytes_received = Some(f.bytes_received);
        self.send_calls = Some(f.send_counts.send_calls);
        self.recv_calls = Some(f.recv_calls);
        self.verified_messages = Some(f.verified_messages);
        self.zc_mapped_bytes = f.zc_receive.map(|zc| zc.mapped_bytes);
        self.zc_copied_bytes = f.zc_receive.map(|zc| zc.copied_bytes);
        // A1's own copy: every byte it sends was first copied into its buffer.
        self.user_copy_bytes = Some(if outcome.config.mode == Mode::A1 {
            f.bytes_sent
        } else {
            0
        });
        self.latencies(f);
        if outcome.config.mode.is_zero_copy() {
            self.zero_copy_sends(&f.send_counts);
        }
        self.checks = "not traced".to_owned();
        if let Some(k) = &outcome.kernel {
            self.kernel(k, f, outcome.config.mode);
            self.checks = outcome.checks();
        }
        self.perf(&f.perf, f.window_bytes_sent);
        self.cpu(&f.cpu, f.window_bytes_sent);
        self.attached_programs = outcome.attached_programs;
        self.observer_ms = f.observer_time.map(|(o, _)| ms(o));
        self.observer_pct = match f.observer_time {
            Some((o, busy)) if !busy.is_zero() => {
                Some(o.as_secs_f64() * 100.0 / busy.as_secs_f64())
            }
            _ => None,
        };
        self
    }

    /// Send-call and round-trip latency quantiles, where recorded.
    fn latencies(&mut self, f: &Figures) {
        if let Some(h) = f.send_latency.as_ref().filter(|h| !h.is_empty()) {
            self.send_call_p50_us = Some(us(h.value_at_quantile(0.5)));
            self.send_call_p99_us = Some(us(h.value_at_quantile(0.99)));
        }
        if let Some(h) = f.round_trip.as_ref().filter(|h| !h.is_empty()) {
            self.rtt_p50_us = Some(us(h.value_at_quantile(0.5)));
            self.rtt_p99_us = Some(us(h.value_at_quantile(0.99)));
            self.rtt_p999_us = Some(us(h.value_at_quantile(0.999)));
            self.rtt_mean_us = Some(h.mean() / 1e3);
        }
    }

    /// What the sender read from the error queue.
    fn zero_copy_sends(&mut self, p: &SendCounts) {
        self.zc_sends = Some(p.zc_sends);
        self.zc_completed = Some(p.zc_completed);
        self.zc_notifications = Some(p.zc_notifications);
        self.zc_copied = Some(p.zc_copied);
        self.zc_copied_pct = p.copied_pct();
        self.enobufs_retries = Some(p.enobufs_retries);
    }

    /// The kernel's columns: each figure its hooks saw, empty where none could.
    fn kernel(&mut self, k: &KernelFigures, f: &crate::workload::Figures, mode: Mode) {
        let c = &k.counters;
        let bytes_sent = f.bytes_sent;
        self.k_send_calls = k.figure("k_send_calls", c.send_calls);
        self.k_send_bytes = k.figure("k_send_bytes", c.send_bytes);
        self.k_copied_at_send_bytes = k.figure("k_copied_at_send_bytes", c.copied_at_send_bytes());
        self.k_pinned_bytes = k.figure("k_pinned_bytes", c.pinned_bytes());
        self.k_referenced_at_send_bytes =
            k.figure("k_referenced_at_send_bytes", c.tcp_referenced_at_send_bytes);
        self.k_unclassified_send_bytes =
            k.figure("k_unclassified_send_bytes", c.unclassified_send_bytes);
        self.k_deferred_copy_bytes = k.figure("k_deferred_copy_bytes", c.deferred_copy_bytes);
        self.k_recopied_bytes = k.figure("k_recopied_bytes", c.recopied_bytes);
        self.k_deferred_copy_unseen_bytes =
            k.figure("k_deferred_copy_unseen_bytes", c.deferred_copy_unseen_bytes);
        self.k_deferred_copy_pages = k.deferred_copy_pages();
        self.k_deferred_copy_pages_required = k.figure(
            "k_deferred_copy_pages_required",
            c.deferred_copy_pages_required,
        );
        self.k_note = k.note();
        self.k_fallback_pct = k.fallback_pct();
        self.k_copied_at_transmit_bytes = k.copied_at_transmit_bytes();
        self.zc_underreport_pct = k.underreport_pct(mode, p_copied_pct(f));
        self.k_zc_notifications = k.figure("k_zc_notifications", c.zc_notifications);
        self.k_recv_calls = k.figure("k_recv_calls", c.recv_calls);
        self.k_recv_bytes = k.figure("k_recv_bytes", c.recv_bytes);
        self.k_recv_copy_bytes = k.recv_copy_bytes();
        self.k_skipped_events = Some(k.skipped_events());
        // Only when every copy was seen: a partial sum is not a figure.
        if let (true, Some(at_send), Some(deferred), Some(again), Some(to_user)) = (
            bytes_sent > 0,
            self.k_copied_at_send_bytes,
            self.k_deferred_copy_bytes,
            self.k_recopied_bytes,
            self.k_recv_copy_bytes,
        ) {
            let copies = self.user_copy_bytes.unwrap_or(0) + at_send + deferred + again + to_user;
            self.copies_per_byte = Some(copies as f64 / bytes_sent as f64);
        }
    }

    /// CPU time of the experiment's CPUs over the window, and per byte the clients sent in it.
    fn cpu(&mut self, c: &CpuFigures, window_bytes: u64) {
        let per_byte = |d: Option<Duration>| {
            d.filter(|_| window_bytes > 0)
                .map(|d| d.as_nanos() as f64 / window_bytes as f64)
        };
        self.cpu_busy_ms = c.busy.map(ms);
        self.cpu_softirq_ms = c.softirq.map(ms);
        self.client_cpu_busy_ms = c.client_busy.map(ms);
        self.server_cpu_busy_ms = c.server_busy.map(ms);
        self.cpu_ns_per_byte = per_byte(c.busy);
        self.client_cpu_ns_per_byte = per_byte(c.client_busy);
        self.server_cpu_ns_per_byte = per_byte(c.server_busy);
        self.cpu_note = c.note.clone().unwrap_or_default();
    }

    fn perf(&mut self, p: &PerfFigures, window_bytes: u64) {
        let task_ms = |ns: Option<u64>| ns.map(|ns| ms(Duration::from_nanos(ns)));
        let side = |s: &SideCounts| {
            (
                s.cycles,
                s.instructions,
                s.cache_misses,
                s.llc_load_misses,
                s.l1d_load_misses,
                task_ms(s.task_clock_ns),
                s.context_switches,
                s.cpu_migrations,
                s.page_faults,
            )
        };
        (
            self.client_cycles,
            self.client_instructions,
            self.client_cache_misses,
            self.client_llc_load_misses,
            self.client_l1d_load_misses,
            self.client_task_clock_ms,
            self.client_context_switches,
            self.client_cpu_migrations,
            self.client_page_faults,
        ) = side(&p.client);
        (
            self.server_cycles,
            self.server_instructions,
            self.server_cache_misses,
            self.server_llc_load_misses,
            self.server_l1d_load_misses,
            self.server_task_clock_ms,
            self.server_context_switches,
            self.server_cpu_migrations,
            self.server_page_faults,
        ) = side(&p.server);
        self.hw_counters = p
            .hw_unavailable
            .clone()
            .unwrap_or_else(|| "measured".to_owned());
        self.hw_running_pct = p.hw_running_pct;
        self.ipc = p.ipc();
        self.cycles_per_byte = p.cycles_per_byte(window_bytes);
    }

    /// The CSV header: every column name, in order.
    pub fn columns() -> Vec<String> {
        csv_columns::<Row>()
    }

    pub fn is_ok(&self) -> bool {
        self.status == OK
    }

    /// The rates of the window's slices (see `slice_gbps`); empty when not measured.
    pub fn slice_rates(&self) -> Vec<f64> {
        self.slice_gbps
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    }

    /// The point's primary figure, the one its repetitions are repeated until confident of:
    /// stream throughput, or the rr median round trip.
    pub fn primary(&self) -> Option<f64> {
        if self.workload == Workload::Rr.name() {
            self.rtt_p50_us
        } else {
            self.send_gbps
        }
    }
}

/// The CSV column names of a flat row type, in order (what serde names its fields).
pub fn csv_columns<T: serde::Serialize + Default>() -> Vec<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.serialize(T::default()).expect("a flat row serializes");
    let bytes = w.into_inner().expect("in memory");
    let text = String::from_utf8(bytes).expect("utf-8");
    text.lines()
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect()
}
