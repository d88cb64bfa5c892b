//! Kernel text addresses from /proc/kallsyms (root sees real addresses; others see zeros).

use std::fs;

/// The address range `[start, end)` of function `name`: from its address to the next higher
/// symbol's. None when the symbol is absent or addresses are hidden.
pub fn function_range(name: &str) -> Option<(u64, u64)> {
    let text = fs::read_to_string("/proc/kallsyms").ok()?;
    let mut start = None;
    let mut addresses = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(addr), Some(kind), Some(sym)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        // Module symbols carry a fourth column; the function is in the core kernel.
        if parts.next().is_some() {
            continue;
        }
        if sym == name && matches!(kind, "T" | "t") {
            start = Some(addr);
        }
        addresses.push(addr);
    }
    let start = start.filter(|&a| a != 0)?;
    let end = addresses.into_iter().filter(|&a| a > start).min()?;
    Some((start, end))
}
