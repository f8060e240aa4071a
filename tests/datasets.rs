//! Datasets in, rewards out, end to end through the `aha` program: every
//! recognised layout (Parquet and JSONL, written in the datasets' real
//! layout under tests/fixtures/datasets/) trained on for a step by `aha
//! grpo` (conversations by `aha sft`) and scored by `aha score`; Python code
//! answers scored in the sandbox, the hostile ones at 0 with the host
//! checked after; bad rows refused naming file, row and column, or skipped
//! and counted.
//!
//! Tests that need the Python sandbox (bubblewrap) print SKIPPED when the
//! host has none, unless `AHA_REQUIRE_SANDBOX=1` (CI sets it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn aha(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aha")).args(args).output().expect("running aha")
}

fn ok(out: &Output) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "aha failed: {stderr}");
    (String::from_utf8(out.stdout.clone()).unwrap(), stderr)
}

fn err(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "aha should have failed: {stderr}");
    assert!(!stderr.contains("panicked"), "aha panicked: {stderr}");
    stderr
}

fn dataset(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datasets").join(name).to_str().unwrap().to_string()
}

fn model() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2-tokenizer").to_str().unwrap().to_string()
}

/// Whether the sandbox can be used; `false` (after printing SKIPPED) when
/// `aha` says the host has none and CI has not required it.
fn sandbox_or_skip(stderr: &str) -> bool {
    if !stderr.contains("sandbox:") {
        return true;
    }
    assert_ne!(std::env::var("AHA_REQUIRE_SANDBOX").as_deref(), Ok("1"), "AHA_REQUIRE_SANDBOX=1, but: {stderr}");
    eprintln!("SKIPPED (no Python sandbox on this host): {stderr}");
    false
}

/// One GRPO step on each dataset layout, from Parquet: the rows are read,
/// prompted, sampled and scored with the layout's default rewards.
#[test]
fn grpo_takes_a_step_on_every_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let init = model();
    for (name, layout, extra) in [
        ("gsm8k.parquet", "gsm8k", &[][..]),
        ("math.parquet", "math", &[][..]),
        ("math500.parquet", "math", &[][..]),
        ("numinamath.parquet", "math", &[][..]),
        ("openr1_math.parquet", "math", &["--skip-bad-rows"][..]),
        ("countdown.parquet", "countdown", &[][..]),
        ("mbpp.parquet", "mbpp", &[][..]),
        ("mbpp_sanitized.jsonl", "mbpp", &[][..]),
        ("humaneval.parquet", "humaneval", &[][..]),
        ("gsm8k_hub", "gsm8k", &["--split", "train"][..]),
    ] {
        let out = tmp.path().join(name.replace('.', "_"));
        let out = out.to_str().unwrap();
        let task = dataset(name);
        let args = [
            &["grpo", "--task", &task, "--init", &init, "--out", out, "--max-steps", "1", "--prompts-per-step", "2", "-G", "2"][..],
            &["--max-completion-length", "4", "--eval-steps", "0", "--template", "raw"][..],
            extra,
        ]
        .concat();
        let (_, stderr) = ok(&aha(&args));
        assert!(stderr.contains(&format!("data: ")) && stderr.contains(layout), "{name}: {stderr}");
        let metrics = std::fs::read_to_string(Path::new(out).join("metrics.jsonl")).unwrap();
        let line: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
        assert!(line["reward"].as_f64().is_some_and(f64::is_finite), "{name}: {line}");
        assert!(line.get("rewards/accuracy_uncomparable").is_some(), "{name}: {line}");
    }
}

/// `aha eval` on each layout: the rows are read with the same layer and
/// options as training, sampled and judged by the layout's verifier (code in
/// the sandbox), and the report's rates are numbers.
#[test]
fn eval_judges_every_layout() {
    let init = model();
    for (name, extra) in [
        ("gsm8k.jsonl", &[][..]),
        ("math500.parquet", &[][..]),
        ("numinamath.parquet", &[][..]),
        ("openr1_math.parquet", &["--skip-bad-rows"][..]),
        ("countdown.parquet", &[][..]),
        ("mbpp.parquet", &[][..]),
        ("humaneval.parquet", &[][..]),
        ("gsm8k_hub", &["--split", "train"][..]),
    ] {
        let task = dataset(name);
        let args = [
            &["eval", &init, "--task", &task, "--prompts", "2", "-n", "2", "--max-new-tokens", "4", "--template", "raw", "--json"][..],
            extra,
        ]
        .concat();
        let out = aha(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if !out.status.success() && !sandbox_or_skip(&stderr) {
            continue;
        }
        let (stdout, _) = ok(&out);
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{name}: {e}: {stdout}"));
        let report = &json["reports"][0];
        assert_eq!(report["prompts"].as_u64(), Some(2), "{name}: {report}");
        for key in ["pass_at_1", "format_rate", "language_consistency"] {
            assert!(report[key].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)), "{name}: {key} in {report}");
        }
    }
    // Without the flag the bad row is refused, naming the file.
    let e = err(&aha(&["eval", &init, "--task", &dataset("openr1_math.parquet"), "--prompts", "2", "-n", "1", "--max-new-tokens", "2"]));
    assert!(e.contains("openr1_math.parquet"), "{e}");
}

