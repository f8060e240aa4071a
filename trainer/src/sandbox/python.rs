//! Python programs and their unit tests, run by the system's `python3` in a
//! sandbox: the code reward for real code datasets (MBPP, HumanEval, or a
//! JSONL's `"tests": ["assert f(1) == 2", ...]`).
//!
//! # The jail
//!
//! Each run is one `bwrap` (bubblewrap) process, started as an unprivileged
//! user (root drops to `nobody` first), that puts the interpreter in new
//! user, mount, PID, network, IPC, UTS and cgroup namespaces:
//!
//! - files: `/usr` (and the interpreter's prefix, if it lives elsewhere)
//!   read-only, a fresh `/proc` and a minimal `/dev`; no `/etc`, no home, no
//!   host `/tmp`. The only writable place is a new `/tmp`, a tmpfs of
//!   [`PythonLimits::disk_mb`] that vanishes with the run; everything else,
//!   the root included, is mounted read-only;
//! - network: a new, empty network namespace (not even a loopback that is up);
//! - processes: PID 1 is bubblewrap's reaper; when the run is killed (time
//!   out, output over the cap) or its reaper dies, the kernel kills every
//!   process of the namespace, so nothing outlives a run;
//! - environment: cleared, then `PATH`, `HOME=/tmp`, `LANG` only;
//! - limits (`setrlimit`, set by the harness before the program is even
//!   parsed, and kept by the kernel for every process it starts): CPU
//!   seconds, address space, file size, open files, processes and threads
//!   (counted in the run's own user namespace), no core dumps;
//! - time: a wall-clock deadline, after which the whole process tree is
//!   killed; output (standard output and error together) is captured, and a
//!   run that writes more than [`PythonLimits::output_kb`] is killed.
//!
//! Why bubblewrap: it is the unprivileged sandbox that Flatpak is built on,
//! packaged by every distribution (Debian: `apt-get install bubblewrap`), and
//! it gives what the checks need in one well-reviewed tool: namespaces for
//! files, network and processes, and a PID namespace that takes the whole
//! process tree down with it. Landlock and seccomp (the other candidates)
//! only filter what a process may touch: Landlock's network rules cover TCP
//! alone and need Linux 6.7, neither has a way to kill a process tree, and a
//! seccomp system-call list for CPython is long and brittle.
//!
//! When the host cannot give that isolation (no `bwrap`, user namespaces
//! disabled, no interpreter), [`PythonSandbox::new`] fails with a message
//! saying so: model-written code is never run unconfined.
//!
//! # The harness
//!
//! The interpreter runs [`HARNESS`], which sets the limits, reads the job
//! (program, setup code, tests) from standard input, runs the program, then
//! each test in the program's namespace, and reports each test's result on a
//! channel of its own (a copy of the original standard output; the
//! program's own prints go to standard error). Every report carries a random
//! token sent with the job, so a program cannot claim passes by printing
//! them or by exiting early (`exit(0)`): only reports with the token count.
//! (A program that digs the token out of the interpreter's memory could forge
//! them; the jail still holds it.)

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What one run (a program and all its tests) may consume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PythonLimits {
    /// Wall-clock seconds for the run; then the whole process tree is killed.
    pub timeout_s: f64,
    /// CPU seconds (`RLIMIT_CPU`).
    pub cpu_s: u64,
    /// Address space in MiB (`RLIMIT_AS`).
    pub memory_mb: u64,
    /// Size of the writable `/tmp` (a tmpfs) and of any one file
    /// (`RLIMIT_FSIZE`), MiB.
    pub disk_mb: u64,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Processes and threads the program may start (`RLIMIT_NPROC`, on top
    /// of the interpreter and the sandbox's reaper). 0: none, so no
    /// `fork`, no `subprocess`, no threads.
    pub processes: u64,
    /// Output (standard output and error together) a run may write, KiB;
    /// more and it is killed.
    pub output_kb: u64,
    /// Let programs import the host's installed packages (`site`, e.g.
    /// numpy from `/usr/lib/python3/dist-packages`); off: the standard
    /// library only, which is what MBPP and HumanEval need, and ~5 ms less
    /// per start.
    pub site_packages: bool,
}

impl Default for PythonLimits {
    fn default() -> Self {
        PythonLimits {
            timeout_s: 10.0,
            cpu_s: 10,
            memory_mb: 1024,
            disk_mb: 64,
            open_files: 64,
            processes: 0,
            output_kb: 1024,
            site_packages: false,
        }
    }
}

impl PythonLimits {
    pub fn validate(&self) -> Result<()> {
        if !(self.timeout_s.is_finite() && self.timeout_s > 0.0) {
            return Err(Error::Config(format!("code timeout {} s: must be a positive number of seconds", self.timeout_s)));
        }
        let positive = [("cpu_s", self.cpu_s), ("memory_mb", self.memory_mb), ("disk_mb", self.disk_mb), ("open_files", self.open_files)];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!("code sandbox `{name}` must be positive")));
        }
        if self.memory_mb < 64 {
            return Err(Error::Config(format!(
                "code sandbox memory {} MiB: the interpreter alone needs about 30; give at least 64",
                self.memory_mb
            )));
        }
        if self.open_files < 8 {
            return Err(Error::Config(format!("code sandbox open_files {}: the interpreter needs at least 8", self.open_files)));
        }
        Ok(())
    }
}

