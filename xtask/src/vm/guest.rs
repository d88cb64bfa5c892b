//! One guest boot through virtme-ng: the host's root filesystem over 9p, read-only with
//! overlays, and two folders shared writable: the run's own (`target/vm/runs/<time>/`: the
//! script, its output, its exit status) and the host's `results/`.
//!
//! vng exits 255 even when the guest's command succeeded and prints the guest's output only
//! with `--verbose` (among the kernel's messages), so the command's output and its exit status
//! come back through the run's folder: the host follows `output.log` while the guest writes it,
//! and reads `status` at the end.

use std::{
    fs,
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// How long a KVM guest may take to start the command before KVM is given up for TCG. A KVM
/// guest that works boots in about a second; on these machines it hangs with no output.
const KVM_BOOT_LIMIT: Duration = Duration::from_secs(20);
/// Same for TCG. Its boot to the command took 17-19 s on a quiet host here, and 165 s with a
/// load average of 30: generous, as it only catches a guest that never starts.
const TCG_BOOT_LIMIT: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => {
                "TCG (emulated CPU: its speed figures are not comparable with the host's)"
            }
        }
    }
}

/// Everything one boot needs.
pub struct Boot<'a> {
    pub vng: &'a Path,
    pub image: &'a Path,
    pub workspace: &'a Path,
    /// The run's folder: `guest.sh` in it is what the guest runs.
    pub run_dir: &'a Path,
    pub rw_dirs: Vec<PathBuf>,
    pub memory: &'a str,
    pub cpus: u32,
    pub qemu_opts: Option<String>,
    pub timeout: Duration,
    /// Whether the last attempt ran out of time (rather than QEMU exiting).
    pub timed_out: std::cell::Cell<bool>,
}

/// What came back from the guest.
pub struct Outcome {
    pub accel: Accel,
    /// From the boot to the command's exit status.
    pub boot: Duration,
    /// The command's run, as the host saw its exit status appear.
    pub command: Duration,
    /// When each line of the guest's `tests` file appeared (one per test binary).
    pub test_marks: Vec<Duration>,
    /// From starting vng to its exit (the guest's shutdown included).
    pub total: Duration,
    /// The guest command's own exit status.
    pub status: i32,
    pub release: String,
}

