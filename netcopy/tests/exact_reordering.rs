//! The deferred copy stays exact when segments arrive out of order and TCP retransmits: a
//! MSG_ZEROCOPY sender that is not netcopy's (tests/programs/zc_reorder_sender.py) moves its
//! sending thread between the CPUs after every send, so consecutive segments enter the
//! receive path from both CPUs and arrive reordered. Traced by `netcopy trace`, every pinned
//! byte is copied at delivery exactly once (deferred copy = bytes sent), and the bytes copied
//! again are exactly the kernel's own count of retransmitted bytes (`tcpi_bytes_retrans`).

mod common;

use std::{path::PathBuf, process::Command};

use netcopy::trace::TraceRow;

/// 256 MiB: about 4 000 segments of 64 KiB, enough for reordering and retransmissions.
const BYTES: u64 = 256 << 20;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/programs/zc_reorder_sender.py")
}

#[test]
fn a_foreign_zero_copy_sender_under_reordering_is_exact() {
    if !netcopy::kernel::can_trace() {
        assert!(!common::in_ci(), "tracing needs root under CI");
        eprintln!("SKIPPED: tracing needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("netcopy-reorder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("sender.json");
    let status = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .args(["trace", "--out"])
        .arg(&dir)
        .args(["--", "python3"])
        .arg(script())
        .arg(BYTES.to_string())
        .arg(&report)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("netcopy trace");
    assert!(status.success(), "{status}");
    let sender: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("sender report"))
            .expect("sender JSON");
    let figure = |k: &str| sender[k].as_u64().expect(k);
    let (sent, retrans) = (figure("sent"), figure("tcpi_bytes_retrans"));
    assert_eq!(sent, BYTES);
    assert_eq!(figure("received"), sent, "the receiver read everything");
    assert_eq!(
        figure("unacked"),
        0,
        "every byte acknowledged before the report"
    );
    assert_eq!(
        figure("tcpi_bytes_sent"),
        sent + retrans,
        "kernel: {sender}"
    );

    let rows: Vec<TraceRow> = csv::Reader::from_path(dir.join("trace.csv"))
        .expect("trace.csv")
        .deserialize()
        .collect::<Result<_, _>>()
        .expect("trace rows parse");
    let _ = std::fs::remove_dir_all(&dir);
    let sum = |f: fn(&TraceRow) -> Option<u64>| rows.iter().filter_map(f).sum::<u64>();
    let all = format!("{rows:?}");
    assert_eq!(sum(|r| r.k_pinned_bytes), sent, "{all}");
    assert_eq!(sum(|r| r.k_deferred_copy_bytes), sent, "{all}");
    assert_eq!(sum(|r| r.k_recopied_bytes), retrans, "{all}");
    // The pages observer is not held here: with the thread moving between CPUs, page
    // allocations under `mm_page_alloc`'s own program are interrupted by deliveries, whose
    // allocations the kernel then does not run the program for (a recursion miss).
}
