//! Where each worker thread runs. On a small VM the scheduler's choice of CPUs changes loopback
//! throughput up to threefold, so every experiment pins its workers by one policy and every row
//! records it.
//!
//! Loopback's receive-side protocol work (softirq `process_backlog`) runs on the CPU that sent
//! the packet: data segments are processed on the client's CPU, ACKs (and, for zero-copy, the
//! completions they trigger) on the receiver's. `split` therefore gives each side one CPU's
//! worth of work; `same` puts the whole connection, softirq included, on one CPU.

use std::fmt;

use nix::{sched::CpuSet, unistd::Pid};

use crate::side::Side;

/// How worker threads are placed on CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Policy {
    /// Clients on the first half of the allowed CPUs, servers on the second (iperf3 `-A 0,1`).
    Split,
    /// Both ends of connection i on the same CPU, connections round-robin over the CPUs.
    #[default]
    Same,
    /// No pinning: the scheduler decides.
    None,
    /// Explicit CPU lists for each side (`--client-cpus`, `--server-cpus`).
    Cpus,
}

impl Policy {
    pub const ALL: [Policy; 4] = [Policy::Split, Policy::Same, Policy::None, Policy::Cpus];

    pub fn name(self) -> &'static str {
        match self {
            Policy::Split => "split",
            Policy::Same => "same",
            Policy::None => "none",
            Policy::Cpus => "cpus",
        }
    }
}

named_choice!(Policy, "placement", "split, same or none");

/// A policy resolved against the CPUs this process may use: the CPU of every worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub policy: Policy,
    /// CPUs the client threads use, connection i on `client[i % len]`.
    client: Vec<usize>,
    /// CPUs the server threads use, connection i on `server[i % len]`.
    server: Vec<usize>,
}

/// The CPUs this process may run on, ascending.
pub fn allowed_cpus() -> Vec<usize> {
    match nix::sched::sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

impl Placement {
    /// Resolves `policy` on `allowed` CPUs. `Cpus` takes the explicit lists, each of which
    /// must name allowed CPUs only; the other policies take none.
    pub fn resolve(
        policy: Policy,
        allowed: &[usize],
        client: &[usize],
        server: &[usize],
    ) -> Result<Self, String> {
        if allowed.is_empty() {
            return Err("this process may run on no CPU".into());
        }
        let (client, server) = match policy {
            Policy::Split => {
                if allowed.len() < 2 {
                    return Err(format!(
                        "placement split needs two CPUs; this process may use only CPU {}",
                        allowed[0]
                    ));
                }
                let half = allowed.len() / 2;
                (allowed[..half].to_vec(), allowed[half..].to_vec())
            }
            Policy::Same | Policy::None => (allowed.to_vec(), allowed.to_vec()),
            Policy::Cpus => {
                for (side, list) in [("--client-cpus", client), ("--server-cpus", server)] {
                    if list.is_empty() {
                        return Err(format!("placement cpus needs {side}"));
                    }
                    if let Some(bad) = list.iter().find(|c| !allowed.contains(c)) {
                        return Err(format!(
                            "CPU {bad} in {side} is not one this process may use ({})",
                            cpu_list(allowed)
                        ));
                    }
                }
                (client.to_vec(), server.to_vec())
            }
        };
        Ok(Self {
            policy,
            client,
            server,
        })
    }

    /// `policy` on every CPU this process may use.
    pub fn on_this_machine(policy: Policy) -> Result<Self, String> {
        Self::resolve(policy, &allowed_cpus(), &[], &[])
    }

    /// No pinning at all.
    pub fn unpinned() -> Self {
        let allowed = allowed_cpus();
        Self {
            policy: Policy::None,
            client: allowed.clone(),
            server: allowed,
        }
    }

    /// The CPU that `side`'s thread of connection `i` is pinned to; None when unpinned.
    pub fn cpu(&self, side: Side, i: usize) -> Option<usize> {
        if self.policy == Policy::None {
            return None;
        }
        let list = match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        };
        Some(list[i % list.len()])
    }

    /// The distinct CPUs `side`'s `threads` workers run on, ascending (every CPU of the side's
    /// list when unpinned: the scheduler may use any).
    pub fn cpus_used(&self, side: Side, threads: usize) -> Vec<usize> {
        let list = match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        };
        let mut used: Vec<usize> = if self.policy == Policy::None {
            list.clone()
        } else {
            (0..threads.max(1)).map(|i| list[i % list.len()]).collect()
        };
        used.sort_unstable();
        used.dedup();
        used
    }

    /// The explicit lists, as `serve` needs them to pin its side the same way.
    pub fn server_list(&self) -> &[usize] {
        &self.server
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (clients on CPU {}, servers on CPU {})",
            self.policy,
            cpu_list(&self.client),
            cpu_list(&self.server)
        )
    }
}

/// CPUs as the CSV writes them: `0 1` (space-separated, so a cell needs no quoting).
pub fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses `0,2-3` into [0, 2, 3].
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("invalid CPU list '{text}' (expected e.g. 0 or 0,2-3)");
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.trim(), hi.trim()),
            None => (part, part),
        };
        let lo: usize = lo.parse().map_err(|_| bad())?;
        let hi: usize = hi.parse().map_err(|_| bad())?;
        if lo > hi || hi >= CpuSet::count() {
            return Err(bad());
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu).map_err(std::io::Error::from)?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_halves_the_cpus_and_wraps() {
        let p = Placement::resolve(Policy::Split, &[0, 1, 2, 3], &[], &[]).unwrap();
        assert_eq!(
            (0..3).map(|i| p.cpu(Side::Client, i)).collect::<Vec<_>>(),
            [Some(0), Some(1), Some(0)]
        );
        assert_eq!(p.cpu(Side::Server, 0), Some(2));
        assert_eq!(p.cpu(Side::Server, 3), Some(3));
        assert_eq!(p.cpus_used(Side::Server, 1), [2]);
        assert!(Placement::resolve(Policy::Split, &[3], &[], &[]).is_err());
    }

    #[test]
    fn same_puts_both_ends_together() {
        let p = Placement::resolve(Policy::Same, &[0, 1], &[], &[]).unwrap();
        for i in 0..5 {
            assert_eq!(p.cpu(Side::Client, i), p.cpu(Side::Server, i));
            assert_eq!(p.cpu(Side::Client, i), Some(i % 2));
        }
        assert_eq!(p.cpus_used(Side::Client, 1), [0]);
        assert_eq!(p.cpus_used(Side::Client, 8), [0, 1]);
    }

    #[test]
    fn none_pins_nothing_but_names_the_cpus() {
        let p = Placement::resolve(Policy::None, &[0, 1], &[], &[]).unwrap();
        assert_eq!(p.cpu(Side::Client, 0), None);
        assert_eq!(p.cpus_used(Side::Server, 1), [0, 1]);
    }

    #[test]
    fn explicit_lists_are_checked() {
        let p = Placement::resolve(Policy::Cpus, &[0, 1], &[1], &[0]).unwrap();
        assert_eq!(p.cpu(Side::Client, 4), Some(1));
        assert_eq!(p.cpu(Side::Server, 4), Some(0));
        let err = Placement::resolve(Policy::Cpus, &[0, 1], &[7], &[0]).unwrap_err();
        assert!(err.contains("CPU 7"), "{err}");
        assert!(Placement::resolve(Policy::Cpus, &[0, 1], &[], &[0]).is_err());
    }

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0"), Ok(vec![0]));
        assert_eq!(parse_cpu_list("3,0-1"), Ok(vec![0, 1, 3]));
        for bad in ["", "a", "2-1", "1-", "99999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }
}