#[test]
fn sft_takes_a_step_on_conversations_and_worked_solutions() {
    let tmp = tempfile::tempdir().unwrap();
    let init = model();
    for (name, layout) in [("mixture_of_thoughts.parquet", "conversation"), ("gsm8k.jsonl", "gsm8k"), ("math.parquet", "math")] {
        let out = tmp.path().join(name.replace('.', "_"));
        let data = dataset(name);
        let (_, stderr) = ok(&aha(&[
            "sft",
            "--init",
            &init,
            "--data",
            &data,
            "--out",
            out.to_str().unwrap(),
            "--max-steps",
            "1",
            "--batch-size",
            "2",
            "--seq-len",
            "200",
        ]));
        assert!(stderr.contains(layout), "{name}: {stderr}");
    }
}

#[test]
fn bad_rows_are_named_or_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let t = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let data = t("prompts.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"Compute 1 + 1\", \"answer\": \"2\"}\n{\"prompt\": \"Compute 2 + 2\"}\n{\"prompt\": \"Compute 3 + 3\", \"answer\": null}\n{\"prompt\": \"Compute 4 + 4\", \"answer\": 8}\n",
    )
    .unwrap();
    let init = model();
    let common = [
        "--init",
        &init,
        "--max-steps",
        "1",
        "--prompts-per-step",
        "2",
        "-G",
        "2",
        "--max-completion-length",
        "4",
        "--eval-steps",
        "0",
        "--template",
        "raw",
    ];
    let e = err(&aha(&[&["grpo", "--task", &data, "--out", &t("refused")][..], &common[..]].concat()));
    assert!(e.contains("prompts.jsonl:2:") && e.contains("column \"answer\": missing"), "{e}");
    let (_, stderr) = ok(&aha(&[&["grpo", "--task", &data, "--out", &t("skipped"), "--skip-bad-rows"][..], &common[..]].concat()));
    assert!(stderr.contains("2 rows from") && stderr.contains("skipped 2 bad rows") && stderr.contains("prompts.jsonl:3:"), "{stderr}");

    // SFT: an empty file is named; a 5 MB line streams, and what is cut or
    // left out is counted.
    let empty = t("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let e = err(&aha(&["sft", "--init", &init, "--data", &empty, "--out", &t("sft0"), "--max-steps", "1"]));
    assert!(e.contains("empty.jsonl: no examples"), "{e}");
    let big = t("big.jsonl");
    let long = "wait, let me check that again. ".repeat(5 << 20 >> 5);
    let lines = format!(
        "{{\"prompt\": \"Compute 1 + 1\", \"completion\": \"{long}\"}}\n{{\"prompt\": \"{long}\", \"completion\": \"2\"}}\n{{\"prompt\": \"Compute 2 + 2\", \"completion\": \"4\"}}\n"
    );
    assert!(lines.len() > 10_000_000);
    std::fs::write(&big, lines).unwrap();
    let (_, stderr) = ok(&aha(&[
        "sft",
        "--init",
        &init,
        "--data",
        &big,
        "--out",
        &t("sft1"),
        "--max-steps",
        "1",
        "--seq-len",
        "128",
        "--template",
        "raw",
    ]));
    assert!(stderr.contains("of 3 examples, 2 were cut at --seq-len 128 and 1 left out"), "{stderr}");
}

