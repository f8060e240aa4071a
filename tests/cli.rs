//! The `aha` program end to end: convert, inspect, logits, tokenize,
//! sft, generate, export,
//! detokenize, run; and clear errors (naming the file) on bad input.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn aha(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aha")).args(args).output().expect("running aha")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "aha failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn err(out: &Output) -> String {
    assert!(!out.status.success(), "aha should have failed");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "aha panicked: {stderr}");
    stderr
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2-tokenizer")
}

fn convert(tmp: &Path, dtype: &str) -> PathBuf {
    let out = tmp.join(format!("m-{dtype}.aha"));
    ok(&aha(&["convert", fixture().to_str().unwrap(), "-o", out.to_str().unwrap(), "--dtype", dtype]));
    out
}

#[test]
fn convert_inspect_logits_tokenize_run() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert(tmp.path(), "f32");
    let m = model.to_str().unwrap();

    let info = ok(&aha(&["inspect", m, "--context", "128", "--verify"]));
    assert!(info.contains("qwen2") && info.contains("model.layers.1.mlp.down_proj.weight"), "{info}");
    assert!(info.contains("checksum matches"), "{info}");

    // Last-position logits equal the reference's last row within 1e-4.
    let r = reference(&fixture());
    let seq: Vec<String> = r.inputs[0].iter().map(|t| t.to_string()).collect();
    let json = ok(&aha(&["logits", m, "--tokens", &seq.join(",")]));
    let got: Vec<f32> = serde_json::from_str(&json).unwrap();
    let want = r.logits[0].last().unwrap();
    assert!(max_rel_err(&[got], std::slice::from_ref(want)) < 1e-4);
    let all: Vec<Vec<f32>> = serde_json::from_str(&ok(&aha(&["logits", m, "--tokens", &seq.join(","), "--all"]))).unwrap();
    assert_eq!(all.len(), seq.len());

    // Tokenize from the model file and from tokenizer.json agree with HF.
    let g = &r.json["greedy_text"];
    let text = g["prompt"].as_str().unwrap();
    let want_ids: Vec<u32> = serde_json::from_value(g["prompt_ids"].clone()).unwrap();
    for source in [m.to_string(), fixture().join("tokenizer.json").to_str().unwrap().to_string()] {
        let ids: Vec<u32> = serde_json::from_str(&ok(&aha(&["tokenize", &source, text]))).unwrap();
        assert_eq!(ids, want_ids, "{source}");
        let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        assert_eq!(ok(&aha(&["detokenize", &source, &list.join(",")])).trim_end_matches('\n'), text);
    }

    let q = convert(tmp.path(), "q4_0");
    let out = aha(&["run", q.to_str().unwrap(), "--prompt", text, "--max-tokens", "8", "--temperature", "0", "--template", "raw"]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tok/s"), "{stderr}");
}

#[test]
fn bad_input_gives_named_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.aha");
    assert!(err(&aha(&["inspect", missing.to_str().unwrap()])).contains("nope.aha"));

    let junk = tmp.path().join("junk.aha");
    std::fs::write(&junk, b"definitely not a model").unwrap();
    let e = err(&aha(&["run", junk.to_str().unwrap(), "--prompt", "hi"]));
    assert!(e.contains("junk.aha") && e.contains("magic"), "{e}");

    let model = convert(tmp.path(), "q8_0");
    let m = model.to_str().unwrap();
    assert!(err(&aha(&["logits", m, "--tokens", "1,x,3"])).contains("`x`"));
    assert!(err(&aha(&["logits", m, "--tokens", "1,99999"])).contains("99999"));
    assert!(err(&aha(&["convert", fixture().to_str().unwrap(), "-o", "x.aha", "--dtype", "q3"])).contains("q3"));
    assert!(err(&aha(&["run", m, "--prompt", "hi", "--top-p", "0"])).contains("top_p"));

    // A checkpoint whose config disagrees with its tensors names the tensor; the
    // output file is not created.
    let broken = tmp.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture().join(f), broken.join(f)).unwrap();
    }
    let config = std::fs::read_to_string(fixture().join("config.json")).unwrap();
    std::fs::write(broken.join("config.json"), config.replace("\"intermediate_size\": 192", "\"intermediate_size\": 160")).unwrap();
    let out = tmp.path().join("broken.aha");
    let e = err(&aha(&["convert", broken.to_str().unwrap(), "-o", out.to_str().unwrap()]));
    assert!(e.contains("mlp") || e.contains("intermediate"), "{e}");
    assert!(!out.exists(), "a failed conversion leaves no file");
}

