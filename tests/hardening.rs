//! What a user can feed `aha` never crashes it and never gives a silently
//! wrong answer (issue 14): closed pipes, sizes typed on the command line,
//! NaN weights, corrupted files, outputs that are FIFOs, symlinks or
//! folders, malformed files and lists, and `kill -9` at any moment of a
//! training run. Each test runs the real binary and checks the exit status
//! and that the message names what is at fault.

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: this build's, or `AHA_BIN` (e.g. a release build).
fn bin() -> String {
    std::env::var("AHA_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_aha").to_string())
}

fn aha(args: &[&str]) -> Output {
    Command::new(bin()).args(args).stdin(Stdio::null()).output().expect("running aha")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "aha failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The message of a run that must fail with `status`; it must not panic.
fn fails(out: &Output, status: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(status), "expected exit {status}: {stderr}");
    assert!(!stderr.contains("panicked"), "aha panicked: {stderr}");
    stderr
}

/// `fails(out, 1)` whose message contains every one of `words`.
fn error_naming(out: &Output, words: &[&str]) -> String {
    let e = fails(out, 1);
    for w in words {
        assert!(e.contains(w), "the message should name `{w}`: {e}");
    }
    e
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2-tokenizer")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The fixture converted at `dtype` into `dir`.
fn model(dir: &Path, dtype: &str) -> PathBuf {
    let out = dir.join(format!("m-{dtype}.aha"));
    ok(&aha(&["convert", s(&fixture()), "-o", s(&out), "--dtype", dtype]));
    out
}

// ---------------------------------------------------------------------------
// A safetensors file as (name, dtype, shape, bytes), to make broken checkpoints.

struct Tensor {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    data: Vec<u8>,
}

fn read_safetensors(path: &Path) -> Vec<Tensor> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out: Vec<Tensor> = header
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(name, t)| {
            let o = &t["data_offsets"];
            let (b, e) = (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize);
            Tensor {
                name: name.clone(),
                dtype: t["dtype"].as_str().unwrap().to_string(),
                shape: serde_json::from_value(t["shape"].clone()).unwrap(),
                data: data[b..e].to_vec(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn write_safetensors(path: &Path, tensors: &[Tensor]) {
    let mut header = serde_json::Map::new();
    let mut at = 0;
    for t in tensors {
        header.insert(t.name.clone(), serde_json::json!({ "dtype": t.dtype, "shape": t.shape, "data_offsets": [at, at + t.data.len()] }));
        at += t.data.len();
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    for t in tensors {
        bytes.extend(&t.data);
    }
    std::fs::write(path, bytes).unwrap();
}

/// A copy of the fixture folder in `dir/name`, its config and tensors passed
/// through `config` and `tensors`.
fn checkpoint(dir: &Path, name: &str, config: impl FnOnce(&mut serde_json::Value), tensors: impl FnOnce(&mut Vec<Tensor>)) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        std::fs::copy(fixture().join(f), out.join(f)).unwrap();
    }
    let mut c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture().join("config.json")).unwrap()).unwrap();
    config(&mut c);
    std::fs::write(out.join("config.json"), c.to_string()).unwrap();
    let mut t = read_safetensors(&fixture().join("model.safetensors"));
    tensors(&mut t);
    write_safetensors(&out.join("model.safetensors"), &t);
    out
}

fn set_f32(tensors: &mut [Tensor], name: &str, value: f32, count: usize) {
    let t = tensors.iter_mut().find(|t| t.name == name).unwrap();
    for v in t.data.chunks_exact_mut(4).take(count) {
        v.copy_from_slice(&value.to_le_bytes());
    }
}

// ---------------------------------------------------------------------------

/// Every command that prints ends quietly, with the status a shell reports
/// for a Unix tool killed by SIGPIPE, when nobody reads its output.
#[test]
fn closed_pipes_end_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path(), "q8_0");
    let m = s(&m);
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("metrics.jsonl"), "{\"step\": 1, \"loss\": 2.0}\n{\"step\": 2, \"loss\": 1.5}\n").unwrap();
    let text = "Compute 7 * 3 + 5. ".repeat(3000);
    let ids: Vec<String> = (0..3000).map(|i| (7 + i % 400).to_string()).collect();
    let ids = ids.join(",");
    let json = fixture().join("tokenizer.json");
    let cases: Vec<Vec<&str>> = vec![
        vec!["logits", m, "--tokens", "1,2,3", "--all"],
        vec!["inspect", m],
        vec!["tokenize", m, &text],
        vec!["tokenize", s(&json), &text],
        vec!["detokenize", m, &ids],
        vec!["bench", m, "--prompt", "4", "--tokens", "4"],
        vec!["run", m, "--prompt", "hi", "--max-tokens", "8", "--temperature", "0", "--template", "raw"],
        vec!["plot", s(&run)],
    ];
    for args in cases {
        // The reader is gone before the program starts, so its first write
        // fails whatever the timing (closing it after the spawn would race
        // with a short output that fits the pipe's buffer).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(bin()).args(&args).stdin(Stdio::null()).stdout(writer).stderr(Stdio::piped()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "aha {}: {stderr}", args[0]);
        assert!(stderr.trim().is_empty(), "aha {} should end quietly: {stderr}", args[0]);
    }
}

