//! No program is attached while a speed figure is taken: the kernel's own link list says so,
//! and the untraced runs of a traced sweep are as fast as a sweep that loaded nothing.

mod common;

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use netcopy::{kernel::tracer::Tracer, stats::Estimate};

/// The hooks attached at load on this kernel: every one the gate attached but the on-demand
/// ones (a hook on a path this kernel does not take, such as `tcp_sendpage` after 6.5, has
/// none).
fn always_attached() -> u32 {
    let _alone = in_process();
    let tracer = Tracer::load().expect("loading the programs");
    let hooks = tracer.mechanisms().iter().filter(|(h, _)| !h.on_demand);
    hooks.count() as u32
}

/// Held while this process has a tracer of its own, so a test can tell its tracer's threads
/// from another test's.
static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn in_process() -> std::sync::MutexGuard<'static, ()> {
    IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner())
}

/// This process's threads named `name`, by thread id.
fn threads_named(name: &str) -> Vec<String> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("listing this process's threads");
    tasks
        .filter_map(|t| t.ok()?.file_name().into_string().ok())
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                .is_ok_and(|comm| comm.trim() == name)
        })
        .collect()
}

/// How many times the kernel has switched thread `tid` out because it slept.
fn sleeps(tid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .expect("a voluntary_ctxt_switches line");
    line.trim().parse().unwrap()
}

/// The thread that drains the programs' ring buffer sleeps while they are detached, so an
/// untraced run shares its CPUs with no part of the observer: the kernel's count of that
/// thread's sleeps stands still, where attached it wakes every few milliseconds.
#[test]
fn the_observer_thread_sleeps_while_the_programs_are_detached() {
    let _alone = in_process();
    let before = threads_named("deliveries");
    let Some(mut tracer) = common::tracer_or_skip("observer thread") else {
        return;
    };
    let ours: Vec<String> = threads_named("deliveries")
        .into_iter()
        .filter(|t| !before.contains(t))
        .collect();
    assert_eq!(ours.len(), 1, "the tracer's draining thread: {ours:?}");
    let wakes_over = |window: Duration| {
        let start = sleeps(&ours[0]);
        std::thread::sleep(window);
        sleeps(&ours[0]) - start
    };
    let attached = wakes_over(Duration::from_millis(200));
    tracer.detach().unwrap();
    // Time to finish the drain in progress and park.
    std::thread::sleep(Duration::from_millis(50));
    let detached = wakes_over(Duration::from_millis(300));
    tracer.attach().unwrap();
    let again = wakes_over(Duration::from_millis(200));
    eprintln!(
        "sleeps: attached {attached} in 200 ms, detached {detached} in 300 ms, attached again {again} in 200 ms"
    );
    assert!(attached >= 10, "attached: {attached} sleeps in 200 ms");
    assert_eq!(detached, 0);
    assert!(again >= 10, "attached again: {again} sleeps in 200 ms");
}

#[test]
fn the_kernel_sees_the_programs_detached_and_attached_again() {
    let all = always_attached();
    let _alone = in_process();
    let Some(mut tracer) = common::tracer_or_skip("detach") else {
        return;
    };
    assert!(all > 0);
    assert_eq!(tracer.attached_in_kernel().unwrap(), Some(all));
    tracer.classify_udp(true).unwrap();
    assert_eq!(tracer.attached_in_kernel().unwrap(), Some(all + 1));
    let clock = Instant::now();
    tracer.detach().unwrap();
    let detach = clock.elapsed();
    assert_eq!(tracer.attached_in_kernel().unwrap(), Some(0));
    let clock = Instant::now();
    tracer.attach().unwrap();
    let attach = clock.elapsed();
    assert_eq!(tracer.attached_in_kernel().unwrap(), Some(all));
    // Attaching twice attaches nothing more.
    tracer.attach().unwrap();
    assert_eq!(tracer.attached_in_kernel().unwrap(), Some(all));
    eprintln!("detach {detach:?}, attach {attach:?} ({all} programs)");
}