/// Completions for the gsm8k and math fixtures, scored and totalled.
#[test]
fn score_prints_each_score_and_the_totals() {
    let tmp = tempfile::tempdir().unwrap();
    let completions = tmp.path().join("c.jsonl");
    std::fs::write(
        &completions,
        concat!(
            "{\"row\": 0, \"completion\": \"<think> 12 + 15 - 7 </think> <answer> 20 </answer>\"}\n",
            "{\"row\": 1, \"completion\": \"<think> hmm </think> <answer> 20 </answer>\"}\n",
            "{\"prompt\": \"Mia picks 12 apples in the morning and 15 in the afternoon. She gives 7 to her neighbour. How many apples does she have left?\", \"completion\": \"so \\\\boxed{20}\"}\n",
        ),
    )
    .unwrap();
    let c = completions.to_str().unwrap();
    let (out, _) = ok(&aha(&["score", "--task", &dataset("gsm8k.parquet"), "--completions", c]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].contains("row 0") && lines[0].contains("accuracy 1.000") && lines[0].contains("format 1.000"), "{out}");
    assert!(lines[1].contains("accuracy 0.000"), "{out}");
    assert!(lines[2].contains("accuracy 1.000") && lines[2].contains("format 0.000"), "{out}");
    assert!(lines[3].starts_with("3 completions of 2 rows") && lines[3].contains("accuracy 0.667"), "{out}");

    // LaTeX answers compared as values; what cannot be compared is said.
    std::fs::write(
        &completions,
        concat!(
            "{\"row\": 0, \"completion\": \"<answer> \\\\dfrac{10}{12} </answer>\"}\n",
            "{\"row\": 1, \"completion\": \"<answer> \\\\sqrt{12} </answer>\"}\n",
            "{\"row\": 2, \"completion\": \"<answer> \\\\left(2,3\\\\right) </answer>\"}\n",
            "{\"row\": 1, \"completion\": \"<answer> 2x </answer>\"}\n",
        ),
    )
    .unwrap();
    let (out, stderr) = ok(&aha(&["score", "--task", &dataset("math.jsonl"), "--completions", c, "--reward", "accuracy", "--json"]));
    let v: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let acc: Vec<f64> = v.iter().map(|l| l["rewards"]["accuracy"].as_f64().unwrap()).collect();
    assert_eq!(acc, [1.0, 1.0, 1.0, 0.0], "{out}");
    assert_eq!(v[3]["uncomparable"], true, "{out}");
    assert!(stderr.contains("uncomparable 25.0%"), "{stderr}");

    // Errors name the completions file's line.
    std::fs::write(&completions, "{\"row\": 9, \"completion\": \"x\"}\n").unwrap();
    let e = err(&aha(&["score", "--task", &dataset("gsm8k.jsonl"), "--completions", c]));
    assert!(e.contains("c.jsonl:1:") && e.contains("row 9") && e.contains("2 prompts"), "{e}");
    std::fs::write(&completions, "{\"row\": 0}\n").unwrap();
    let e = err(&aha(&["score", "--task", &dataset("gsm8k.jsonl"), "--completions", c]));
    assert!(e.contains("c.jsonl:1:") && e.contains("completion"), "{e}");
}

