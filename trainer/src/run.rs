//! THE training loop. Every stage (pre-training, SFT, GRPO, distillation,
//! reward-model training) is a [`Stage`]: where a step's batch comes from and
//! what its loss is. This module does the rest, once, for all of them:
//!
//! ```text
//! out/
//!   config.toml                the fully resolved settings of the run
//!   metrics.jsonl              one line per step (whatever the stage reports)
//!   eval.jsonl                 held-out evaluation (stages that evaluate)
//!   config.json, model.safetensors, tokenizer.json, ...   the final model
//!   checkpoints/step-000100/   model + optimizer.safetensors + trainer_state.json
//!                              (+ the stage's own files, e.g. GRPO's reference)
//! ```
//!
//! Each checkpoint folder is written under a temporary name, every file
//! fsynced, and renamed into place: a folder named `step-N` is complete, and
//! temporary folders left by a killed run are removed when it resumes.
//! `trainer_state.json` holds the step, the settings and the stage's state
//! (its data position: the whole random state of a run, since every draw is a
//! pure function of the seed and the position), so `--resume` continues as
//! if the run had never stopped; with other settings it is refused, naming
//! the settings that differ. A non-finite loss or gradient stops the run at
//! that step, before the update, with the last good checkpoint left as it is.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{load_weights, read_safetensors, read_weights_dir, save_model, write_safetensors};
use crate::config::SpecialIds;
use crate::error::{at, Error, Result};
use crate::fsutil::{sync_dir, write_atomic};
use crate::model::CausalLm;
use crate::optim::{AdamW, GradSum, StepStats};
use crate::params::HostTensor;
use crate::tokenizer::TextTokenizer;

/// A step's (or an evaluation's) figures, by name.
pub type Metrics = BTreeMap<String, f64>;

/// How often a run logs, evaluates and checkpoints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cadence {
    pub max_steps: u64,
    pub logging_steps: u64,
    /// 0 = never (and no evaluation before the first step or after the last).
    pub eval_steps: u64,
    pub save_steps: u64,
    /// Checkpoints kept (older ones are deleted); 0 keeps all.
    pub save_total_limit: usize,
}

/// How a call to [`run`] should end (tests stop early to simulate a kill).
#[derive(Clone, Copy, Debug, Default)]
pub struct RunControl {
    /// Continue from the latest checkpoint in the output folder.
    pub resume: bool,
    /// Return after this many steps, as a killed run would (no final save).
    pub stop_after: Option<u64>,
    /// Show a progress bar (when stderr is a terminal).
    pub progress: bool,
}

/// The model being trained and its optimizer.
pub struct Policy {
    pub model: CausalLm,
    pub optimizer: AdamW,
}

impl Policy {
    pub fn new(model: CausalLm, optimizer: AdamW) -> Policy {
        Policy { model, optimizer }
    }

    /// One AdamW step on the accumulated `grads` at `lr`. A non-finite
    /// gradient norm is an error and leaves the weights as they were.
    pub fn update(&mut self, grads: GradSum, lr: f64, step: u64) -> Result<StepStats> {
        let copy = self.model.clone();
        let taken = std::mem::replace(&mut self.model, copy);
        let (updated, stats) = self.optimizer.step(taken, grads, lr);
        self.model = updated;
        if !stats.grad_norm.is_finite() {
            return Err(non_finite(step, "gradient norm", stats.grad_norm));
        }
        Ok(stats)
    }
}

fn non_finite(step: u64, what: &str, value: f64) -> Error {
    Error::Usage(format!(
        "step {step}: the {what} is {value}; the run stopped before updating, and its last checkpoint is intact (lower the learning rate, then --resume)"
    ))
}

/// A training stage: its settings, where each step's batch comes from, and
/// its loss. [`run`] calls [`Stage::step`] once per step.
pub trait Stage {
    /// The resolved settings: `config.toml`, and in every checkpoint.
    type Config: Serialize + DeserializeOwned + PartialEq + Clone;
    /// What the stage must restore besides weights and optimizer (data
    /// position, counters).
    type State: Serialize + DeserializeOwned;

    fn config(&self) -> &Self::Config;
    fn cadence(&self) -> Cadence;

    /// Step `step` (0-based): build the batch, compute the loss, update the
    /// policy. Returns the step's metrics (`loss` and `grad_norm` are
    /// checked to be finite when present).
    fn step(&mut self, policy: &mut Policy, step: u64) -> Result<Metrics>;

