//! The pipeline's report card (`RUN/report/report.md`, after nanochat's):
//! the environment, wall time per stage, one table of every model's
//! held-out figures, the R1 effects checked against the numbers, and the
//! charts beside it. Every figure is read from a file the run wrote, and the
//! report names the file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{at, Error, Result};
use crate::eval::EvalReport;
use crate::fsutil::write_atomic;
use crate::pipeline::{Layout, ModelEval, PipelineConfig, StageRecord, MODELS, STAGES};
use crate::plot::{plot_xy, Series};
use crate::run::{read_metric_lines, Metrics};

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(at(path))?;
    serde_json::from_str(&text).map_err(|e| Error::file(path, e))
}

// ---------------------------------------------------------------------------
// Device stage

/// One board's verdict for the student's file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoardFit {
    pub board: String,
    pub flash_needed: u64,
    pub flash: u64,
    pub ram_needed: u64,
    pub ram: u64,
    pub fits: bool,
}

/// What the device stage found (`device/device.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceReport {
    pub model: PathBuf,
    pub context: usize,
    pub boards: Vec<BoardFit>,
    /// The firmware's answer under QEMU, or why it did not run.
    pub firmware: String,
    pub firmware_ran: bool,
}

/// Why the firmware cannot run here, if it cannot.
fn missing_firmware_tools(firmware: &Path) -> Option<String> {
    if !firmware.join("Cargo.toml").exists() {
        return Some(format!("{} is not there (run from the repository)", firmware.display()));
    }
    if std::process::Command::new("qemu-system-arm").arg("--version").output().is_err() {
        return Some("qemu-system-arm is not installed (apt-get install qemu-system-arm)".into());
    }
    let targets = std::process::Command::new("rustup").args(["target", "list", "--installed"]).output();
    match targets {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == "thumbv7em-none-eabihf") => None,
        _ => Some("the thumbv7em-none-eabihf target is not installed (rustup target add thumbv7em-none-eabihf)".into()),
    }
}

/// The student's Q8_0 file against each board (as `aha inspect --target`),
/// then the Cortex-M firmware built around it and run in QEMU.
pub fn device_check(l: &Layout, c: &PipelineConfig, dir: &Path) -> Result<()> {
    use aha_runtime::footprint::{board, Footprint};
    let dtype = c.export.iter().find(|d| d.as_str() == "q8_0").or(c.export.first()).cloned().unwrap_or_else(|| "q8_0".into());
    let file = l.dir("export").join(format!("student-{dtype}.aha"));
    let bytes = aha_runtime::load::ModelBytes::open(&file)?;
    let model = aha_runtime::Model::from_bytes(bytes.bytes()).map_err(|e| Error::file(&file, e))?;
    let plan = model.memory_plan(c.device_check.context, aha_runtime::KvType::F16);
    let footprint = Footprint::new(bytes.bytes().len(), &plan);
    let mut boards = Vec::new();
    for name in &c.device_check.boards {
        let b = board(name).ok_or_else(|| Error::Config(format!("device_check.boards: unknown board `{name}`")))?;
        boards.push(BoardFit {
            board: b.name.to_string(),
            flash_needed: footprint.flash(),
            flash: b.flash,
            ram_needed: footprint.ram(),
            ram: b.ram,
            fits: footprint.fit(b).fits(),
        });
    }
    let firmware_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/cortex-m");
    let (firmware, firmware_ran) = match (c.device_check.firmware, missing_firmware_tools(&firmware_dir)) {
        (false, _) => ("not asked for (device_check.firmware = false)".to_string(), false),
        (true, Some(why)) => (format!("skipped: {why}"), false),
        (true, None) => run_firmware(&firmware_dir, &file, &c.device_check.prompt, dir)?,
    };
    let report = DeviceReport { model: file, context: c.device_check.context, boards, firmware, firmware_ran };
    let text = serde_json::to_string_pretty(&report).map_err(|e| Error::Config(e.to_string()))?;
    write_atomic(&dir.join("device.json"), text.as_bytes())
}