/// Sizes typed on the command line are checked against the model before
/// anything is allocated, and the message gives the limit.
#[test]
fn sizes_are_checked_against_the_model_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path(), "q8_0");
    let m = s(&m);
    let run = ["--max-tokens", "4", "--temperature", "0", "--template", "raw"];
    for context in ["100000000", "4294967296", "300"] {
        error_naming(&aha(&[&["run", m, "--prompt", "hi", "--context", context][..], &run].concat()), &[context, "256 positions"]);
    }
    error_naming(&aha(&["bench", m, "--prompt", "100000000", "--tokens", "1"]), &["--prompt 100000000", "256 positions"]);
    error_naming(&aha(&["bench", m, "--prompt", "4", "--tokens", "100000000"]), &["--tokens 100000000", "256 positions"]);
    error_naming(&aha(&["bench", m, "--prompt", "0"]), &["--prompt 0"]);
    let ids: Vec<String> = (0..300).map(|i| (7 + i % 400).to_string()).collect();
    error_naming(&aha(&["logits", m, "--tokens", &ids.join(",")]), &["300 tokens", "256 positions"]);

    // Thread counts: 0 and absurd ones are refused by the argument parser (status 2).
    for threads in ["0", "100000"] {
        let e = fails(&aha(&[&["run", m, "--prompt", "hi", "--threads", threads][..], &run].concat()), 2);
        assert!(e.contains("--threads") && e.contains("between 1 and 1024"), "{e}");
        let e = fails(&aha(&["logits", m, "--tokens", "1", "--threads", threads]), 2);
        assert!(e.contains("--threads"), "{e}");
    }
    error_naming(&aha(&["bench", m, "--threads", "1,0", "--prompt", "4", "--tokens", "4"]), &["--threads", "0 threads"]);
}

/// `aha run` refuses a context that leaves no room for an answer and a
/// prompt longer than the model's positions, with the numbers.
#[test]
fn run_refuses_contexts_and_prompts_that_do_not_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path(), "f32");
    let m = s(&m);
    let run = ["--max-tokens", "4", "--temperature", "0", "--template", "raw"];
    let e = error_naming(&aha(&[&["run", m, "--prompt", "hello there", "--context", "0"][..], &run].concat()), &["context of 0 tokens"]);
    assert!(e.contains("between 1 and the model's 256 positions"), "{e}");
    for context in ["1", "2"] {
        let e = error_naming(
            &aha(&[&["run", m, "--prompt", "hello there", "--context", context][..], &run].concat()),
            &[&format!("--context {context} leaves no room for an answer"), "the prompt alone is"],
        );
        assert!(e.contains("give at least"), "{e}");
    }
    let long = "seven times three plus five ".repeat(400);
    error_naming(&aha(&[&["run", m, "--prompt", &long][..], &run].concat()), &["the prompt is", "256 positions"]);
    // What fits still runs, and the context grows to hold prompt + answer.
    ok(&aha(&[&["run", m, "--prompt", "hello there", "--context", "16"][..], &run].concat()));
}