#[test]
fn bench_reports_prompt_and_decode_speed() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert(tmp.path(), "q4_0");
    let out = ok(&aha(&["bench", model.to_str().unwrap(), "--threads", "1,2", "--prompt", "8", "--tokens", "8"]));
    assert!(out.contains("decode tok/s"), "{out}");
    assert_eq!(out.lines().count(), 4, "a header, a column line and one row per thread count: {out}");
    assert!(err(&aha(&["bench", model.to_str().unwrap(), "--threads", "one"])).contains("`one`"));
}

/// The trainer's commands on a real checkpoint folder: SFT for two steps,
/// sampling with log-probs, export and a run of the result; a malformed
/// JSONL line is reported by file and line.
#[test]
fn sft_generate_export_run() {
    let tmp = tempfile::tempdir().unwrap();
    let t = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let data = t("train.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"Compute 2 + 3\", \"response\": \"<think> 2 + 3 = 5. </think> <answer> 5 </answer>\"}\n\
         {\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello\"}]}\n",
    )
    .unwrap();
    let init = fixture();
    let init = init.to_str().unwrap();
    let sft = t("sft");
    ok(&aha(&["sft", "--init", init, "--data", &data, "--out", &sft, "--max-steps", "2", "--batch-size", "2"]));
    for file in ["model.safetensors", "config.json", "tokenizer.json", "metrics.jsonl", "config.toml"] {
        assert!(Path::new(&sft).join(file).exists(), "{file}");
    }
    let samples = t("samples.jsonl");
    let prompts = t("prompts.jsonl");
    std::fs::write(&prompts, "{\"prompt\": \"Compute 1 + 1\", \"answer\": \"2\"}\n").unwrap();
    ok(&aha(&["generate", "--init", &sft, "--prompts", &prompts, "-n", "3", "--max-new-tokens", "8", "--out", &samples]));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&samples).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["token_ids"].as_array().unwrap().len(), lines[0]["logprobs"].as_array().unwrap().len());
    let model = t("sft.aha");
    ok(&aha(&["export", &sft, "-o", &model, "--dtype", "q8_0"]));
    ok(&aha(&["run", &model, "--prompt", "Hi", "--max-tokens", "4"]));

    std::fs::write(&data, "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\"}\n").unwrap();
    let e = err(&aha(&["sft", "--init", init, "--data", &data, "--out", &t("bad"), "--max-steps", "1"]));
    assert!(e.contains("train.jsonl:2:") && e.contains("response"), "{e}");
}