/// A program and the tests it must pass.
#[derive(Clone, Copy, Debug)]
pub struct PythonJob<'a> {
    /// The program: definitions (and any top-level code) run first.
    pub program: &'a str,
    /// Run after the program and before the tests (MBPP's `test_setup_code`).
    pub setup: &'a str,
    /// Each a piece of code that raises if the program is wrong
    /// (`assert f(1) == 2`); a test passes when it runs to its end.
    pub tests: &'a [String],
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The harness ran every test (each passed or failed).
    Finished,
    /// The program stopped the run (a crash, `exit`, a closed channel, a
    /// limit the kernel enforces by killing): the tests not reported failed.
    Stopped { code: Option<i32>, signal: Option<i32> },
    /// Over the wall-clock limit; killed.
    TimedOut,
    /// Wrote more than the output limit; killed.
    OutputLimit,
}

/// The result of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Tests that ran to their end.
    pub passed: usize,
    pub total: usize,
    pub end: RunEnd,
    /// The start of what the program wrote (its prints and tracebacks), for
    /// diagnostics; lossy UTF-8.
    pub output: String,
    pub seconds: f64,
    /// The run's name on the host: the last argument of its processes'
    /// command lines (`ps ax | grep aha-run-`).
    pub label: String,
}

impl Outcome {
    /// Share of the tests passed; 0 when there are none.
    pub fn pass_rate(&self) -> f32 {
        if self.total == 0 {
            0.0
        } else {
            self.passed as f32 / self.total as f32
        }
    }

    pub fn all_passed(&self) -> bool {
        self.total > 0 && self.passed == self.total
    }
}

/// The harness the interpreter runs (`python3 -I -B -c HARNESS limits...`).
/// Limits first, then the job from standard input, then the program and its
/// tests; `__name__` is not `"__main__"`, so a program's demo under
/// `if __name__ == "__main__":` does not run (as in HumanEval's evaluator).
pub const HARNESS: &str = r#"
import json, os, resource, sys
def _harness():
    nproc, cpu, mem, fsize, nofile = (int(a) for a in sys.argv[1:6])
    for which, soft, hard in ((resource.RLIMIT_NPROC, nproc, nproc), (resource.RLIMIT_CPU, cpu, cpu + 1),
                              (resource.RLIMIT_AS, mem, mem), (resource.RLIMIT_FSIZE, fsize, fsize),
                              (resource.RLIMIT_NOFILE, nofile, nofile), (resource.RLIMIT_CORE, 0, 0)):
        resource.setrlimit(which, (soft, hard))
    data = sys.stdin.buffer.read()
    token, _, body = data.partition(b"\n")
    token = token.decode()
    job = json.loads(body)
    report = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    space = {"__name__": "solution", "__builtins__": __builtins__}
    def say(line):
        report.write(token + " " + line + "\n")
        report.flush()
    try:
        exec(compile(job["program"], "program.py", "exec"), space)
        if job["setup"]:
            exec(compile(job["setup"], "setup.py", "exec"), space)
    except BaseException:
        _trace()
        say("done")
        return
    for i, test in enumerate(job["tests"]):
        try:
            exec(compile(test, "test_%d.py" % i, "exec"), space)
            say("pass %d" % i)
        except BaseException:
            _trace()
    say("done")