fn run_firmware(firmware: &Path, model: &Path, prompt: &str, dir: &Path) -> Result<(String, bool)> {
    let model = std::fs::canonicalize(model).map_err(at(model))?;
    // Absolute: cargo runs in the firmware's folder and would read a
    // relative target folder from there.
    let target = std::fs::canonicalize(dir).map_err(at(dir))?.join("firmware-target");
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["run", "--release", "--quiet", "--bin", "aha-firmware-cortex-m"])
        .current_dir(firmware)
        .env("CARGO_TARGET_DIR", &target)
        .env("AHA_MODEL", &model)
        .env("AHA_PROMPT", prompt)
        .env("AHA_TEMPLATE", "r1-zero")
        .env("AHA_MAX_TOKENS", "48")
        .output()
        .map_err(|e| Error::Usage(format!("cannot run cargo for the firmware: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    write_atomic(&dir.join("firmware.log"), format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)).as_bytes())?;
    let answer = stdout.lines().find_map(|l| l.strip_prefix("[aha] answer: ")).map(str::to_string);
    Ok(match (out.status.success(), answer) {
        (true, Some(a)) => (format!("answered {a:?} to {prompt:?} (QEMU mps2-an386, Cortex-M4F)"), true),
        _ => (format!("failed (status {}); see firmware.log", out.status), false),
    })
}

// ---------------------------------------------------------------------------
// The report

/// Mean of `key` over the first and the last tenth of a metrics file's lines.
fn tenths(lines: &[Metrics], key: &str) -> Option<(f64, f64)> {
    let values: Vec<f64> = lines.iter().filter_map(|m| m.get(key).copied()).collect();
    if values.len() < 2 {
        return None;
    }
    let n = (values.len() / 10).max(1);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Some((mean(&values[..n]), mean(&values[values.len() - n..])))
}

/// One of R1's effects: what was measured and whether it held.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    pub claim: String,
    pub measured: String,
    pub held: bool,
    /// The files the numbers come from.
    pub sources: Vec<String>,
}

/// What the report says, as data (also `report/report.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub models: Vec<ModelEval>,
    pub stages: Vec<StageRecord>,
    pub effects: Vec<Effect>,
}

fn pct(v: f64) -> String {
    format!("{:.1}", 100.0 * v)
}

fn rel(l: &Layout, p: &Path) -> String {
    p.strip_prefix(&l.out).unwrap_or(p).display().to_string()
}

/// How far pass@1 at the largest think budget must exceed pass@1 at the
/// smallest for the test-time-scaling effect to count as held.
const MIN_BUDGET_RISE: f64 = 0.05;

/// Whether a think-budget curve (pass@1 from the smallest budget to the
/// largest) rises: the largest must beat the smallest by more than sampling
/// noise, since a point or two on a few hundred samples is not a rise.
fn rises_with_budget(pass_at_1: &[f64]) -> bool {
    match (pass_at_1.first(), pass_at_1.last()) {
        (Some(a), Some(b)) => b - a >= MIN_BUDGET_RISE,
        _ => false,
    }
}

