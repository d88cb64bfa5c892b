//! netcopy: what Linux really copies when a program sends data over a socket.
//!
//! The library holds the workloads, the kernel tracer and the output; `main.rs` is only the
//! command line on top.

/// `Display` and `FromStr` for an enum of named choices (one with `ALL` and `name()`): the
/// command line and the CSV spell each choice one way, and a wrong one is named in the error.
macro_rules! named_choice {
    ($ty:ty, $kind:literal, $expected:literal) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .into_iter()
                    .find(|c| c.name().eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        format!(
                            concat!("unknown ", $kind, " '{}' (expected ", $expected, ")"),
                            s
                        )
                    })
            }
        }
    };
}

pub mod cpustat;
pub mod device;
pub mod error;
pub mod experiment;
pub mod explain;
pub mod interrupt;
pub mod kernel;
pub mod netns;
pub mod netpath;
pub mod output;
pub mod perf;
pub mod placement;
pub mod remote;
pub mod row;
pub mod side;
pub mod stats;
pub mod sweep;
pub mod timestamp;
pub mod trace;
pub mod units;
pub mod workload;

pub use error::{Error, Result};
