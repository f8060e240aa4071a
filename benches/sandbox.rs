//! The Python sandbox's cost (`trainer/src/sandbox/python.rs`): programs per
//! second with 1 and 2 workers, and what one program costs, stage by stage:
//! starting a process, bubblewrap's namespaces and mounts, the interpreter's
//! start, then the whole run (harness, the seed deck's program and its 3
//! tests). Needs `bwrap` (apt-get install bubblewrap); skips otherwise.
//! Run: `cargo bench --bench sandbox`.

use std::process::Command;
use std::time::Duration;

use aha_trainer::sandbox::python::{PythonJob, PythonLimits, PythonSandbox};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// The namespaces and mounts the sandbox uses, for timing them alone.
const BWRAP: &str = "--unshare-all --unshare-user --die-with-parent --new-session --cap-drop ALL --uid 65534 --gid 65534 --hostname sandbox \
    --clearenv --ro-bind /usr /usr --ro-bind-try /etc/ld.so.cache /etc/ld.so.cache --symlink usr/bin /bin --symlink usr/lib /lib \
    --symlink usr/lib64 /lib64 --proc /proc --dev /dev --perms 1777 --size 67108864 --tmpfs /tmp --remount-ro /dev --remount-ro / --chdir /tmp --";

fn as_nobody(c: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    c.uid(65534).gid(65534)
}

fn bench(c: &mut Criterion) {
    let sandbox = match PythonSandbox::new(PythonLimits::default(), None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            return;
        }
    };
    let tests: Vec<String> = [
        "assert sort_with_42([3, 1, 2]) == [42, 1, 2, 3]",
        "assert sort_with_42([]) == [42]",
        "assert sort_with_42([5, -1, 5]) == [42, -1, 5, 5]",
    ]
    .map(String::from)
    .to_vec();
    let job = PythonJob { program: "def sort_with_42(xs):\n    return [42] + sorted(xs)\n", setup: "", tests: &tests };
    let bwrap: Vec<&str> = BWRAP.split_whitespace().collect();
    let python = sandbox.python().to_path_buf();

    let mut stages = c.benchmark_group("sandbox/stage");
    stages.sample_size(20).measurement_time(Duration::from_secs(5));
    stages.bench_function("process /bin/true", |b| b.iter(|| as_nobody(&mut Command::new("/bin/true")).status().unwrap()));
    stages
        .bench_function("bwrap /bin/true", |b| b.iter(|| as_nobody(Command::new("bwrap").args(&bwrap).arg("/bin/true")).status().unwrap()));
    stages.bench_function("python -I -S -c pass", |b| b.iter(|| Command::new(&python).args(["-I", "-S", "-c", "pass"]).status().unwrap()));
    stages.bench_function("bwrap python -c pass", |b| {
        b.iter(|| as_nobody(Command::new("bwrap").args(&bwrap).arg(&python).args(["-I", "-S", "-c", "pass"])).status().unwrap())
    });
    stages.bench_function("whole run (3 tests)", |b| b.iter(|| assert_eq!(sandbox.run(&job).unwrap().passed, 3)));
    stages.finish();

    let jobs = vec![job; 32];
    let mut pool = c.benchmark_group("sandbox/programs");
    pool.sample_size(10).measurement_time(Duration::from_secs(10)).throughput(Throughput::Elements(jobs.len() as u64));
    for workers in [1, 2, 4] {
        pool.bench_with_input(BenchmarkId::new("workers", workers), &workers, |b, &w| {
            b.iter(|| assert!(sandbox.run_all(&jobs, w).iter().all(|o| o.as_ref().is_ok_and(|o| o.passed == 3))))
        });
    }
    pool.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