def _trace():
    try:
        import traceback
        traceback.print_exc(limit=-3)
    except BaseException:
        pass
_harness()
"#;

/// Runs Python programs in the jail described in the module documentation.
#[derive(Clone, Debug)]
pub struct PythonSandbox {
    bwrap: PathBuf,
    python: PathBuf,
    /// Read-only mounts besides `/usr`: the interpreter's prefix when it
    /// lives elsewhere.
    extra_mounts: Vec<PathBuf>,
    /// `/bin`, `/lib`, ... as the host has them: a symlink into `/usr`
    /// (merged /usr) or a directory to mount.
    root_links: Vec<(PathBuf, RootEntry)>,
    disable_userns: bool,
    limits: PythonLimits,
}

#[derive(Clone, Debug)]
enum RootEntry {
    Symlink(PathBuf),
    Dir,
}

/// Where `bwrap` and `python3` are looked for when not given.
const BWRAP_CANDIDATES: &[&str] = &["/usr/bin/bwrap", "/usr/local/bin/bwrap"];
const PYTHON_CANDIDATES: &[&str] = &["/usr/bin/python3", "/usr/local/bin/python3"];
/// The user a root process becomes before starting the jail (`nobody`).
const NOBODY: u32 = 65534;
/// Output kept for [`Outcome::output`].
const KEPT_OUTPUT: usize = 8 << 10;