    fn state(&self) -> Self::State;
    /// Restores the state saved in the checkpoint folder `dir`.
    fn restore(&mut self, state: Self::State, dir: &Path, policy: &Policy) -> Result<()>;
    /// Optimizer steps taken after `step` steps (GRPO takes μ per step).
    fn optimizer_steps(&self, step: u64) -> u64 {
        step
    }

    /// Held-out evaluation after `step` steps (0: before training); `None`
    /// when the stage does not evaluate.
    fn evaluate(&mut self, _policy: &Policy, _step: u64) -> Result<Option<Metrics>> {
        Ok(None)
    }
    /// Extra safetensors files in each checkpoint (name, tensors).
    fn checkpoint_files(&self) -> Vec<(&'static str, BTreeMap<String, HostTensor>)> {
        Vec::new()
    }
    /// The progress bar's message for a step's metrics.
    fn progress(&self, metrics: &Metrics) -> String {
        let get = |k: &str| metrics.get(k).copied().unwrap_or(f64::NAN);
        format!("loss {:.4}", get("loss"))
    }
    /// Writes the finished model into `out` (default: a Hugging Face folder).
    fn save_final(&self, policy: &Policy, tokenizer: &TextTokenizer, out: &Path) -> Result<()> {
        save_model(&policy.model, out, special_ids(tokenizer))?;
        tokenizer.save_dir(out)
    }
}

/// `trainer_state.json`.
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "C: Serialize, S: Serialize", deserialize = "C: DeserializeOwned, S: DeserializeOwned"))]
struct RunState<C, S> {
    /// Steps completed.
    step: u64,
    config: C,
    #[serde(flatten)]
    stage: S,
}

/// How a run ended.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// Steps completed (the last step's number).
    pub steps: u64,
    pub resumed_from: Option<u64>,
    /// The last step's metrics (empty when no step ran).
    pub last: Metrics,
    /// Evaluation before the first step and after the last (when the stage evaluates).
    pub first_eval: Option<Metrics>,
    pub last_eval: Option<Metrics>,
    /// Whether the run reached `max_steps` (and wrote its final model).
    pub finished: bool,
}

impl RunReport {
    pub fn get(&self, key: &str) -> f64 {
        self.last.get(key).copied().unwrap_or(f64::NAN)
    }
}

/// Runs `stage` on `policy` and writes the run folder `out`.
pub fn run<S: Stage>(
    stage: &mut S,
    policy: &mut Policy,
    tokenizer: &TextTokenizer,
    out: &Path,
    control: RunControl,
) -> Result<RunReport> {
    let cadence = stage.cadence();
    fs::create_dir_all(out.join("checkpoints")).map_err(at(out))?;
    let resolved = toml::to_string(stage.config()).map_err(|e| Error::Config(e.to_string()))?;
    write_atomic(&out.join("config.toml"), resolved.as_bytes())?;
    remove_partial_checkpoints(out)?;

    let mut report = RunReport::default();
    let mut start = 0;
    if control.resume {
        if let Some(dir) = latest_checkpoint(out)? {
            start = resume(stage, policy, &dir)?;
            report.resumed_from = Some(start);
        }
    }
    let metrics_path = out.join("metrics.jsonl");
    let eval_path = out.join("eval.jsonl");
    let mut metrics = JsonLines::open(&metrics_path, start)?;
    let mut evals = JsonLines::open(&eval_path, start)?;
    if start == 0 && cadence.eval_steps > 0 {
        report.first_eval = evaluate(stage, policy, &mut evals, 0)?;
    }

    let bar = progress_bar(cadence.max_steps, start, control.progress);
    let began = Instant::now();
    let end = control.stop_after.map_or(cadence.max_steps, |n| (start + n).min(cadence.max_steps));
    for step in start..end {
        let done = step + 1;
        let mut line = stage.step(policy, step)?;
        for key in ["loss", "grad_norm"] {
            if let Some(&v) = line.get(key).filter(|v| !v.is_finite()) {
                return Err(non_finite(done, key, v));
            }
        }
        line.insert("elapsed_s".into(), began.elapsed().as_secs_f64());
        if done % cadence.logging_steps == 0 || done == cadence.max_steps {
            metrics.write(done, &line)?;
        }
        bar.set_position(done);
        bar.set_message(stage.progress(&line));
        report.last = line;
        if cadence.eval_steps > 0 && (done % cadence.eval_steps == 0 || done == cadence.max_steps) {
            report.last_eval = evaluate(stage, policy, &mut evals, done)?.or(report.last_eval);
        }
        if done % cadence.save_steps == 0 || done == cadence.max_steps {
            let state = RunState { step: done, config: stage.config().clone(), stage: stage.state() };
            let json = serde_json::to_string_pretty(&state).map_err(|e| Error::Config(e.to_string()))?;
            write_checkpoint(out, done, policy, tokenizer, &json, &stage.checkpoint_files())?;
            prune_checkpoints(out, cadence.save_total_limit)?;
        }
    }
    bar.finish_and_clear();
    report.steps = end;
    report.finished = end == cadence.max_steps;
    if report.finished {
        stage.save_final(policy, tokenizer, out)?;
    }
    Ok(report)
}