#[test]
fn grpo_then_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let t = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let init = fixture();
    let init = init.to_str().unwrap();
    let run = t("zero");
    let common = [
        "--init", init, "--out", &run, "--max-steps", "2", "--prompts-per-step", "2", "-G", "3", "--max-completion-length", "6",
        "--eval-steps", "1", "--eval-prompts", "2", "--eval-samples", "2", "--template", "raw",
    ];
    ok(&aha(&[&["grpo", "--task", "arith"][..], &common[..]].concat()));
    for file in ["metrics.jsonl", "eval.jsonl", "config.toml", "model.safetensors", "checkpoints/step-000002/reference.safetensors"] {
        assert!(Path::new(&run).join(file).exists(), "{file}");
    }
    let metrics = std::fs::read_to_string(Path::new(&run).join("metrics.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    for key in ["reward", "rewards/accuracy", "rewards/format", "accuracy", "kl", "entropy", "completion_length", "gen_tokens_per_s"] {
        assert!(first.get(key).is_some(), "{key} missing from {first}");
    }
    let listed = ok(&aha(&["plot", &run]));
    assert!(listed.contains("reward.png") && listed.contains("length.svg"), "{listed}");

    // Bad settings and data are named.
    let e = err(&aha(&[&["grpo", "--task", "arith", "--loss-type", "ppo"][..], &common[..]].concat()));
    assert!(e.contains("loss_type"), "{e}");
    let data = t("bad.jsonl");
    std::fs::write(&data, "{\"prompt\": \"1+1\", \"answer\": 2}\n{\"prompt\": \"x\", \"tests\": 5}\n").unwrap();
    let e = err(&aha(&[&["grpo", "--task", &data][..], &common[..]].concat()));
    assert!(e.contains("bad.jsonl:2:") && e.contains("tests"), "{e}");
    let e = err(&aha(&["plot", &t("nowhere")]));
    assert!(e.contains("metrics.jsonl"), "{e}");
}

#[test]
fn inspect_estimates_a_boards_flash_and_ram() {
    let tmp = tempfile::tempdir().unwrap();
    let q = convert(tmp.path(), "q8_0");
    let q = q.to_str().unwrap();
    let out = ok(&aha(&["inspect", q, "--target", "cortex-m4", "--context", "64"]));
    assert!(out.contains("mps2-an386") && out.contains("fits"), "{out}");
    // A context no board's RAM holds.
    let out = ok(&aha(&["inspect", q, "--target", "stm32f411", "--context", "200000"]));
    assert!(out.contains("does not fit"), "{out}");
    let e = err(&aha(&["inspect", q, "--target", "nosuch"]));
    assert!(e.contains("unknown target `nosuch`") && e.contains("stm32f407"), "{e}");
}