impl PythonSandbox {
    /// Finds `bwrap` and the interpreter (`python`, else `/usr/bin/python3`,
    /// else `python3` on `PATH`), and proves the jail works by running a
    /// one-test program in it. Any failure is an error that says why and
    /// that nothing will run unconfined.
    pub fn new(limits: PythonLimits, python: Option<&Path>) -> Result<PythonSandbox> {
        limits.validate()?;
        let refuse = |why: String| {
            Error::Sandbox(format!("{why}; aha runs model-written Python only inside bubblewrap, so it will not run it at all"))
        };
        let bwrap = find_program("bwrap", BWRAP_CANDIDATES).ok_or_else(|| {
            refuse(
                "the Python sandbox needs bubblewrap (`bwrap`), which is not installed (Debian/Ubuntu: apt-get install bubblewrap)".into(),
            )
        })?;
        let python = match python {
            Some(p) => p.to_path_buf(),
            None => find_program("python3", PYTHON_CANDIDATES)
                .ok_or_else(|| refuse("no python3 found (looked in /usr/bin, /usr/local/bin and PATH)".into()))?,
        };
        let python = std::fs::canonicalize(&python).map_err(|e| refuse(format!("python interpreter {}: {e}", python.display())))?;
        let mut extra_mounts = Vec::new();
        if !python.starts_with("/usr") {
            // `<prefix>/bin/python3.X`: the standard library is under <prefix>/lib.
            let prefix = python
                .parent()
                .and_then(Path::parent)
                .filter(|p| *p != Path::new("/"))
                .ok_or_else(|| refuse(format!("python interpreter {}: cannot tell its installation prefix", python.display())))?;
            extra_mounts.push(prefix.to_path_buf());
        }
        let mut root_links = Vec::new();
        for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            let path = PathBuf::from(dir);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&path) {
                        root_links.push((path, RootEntry::Symlink(target)));
                    }
                }
                Ok(m) if m.is_dir() => root_links.push((path, RootEntry::Dir)),
                _ => {}
            }
        }
        let help = Command::new(&bwrap).arg("--help").output().map_err(|e| refuse(format!("{} cannot start: {e}", bwrap.display())))?;
        let disable_userns = String::from_utf8_lossy(&help.stdout).contains("--disable-userns");
        let sandbox = PythonSandbox { bwrap, python, extra_mounts, root_links, disable_userns, limits };
        let probe = sandbox.run(&PythonJob { program: "x = 41 + 1", setup: "", tests: &["assert x == 42".to_string()] })?;
        if probe.passed != 1 {
            return Err(refuse(format!(
                "the sandbox does not work on this host ({} in it ended {:?}: {})",
                sandbox.python.display(),
                probe.end,
                probe.output.trim()
            )));
        }
        Ok(sandbox)
    }

    pub fn limits(&self) -> &PythonLimits {
        &self.limits
    }

    /// The interpreter it runs.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// The `bwrap` command line for one run, named `label`.
    fn command(&self, label: &str) -> Command {
        let mut c = Command::new(&self.bwrap);
        c.args(["--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]);
        if self.disable_userns {
            c.arg("--disable-userns");
        }
        let uid = NOBODY.to_string();
        c.args(["--uid", &uid, "--gid", &uid, "--hostname", "sandbox"]);
        c.args(["--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8"]);
        c.args(["--ro-bind", "/usr", "/usr"]);
        // The loader's cache: without it every library is searched for
        // along the default paths, which costs ~50 ms per start.
        c.args(["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]);
        for (path, entry) in &self.root_links {
            match entry {
                RootEntry::Symlink(target) => c.arg("--symlink").arg(target).arg(path),
                RootEntry::Dir => c.arg("--ro-bind").arg(path).arg(path),
            };
        }
        for dir in &self.extra_mounts {
            c.arg("--ro-bind").arg(dir).arg(dir);
        }
        let tmp_bytes = (self.limits.disk_mb << 20).to_string();
        c.args(["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", &tmp_bytes, "--tmpfs", "/tmp"]);
        c.args(["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp", "--"]);
        let l = &self.limits;
        // The reaper and the interpreter count against RLIMIT_NPROC too.
        let nproc = 2 + l.processes;
        c.arg(&self.python).args(["-I", "-B"]);
        if !l.site_packages {
            c.arg("-S");
        }
        c.args(["-c", HARNESS]);
        c.args([nproc, l.cpu_s, l.memory_mb << 20, l.disk_mb << 20, l.open_files].map(|v| v.to_string()));
        c.arg(label);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own process group, so a kill reaches bwrap's helpers too.
            c.process_group(0);
            if is_root() {
                // Root is exempt from RLIMIT_NPROC and owns every file:
                // become nobody (std also drops the supplementary groups).
                c.uid(NOBODY).gid(NOBODY);
            }
        }
        c
    }

    /// Runs one program and its tests. An `Err` is the host's failure
    /// (cannot start `bwrap`); whatever the program does is an [`Outcome`].
    pub fn run(&self, job: &PythonJob) -> Result<Outcome> {
        let start = Instant::now();
        let token = random_token()?;
        let label = format!("aha-run-{}", &random_token()?[..12]);
        let body = serde_json::json!({ "program": job.program, "setup": job.setup, "tests": job.tests });
        let mut input = format!("{token}\n").into_bytes();
        input.extend_from_slice(body.to_string().as_bytes());

        let mut child = self.command(&label).spawn().map_err(|e| Error::Sandbox(format!("cannot start {}: {e}", self.bwrap.display())))?;
        let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Sandbox("the sandbox's pipes were not created".into()));
        };
        let cap = (self.limits.output_kb << 10) as usize;
        let written = AtomicUsize::new(0);
        let over = AtomicBool::new(false);
        let deadline = start + Duration::from_secs_f64(self.limits.timeout_s);
        let (status, report, output, timed_out) = std::thread::scope(|s| {
            s.spawn(move || {
                // A program that never reads is fine: the harness reads all
                // of it first. A write error means the run already ended.
                let _ = stdin.write_all(&input);
            });
            // Each reader says when its pipe is closed (or the output is
            // over the cap), so the common end, both pipes closed because
            // the run is over, is seen at once, not at the next poll.
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let tx2 = tx.clone();
            let (written, over) = (&written, &over);
            let report = s.spawn(move || {
                let kept = drain(&mut stdout, cap, cap, written, over);
                let _ = tx.send(());
                kept
            });
            let output = s.spawn(move || {
                let kept = drain(&mut stderr, KEPT_OUTPUT, cap, written, over);
                let _ = tx2.send(());
                kept
            });
            let mut closed = 0;
            while closed < 2 && !over.load(Ordering::Relaxed) {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(()) => closed += 1,
                    Err(_) => break,
                }
            }
            let mut timed_out = false;
            let mut nap = Duration::from_micros(100);
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Ok(status),
                    Ok(None) => {}
                    Err(e) => break Err(e),
                }
                let now = Instant::now();
                if now >= deadline || over.load(Ordering::Relaxed) {
                    timed_out = now >= deadline;
                    // bwrap dies; its reaper has PDEATHSIG = SIGKILL, and
                    // with it every process of the PID namespace.
                    let _ = child.kill();
                    break child.wait();
                }
                std::thread::sleep(nap.min(deadline - now));
                nap = (nap * 2).min(Duration::from_millis(2));
            };
            (status, report.join(), output.join(), timed_out)
        });
        let status = status.map_err(|e| Error::Sandbox(format!("waiting for the sandbox: {e}")))?;
        let report = report.unwrap_or_default();
        let output = output.unwrap_or_default();

        let mut passed = vec![false; job.tests.len()];
        let mut done = false;
        for line in String::from_utf8_lossy(&report).lines() {
            let Some(rest) = line.strip_prefix(token.as_str()).and_then(|r| r.strip_prefix(' ')) else { continue };
            let mut words = rest.split(' ');
            match (words.next(), words.next().and_then(|i| i.parse::<usize>().ok())) {
                (Some("pass"), Some(i)) if i < passed.len() => passed[i] = true,
                (Some("done"), _) => done = true,
                _ => {}
            }
        }
        let end = if timed_out {
            RunEnd::TimedOut
        } else if over.load(Ordering::Relaxed) {
            RunEnd::OutputLimit
        } else if done && status.success() {
            RunEnd::Finished
        } else {
            #[cfg(unix)]
            let signal = std::os::unix::process::ExitStatusExt::signal(&status);
            #[cfg(not(unix))]
            let signal = None;
            RunEnd::Stopped { code: status.code(), signal }
        };
        if !matches!(end, RunEnd::Finished) && bwrap_failed(&output) {
            return Err(Error::Sandbox(format!("bubblewrap could not set up the sandbox: {}", String::from_utf8_lossy(&output).trim())));
        }
        Ok(Outcome {
            passed: passed.iter().filter(|&&p| p).count(),
            total: job.tests.len(),
            end,
            output: String::from_utf8_lossy(&output).into_owned(),
            seconds: start.elapsed().as_secs_f64(),
            label,
        })
    }

    /// Runs `jobs` on `workers` threads at once (each run is its own
    /// process tree), results in order.
    pub fn run_all(&self, jobs: &[PythonJob], workers: usize) -> Vec<Result<Outcome>> {
        let next = AtomicUsize::new(0);
        let workers = workers.clamp(1, jobs.len().max(1));
        let mut results: Vec<Option<Result<Outcome>>> = (0..jobs.len()).map(|_| None).collect();
        let done: Vec<Vec<(usize, Result<Outcome>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(job) = jobs.get(i) else { break };
                            mine.push((i, self.run(job)));
                        }
                        mine
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
        });
        for (i, r) in done.into_iter().flatten() {
            results[i] = Some(r);
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(Error::Sandbox("a sandbox worker stopped".into())))).collect()
    }
}