/// Loads the checkpoint `dir` into `policy` and `stage`; returns its step.
fn resume<S: Stage>(stage: &mut S, policy: &mut Policy, dir: &Path) -> Result<u64> {
    let path = dir.join("trainer_state.json");
    let text = fs::read_to_string(&path).map_err(at(&path))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::file(&path, e))?;
    // Settings first, as values: a setting added or renamed since must be
    // named, not reported as a JSON shape error.
    // Through text, as the checkpoint's copy went: an f32 setting reads
    // back as the number it was written as.
    let now = serde_json::to_string(stage.config()).and_then(|t| serde_json::from_str::<serde_json::Value>(&t));
    let now = now.map_err(|e| Error::Config(e.to_string()))?;
    let then = value.get("config").cloned().unwrap_or(serde_json::Value::Null);
    let differ = differing_settings(&then, &now);
    if !differ.is_empty() {
        return Err(Error::Usage(format!(
            "{} was written with different settings ({}); resume with the same ones, or start a new run folder",
            dir.display(),
            differ.join(", ")
        )));
    }
    let state: RunState<S::Config, S::State> = serde_json::from_value(value).map_err(|e| Error::file(&path, e))?;
    let weights = read_weights_dir(dir)?;
    let copy = policy.model.clone();
    let model = std::mem::replace(&mut policy.model, copy);
    policy.model = load_weights(model, weights, dir)?;
    let moments = read_safetensors(&dir.join("optimizer.safetensors"))?;
    let inner = policy.model.device().without_autodiff();
    policy.optimizer.load_state_dict(stage.optimizer_steps(state.step), moments, &inner)?;
    stage.restore(state.stage, dir, policy)?;
    Ok(state.step)
}

/// Reads a settings TOML (a stage's config; missing names take their
/// defaults). A name the settings do not have is an error naming it, also
/// for settings made of several flattened parts, which serde alone would
/// let through.
pub fn read_settings<T: Serialize + DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).map_err(at(path))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| Error::file(path, e))?;
    let settings: T = table.clone().try_into().map_err(|e: toml::de::Error| Error::file(path, e.message().to_string()))?;
    let known = toml::Table::try_from(&settings).map_err(|e| Error::file(path, e))?;
    if let Some(unknown) = unknown_key(&table, &known, "") {
        return Err(Error::file(path, format!("unknown setting `{unknown}`")));
    }
    Ok(settings)
}

/// The first key of `given` (at any depth of nested tables) that the
/// settings, written back, do not have.
pub(crate) fn unknown_key(given: &toml::Table, known: &toml::Table, prefix: &str) -> Option<String> {
    for (k, v) in given {
        match (v, known.get(k)) {
            (_, None) => return Some(format!("{prefix}{k}")),
            (toml::Value::Table(g), Some(toml::Value::Table(n))) => {
                if let Some(u) = unknown_key(g, n, &format!("{prefix}{k}.")) {
                    return Some(u);
                }
            }
            _ => {}
        }
    }
    None
}

/// `name: then -> now` for each setting whose value differs.
fn differing_settings(then: &serde_json::Value, now: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (then.as_object().unwrap_or(&empty), now.as_object().unwrap_or(&empty));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&serde_json::Value>| v.map_or("unset".to_string(), |v| v.to_string());
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {} -> {}", show(a.get(k)), show(b.get(k))))
        .collect()
}

fn evaluate<S: Stage>(stage: &mut S, policy: &Policy, evals: &mut JsonLines, step: u64) -> Result<Option<Metrics>> {
    let line = stage.evaluate(policy, step)?;
    if let Some(line) = &line {
        evals.write(step, line)?;
    }
    Ok(line)
}