/// One sweep of a1 256 B stream, one connection, three timing runs; its rows as
/// (traced, send_gbps, attached_programs).
fn sweep(out: &std::path::Path, trace: bool) -> Vec<(bool, f64, Option<u32>)> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netcopy"));
    cmd.args(["sweep", "--modes", "a1", "--sizes", "256", "--threads", "1"])
        .args(["--workload", "stream", "--reps", "3", "--duration", "300ms"])
        .arg("--out")
        .arg(out);
    if !trace {
        cmd.arg("--no-trace");
    }
    let done = cmd.output().expect("running netcopy sweep");
    assert!(
        done.status.success(),
        "sweep failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let mut rows = Vec::new();
    let mut csv = csv::Reader::from_path(out.join("latest/results.csv")).expect("results.csv");
    for row in csv.deserialize::<netcopy::row::Row>() {
        let row = row.expect("a row");
        assert_eq!(row.status, "ok", "{}", row.error);
        rows.push((row.traced, row.send_gbps.unwrap(), row.attached_programs));
    }
    rows
}

#[test]
fn untraced_runs_of_a_traced_sweep_run_with_nothing_attached() {
    let Some(tracer) = common::tracer_or_skip("untraced runs") else {
        return;
    };
    drop(tracer);
    let dir = std::env::temp_dir().join(format!("netcopy-untraced-runs-{}", std::process::id()));
    let (mut traced_sweep, mut untraced_sweep) = (Vec::new(), Vec::new());
    // Interleaved, so a slow minute of the machine lands on both.
    for _ in 0..6 {
        for (trace, speeds) in [(true, &mut traced_sweep), (false, &mut untraced_sweep)] {
            for (traced, gbps, attached) in sweep(&dir, trace) {
                match (trace, traced) {
                    (true, true) => assert_eq!(attached, Some(always_attached())),
                    (true, false) => {
                        assert_eq!(attached, Some(0), "programs attached in an untraced run");
                        speeds.push(gbps);
                    }
                    (false, _) => {
                        assert!(!traced);
                        assert_eq!(attached, None, "a --no-trace sweep loads no program");
                        speeds.push(gbps);
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let a = Estimate::of(&traced_sweep).unwrap();
    let b = Estimate::of(&untraced_sweep).unwrap();
    eprintln!(
        "untraced rows, traced sweep {:.3} ± {:.3} Gbit/s; --no-trace sweep {:.3} ± {:.3} ({} runs each)",
        a.mean, a.half_width, b.mean, b.half_width, a.n
    );
    assert!(
        (a.mean - b.mean).abs() <= a.half_width + b.half_width,
        "the untraced runs of a traced sweep ({:.3} ± {:.3}) differ from a --no-trace sweep's ({:.3} ± {:.3})",
        a.mean,
        a.half_width,
        b.mean,
        b.half_width
    );
}

#[test]
fn serve_detaches_its_programs_for_the_untraced_runs_of_a_connect_sweep() {
    let Some(tracer) = common::tracer_or_skip("serve detaches") else {
        return;
    };
    drop(tracer);
    let port = common::free_port().to_string();
    let mut server = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .args(["serve", "--port", &port])
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(server.stderr.take().expect("piped stderr"))
        .read_line(&mut line)
        .expect("serve's first line");
    assert!(line.contains("listening"), "serve said: {line}");
    let dir = std::env::temp_dir().join(format!("netcopy-connect-detach-{}", std::process::id()));
    let done = Command::new(env!("CARGO_BIN_EXE_netcopy"))
        .args(["sweep", "--connect", &format!("127.0.0.1:{port}")])
        .args(["--modes", "a1", "--sizes", "16K", "--threads", "1"])
        .args(["--workload", "stream", "--reps", "2", "--duration", "200ms"])
        .arg("--out")
        .arg(&dir)
        .output()
        .expect("sweep --connect");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    common::wait_bounded(&mut server, Duration::from_secs(60), "serve after SIGTERM");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let rows = netcopy::output::read_rows(&dir.join("latest/results.csv")).expect("rows");
    let _ = std::fs::remove_dir_all(&dir);
    let attached: Vec<(bool, Option<u32>)> = rows
        .iter()
        .map(|r| (r.traced, r.attached_programs))
        .collect();
    // Both processes' programs: the client's and serve's, each counted by its own ids; a
    // remote path may leave through a device, so each also watches copies at transmit.
    let both = Some(2 * (always_attached() + 1));
    assert_eq!(
        attached,
        vec![(true, both), (false, Some(0)), (false, Some(0))]
    );
}