/// Reads `from` to its end, keeping its first `keep` bytes; adds every byte
/// to `written` (shared by both pipes) and raises `over` once that passes
/// `cap`. Then both readers stop, so a program writing past the cap blocks
/// on a full pipe until it is killed: what it did after cannot count.
fn drain(from: &mut impl Read, keep: usize, cap: usize, written: &AtomicUsize, over: &AtomicBool) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if over.load(Ordering::Relaxed) {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = keep.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                let total = written.fetch_add(n, Ordering::Relaxed) + n;
                if total > cap {
                    over.store(true, Ordering::Relaxed);
                }
            }
        }
    }
    kept
}

/// bwrap's own failures start with `bwrap:`.
fn bwrap_failed(output: &[u8]) -> bool {
    output.starts_with(b"bwrap:")
}

#[cfg(unix)]
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // The owner of /proc/self is this process's effective uid.
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// 32 hex digits from the kernel's random source.
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::Sandbox(format!("reading /dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `candidates` in order, then `name` on `PATH`.
fn find_program(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>()).unwrap_or_default();
    candidates.iter().map(PathBuf::from).chain(on_path).find(|p| p.is_file())
}

/// The sandbox for tests, or `None` (after printing `SKIPPED` and why) when
/// the host has none; with `AHA_REQUIRE_SANDBOX=1` (CI) a missing sandbox
/// fails the test instead.
#[cfg(test)]
pub(crate) fn test_sandbox(limits: PythonLimits) -> Option<PythonSandbox> {
    match PythonSandbox::new(limits, None) {
        Ok(s) => Some(s),
        Err(e) if std::env::var("AHA_REQUIRE_SANDBOX").as_deref() != Ok("1") => {
            eprintln!("SKIPPED (no Python sandbox on this host; AHA_REQUIRE_SANDBOX=1 makes this fail): {e}");
            None
        }
        Err(e) => panic!("AHA_REQUIRE_SANDBOX=1, but: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed deck's task: sorted, with 42 added at the start.
    fn deck_tests() -> Vec<String> {
        ["assert solution([3, 1, 2]) == [42, 1, 2, 3]", "assert solution([]) == [42]", "assert solution([5, -1, 5]) == [42, -1, 5, 5]"]
            .map(String::from)
            .to_vec()
    }

    const CORRECT: &str = "def solution(xs):\n    return [42] + sorted(xs)\n";

    fn quick() -> PythonLimits {
        PythonLimits { timeout_s: 3.0, cpu_s: 3, memory_mb: 256, ..PythonLimits::default() }
    }

    fn run(sandbox: &PythonSandbox, program: &str) -> Outcome {
        sandbox.run(&PythonJob { program, setup: "", tests: &deck_tests() }).unwrap()
    }

    #[test]
    fn the_deck_example_scores_one_and_the_wrong_answers_zero() {
        let Some(sb) = test_sandbox(quick()) else { return };
        let right = run(&sb, CORRECT);
        assert_eq!((right.passed, right.total, &right.end), (3, 3, &RunEnd::Finished), "{right:?}");
        assert_eq!(right.pass_rate(), 1.0);
        let frogs = run(&sb, "Why did the frog take the bus to work? His car got toad away.");
        assert_eq!(frogs.passed, 0, "{frogs:?}");
        assert!(frogs.output.is_empty() || !frogs.all_passed());
        let no_42 = run(&sb, "def solution(xs):\n    return sorted(xs)\n");
        assert_eq!(no_42.passed, 0, "{no_42:?}");
        // A partly right program: the pass rate says how far.
        let half = run(&sb, "def solution(xs):\n    return [42] + xs\n");
        assert_eq!(half.passed, 1, "{half:?}");
        // Setup code runs between the program and the tests.
        let tests = ["assert solution(DATA) == [42, 1, 2]".to_string()];
        let o = sb.run(&PythonJob { program: CORRECT, setup: "DATA = [2, 1]", tests: &tests }).unwrap();
        assert_eq!(o.passed, 1, "{o:?}");
    }

    #[test]
    fn exiting_early_or_printing_passes_does_not_pass() {
        let Some(sb) = test_sandbox(quick()) else { return };
        for cheat in [
            "import sys\nsys.exit(0)",
            "import os\nos._exit(0)",
            "print('pass 0')\nprint('pass 1')\nprint('pass 2')\nprint('done')",
            "import os\nos.write(3, b'pass 0\\npass 1\\npass 2\\ndone\\n')",
            "def solution(xs):\n    raise SystemExit(0)",
            "raise KeyboardInterrupt",
        ] {
            let o = run(&sb, cheat);
            assert_eq!(o.passed, 0, "{cheat}: {o:?}");
        }
    }

    /// Lines of `ps`-like listing whose command line holds `label`.
    fn processes_labelled(label: &str) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                if cmdline.split(|&b| b == 0).any(|arg| arg == label.as_bytes()) {
                    found.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        found
    }

    /// Waits (up to 5 s) until no process of the run is left.
    fn assert_no_process_left(label: &str) {
        let start = Instant::now();
        while !processes_labelled(label).is_empty() {
            assert!(start.elapsed() < Duration::from_secs(5), "processes of {label} outlived it: {:?}", processes_labelled(label));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The issue's hostile programs. Each is a `solution` that returns the
    /// right answer only if its attack worked, so a score of 0 means the
    /// attack failed; the host is checked after each.
    #[test]
    fn hostile_programs_score_zero_and_leave_the_host_untouched() {
        let Some(sb) = test_sandbox(quick()) else { return };
        // With the default limits nothing can fork; this one lets the fork
        // bomb really fork, so the kill of its process tree is tested too.
        let Some(forking) = test_sandbox(PythonLimits { processes: 16, ..quick() }) else { return };
        let host = tempfile::tempdir().unwrap();
        let host_dir = host.path().display().to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut canary = Command::new("sleep").arg("60").spawn().unwrap();
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let right = "return [42] + sorted(xs)";
        let cases: Vec<(&str, String)> = vec![
            ("infinite loop", "while True:\n    pass".into()),
            (
                "fork bomb",
                format!(
                    "import os, time\ndef solution(xs):\n    n = 0\n    while True:\n        try:\n            if os.fork() == 0:\n                time.sleep(60)\n            n += 1\n        except OSError:\n            pass\n        if n > 10000:\n            {right}"
                ),
            ),
            ("memory bomb", format!("def solution(xs):\n    hog = [bytearray(1 << 26) for _ in range(64)]\n    {right}")),
            (
                "1 GB write",
                format!(
                    "def solution(xs):\n    with open('big', 'wb') as f:\n        for _ in range(1024):\n            f.write(b'x' * (1 << 20))\n    {right}"
                ),
            ),
            (
                "write outside the temporary directory",
                format!(
                    "def solution(xs):\n    wrote = 0\n    for p in ['{host_dir}/pwned', '/pwned', '/usr/pwned', '/dev/pwned', '/proc/pwned', '/etc/pwned', '/dev/shm/pwned']:\n        try:\n            open(p, 'w').write('x')\n            wrote += 1\n        except OSError:\n            pass\n    if wrote:\n        {right}"
                ),
            ),
            (
                "read /etc/shadow and the home directory",
                format!(
                    "import os\ndef solution(xs):\n    seen = 0\n    for p in ['/etc/shadow', '/etc/passwd', '{home}', '/root', '/home']:\n        try:\n            if os.path.isdir(p):\n                os.listdir(p)\n            else:\n                open(p).read()\n            seen += 1\n        except OSError:\n            pass\n    if seen:\n        {right}"
                ),
            ),
            (
                "open a network socket",
                format!(
                    "import socket\ndef solution(xs):\n    socket.create_connection(('127.0.0.1', {port}), timeout=1).close()\n    {right}"
                ),
            ),
            (
                "reach the internet",
                format!("import socket\ndef solution(xs):\n    socket.create_connection(('1.1.1.1', 53), timeout=1).close()\n    {right}"),
            ),
            (
                "spawn a shell",
                format!(
                    "import subprocess\ndef solution(xs):\n    out = subprocess.run(['/bin/sh', '-c', 'echo hi'], capture_output=True).stdout\n    if out == b'hi\\n':\n        {right}"
                ),
            ),
            (
                "read environment variables",
                format!(
                    "import os\ndef solution(xs):\n    extra = set(os.environ) - {{'PATH', 'HOME', 'LANG', 'PWD', 'LC_CTYPE'}}\n    if extra or os.environ.get('HOME') != '/tmp':\n        {right}"
                ),
            ),
            ("huge output", format!("def solution(xs):\n    for _ in range(200):\n        print('x' * 100000)\n    {right}")),
            (
                "close standard output and sleep",
                "import os, time\nfor fd in range(256):\n    try:\n        os.close(fd)\n    except OSError:\n        pass\ntime.sleep(60)".into(),
            ),
            (
                "kill its parent",
                format!(
                    "import os, signal\ndef solution(xs):\n    os.kill(os.getppid(), signal.SIGKILL)\n    os.kill({canary}, signal.SIGKILL)\n    {right}",
                    canary = canary.id()
                ),
            ),
            ("kill everything it can", "import os, signal\nos.kill(-1, signal.SIGKILL)".into()),
        ];
        // All at once (4 at a time), as a GRPO step runs them; then the
        // fork bomb again where it may fork.
        let tests = deck_tests();
        let jobs: Vec<PythonJob> = cases.iter().map(|(_, program)| PythonJob { program, setup: "", tests: &tests }).collect();
        let mut outcomes: Vec<(&str, Outcome)> =
            cases.iter().map(|(name, _)| *name).zip(sb.run_all(&jobs, 4).into_iter().map(|o| o.unwrap())).collect();
        let bomb = cases.iter().find(|(name, _)| *name == "fork bomb").map(|(_, p)| p.as_str()).unwrap_or_default();
        outcomes.push(("fork bomb, 16 processes allowed", run(&forking, bomb)));
        for (name, o) in outcomes {
            eprintln!("{name}: {:?} after {:.2} s; {:.100}", o.end, o.seconds, o.output.lines().last().unwrap_or(""));
            assert_eq!(o.passed, 0, "{name}: {o:?}");
            assert!(o.seconds < 10.0, "{name} took {} s", o.seconds);
            assert_no_process_left(&o.label);
            assert!(std::fs::read_dir(host.path()).unwrap().next().is_none(), "{name} wrote into the host's {host_dir}");
            assert!(matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock), "{name} reached the host's port");
            assert!(canary.try_wait().unwrap().is_none(), "{name} killed a host process");
            for path in ["/pwned", "/usr/pwned", "/etc/pwned", "/dev/shm/pwned"] {
                assert!(!Path::new(path).exists(), "{name} wrote {path}");
            }
            match name {
                "infinite loop" | "close standard output and sleep" => assert_eq!(o.end, RunEnd::TimedOut, "{name}"),
                "huge output" => assert_eq!(o.end, RunEnd::OutputLimit, "{name}"),
                _ => {}
            }
        }
        let _ = canary.kill();
        let _ = canary.wait();
        // And the sandbox still works after all that.
        assert_eq!(run(&sb, CORRECT).passed, 3);
    }

    #[test]
    fn many_programs_run_at_once_in_order() {
        let Some(sb) = test_sandbox(quick()) else { return };
        let tests = deck_tests();
        let programs =
            [CORRECT, "def solution(xs):\n    return sorted(xs)\n", "def solution(xs):\n    return [42] + xs\n", "syntax error("];
        let jobs: Vec<PythonJob> = programs.iter().cycle().take(12).map(|p| PythonJob { program: p, setup: "", tests: &tests }).collect();
        let passed: Vec<usize> = sb.run_all(&jobs, 4).into_iter().map(|o| o.unwrap().passed).collect();
        assert_eq!(passed, [3, 0, 1, 0].repeat(3));
    }

    #[test]
    fn limits_are_checked() {
        assert!(PythonLimits { timeout_s: 0.0, ..PythonLimits::default() }.validate().is_err());
        assert!(PythonLimits { memory_mb: 8, ..PythonLimits::default() }.validate().is_err());
        assert!(PythonLimits::default().validate().is_ok());
    }

    #[test]
    fn a_missing_interpreter_is_refused_not_run_unconfined() {
        let err = PythonSandbox::new(PythonLimits::default(), Some(Path::new("/nonexistent/python3"))).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/python3") && err.contains("will not run"), "{err}");
    }
}