/// NaN, infinite and out-of-range weights are refused by `convert` and
/// `export`, naming the tensor; `--allow-non-finite` stores them with a warning.
#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let nan = checkpoint(tmp.path(), "nan", |_| {}, |t| set_f32(t, "model.norm.weight", f32::NAN, usize::MAX));
    let out = tmp.path().join("x.aha");
    for command in ["convert", "export"] {
        let e = error_naming(
            &aha(&[command, s(&nan), "-o", s(&out), "--dtype", "q8_0"]),
            &["model.norm.weight", "64 of 64 values", "NaN", "--allow-non-finite"],
        );
        assert!(e.contains("nan/model.safetensors"), "names the file: {e}");
        assert!(!out.exists(), "nothing is written");
    }
    let inf = checkpoint(tmp.path(), "inf", |_| {}, |t| set_f32(t, "model.layers.1.mlp.up_proj.weight", f32::NEG_INFINITY, 3));
    error_naming(
        &aha(&["convert", s(&inf), "-o", s(&out), "--dtype", "q4_0"]),
        &["model.layers.1.mlp.up_proj.weight", "3 of 12288", "-inf"],
    );
    // Finite in the checkpoint but infinite once stored as f16.
    let big = checkpoint(tmp.path(), "big", |_| {}, |t| set_f32(t, "model.embed_tokens.weight", 1e6, 1));
    error_naming(&aha(&["convert", s(&big), "-o", s(&out), "--dtype", "f16"]), &["model.embed_tokens.weight", "beyond what f16 holds"]);
    ok(&aha(&["convert", s(&big), "-o", s(&out), "--dtype", "bf16"]));

    let allowed = aha(&["convert", s(&nan), "-o", s(&out), "--dtype", "f32", "--allow-non-finite"]);
    ok(&allowed);
    assert!(String::from_utf8_lossy(&allowed.stderr).contains("warning: stored anyway (--allow-non-finite): tensor model.norm.weight"));
}

/// On a host every tensor's CRC-32 is checked on load: a flipped bit is
/// refused by tensor name in `run`, `logits` and `bench`; `--no-verify`
/// skips the check.
#[test]
fn corrupted_weights_are_refused_on_load() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path(), "q8_0");
    let mut bytes = std::fs::read(&m).unwrap();
    let victim = "model.layers.1.mlp.down_proj.weight";
    let at = {
        let file = aha_runtime::ModelFile::parse(&bytes).unwrap();
        let info = file.find(victim).unwrap();
        let data_start = bytes.len() - file.data.len();
        data_start + info.offset as usize + 100
    };
    bytes[at] ^= 0x04;
    let bad = tmp.path().join("flipped.aha");
    std::fs::write(&bad, &bytes).unwrap();
    let bad = s(&bad);
    let run = ["--prompt", "hi", "--max-tokens", "2", "--temperature", "0", "--template", "raw"];
    let e = error_naming(&aha(&[&["run", bad][..], &run].concat()), &["flipped.aha", "checksum mismatch in", victim]);
    assert!(e.contains("--no-verify"), "{e}");
    error_naming(&aha(&["logits", bad, "--tokens", "1,2"]), &[victim]);
    error_naming(&aha(&["bench", bad, "--prompt", "2", "--tokens", "2"]), &[victim]);
    ok(&aha(&[&["run", bad, "--no-verify"][..], &run].concat()));
    ok(&aha(&["logits", bad, "--tokens", "1,2", "--no-verify"]));
    // `inspect` still shows the table, and `--verify` names the tensor.
    assert!(ok(&aha(&["inspect", bad])).contains(victim));
    error_naming(&aha(&["inspect", bad, "--verify"]), &[victim]);
}

