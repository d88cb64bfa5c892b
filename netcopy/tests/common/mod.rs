//! Shared by the integration tests: getting a tracer, or saying plainly why not.
// Each test binary compiles its own copy and uses only part of it.
#![allow(dead_code)]

use std::io::Write as _;

use netcopy::kernel::tracer::Tracer;

/// A fresh folder for one test's results: `netcopy-{prefix}-{name}-{pid}` under the temp dir.
pub fn out_dir(prefix: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netcopy-{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The rows of the trace.csv `netcopy trace --out dir` wrote.
pub fn read_trace(dir: &std::path::Path) -> Vec<netcopy::trace::TraceRow> {
    csv::Reader::from_path(dir.join("trace.csv"))
        .expect("trace.csv")
        .deserialize()
        .collect::<Result<_, _>>()
        .expect("trace rows parse")
}

/// True under CI, where a test that cannot load or attach its programs must fail, not skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Loads the tracer, or returns None after saying why the test skips. Under CI the reason is a
/// failure instead.
pub fn tracer_or_skip(test: &str) -> Option<Tracer> {
    match Tracer::load() {
        // A kernel that refuses a hook still loads the rest; the tests need them all.
        Ok(tracer) if in_ci() && !tracer.missing_hooks().is_empty() => panic!(
            "{test}: hooks refused: {:?}",
            tracer
                .missing_hooks()
                .iter()
                .map(|(h, why)| format!("{}: {why}", h.program))
                .collect::<Vec<_>>()
        ),
        Ok(tracer) => Some(tracer),
        Err(err) if in_ci() => panic!("{test}: cannot load or attach the eBPF programs: {err}"),
        Err(err) => {
            // Straight to stderr, past the test harness's capture, so the skip is visible.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {err}");
            None
        }
    }
}

/// Waits for `child` to exit, at most `limit`; past it the child is killed and the test fails
/// naming `what`. No test waits on a process without a bound.
pub fn wait_bounded(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A TCP port free on 127.0.0.1 now, picked by the kernel (never a fixed number).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The README's text between two marker comments (`<!-- begin -->` … `<!-- end -->`), where a
/// test holds the README to the code.
pub fn readme_section(begin: &str, end: &str) -> String {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .expect("README.md");
    let marker = |name: &str| format!("<!-- {name} -->");
    let start = readme.find(&marker(begin)).expect("begin marker");
    let stop = readme.find(&marker(end)).expect("end marker");
    readme[start..stop].to_owned()
}