/// The seed deck's example through MBPP and HumanEval rows, and the hostile
/// programs, each scoring 0 with the host checked after.
#[test]
fn python_code_is_scored_in_the_sandbox_and_hostile_code_scores_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let completions = tmp.path().join("c.jsonl");
    let write = |lines: &[(usize, String)]| {
        let text: String = lines.iter().map(|(row, c)| serde_json::json!({"row": row, "completion": c}).to_string() + "\n").collect();
        std::fs::write(&completions, text).unwrap();
    };
    let c = completions.to_str().unwrap().to_string();
    let fenced = |code: &str| format!("<think> ok </think> <answer>\n```python\n{code}\n```\n</answer>");
    write(&[
        (0, fenced("def sort_with_42(xs):\n    return [42] + sorted(xs)")),
        (0, "<think> frogs </think> <answer> What do frogs order at a restaurant? French flies. </answer>".into()),
        (0, fenced("def sort_with_42(xs):\n    return sorted(xs)")),
        (1, fenced("def square_sum(n):\n    return sum(i * i for i in range(1, n + 1))")),
    ]);
    let out =
        aha(&["score", "--task", &dataset("mbpp.parquet"), "--completions", &c, "--json", "--reward", "code", "--reward", "accuracy"]);
    if !sandbox_or_skip(&String::from_utf8_lossy(&out.stderr)) {
        return;
    }
    let (stdout, _) = ok(&out);
    let v: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let code: Vec<f64> = v.iter().map(|l| l["rewards"]["code"].as_f64().unwrap()).collect();
    assert_eq!(code, [1.0, 0.0, 0.0, 1.0], "{stdout}");
    assert_eq!(v[0]["tests"]["passed"], 3, "{stdout}");
    assert_eq!(v[1]["tests"]["passed"], 0, "the joke ran as a program and failed: {stdout}");

    // HumanEval: a body after the stub, or the whole function.
    write(&[
        (0, "```python\n    return [42] + sorted(numbers)\n```".into()),
        (0, fenced("def sort_with_42(numbers: List[int]) -> List[int]:\n    return [42] + sorted(numbers)")),
        (1, fenced("def is_palindrome(text):\n    return text == text[::-1]")),
        (1, fenced("def is_palindrome(text):\n    return True")),
    ]);
    let (stdout, _) = ok(&aha(&["score", "--task", &dataset("humaneval.jsonl"), "--completions", &c, "--json", "--reward", "code"]));
    let code: Vec<f64> =
        stdout.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["rewards"]["code"].as_f64().unwrap()).collect();
    assert_eq!(code, [1.0, 1.0, 1.0, 0.0], "{stdout}");

    // The hostile suite, as completions of the deck's task: each attacks,
    // then answers right only if the attack worked.
    let host = tempfile::tempdir().unwrap();
    let host_dir = host.path().display();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut canary = Command::new("sleep").arg("60").spawn().unwrap();
    let right = "return [42] + sorted(xs)";
    let hostile = [
        "while True:\n    pass".to_string(),
        format!("import os\ndef sort_with_42(xs):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass"),
        format!("def sort_with_42(xs):\n    hog = [bytearray(1 << 26) for _ in range(64)]\n    {right}"),
        format!("def sort_with_42(xs):\n    with open('big', 'wb') as f:\n        for _ in range(1024):\n            f.write(b'x' * (1 << 20))\n    {right}"),
        format!("def sort_with_42(xs):\n    open('{host_dir}/pwned', 'w').write('x')\n    {right}"),
        format!("def sort_with_42(xs):\n    open('/etc/shadow').read()\n    {right}"),
        format!("import os\ndef sort_with_42(xs):\n    os.listdir(os.path.expanduser('~root'))\n    {right}"),
        format!("import socket\ndef sort_with_42(xs):\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n    {right}"),
        format!("import subprocess\ndef sort_with_42(xs):\n    subprocess.run(['/bin/sh', '-c', 'true'], check=True)\n    {right}"),
        format!("import os\ndef sort_with_42(xs):\n    assert os.environ.get('AHA_TEST_SECRET') == 'hunter2'\n    {right}"),
        format!("def sort_with_42(xs):\n    print('x' * (50 << 20))\n    {right}"),
        "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(60)".to_string(),
        format!("import os, signal\ndef sort_with_42(xs):\n    os.kill({}, signal.SIGKILL)\n    {right}", canary.id()),
        format!("import os, signal\ndef sort_with_42(xs):\n    os.kill(os.getppid(), signal.SIGKILL)\n    os.kill(-1, signal.SIGKILL)\n    {right}"),
    ];
    let mut lines: Vec<(usize, String)> = hostile.iter().map(|h| (0, fenced(h))).collect();
    lines.push((0, fenced(&format!("def sort_with_42(xs):\n    {right}"))));
    write(&lines);
    let out = Command::new(env!("CARGO_BIN_EXE_aha"))
        .args([
            "score",
            "--task",
            &dataset("mbpp.jsonl"),
            "--completions",
            &c,
            "--json",
            "--reward",
            "code",
            "--code-timeout",
            "3",
            "--code-memory",
            "512",
        ])
        .env("AHA_TEST_SECRET", "hunter2")
        .output()
        .unwrap();
    let (stdout, _) = ok(&out);
    let code: Vec<f64> =
        stdout.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["rewards"]["code"].as_f64().unwrap()).collect();
    let mut want = vec![0.0; hostile.len()];
    want.push(1.0);
    assert_eq!(code, want, "{stdout}");
    assert!(std::fs::read_dir(host.path()).unwrap().next().is_none(), "a program wrote into the host's {host_dir}");
    assert!(matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock), "a program reached the host's port");
    assert!(canary.try_wait().unwrap().is_none(), "a program killed a host process");
    let _ = canary.kill();
    let _ = canary.wait();
}