/// Outputs that are not regular files are never renamed over: a FIFO is
/// written through, a symlink keeps pointing where it did (its target is
/// replaced), a folder is refused.
#[cfg(unix)]
#[test]
fn outputs_that_are_not_regular_files_are_never_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let fifo = dir.join("model.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    ok(&aha(&["convert", s(&fixture()), "-o", s(&fifo), "--dtype", "q8_0"]));
    let through = reader.join().unwrap();
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "still a FIFO");
    aha_runtime::ModelFile::parse(&through).unwrap().verify().unwrap();

    let real = dir.join("real.aha");
    std::fs::write(&real, b"old").unwrap();
    let link = dir.join("link.aha");
    std::os::unix::fs::symlink("real.aha", &link).unwrap();
    ok(&aha(&["convert", s(&fixture()), "-o", s(&link), "--dtype", "q8_0"]));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "still a symlink");
    aha_runtime::ModelFile::parse(&std::fs::read(&real).unwrap()).unwrap().verify().unwrap();
    // A dangling link: the file it names is created, the link stays.
    let dangling = dir.join("dangling.aha");
    std::os::unix::fs::symlink("made.aha", &dangling).unwrap();
    ok(&aha(&["convert", s(&fixture()), "-o", s(&dangling), "--dtype", "q8_0"]));
    assert!(std::fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());
    assert!(dir.join("made.aha").is_file());

    let folder = dir.join("folder");
    std::fs::create_dir(&folder).unwrap();
    error_naming(&aha(&["convert", s(&fixture()), "-o", s(&folder), "--dtype", "q8_0"]), &["folder is a directory", "refusing"]);
    assert!(std::fs::read_dir(&folder).unwrap().next().is_none(), "nothing written into it");
    let nowhere = dir.join("nowhere/x.aha");
    error_naming(&aha(&["convert", s(&fixture()), "-o", s(&nowhere), "--dtype", "q8_0"]), &["nowhere"]);

    // The trainer's writes follow the same rule (samples through a symlink).
    let samples = dir.join("samples.jsonl");
    std::fs::write(&samples, "").unwrap();
    let samples_link = dir.join("samples-link.jsonl");
    std::os::unix::fs::symlink(&samples, &samples_link).unwrap();
    ok(&aha(&[
        "generate",
        "--init",
        s(&fixture()),
        "--prompts",
        "arith",
        "--examples",
        "1",
        "--out",
        s(&samples_link),
        "--max-new-tokens",
        "2",
    ]));
    assert!(std::fs::symlink_metadata(&samples_link).unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(&samples).unwrap().contains("token_ids"));
}

