//! A workload that fails halfway through starting its workers leaves none running: with the
//! sixth worker spawn made to fail (`NETCOPY_FAIL_SPAWN`, a test-only switch), the
//! experiment's row fails and, by the time it has, the process has exactly the threads it had
//! before. The next experiment then runs normally.

use std::time::{Duration, Instant};

use netcopy::{
    experiment,
    workload::{Config, Mode, Prepared, Workload},
};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn a_failed_start_leaves_no_worker_behind() {
    // SAFETY: the only test in this binary, and it sets the variable before any thread of
    // its own reads the environment.
    unsafe { std::env::set_var("NETCOPY_FAIL_SPAWN", "6") };
    for workload in [Workload::Stream, Workload::Rr] {
        let before = threads();
        let mut config = Config::new(Mode::A1, workload, 1024, 4);
        config.port = 0;
        config.warmup = Duration::from_millis(50);
        config.duration = Duration::from_millis(100);
        let started = Instant::now();
        let result = experiment::run(Prepared::bind(config.clone()).unwrap(), None, 1);
        if workload == Workload::Stream {
            // Four receivers and one sender started (it would send forever), the second sender
            // did not: the failure is reported...
            let err = result.expect_err("the sixth spawn fails");
            assert!(err.to_string().contains("NETCOPY_FAIL_SPAWN"), "{err}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
        } else {
            // ...and the next experiment (the switch fires once) runs whole.
            let outcome = result.expect("the next experiment runs");
            assert!(outcome.figures.bytes_received > 0);
        }
        // ...and every worker it had started is gone.
        assert_eq!(threads(), before, "{workload}: threads left running");
    }
}