/// An append-only JSONL file of `{"step": N, ...}` lines. Opening it for a
/// run resumed at `start` drops the lines past `start`, so the file reads as
/// if the run had never stopped.
struct JsonLines {
    path: PathBuf,
    file: fs::File,
}

impl JsonLines {
    fn open(path: &Path, start: u64) -> Result<JsonLines> {
        truncate_metrics(path, start)?;
        let file = fs::OpenOptions::new().create(true).append(true).open(path).map_err(at(path))?;
        Ok(JsonLines { path: path.to_path_buf(), file })
    }

    fn write(&mut self, step: u64, values: &Metrics) -> Result<()> {
        writeln!(self.file, "{}", metrics_json(step, values)).and_then(|_| self.file.flush()).map_err(at(&self.path))
    }
}

/// `{"step": step, name: value, ...}`; counts (whole numbers) are written
/// as integers, a non-finite value as null.
pub fn metrics_json(step: u64, values: &Metrics) -> serde_json::Value {
    let mut json = serde_json::Map::new();
    json.insert("step".into(), step.into());
    for (k, &v) in values {
        let value = if v.fract() == 0.0 && v.abs() < 9.0e15 {
            serde_json::Value::from(v as i64)
        } else {
            serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into)
        };
        json.insert(k.clone(), value);
    }
    serde_json::Value::Object(json)
}

pub fn special_ids(tokenizer: &TextTokenizer) -> SpecialIds {
    SpecialIds { bos: tokenizer.bos_id(), eos: tokenizer.eos_id(), pad: tokenizer.pad_id() }
}

pub(crate) fn progress_bar(total: u64, start: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template("{spinner} step {pos}/{len} [{bar:30}] {msg}  eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_position(start);
    bar
}

fn checkpoint_name(step: u64) -> String {
    format!("step-{step:06}")
}

/// Writes `out/checkpoints/step-N`: the model, tokenizer, optimizer state,
/// `trainer_state.json` (`state_json`) and any `extra` safetensors files
/// (name, tensors), under a temporary name, then renamed into place.
pub fn write_checkpoint(
    out: &Path,
    step: u64,
    policy: &Policy,
    tokenizer: &TextTokenizer,
    state_json: &str,
    extra: &[(&str, BTreeMap<String, HostTensor>)],
) -> Result<PathBuf> {
    let dir = out.join("checkpoints").join(checkpoint_name(step));
    let tmp = crate::fsutil::temp_path(&dir);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(at(&tmp))?;
    }
    save_model(&policy.model, &tmp, special_ids(tokenizer))?;
    tokenizer.save_dir(&tmp)?;
    write_safetensors(&tmp.join("optimizer.safetensors"), &policy.optimizer.state_dict())?;
    for (name, tensors) in extra {
        write_safetensors(&tmp.join(name), tensors)?;
    }
    write_atomic(&tmp.join("trainer_state.json"), state_json.as_bytes())?;
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(at(&dir))?;
    }
    fs::rename(&tmp, &dir).map_err(at(&dir))?;
    sync_dir(&dir);
    Ok(dir)
}

/// The complete checkpoint with the highest step, if any.
pub fn latest_checkpoint(out: &Path) -> Result<Option<PathBuf>> {
    Ok(checkpoints(out)?.pop().map(|(_, p)| p))
}

/// Complete checkpoints (`step-N`), by step.
fn checkpoints(out: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let dir = out.join("checkpoints");
    let Ok(entries) = fs::read_dir(&dir) else { return Ok(Vec::new()) };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name.strip_prefix("step-")?.parse::<u64>().ok()?;
            Some((step, e.path()))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Removes `checkpoints/step-N.tmpPID` folders that a kill or a full disk
/// left half-written.
fn remove_partial_checkpoints(out: &Path) -> Result<()> {
    let dir = out.join("checkpoints");
    let Ok(entries) = fs::read_dir(&dir) else { return Ok(()) };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let partial = name.to_str().is_some_and(|n| n.starts_with("step-") && n.contains(".tmp"));
        if partial && entry.path().is_dir() {
            fs::remove_dir_all(entry.path()).map_err(at(&entry.path()))?;
        }
    }
    Ok(())
}

pub(crate) fn prune_checkpoints(out: &Path, keep: usize) -> Result<()> {
    if keep == 0 {
        return Ok(());
    }
    let all = checkpoints(out)?;
    for (_, dir) in all.iter().take(all.len().saturating_sub(keep)) {
        fs::remove_dir_all(dir).map_err(at(dir))?;
    }
    Ok(())
}

