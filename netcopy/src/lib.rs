//! netcopy: what Linux really copies when a program sends data over a socket.
//!
//! The library holds the workloads, the kernel tracer and the output; `main.rs` is only the
//! command line on top.

pub mod error;
pub mod experiment;
pub mod explain;
pub mod interrupt;
pub mod kernel;
pub mod netpath;
pub mod output;
pub mod perf;
pub mod remote;
pub mod row;
pub mod sweep;
pub mod trace;
pub mod units;
pub mod workload;

pub use error::{Error, Result};
