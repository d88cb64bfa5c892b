//! A kernel that lacks a hook still gets every figure the other hooks can give: withholding one
//! hook (`NETCOPY_WITHHOLD_HOOKS`) empties exactly the columns it feeds, names why in `k_note`,
//! and leaves every other figure measured and cross-checked.

mod common;

use std::{collections::BTreeMap, process::Command};

/// One traced a3 stream run through `netcopy sweep` with `withheld` withheld; its row.
fn traced_row(withheld: &str) -> BTreeMap<String, String> {
    let dir = std::env::temp_dir().join(format!(
        "netcopy-withhold-{withheld}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .env("NETCOPY_WITHHOLD_HOOKS", withheld)
        .args([
            "sweep",
            "--modes",
            "a3",
            "--sizes",
            "16K",
            "--threads",
            "1",
            "--workload",
            "stream",
            "--reps",
            "1",
            "--trace-all",
            "--duration",
            "200ms",
            "--warmup",
            "100ms",
            "--out",
        ])
        .arg(&dir)
        .output()
        .expect("netcopy sweep");
    assert!(
        out.status.success(),
        "{withheld}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_path(dir.join("latest/results.csv")).expect("results.csv");
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 1, "{withheld}");
    let _ = std::fs::remove_dir_all(&dir);
    header
        .iter()
        .zip(rows[0].iter())
        .map(|(h, v)| (h.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn a_withheld_hook_empties_only_its_columns() {
    if common::tracer_or_skip("a_withheld_hook_empties_only_its_columns").is_none() {
        return;
    }
    for (withheld, emptied) in [
        ("mm_page_alloc", &["k_deferred_copy_pages"][..]),
        (
            "skb_copy_datagram_iovec",
            &["k_recv_copy_bytes", "copies_per_byte"][..],
        ),
        ("inet_sk_error_report", &["k_zc_notifications"][..]),
    ] {
        let row = traced_row(withheld);
        assert_eq!(row["checks"], "ok", "{withheld}: {row:?}");
        assert!(
            row["k_note"].contains(withheld) || row["k_note"].contains("withheld"),
            "{withheld}: {}",
            row["k_note"]
        );
        for (column, value) in &row {
            if !column.starts_with("k_") || column == "k_note" {
                continue;
            }
            // Loopback never attaches the copies at transmit: empty in every row, with why.
            let idle = column == "k_copied_at_transmit_bytes";
            let empty = idle || emptied.contains(&column.as_str());
            assert_eq!(
                value.is_empty(),
                empty,
                "{withheld}: {column} = {value:?} (note: {})",
                row["k_note"]
            );
            if empty {
                assert!(
                    row["k_note"].contains(column.as_str()),
                    "{column}: {}",
                    row["k_note"]
                );
            }
        }
        for column in emptied.iter().filter(|c| !c.starts_with("k_")) {
            assert_eq!(row[*column], "", "{withheld}: {column}");
        }
        // The figures still seen agree with userspace exactly.
        assert_eq!(row["k_send_bytes"], row["bytes_sent"], "{withheld}");
        assert_eq!(row["k_pinned_bytes"], row["bytes_sent"], "{withheld}");
        assert_eq!(
            row["k_deferred_copy_bytes"], row["bytes_sent"],
            "{withheld}"
        );
    }
}

/// `netcopy check` names a missing hook on one line, with the columns it empties, and says the
/// load was partial (exit 1) while every other hook attached.
#[test]
fn check_names_a_missing_hook_and_its_columns() {
    if common::tracer_or_skip("check_names_a_missing_hook_and_its_columns").is_none() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .env("NETCOPY_WITHHOLD_HOOKS", "mm_page_alloc")
        .arg("check")
        .output()
        .expect("netcopy check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let missing: Vec<&str> = text.lines().filter(|l| l.starts_with("missing:")).collect();
    assert_eq!(missing.len(), 1, "{text}");
    assert!(
        missing[0].contains("mm_page_alloc")
            && missing[0].contains("withheld")
            && missing[0].contains("k_deferred_copy_pages"),
        "{}",
        missing[0]
    );
    // A hook on a path this kernel does not take (tcp_sendpage after 6.5) is not missing.
    let attached = text.lines().filter(|l| l.starts_with("attached:")).count();
    let absent = text.lines().filter(|l| l.starts_with("absent:")).count();
    assert_eq!(
        attached + absent,
        netcopy::kernel::tracer::HOOKS.len() - 1,
        "{text}"
    );
}

/// Withholding a hook's tracepoint alone makes the loader try its fallbacks in rank order,
/// and `check` names each attempt. Here fentry/fexit are refused, so the hook ends missing
/// with every attempt's reason; on a kernel that allows them it attaches by the next one.
#[test]
fn a_withheld_tracepoint_falls_back_in_rank_order() {
    if common::tracer_or_skip("a_withheld_tracepoint_falls_back_in_rank_order").is_none() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .env("NETCOPY_WITHHOLD_HOOKS", "tp_btf/sock_send_length")
        .arg("check")
        .output()
        .expect("netcopy check");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(" sock_send_length "))
        .unwrap_or_else(|| panic!("no sock_send_length line: {text}"));
    let hook = netcopy::kernel::tracer::HOOKS
        .iter()
        .find(|h| h.program == "sock_send_length")
        .unwrap();
    let fallbacks = &hook.attachments[1..];
    assert!(!fallbacks.is_empty());
    if let Some(rest) = line.strip_prefix("attached: sock_send_length by ") {
        // A kernel with fentry/fexit: the first fallback its BTF offers.
        assert!(rest.starts_with("fexit "), "{line}");
        assert_eq!(out.status.code(), Some(0), "{text}");
        return;
    }
    assert!(line.starts_with("missing:"), "{line}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    let withheld = line
        .find("tp_btf sock:sock_send_length: withheld")
        .unwrap_or_else(|| panic!("{line}"));
    // Each fallback appears after the one ranked before it, with its own reason.
    let mut at = withheld;
    for att in fallbacks {
        let name = att.target;
        let found = line[at..]
            .find(name)
            .unwrap_or_else(|| panic!("{name} not tried after the previous: {line}"));
        at += found + name.len();
    }
    assert!(line.contains("empties k_send_calls"), "{line}");
}