/// The six effects the default run must show, computed from the files.
fn effects(l: &Layout, models: &[ModelEval], distilled: &str) -> Result<Vec<Effect>> {
    let eval_file = |stage: &str| format!("eval/{stage}.json");
    let mut out = Vec::new();
    let find = |name: &str| models.iter().find(|m| m.name == name);
    if let (Some(base), Some(zero)) = (find("base"), find("R1-Zero")) {
        let lift = zero.report.pass_at_1 - base.report.pass_at_1;
        out.push(Effect {
            claim: "R1-Zero GRPO lifts held-out pass@1 of the base by >= 30 points".into(),
            measured: format!("{} -> {} ({:+.1} points)", pct(base.report.pass_at_1), pct(zero.report.pass_at_1), 100.0 * lift),
            held: lift >= 0.30,
            sources: vec![eval_file("base"), eval_file("zero")],
        });
    }
    let zero_metrics = read_metric_lines(&l.dir("zero").join("metrics.jsonl")).unwrap_or_default();
    if let (Some((a, b)), Some((ra, rb))) = (tenths(&zero_metrics, "completion_length"), tenths(&zero_metrics, "reflection_rate")) {
        out.push(Effect {
            claim: "mean response length grows >= 1.5x from the first to the last tenth of R1-Zero, and the reflection rate rises".into(),
            measured: format!("length {a:.1} -> {b:.1} tokens ({:.2}x); reflection rate {} -> {} %", b / a.max(1e-9), pct(ra), pct(rb)),
            held: b >= 1.5 * a && rb > ra,
            sources: vec!["zero/metrics.jsonl".into()],
        });
    }
    if let (Some(zero), Some(reasoning)) = (find("R1-Zero"), find("reasoning RL")) {
        let (m0, m1) = (1.0 - zero.report.language_consistency, 1.0 - reasoning.report.language_consistency);
        out.push(Effect {
            claim: "R1-Zero mixes languages measurably; the language-consistency reward brings mixing down (at a small cost in accuracy, in the paper)".into(),
            measured: format!(
                "mixing (1 - language consistency) {} % -> {} %; pass@1 {} -> {}",
                pct(m0),
                pct(m1),
                pct(zero.report.pass_at_1),
                pct(reasoning.report.pass_at_1)
            ),
            held: m0 > 0.01 && m1 < m0,
            sources: vec![eval_file("zero"), eval_file("reasoning")],
        });
    }
    if let Some(rl) = find("student, direct RL") {
        for (mode, stage) in [("seq", "distill-seq"), ("kd", "distill-kd")] {
            let Some(d) = find(&format!("student, distilled ({mode})")) else { continue };
            let gap = d.report.pass_at_1 - rl.report.pass_at_1;
            out.push(Effect {
                claim: format!("the distilled student ({mode}) beats the same-sized model trained by GRPO directly by >= 10 points"),
                measured: format!("{} vs {} ({:+.1} points)", pct(d.report.pass_at_1), pct(rl.report.pass_at_1), 100.0 * gap),
                held: gap >= 0.10,
                sources: vec![eval_file(stage), eval_file("student-rl")],
            });
        }
    }
    // The quantized files are of the exported student (`distilled`: kd or seq).
    if let Some(d) = find(&format!("student, distilled ({distilled})")) {
        for (dtype, limit) in [("q8_0", 0.02), ("q4_0", 0.05)] {
            let name = format!("student {}", dtype.to_uppercase());
            if let Some(q) = find(&name) {
                let drop = d.report.pass_at_1 - q.report.pass_at_1;
                out.push(Effect {
                    claim: format!(
                        "the {} student, in the runtime, is within {:.0} points of its f32 self",
                        dtype.to_uppercase(),
                        100.0 * limit
                    ),
                    measured: format!("{} vs {} ({:+.1} points)", pct(q.report.pass_at_1), pct(d.report.pass_at_1), -100.0 * drop),
                    held: drop.abs() <= limit,
                    sources: vec![eval_file(&format!("distill-{distilled}")), format!("eval/student-{dtype}.json")],
                });
            }
        }
    }
    let curve = |label: &str| read_json::<Vec<EvalReport>>(&l.dir("eval").join(format!("budget-{label}.json"))).ok();
    if let (Some(t), Some(s)) = (curve("teacher"), curve("student")) {
        let rises = |c: &[EvalReport]| rises_with_budget(&c.iter().map(|r| r.pass_at_1).collect::<Vec<_>>());
        let show = |c: &[EvalReport]| {
            c.iter().map(|r| format!("{}:{}", r.think_budget.unwrap_or(0), pct(r.pass_at_1))).collect::<Vec<_>>().join(" ")
        };
        out.push(Effect {
            claim: "accuracy rises with the think budget, for teacher and student (test-time scaling)".into(),
            measured: format!("teacher (budget:pass@1) {}; student {}", show(&t), show(&s)),
            held: rises(&t) && rises(&s),
            sources: vec!["eval/budget-teacher.json".into(), "eval/budget-student.json".into()],
        });
    }
    Ok(out)
}

