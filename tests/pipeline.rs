//! `aha pipeline` end to end on a reduced configuration
//! (tests/fixtures/pipeline-tiny.toml): every stage's artefacts, the
//! report's numbers against the files they come from, a stage interrupted
//! midway resuming, a second run skipping every finished stage, and
//! `--from` rerunning from a stage on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn aha(args: &[&str], stop: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aha"));
    c.args(args);
    match stop {
        Some(s) => c.env("AHA_PIPELINE_STOP", s),
        None => c.env_remove("AHA_PIPELINE_STOP"),
    };
    c.output().expect("running aha")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pipeline-tiny.toml")
}

const STAGES: &[&str] = &[
    "data", "base", "student-base", "zero", "cold-start", "reasoning", "sft", "reward-model", "rl-all", "distill-seq", "distill-kd",
    "student-rl", "export", "eval", "device", "report",
];

#[test]
fn the_reduced_pipeline_runs_resumes_skips_and_reports_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r1");
    let config = config();
    let args = ["pipeline", "--config", config.to_str().unwrap(), "--out", run.to_str().unwrap()];

    // Killed inside R1-Zero after one step: the stages before it are done,
    // R1-Zero has a checkpoint and no stage.json.
    let first = aha(&args, Some("zero:1"));
    assert!(!first.status.success(), "the stop hook should end the run");
    assert!(stderr(&first).contains("stopped inside stage zero"), "{}", stderr(&first));
    assert!(run.join("base/stage.json").exists() && !run.join("zero/stage.json").exists());
    assert!(run.join("zero/pending.json").exists() && run.join("zero/checkpoints/step-000001").exists());

    // Run again: R1-Zero resumes from its checkpoint, the rest runs.
    let second = aha(&args, None);
    let log = stderr(&second);
    assert!(second.status.success(), "{log}");
    assert!(log.contains("zero: resuming") && log.contains("base: up to date"), "{log}");
    let zero_metrics = std::fs::read_to_string(run.join("zero/metrics.jsonl")).unwrap();
    let steps: Vec<u64> = zero_metrics.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, vec![1, 2, 3], "a resumed stage's metrics read as one run");
    assert_eq!(json(&run.join("zero/stage.json"))["resumed"], true);

    // Every stage's artefacts.
    for stage in STAGES {
        assert!(run.join(stage).join("stage.json").exists(), "{stage}");
    }
    for file in [
        "pipeline.toml", "data/corpus.txt", "data/train.jsonl", "data/test.jsonl", "data/mixed.jsonl", "data/pairs.jsonl",
        "base/model.safetensors", "base/tokenizer.json", "student-base/model.safetensors", "zero/eval.jsonl", "zero/config.toml",
        "cold-start/samples.jsonl", "cold-start/filters.json", "cold-start/model.safetensors", "reasoning/metrics.jsonl",
        "sft/samples.jsonl", "reward-model/model.safetensors", "rl-all/metrics.jsonl", "distill-seq/traces.jsonl",
        "distill-kd/eval.jsonl", "student-rl/eval.jsonl", "export/student-q8_0.aha", "export/student-q4_0.aha",
        "eval/base.json", "eval/student-q4_0.json", "eval/budget-teacher.json", "eval/budget-student.json", "device/device.json",
        "report/report.md", "report/report.json", "report/rl-length.png", "report/think-budget.png", "report/distill-vs-rl.png",
    ] {
        assert!(run.join(file).exists(), "{file} missing");
    }
    let rm = json(&run.join("reward-model/config.json"));
    assert_eq!(rm["architectures"][0], "Qwen2ForSequenceClassification");
    let rl_all = std::fs::read_to_string(run.join("rl-all/metrics.jsonl")).unwrap();
    assert!(rl_all.contains("rewards/reward_model_answer"), "rl-all scores general prompts with the reward model");

    // The report's numbers are the files'.
    let report = std::fs::read_to_string(run.join("report/report.md")).unwrap();
    let data = json(&run.join("report/report.json"));
    for (stage, name) in [("base", "base"), ("zero", "R1-Zero"), ("distill-seq", "student, distilled (seq)"), ("student-q4_0", "student Q4_0")] {
        let e = json(&run.join(format!("eval/{stage}.json")));
        let pass = e["report"]["pass_at_1"].as_f64().unwrap();
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")) && l.contains(&format!("`eval/{stage}.json`")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{report}"));
        assert!(row.starts_with(&format!("| {name} | {:.1} |", 100.0 * pass)), "{row}");
        let model = data["models"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap();
        assert_eq!(model["report"], e["report"]);
    }
    let lengths: Vec<f64> = zero_metrics.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["completion_length"].as_f64().unwrap()).collect();
    let effect = data["effects"].as_array().unwrap().iter().find(|e| e["claim"].as_str().unwrap().contains("length")).unwrap();
    assert!(effect["measured"].as_str().unwrap().starts_with(&format!("length {:.1} -> {:.1}", lengths[0], lengths[2])), "{effect}");
    for record in STAGES.iter().map(|s| json(&run.join(s).join("stage.json"))) {
        let row = format!("| {} | {:.0} |", record["stage"].as_str().unwrap(), record["seconds"].as_f64().unwrap());
        assert!(report.contains(&row) || record["stage"] == "report", "{row} not in the report:\n{report}");
    }

    // A second run skips every finished stage; --from reruns from there on.
    let third = aha(&args, None);
    assert!(third.status.success());
    assert_eq!(stderr(&third).matches("up to date, skipped").count(), STAGES.len(), "{}", stderr(&third));
    let from = aha(&[&args[..], &["--from", "export"]].concat(), None);
    let log = stderr(&from);
    assert!(from.status.success(), "{log}");
    assert!(log.contains("student-rl: up to date") && log.contains("export: running") && log.contains("report: running"), "{log}");
    // --until runs a stage and what it needs, nothing else.
    let until = aha(&[&args[..], &["--until", "zero"]].concat(), None);
    let log = stderr(&until);
    assert!(until.status.success(), "{log}");
    assert_eq!(log.matches("up to date, skipped").count(), 3, "data, base and zero only: {log}");
    assert!(log.contains("zero: up to date") && !log.contains("student-base") && !log.contains("report:") && log.contains("stopped after zero"), "{log}");

    // Bad settings are named.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[zero]\nmax_stepz = 3\n").unwrap();
    let out = aha(&["pipeline", "--config", bad.to_str().unwrap(), "--out", run.to_str().unwrap()], None);
    assert!(!out.status.success() && stderr(&out).contains("zero.max_stepz"), "{}", stderr(&out));
    let out = aha(&[&args[..], &["--from", "nowhere"]].concat(), None);
    assert!(!out.status.success() && stderr(&out).contains("nowhere"), "{}", stderr(&out));
}