/// The smaller messages: each names the file, field or item at fault.
#[test]
fn messages_name_the_file_the_field_or_the_item() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = dir.join("x.aha");
    let o = s(&out);

    // The OS error's text once, after the path.
    let e = error_naming(&aha(&["inspect", s(&dir.join("nope.aha"))]), &["nope.aha", "No such file"]);
    assert_eq!(e.matches("os error").count(), 1, "{e}");

    let empty = checkpoint(dir, "empty", |_| {}, |_| {});
    std::fs::write(empty.join("model.safetensors"), b"").unwrap();
    error_naming(&aha(&["convert", s(&empty), "-o", o]), &["empty/model.safetensors", "the file is empty", "8-byte header length"]);

    let array = checkpoint(dir, "array", |c| *c = serde_json::json!([1, 2, 3]), |_| {});
    error_naming(&aha(&["convert", s(&array), "-o", o]), &["array/config.json", "expected a JSON object", "found an array"]);

    let huge = checkpoint(dir, "huge", |c| c["hidden_size"] = serde_json::json!(1u64 << 40), |_| {});
    error_naming(&aha(&["convert", s(&huge), "-o", o]), &["config.json", "`hidden_size` = 1099511627776 is too large"]);
    let wide = checkpoint(dir, "wide", |c| c["hidden_size"] = serde_json::json!(1u64 << 21), |_| {});
    error_naming(&aha(&["convert", s(&wide), "-o", o]), &["hidden_size = 2097152 is larger than the supported 1048576"]);

    // A tokenizer with ids the model has no embedding for.
    let small = checkpoint(
        dir,
        "small-vocab",
        |c| c["vocab_size"] = serde_json::json!(256),
        |t| {
            let embed = t.iter_mut().find(|t| t.name == "model.embed_tokens.weight").unwrap();
            embed.shape[0] = 256;
            embed.data.truncate(256 * 64 * 4);
        },
    );
    error_naming(&aha(&["convert", s(&small), "-o", o]), &["small-vocab/tokenizer.json", "outside the model's vocabulary of 256"]);
    assert!(!out.exists());

    // Token lists.
    let m = model(dir, "q8_0");
    let m = s(&m);
    error_naming(&aha(&["logits", m, "--tokens", "1,,2"]), &["`1,,2`", "item 2 is empty"]);
    error_naming(&aha(&["logits", m, "--tokens", "1,2,"]), &["item 3 is empty"]);
    error_naming(&aha(&["detokenize", m, "5,,6"]), &["item 2 is empty"]);
    assert_eq!(ok(&aha(&["logits", m, "--tokens", " 1, 2 "])).matches(',').count() > 10, true);

    // `tokenize` reads a file or standard input (past the shell's argument limit).
    let text = "Compute 7 * 3 + 5, then check it. ".repeat(6000);
    let file = dir.join("big.txt");
    std::fs::write(&file, &text).unwrap();
    let from_file: Vec<u32> = serde_json::from_str(&ok(&aha(&["tokenize", m, "--file", s(&file)]))).unwrap();
    assert!(from_file.len() > 10_000);
    let piped =
        Command::new(bin()).args(["tokenize", m, "-"]).stdin(std::fs::File::open(&file).unwrap()).output().unwrap();
    let from_stdin: Vec<u32> = serde_json::from_str(&ok(&piped)).unwrap();
    assert_eq!(from_stdin, from_file);
    let short: Vec<u32> = serde_json::from_str(&ok(&aha(&["tokenize", m, "Compute 7 * 3 + 5"]))).unwrap();
    assert_eq!(&from_file[..short.len() - 1], &short[..short.len() - 1]);
    error_naming(&aha(&["tokenize", m, "--file", s(&dir.join("missing.txt"))]), &["missing.txt"]);
    std::fs::write(dir.join("latin1.txt"), b"caf\xe9").unwrap();
    error_naming(&aha(&["tokenize", m, "--file", s(&dir.join("latin1.txt"))]), &["latin1.txt", "UTF-8"]);

    // `plot` reads the complete lines of a live run's metrics.
    let live = dir.join("live");
    std::fs::create_dir(&live).unwrap();
    std::fs::write(live.join("metrics.jsonl"), "{\"step\": 1, \"loss\": 2.0}\n{\"step\": 2, \"loss\": 1.5}\n{\"step\": 3, \"lo").unwrap();
    assert!(ok(&aha(&["plot", s(&live)])).contains("loss.png"));
    std::fs::write(live.join("metrics.jsonl"), "{\"step\": 1, \"loss\": 2.0}\n{\"step\": 2, \"lo\n{\"step\": 3, \"loss\": 1}\n").unwrap();
    error_naming(&aha(&["plot", s(&live)]), &["live/metrics.jsonl:2:"]);
}

// ---------------------------------------------------------------------------
// kill -9 at random moments, then --resume: the same losses and weights.

/// A small deterministic generator for the kill times (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// The temporary checkpoint folders in `out/checkpoints` (`step-N.tmpPID`).
fn checkpoint_temps(out: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(out.join("checkpoints"))
        .map(|entries| entries.flatten().map(|e| e.file_name()).filter(|n| n.to_string_lossy().contains(".tmp")).collect())
        .unwrap_or_default()
}