/// Reads every stage's record and evaluation, writes `report.md`,
/// `report.json` and the charts into `dir`; returns the report.
pub fn write_report(l: &Layout, c: &PipelineConfig, dir: &Path) -> Result<Report> {
    let mut models: Vec<ModelEval> = Vec::new();
    for (_, stage) in MODELS {
        models.push(read_json(&l.dir("eval").join(format!("{stage}.json")))?);
    }
    for dtype in &c.export {
        models.push(read_json(&l.dir("eval").join(format!("student-{dtype}.json")))?);
    }
    let stages: Vec<StageRecord> = STAGES.iter().filter_map(|s| read_json(&l.dir(s).join("stage.json")).ok()).collect();
    let effects = effects(l, &models, &c.distilled)?;
    let device: Option<DeviceReport> = read_json(&l.dir("device").join("device.json")).ok();

    let mut md = String::new();
    let _ = writeln!(md, "# aha pipeline report\n");
    let _ = writeln!(md, "## Environment\n");
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(|| "unknown".to_string(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())))
        .unwrap_or_else(|| "unknown".into());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = writeln!(
        md,
        "- aha {} (commit {commit}), {} build",
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    let _ = writeln!(md, "- CPU: {cpu}, {threads} threads; training device `{}`", c.device);
    let _ = writeln!(md, "- settings: `pipeline.toml` (resolved)\n");

    let _ = writeln!(md, "## Wall time per stage\n");
    let _ = writeln!(md, "| stage | seconds | resumed |\n|---|---:|---|");
    let mut total = 0.0;
    for s in &stages {
        total += s.seconds;
        let _ = writeln!(md, "| {} | {:.0} | {} |", s.stage, s.seconds, if s.resumed { "yes" } else { "" });
    }
    let _ = writeln!(md, "| **total** | **{total:.0}** | |\n(from each stage's `stage.json`)\n");

    let _ = writeln!(md, "## Held-out results\n");
    let first = models.first().map(|m| &m.report);
    let maj = first.map_or(0, |r| r.maj_k);
    let _ = writeln!(
        md,
        "{} held-out prompts x {} samples at temperature {}, top-p {} (accuracy, format, language and reflection in %).\n",
        first.map_or(0, |r| r.prompts),
        first.map_or(0, |r| r.samples),
        c.eval.eval.generation.temperature,
        c.eval.eval.generation.top_p
    );
    let _ =
        writeln!(md, "| model | pass@1 | maj@{maj} | format | language | length | thinking | reflection | size (KiB) | tokens/s | file |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (m, file) in models
        .iter()
        .zip(MODELS.iter().map(|(_, s)| format!("eval/{s}.json")).chain(c.export.iter().map(|d| format!("eval/student-{d}.json"))))
    {
        let r = &m.report;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {} | {:.0} | {:.0}{} | `{file}` |",
            m.name,
            pct(r.pass_at_1),
            pct(r.maj_at_k),
            pct(r.format_rate),
            pct(r.language_consistency),
            r.completion_length,
            r.think_length,
            pct(r.reflection_rate),
            m.bytes as f64 / 1024.0,
            r.tokens_per_s,
            if m.runtime { " (runtime)" } else { "" },
        );
    }
    let _ = writeln!(md);

    let _ = writeln!(md, "## R1's effects\n");
    let _ = writeln!(md, "| effect | measured | held | from |\n|---|---|---|---|");
    for e in &effects {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            e.claim,
            e.measured,
            if e.held { "yes" } else { "**no**" },
            e.sources.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        );
    }
    let _ = writeln!(md);

    if let Some(d) = &device {
        let _ = writeln!(md, "## On devices\n");
        let _ = writeln!(md, "`{}` at context {} (f16 KV cache):\n", rel(l, &d.model), d.context);
        let _ = writeln!(md, "| board | flash needed / has (KiB) | RAM needed / has (KiB) | fits |\n|---|---:|---:|---|");
        for b in &d.boards {
            let _ = writeln!(
                md,
                "| {} | {:.0} / {:.0} | {:.0} / {:.0} | {} |",
                b.board,
                b.flash_needed as f64 / 1024.0,
                b.flash as f64 / 1024.0,
                b.ram_needed as f64 / 1024.0,
                b.ram as f64 / 1024.0,
                if b.fits { "yes" } else { "no" }
            );
        }
        let _ = writeln!(md, "\nFirmware: {} (`device/device.json`)\n", d.firmware);
    }

    // Charts: accuracy and length against step for each RL stage (Figure 3),
    // reflection rate, accuracy against think budget, distillation against direct RL.
    let rl_stages = ["zero", "reasoning", "rl-all", "student-rl"];
    let series = |key: &str, file: &str| -> Vec<Series> {
        rl_stages
            .iter()
            .filter_map(|s| {
                let lines = read_metric_lines(&l.dir(s).join(file)).ok()?;
                let points: Vec<(f64, f64)> = lines.iter().filter_map(|m| Some((*m.get("step")?, *m.get(key)?))).collect();
                (!points.is_empty()).then(|| Series { label: s.to_string(), points })
            })
            .collect()
    };
    let mut charts: Vec<PathBuf> = Vec::new();
    let mut chart = |name: &str, title: &str, x: &str, y: &str, s: Vec<Series>| -> Result<()> {
        if !s.is_empty() {
            charts.extend(plot_xy(dir, name, title, x, y, &s)?.into_iter().filter(|p| p.extension().is_some_and(|e| e == "png")));
        }
        Ok(())
    };
    chart("rl-accuracy", "Training accuracy during RL", "step", "accuracy", series("accuracy", "metrics.jsonl"))?;
    chart("rl-length", "Average length per response during RL (Figure 3)", "step", "tokens", series("completion_length", "metrics.jsonl"))?;
    chart(
        "rl-reflection",
        "Share of responses with a reflective phrase",
        "step",
        "reflection rate",
        series("reflection_rate", "metrics.jsonl"),
    )?;
    chart("rl-language", "Language consistency during RL", "step", "language consistency", series("rewards/language", "metrics.jsonl"))?;
    let budget = ["teacher", "student"]
        .iter()
        .filter_map(|who| {
            let c = read_json::<Vec<EvalReport>>(&l.dir("eval").join(format!("budget-{who}.json"))).ok()?;
            Some(Series { label: who.to_string(), points: c.iter().map(|r| (r.think_budget.unwrap_or(0) as f64, r.pass_at_1)).collect() })
        })
        .collect();
    chart("think-budget", "Accuracy against think budget", "think budget (tokens)", "pass@1", budget)?;
    let held = ["distill-seq", "distill-kd", "student-rl"]
        .iter()
        .filter_map(|s| {
            let lines = read_metric_lines(&l.dir(s).join("eval.jsonl")).ok()?;
            let points: Vec<(f64, f64)> = lines.iter().filter_map(|m| Some((*m.get("step")?, *m.get("pass_at_1")?))).collect();
            Some(Series { label: s.to_string(), points })
        })
        .collect();
    chart("distill-vs-rl", "Student: distillation against direct RL (held-out pass@1)", "step", "pass@1", held)?;
    let _ = writeln!(md, "## Charts\n");
    for p in &charts {
        let name = p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(md, "![{name}]({name})");
    }
    write_atomic(&dir.join("report.md"), md.as_bytes())?;
    let report = Report { models, stages, effects };
    let json = serde_json::to_string_pretty(&report).map_err(|e| Error::Config(e.to_string()))?;
    write_atomic(&dir.join("report.json"), json.as_bytes())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_curve_rises_only_by_more_than_noise() {
        assert!(rises_with_budget(&[0.16, 0.255, 0.23, 0.248, 0.965]));
        // Up by 1.6 points: within the noise, not a rise.
        assert!(!rises_with_budget(&[0.022, 0.055, 0.038, 0.025, 0.038]));
        assert!(!rises_with_budget(&[0.5, 0.3]));
        assert!(!rises_with_budget(&[0.9]));
        assert!(!rises_with_budget(&[]));
    }
}