impl Boot<'_> {
    fn command(&self, accel: Accel) -> Command {
        let mut cmd = Command::new(self.vng);
        // vng starts virtme-run, which lives beside it in the venv.
        let venv_bin = self.vng.parent().unwrap_or(Path::new("."));
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![venv_bin.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap_or(path));
        cmd.arg("--run")
            .arg(self.image)
            .args(["--force-9p", "--user", "root", "--no-dhcp"])
            .args(["--memory", self.memory, "--cpus", &self.cpus.to_string()])
            .arg("--cwd")
            .arg(self.workspace);
        if accel == Accel::Tcg {
            cmd.arg("--disable-kvm");
        }
        for dir in std::iter::once(&self.run_dir.to_path_buf()).chain(&self.rw_dirs) {
            cmd.arg(format!("--rwdir={}", dir.display()));
        }
        if let Some(opts) = &self.qemu_opts {
            // PCI NICs need a full machine, not the microvm vng picks by default.
            cmd.arg("--disable-microvm")
                .arg(format!("--qemu-opts={opts}"));
        }
        cmd.arg("--exec").arg(format!(
            "/bin/bash {}",
            self.run_dir.join("guest.sh").display()
        ));
        cmd
    }

    /// Boots with each accelerator in turn until one starts the command, and waits for it.
    /// A KVM failure is remembered only once another accelerator booted, so that a broken vng
    /// is not blamed on KVM.
    pub fn run(&self, accels: &[Accel], kvm_failed_marker: &Path) -> Result<Outcome> {
        watch_signals();
        let mut why = String::new();
        let mut kvm_failed = false;
        for &accel in accels {
            eprintln!("vm: booting with {}", accel.describe());
            if let Some(outcome) = self.attempt(accel)? {
                if kvm_failed {
                    fs::write(kvm_failed_marker, super::host_release())?;
                    eprintln!(
                        "vm: KVM's failure is remembered in {}; delete it to try KVM again",
                        kvm_failed_marker.display()
                    );
                }
                return Ok(outcome);
            }
            why = self.why_no_boot(accel);
            if accel == Accel::Kvm {
                kvm_failed = true;
                eprintln!("vm: KVM: {why}");
            }
        }
        bail!("{why}")
    }

    /// Why the guest never started its command: QEMU's last words, or the time it was given.
    fn why_no_boot(&self, accel: Accel) -> String {
        let log = self.run_dir.join("vng.log");
        if self.timed_out.get() {
            let limit = match accel {
                Accel::Kvm => KVM_BOOT_LIMIT,
                Accel::Tcg => TCG_BOOT_LIMIT,
            };
            return format!(
                "the guest started nothing within {} s (vng's messages: {})",
                limit.as_secs(),
                log.display()
            );
        }
        let text = fs::read_to_string(&log).unwrap_or_default();
        let last = text.lines().rev().find(|l| !l.trim().is_empty());
        format!(
            "the guest did not start: {}",
            last.map_or("vng exited without a message", str::trim)
        )
    }

    /// One boot: `None` when the guest never started the command.
    fn attempt(&self, accel: Accel) -> Result<Option<Outcome>> {
        for stale in ["booted", "status", "output.log", "release", "tests", "nics"] {
            let _ = fs::remove_file(self.run_dir.join(stale));
        }
        let log = fs::File::create(self.run_dir.join("vng.log"))?;
        let start = Instant::now();
        let mut child = self
            .command(accel)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group, so that vng and its QEMU can be stopped together.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", self.vng.display()))?;
        let limit = match accel {
            Accel::Kvm => KVM_BOOT_LIMIT,
            Accel::Tcg => TCG_BOOT_LIMIT,
        };
        let booted = self.run_dir.join("booted");
        while !booted.exists() {
            if interrupted() {
                stop(&mut child);
                bail!("interrupted: the guest was stopped");
            }
            let exited = child.try_wait()?.is_some();
            if start.elapsed() > limit || exited {
                self.timed_out.set(!exited);
                stop(&mut child);
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(100));
        }
        let boot = start.elapsed();
        eprintln!("vm: guest up after {:.1} s", boot.as_secs_f64());
        let (finished, test_marks) = self.follow_until_exit(&mut child, start)?;
        let total = start.elapsed();
        let read = |name: &str| fs::read_to_string(self.run_dir.join(name)).unwrap_or_default();
        let status = read("status").trim().parse::<i32>().with_context(|| {
            format!(
                "the guest stopped before its command finished (no exit status; vng's messages: {})",
                self.run_dir.join("vng.log").display()
            )
        })?;
        Ok(Some(Outcome {
            accel,
            boot,
            command: finished.unwrap_or(total).saturating_sub(boot),
            test_marks,
            total,
            status,
            release: read("release").trim().to_owned(),
        }))
    }

    /// Prints the guest's output as it is written, until vng exits or the timeout.
    /// Returns when the command's exit status appeared, from `start`, and when each line of
    /// `tests` did: the host's clock, as a TCG guest's clock falls behind.
    fn follow_until_exit(
        &self,
        child: &mut Child,
        start: Instant,
    ) -> Result<(Option<Duration>, Vec<Duration>)> {
        let done = Arc::new(AtomicBool::new(false));
        let follower = {
            let done = Arc::clone(&done);
            let path = self.run_dir.join("output.log");
            thread::spawn(move || follow(&path, &done))
        };
        let status = self.run_dir.join("status");
        let tests = self.run_dir.join("tests");
        let mut finished = None;
        let mut marks = Vec::new();
        let result = loop {
            let lines = fs::read_to_string(&tests).map_or(0, |t| t.lines().count());
            marks.resize(lines.max(marks.len()), start.elapsed());
            if finished.is_none() && status.exists() {
                finished = Some(start.elapsed());
            }
            if child.try_wait()?.is_some() {
                break Ok((finished, marks));
            }
            if interrupted() {
                stop(child);
                break Err(anyhow::anyhow!("interrupted: the guest was stopped"));
            }
            if start.elapsed() > self.timeout {
                stop(child);
                break Err(anyhow::anyhow!(
                    "the guest ran longer than {} s and was stopped",
                    self.timeout.as_secs()
                ));
            }
            thread::sleep(Duration::from_millis(200));
        };
        done.store(true, Ordering::Relaxed);
        let _ = follower.join();
        result
    }
}

/// Copies what is appended to `path` onto stdout until `done`, then the rest.
fn follow(path: &Path, done: &AtomicBool) {
    let mut offset = 0u64;
    let mut buf = Vec::new();
    loop {
        let finished = done.load(Ordering::Relaxed);
        if let Ok(mut file) = fs::File::open(path) {
            buf.clear();
            if file.seek(SeekFrom::Start(offset)).is_ok() && file.read_to_end(&mut buf).is_ok() {
                offset += buf.len() as u64;
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&buf);
                let _ = out.flush();
            }
        }
        if finished {
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Set by Ctrl-C or SIGTERM: vng and QEMU run in a process group of their own, which the
/// terminal's signal does not reach, so the wait loops stop them.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn watch_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Stops vng and its QEMU: the process group this xtask started for them.
fn stop(child: &mut Child) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: kill has no memory preconditions; the group is the one spawned above.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = child.wait();
}