/// Runs `args` (plus `--out out`) to the end, killing it with SIGKILL at
/// `kills` moments and resuming each time with `--resume`: the odd attempts
/// are killed after a random delay (up to `typical`, an uninterrupted run's
/// time), the even ones the instant a new checkpoint folder is being
/// written. Returns how many runs were killed.
fn run_with_kills(args: &[&str], out: &Path, kills: usize, seed: u64, typical: Duration) -> usize {
    let mut rng = Rng(seed);
    let mut killed = 0;
    for attempt in 0.. {
        // Folders a killed write left behind are not new writes.
        let before = checkpoint_temps(out);
        // Into a file, not a pipe: a pipe nobody reads could block the child.
        let log = out.with_extension(format!("attempt{attempt}.log"));
        let mut child = Command::new(bin())
            .args(args)
            .args(["--out", s(out), "--resume"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let in_checkpoint = attempt % 2 == 1;
        // Within the first run's time; narrower after a run that ended
        // before its kill was due (a rerun can be faster than the first).
        let range = typical.as_millis() as u64 >> attempt.min(4);
        let delay = Duration::from_millis(rng.below(range + 1));
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let due = if in_checkpoint { checkpoint_temps(out).iter().any(|t| !before.contains(t)) } else { start.elapsed() >= delay };
            if killed < kills && due {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                let what = if in_checkpoint { "inside a checkpoint write" } else { "at a random moment" };
                eprintln!("attempt {attempt}: killed after {:.0?}, {what}", start.elapsed());
                break None;
            }
            std::thread::sleep(Duration::from_micros(if in_checkpoint { 200 } else { 2000 }));
        };
        match status {
            None => killed += 1,
            Some(status) => {
                let stderr = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(status.success(), "attempt {attempt} failed: {stderr}");
                if killed == 0 && kills > 0 && attempt < 12 {
                    // It finished before any kill: start again from nothing.
                    std::fs::remove_dir_all(out).unwrap();
                    continue;
                }
                return killed;
            }
        }
    }
    unreachable!()
}

/// The values of `keys` in every line of `metrics.jsonl`, as bits, by step.
fn metric_bits(run: &Path, deterministic: impl Fn(&str) -> bool) -> Vec<(u64, Vec<(String, u64)>)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let map = v.as_object().unwrap();
            let fields = map
                .iter()
                .filter(|(k, v)| v.is_number() && deterministic(k))
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap().to_bits()))
                .collect();
            (map["step"].as_u64().unwrap(), fields)
        })
        .collect()
}

/// Timings vary from run to run; everything else in a metrics line must not.
fn not_a_timing(key: &str) -> bool {
    !(key.ends_with("_s") || key.contains("per_s") || key.contains("time") || key.contains("elapsed") || key.contains("share"))
}

fn check_kill_and_resume(args: &[&str], kills: usize, seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let t0 = Instant::now();
    let out = Command::new(bin()).args(args).args(["--out", s(&whole)]).stdin(Stdio::null()).output().unwrap();
    ok(&out);
    let typical = t0.elapsed();
    let killed_dir = tmp.path().join("killed");
    let killed = run_with_kills(args, &killed_dir, kills, seed, typical);
    assert!(killed >= 1, "at least one run was killed");
    let want = metric_bits(&whole, not_a_timing);
    let got = metric_bits(&killed_dir, not_a_timing);
    assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), want.iter().map(|(s, _)| *s).collect::<Vec<_>>(), "every step once");
    assert!(want.iter().all(|(_, f)| !f.is_empty()));
    assert_eq!(got, want, "metrics after {killed} kills differ from the uninterrupted run's");
    let a = std::fs::read(whole.join("model.safetensors")).unwrap();
    let b = std::fs::read(killed_dir.join("model.safetensors")).unwrap();
    assert!(a == b, "final weights differ after {killed} kills");
}

#[test]
fn pretrain_killed_at_random_moments_resumes_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("model.toml");
    std::fs::write(
        &config,
        "model_type = \"qwen2\"\nvocab_size = 300\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 1\n\
         num_attention_heads = 2\nnum_key_value_heads = 1\nmax_position_embeddings = 64\ntie_word_embeddings = true\n",
    )
    .unwrap();
    let args = [
        "pretrain",
        "--task",
        "arith",
        "--examples",
        "200",
        "--config",
        s(&config),
        "--max-steps",
        "12",
        "--save-steps",
        "2",
        "--batch-size",
        "4",
        "--seq-len",
        "32",
        "--seed",
        "3",
    ];
    check_kill_and_resume(&args, 6, 0x5eed);
}

#[test]
fn grpo_killed_at_random_moments_resumes_bit_for_bit() {
    let init = fixture();
    let args = [
        "grpo",
        "--init",
        s(&init),
        "--task",
        "arith",
        "--max-steps",
        "6",
        "--save-steps",
        "2",
        "--prompts-per-step",
        "2",
        "-G",
        "3",
        "--max-completion-length",
        "6",
        "--eval-steps",
        "0",
        "--template",
        "raw",
        "--seed",
        "5",
        "--beta",
        "0.01",
    ];
    check_kill_and_resume(&args, 4, 0xfeed);
}
