//! Kernel text addresses from /proc/kallsyms (root sees real addresses; others see zeros),
//! read by aya.

/// The address range `[start, end)` of function `name`: from its address to the next higher
/// symbol's. None when the symbol is absent or addresses are hidden. Only core-kernel symbols
/// match: aya keeps a module symbol's `[module]` column in its name. A symbol sharing its
/// address with another is known by one of the names only (skb_copy_ubufs has no alias).
pub fn function_range(name: &str) -> Option<(u64, u64)> {
    let symbols = aya::util::kernel_symbols().ok()?;
    let (&start, _) = symbols.iter().find(|(_, sym)| *sym == name)?;
    if start == 0 {
        return None;
    }
    let (&end, _) = symbols.range(start + 1..).next()?;
    Some((start, end))
}
