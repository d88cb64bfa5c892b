//! Probes grouped by kernel domain, one file each.

pub mod receive;
pub mod send;

/// Why a probe counted nothing. The wrappers turn it into a non-zero return, which the kernel
/// ignores for tracing programs; it exists so each step reads as `?`.
pub struct Skip;
