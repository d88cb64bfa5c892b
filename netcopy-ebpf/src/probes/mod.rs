//! Probes grouped by kernel domain, one file each.

pub mod completion;
pub mod connection;
pub mod deferred_copy;
pub mod receive;
pub mod send;
pub mod transmit;

/// Why a probe counted nothing. The wrappers turn it into a non-zero return, which the kernel
/// ignores for tracing programs; it exists so each step reads as `?`.
pub struct Skip;

/// `option?` in a probe: a None means there is nothing to count.
pub trait OrSkip<T> {
    fn or_skip(self) -> Result<T, Skip>;
}

impl<T> OrSkip<T> for Option<T> {
    #[inline(always)]
    fn or_skip(self) -> Result<T, Skip> {
        self.ok_or(Skip)
    }
}