#[test]
fn eval_sample_sft_distill_and_reward_model() {
    let tmp = tempfile::tempdir().unwrap();
    let t = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let init = fixture();
    let init = init.to_str().unwrap();
    let sampling = ["--max-new-tokens", "6", "--template", "raw"];

    // eval: the table, JSON, the files; a checkpoint and its model file alike.
    let table = ok(&aha(&[&["eval", init, "--task", "arith", "--prompts", "3", "-n", "2"][..], &sampling[..]].concat()));
    assert!(table.contains("pass@1") && table.contains("maj@2") && table.contains("3 prompts x 2 samples"), "{table}");
    let q8 = t("m.aha");
    ok(&aha(&["export", init, "-o", &q8, "--dtype", "q8_0"]));
    let out = t("eval");
    let json = ok(&aha(&[&["eval", &q8, "--task", "arith", "--prompts", "3", "-n", "2", "--json", "--out", &out][..], &sampling[..]].concat()));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["reports"][0]["prompts"], 3);
    assert!(v["reports"][0]["pass_at_1"].is_number());
    assert_eq!(std::fs::read_to_string(Path::new(&out).join("samples.jsonl")).unwrap().lines().count(), 6);
    // Think budgets: a row each, and the accuracy-against-thinking plot.
    let budgets = t("budgets");
    let table = ok(&aha(&[&["eval", init, "--task", "arith", "--prompts", "2", "-n", "1", "--think-budget", "1,3", "--plot", "--out", &budgets][..], &sampling[..]].concat()));
    let rows: Vec<&str> = table.lines().skip(2).map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(rows, vec!["1", "3"], "{table}");
    assert!(Path::new(&budgets).join("think-budget.png").exists() && Path::new(&budgets).join("think-budget.svg").exists());
    let e = err(&aha(&[&["eval", init, "--task", "arith", "-n", "2", "--k", "4"][..], &sampling[..]].concat()));
    assert!(e.contains("k = 4"), "{e}");

    // sample -> sft: the kept samples train as they are written.
    let sft_data = t("kept.jsonl");
    ok(&aha(&[&["sample", "--init", init, "--prompts", "arith", "--examples", "3", "-n", "2", "--filter", "dedupe", "--out", &sft_data][..], &sampling[..]].concat()));
    let first: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&sft_data).unwrap().lines().next().unwrap()).unwrap();
    assert!(first["prompt"].as_str().unwrap().starts_with("Compute") && first.get("response").is_some(), "{first}");
    ok(&aha(&["sft", "--init", init, "--data", &sft_data, "--template", "raw", "--out", &t("sft"), "--max-steps", "1", "--batch-size", "2"]));
    let e = err(&aha(&["sample", "--init", init, "--prompts", "arith", "--filter", "verfied", "--out", &t("x.jsonl")]));
    assert!(e.contains("verfied"), "{e}");

    // distill (kd) and a reward model, a couple of steps each.
    let student = t("student");
    ok(&aha(&[
        "distill", "--teacher", init, "--student", init, "--prompts", "arith", "--mode", "kd", "--out", &student, "--max-steps", "2",
        "--batch-size", "2", "--max-new-tokens", "6", "--train-prompts", "8", "--eval-prompts", "2", "--eval-steps", "2", "--template", "raw",
    ]));
    for file in ["model.safetensors", "metrics.jsonl", "eval.jsonl", "config.toml"] {
        assert!(Path::new(&student).join(file).exists(), "{file}");
    }
    let eval = std::fs::read_to_string(Path::new(&student).join("eval.jsonl")).unwrap();
    assert!(eval.contains("kl_forward") && eval.contains("pass_at_1"), "{eval}");
    let small = t("small.toml");
    std::fs::write(&small, "model_type = \"qwen2\"\nvocab_size = 256\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 1\nnum_attention_heads = 2\nnum_key_value_heads = 1\n").unwrap();
    let e = err(&aha(&["distill", "--teacher", init, "--student", &small, "--prompts", "arith", "--out", &t("s2"), "--max-steps", "1"]));
    assert!(e.contains("256") && e.contains("512"), "{e}");
    let rm = t("rm");
    ok(&aha(&[
        "reward-model", "--init", init, "--pairs", "arith", "--out", &rm, "--max-steps", "2", "--batch-size", "2", "--train-pairs", "8",
        "--eval-pairs", "4", "--eval-steps", "2",
    ]));
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(Path::new(&rm).join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "Qwen2ForSequenceClassification");
    // The trained reward model plugs into GRPO as a reward.
    ok(&aha(&[
        "grpo", "--init", init, "--task", "arith", "--out", &t("rl"), "--max-steps", "1", "--prompts-per-step", "2", "-G", "2",
        "--max-completion-length", "4", "--eval-steps", "0", "--template", "raw", "--reward", &format!("rm:{rm}"),
    ]));
    // R1's "RL for all scenarios": rule rewards on reasoning rows, the reward model on general rows.
    let mixed = t("mixed.jsonl");
    std::fs::write(
        &mixed,
        "{\"prompt\": \"Compute 2 + 2\", \"answer\": \"4\"}\n{\"prompt\": \"Say hello\", \"kind\": \"general\"}\n\
         {\"prompt\": \"Compute 3 + 1\", \"answer\": \"4\"}\n{\"prompt\": \"Name a colour\", \"kind\": \"general\"}\n",
    )
    .unwrap();
    let all = [
        "grpo", "--init", init, "--task", &mixed, "--max-steps", "1", "--prompts-per-step", "4", "-G", "2", "--max-completion-length", "4",
        "--eval-steps", "0", "--template", "raw", "--reward", "accuracy",
    ];
    let e = err(&aha(&[&all[..], &["--out", &t("rl-all-bad")][..]].concat()));
    assert!(e.contains("general_rewards"), "{e}");
    let general = format!("rm-answer:{rm}");
    ok(&aha(&[&all[..], &["--out", &t("rl-all"), "--general-reward", &general][..]].concat()));
    let line = std::fs::read_to_string(Path::new(&t("rl-all")).join("metrics.jsonl")).unwrap();
    assert!(line.contains("rewards/reward_model_answer") && line.contains("rewards/accuracy"), "{line}");
}
