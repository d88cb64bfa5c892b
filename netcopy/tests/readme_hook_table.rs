//! The README's map from every `k_*` column to its programs and kernel hooks agrees with the
//! code's own hook list (`HOOKS`), in both directions: a column added without a row, or a hook
//! whose columns are not listed, fails here.

mod common;

use std::collections::BTreeMap;

use netcopy::{kernel::tracer::HOOKS, row::Row};

/// The table between the `hooks:begin` and `hooks:end` markers: column -> (programs, hooks,
/// mechanisms by kernel).
fn readme_table() -> BTreeMap<String, (Vec<String>, String, String)> {
    common::readme_section("hooks:begin", "hooks:end")
        .lines()
        .filter(|l| l.starts_with("| `k_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let column = cells[1].trim_matches('`').to_owned();
            let programs = cells[3]
                .split(',')
                .map(|p| p.trim().trim_matches('`').to_owned())
                .filter(|p| !p.is_empty())
                .collect();
            (column, (programs, cells[4].to_owned(), cells[5].to_owned()))
        })
        .collect()
}

#[test]
fn every_kernel_column_is_mapped_to_the_hooks_that_feed_it() {
    let table = readme_table();
    let columns: Vec<String> = Row::columns()
        .into_iter()
        .filter(|c| c.starts_with("k_"))
        .collect();
    for column in &columns {
        assert!(
            table.contains_key(column),
            "README hook table lacks {column}"
        );
    }
    for (column, (programs, hooks, mechanisms)) in &table {
        assert!(
            columns.contains(column),
            "README lists {column}, no CSV column"
        );
        // Not a hook's figure: why cells are empty, and what no program could count.
        if column == "k_note" || column == "k_skipped_events" {
            continue;
        }
        // Every program named feeds the column, and its hook is named beside it.
        for program in programs {
            let hook = HOOKS
                .iter()
                .find(|h| h.program == program)
                .unwrap_or_else(|| panic!("{column}: no program {program}"));
            assert!(
                hook.feeds.contains(&column.as_str()),
                "{program} does not feed {column}"
            );
            assert!(
                hooks.contains(hook.event()),
                "{column}: hook of {program} not named"
            );
            // Every way it can attach, in its rank order, as `check` names it.
            let mut at = 0;
            for att in hook.attachments {
                let label = format!("`{}`", att.label());
                let found = mechanisms[at..].find(&label).unwrap_or_else(|| {
                    panic!("{column}: {label} missing or out of order in {mechanisms:?}")
                });
                at += found + label.len();
            }
        }
        // No mechanism named that no hook of the column has.
        for named in mechanisms.split('`').skip(1).step_by(2) {
            assert!(
                HOOKS
                    .iter()
                    .filter(|h| h.feeds.contains(&column.as_str()))
                    .flat_map(|h| h.attachments)
                    .any(|a| a.label() == named),
                "{column}: README names {named}, which feeds no such column"
            );
        }
        // Every hook that feeds the column is named.
        for hook in HOOKS.iter().filter(|h| h.feeds.contains(&column.as_str())) {
            assert!(
                programs.iter().any(|p| p == hook.program),
                "{column}: README omits {}",
                hook.program
            );
        }
    }
}