/// Drops lines past `step` from a `{"step": N, ...}` JSONL file (and any
/// half-written last line), rewritten atomically.
pub(crate) fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = fs::read_to_string(path) else { return Ok(()) };
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s <= step)
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    write_atomic(path, kept.as_bytes())
}

/// Reads a `{"step": N, ...}` JSONL file (metrics.jsonl, eval.jsonl) as
/// name -> value maps; non-numbers are left out. A last line without its
/// newline (a live run writing it) is ignored; any other bad line is an
/// error naming it.
pub fn read_metric_lines(path: &Path) -> Result<Vec<Metrics>> {
    let text = fs::read_to_string(path).map_err(at(path))?;
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    let mut out = Vec::new();
    for (i, line) in complete.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::Line { path: path.to_path_buf(), line: i + 1, message: e.to_string() })?;
        let object = value
            .as_object()
            .ok_or_else(|| Error::Line { path: path.to_path_buf(), line: i + 1, message: "not a JSON object".into() })?;
        out.push(object.iter().filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v))).collect());
    }
    Ok(out)
}

/// The stage-agnostic part of every supervised step: gradients of each
/// micro-batch's loss (already scaled so that they sum to the step's loss),
/// accumulated, then one AdamW step. `loss` returns the micro-batch's loss
/// tensor and any figures to add up over the step.
pub fn accumulate<T>(
    policy: &mut Policy,
    micro_batches: &[T],
    lr: f64,
    step: u64,
    mut loss: impl FnMut(&CausalLm, &T) -> Result<(burn::tensor::Tensor<1>, Metrics)>,
) -> Result<Metrics> {
    let mut grads = GradSum::default();
    let mut sums = Metrics::new();
    let mut total = 0.0;
    for micro in micro_batches {
        let (l, figures) = loss(&policy.model, micro)?;
        let mut g = l.backward();
        let value = scalar(l.inner());
        if !value.is_finite() {
            return Err(non_finite(step + 1, "loss", value));
        }
        total += value;
        grads.add(crate::params::take_grads(&policy.model, &mut g));
        for (k, v) in figures {
            *sums.entry(k).or_default() += v;
        }
    }
    let stats = policy.update(grads, lr, step + 1)?;
    sums.insert("loss".into(), total);
    sums.insert("grad_norm".into(), stats.grad_norm);
    sums.insert("lr".into(), lr);
    Ok(sums)
}

/// A one-element tensor's value.
pub fn scalar<const D: usize>(t: burn::tensor::Tensor<D>) -> f64 {
    t.into_data().convert::<f64>().try_to_vec::<f64>().map_or(f64::NAN, |v| v.first().copied().unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_settings_names_each_changed_key() {
        let then = serde_json::json!({"learning_rate": 0.001, "seed": 1, "old": true});
        let now = serde_json::json!({"learning_rate": 0.002, "seed": 1, "new": 3});
        assert_eq!(
            differing_settings(&then, &now),
            vec!["learning_rate: 0.001 -> 0.002", "new: unset -> 3", "old: true -> unset"]
        );
        assert!(differing_settings(&now, &now).is_empty());
    }

    #[test]
    fn metric_lines_skip_a_half_written_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        fs::write(&path, "{\"step\":1,\"loss\":2.5}\n{\"step\":2,\"loss\":null}\n{\"step\":3,\"lo").unwrap();
        let lines = read_metric_lines(&path).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["loss"], 2.5);
        assert!(!lines[1].contains_key("loss"));
        fs::write(&path, "{\"step\":1}\nnot json\n").unwrap();
        let err = read_metric_lines(&path).unwrap_err().to_string();
        assert!(err.contains("m.jsonl:2"), "{err}");
    }

    #[test]
    fn partial_checkpoints_are_removed_complete_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("checkpoints");
        fs::create_dir_all(ck.join("step-000004")).unwrap();
        fs::create_dir_all(ck.join("step-000006.tmp1234")).unwrap();
        remove_partial_checkpoints(dir.path()).unwrap();
        assert!(ck.join("step-000004").exists());
        assert!(!ck.join("step-000006.tmp1234").exists());
        assert_eq!(latest_checkpoint(dir.path()).unwrap(), Some(ck.join("step-000004")));
    }

    #[test]
    fn truncation_drops_later_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        fs::write(&path, "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n").unwrap();
        truncate_metrics(&path, 2).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"step\":1}\n{\"step\":2}\n");
    }
}
