use super::*;

#[test]
fn missed_runs_are_counted_from_the_first_reading() {
    let before = [("a", 3), ("b", 5)];
    let after = [("a", 3), ("b", 7), ("c", 1)];
    assert_eq!(
        missed_since(&before, &after),
        vec![("b".to_owned(), 2), ("c".to_owned(), 1)]
    );
}

#[test]
fn a_missed_run_fails_the_checks_unless_the_pages_check_covers_it() {
    let mut k = KernelFigures {
        missed_runs: vec![(PAGES_PROGRAM.to_owned(), 4)],
        ..KernelFigures::default()
    };
    assert_eq!(kernel_checks(&k), Vec::<String>::new());
    assert!(k.note().contains("mm_page_alloc missed 4 runs"));
    k.missed_runs.push(("sock_send_length".to_owned(), 1));
    assert_eq!(
        kernel_checks(&k),
        vec!["program runs the kernel skipped: sock_send_length: 1".to_owned()]
    );
}

/// A column fed by a function instead of a tracepoint keeps its figure and says how; an
/// empty one says why; columns fed the same way share one entry.
#[test]
fn the_note_names_fallbacks_beside_empty_columns() {
    let how = "fed by fexit sock_recvmsg".to_owned();
    let k = KernelFigures {
        unseen: [("k_zc_notifications".to_owned(), "hook gone".to_owned())].into(),
        fed_by: [
            ("k_recv_bytes".to_owned(), how.clone()),
            ("k_recv_calls".to_owned(), how),
        ]
        .into(),
        ..KernelFigures::default()
    };
    assert_eq!(
        k.note(),
        "k_zc_notifications: hook gone; k_recv_bytes, k_recv_calls: fed by fexit sock_recvmsg"
    );
    assert_eq!(k.figure("k_recv_bytes", 7), Some(7));
    assert_eq!(k.shown("k_zc_notifications", 0), "- (not seen)");
}

/// Pages seen may fall short of the pages required by the page program's skipped runs, and by
/// no more; more pages than required always fail.
#[test]
fn the_pages_check_allows_only_the_runs_the_kernel_skipped() {
    let mut k = KernelFigures {
        missed_runs: vec![(PAGES_PROGRAM.to_owned(), 16)],
        ..KernelFigures::default()
    };
    k.counters.deferred_copy_pages_required = 68_699;
    k.counters.deferred_copy_pages = 68_683;
    assert_eq!(kernel_checks(&k), Vec::<String>::new());
    k.counters.deferred_copy_pages = 68_682;
    assert_eq!(
        kernel_checks(&k),
        vec![
            "deferred-copy pages: observed 68682 != required 68699 (mm_page_alloc skipped 16 runs)"
                .to_owned()
        ]
    );
    k.counters.deferred_copy_pages = 68_700;
    assert_eq!(kernel_checks(&k).len(), 1);
    k.missed_runs.clear();
    k.counters.deferred_copy_pages = 68_683;
    assert_eq!(kernel_checks(&k).len(), 1);
}
