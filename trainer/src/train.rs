//! The training loop shared by pre-training and SFT: micro-batches with
//! gradient accumulation, AdamW, checkpoints that a killed run resumes from
//! exactly, metrics as JSONL and a progress bar.
//!
//! A run's folder:
//! ```text
//! out/
//!   config.toml            the fully resolved settings of the run
//!   metrics.jsonl          one line per optimizer step
//!   config.json, model.safetensors, tokenizer.json, ...   the final model
//!   checkpoints/step-000100/   model + optimizer.safetensors + trainer_state.json
//! ```
//! Each checkpoint folder is written under a temporary name, every file
//! fsynced, and renamed into place: a folder named `step-N` is complete.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{read_safetensors, save_model, write_safetensors};
use crate::config::SpecialIds;
use crate::data::{Batcher, DataPosition};
use crate::device::{DeviceChoice, Precision};
use crate::error::{at, Error, Result};
use crate::fsutil::{sync_dir, write_atomic};
use crate::model::{CausalLm, Inputs};
use crate::optim::{AdamW, GradSum, OptimConfig};
use crate::params::take_grads;
use crate::tokenizer::TextTokenizer;

/// One training sequence: token ids and which of them are targets
/// (`targets[i]`: token `i` is predicted from the tokens before it and
/// counts in the loss).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub ids: Vec<u32>,
    pub targets: Vec<bool>,
}

/// Settings of a training run. The names follow transformers'
/// `TrainingArguments` where one exists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps.
    pub max_steps: u64,
    /// Sequences per micro-batch.
    pub per_device_train_batch_size: usize,
    /// Micro-batches per optimizer step.
    pub gradient_accumulation_steps: usize,
    /// Longest sequence (tokens); pre-training packs to exactly this.
    pub max_seq_length: usize,
    pub save_steps: u64,
    /// Checkpoints kept (older ones are deleted); 0 keeps all.
    pub save_total_limit: usize,
    pub logging_steps: u64,
    pub seed: u64,
    pub device: String,
    /// Compute precision; empty means the device's default (bf16 on GPU).
    pub precision: String,
    /// Recompute memory-bound activations in the backward pass.
    pub gradient_checkpointing: bool,
    #[serde(flatten)]
    pub optim: OptimConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            max_steps: 200,
            per_device_train_batch_size: 8,
            gradient_accumulation_steps: 1,
            max_seq_length: 256,
            save_steps: 50,
            save_total_limit: 2,
            logging_steps: 1,
            seed: 42,
            device: "flex".into(),
            precision: String::new(),
            gradient_checkpointing: false,
            optim: OptimConfig::default(),
        }
    }
}

impl TrainConfig {
    pub fn device_choice(&self) -> Result<DeviceChoice> {
        self.device.parse()
    }

    pub fn precision(&self) -> Result<Precision> {
        self.device_choice()?.precision(&self.precision)
    }

    /// The training device (autodiff on, checkpointing if asked).
    pub fn device(&self) -> Result<Device> {
        Ok(self.device_choice()?.training_device(self.gradient_checkpointing))
    }

    /// Reads settings from a TOML file (unknown names are an error naming
    /// them; missing ones take the defaults).
    pub fn from_toml_file(path: &Path) -> Result<TrainConfig> {
        let text = fs::read_to_string(path).map_err(at(path))?;
        toml::from_str(&text).map_err(|e| Error::file(path, e))
    }

    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("max_steps", self.max_steps as usize),
            ("per_device_train_batch_size", self.per_device_train_batch_size),
            ("gradient_accumulation_steps", self.gradient_accumulation_steps),
            ("max_seq_length", self.max_seq_length),
            ("save_steps", self.save_steps as usize),
            ("logging_steps", self.logging_steps as usize),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!("`{name}` must be positive")));
        }
        // Also rejects NaN.
        if self.optim.learning_rate.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(Error::Config("`learning_rate` must be positive".into()));
        }
        self.device_choice()?;
        self.precision()?;
        Ok(())
    }
}

/// What `trainer_state.json` in a checkpoint records: enough to continue as
/// if never stopped. Data order is a pure function of the seed and the
/// position, so the position is the whole random state of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: u64,
    pub data: DataPosition,
    /// The run's settings, to refuse resuming with different ones.
    pub config: TrainConfig,
    /// Total target tokens trained on.
    pub tokens: u64,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    /// Target tokens in this step.
    pub tokens: u64,
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
}

/// How a call to [`train`] should end (tests stop early to simulate a kill).
#[derive(Clone, Copy, Debug, Default)]
pub struct RunControl {
    /// Continue from the latest checkpoint in the output folder.
    pub resume: bool,
    /// Return after this many steps, as a killed run would (no final save).
    pub stop_after: Option<u64>,
    /// Show a progress bar (when stderr is a terminal).
    pub progress: bool,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct TrainReport {
    pub steps: u64,
    pub final_loss: f64,
    pub tokens_per_s: f64,
    pub resumed_from: Option<u64>,
}

/// Trains `model` on `rows` and writes the run folder `out`.
pub fn train(
    mut model: CausalLm,
    tokenizer: &TextTokenizer,
    rows: &[Row],
    config: &TrainConfig,
    out: &Path,
    control: RunControl,
) -> Result<(CausalLm, TrainReport)> {
    config.validate()?;
    if rows.is_empty() {
        return Err(Error::Usage("no training data".into()));
    }
    let device = model.device();
    fs::create_dir_all(out.join("checkpoints")).map_err(at(out))?;
    let resolved = toml::to_string(config).map_err(|e| Error::Config(e.to_string()))?;
    write_atomic(&out.join("config.toml"), resolved.as_bytes())?;

    let per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps;
    let mut batcher = Batcher::new(rows.len(), per_step, config.seed)?;
    let mut optimizer = AdamW::new(config.optim.clone());
    let mut start = 0;
    let mut tokens_total = 0u64;
    let mut resumed_from = None;
    if control.resume {
        if let Some(dir) = latest_checkpoint(out)? {
            let state = read_state(&dir)?;
            if state.config != *config {
                return Err(Error::Usage(format!(
                    "{} was written with different settings; resume with the same ones (see its trainer_state.json)",
                    dir.display()
                )));
            }
            let weights = crate::checkpoint::read_weights_dir(&dir)?;
            model = crate::checkpoint::load_weights(model, weights, &dir)?;
            let moments = read_safetensors(&dir.join("optimizer.safetensors"))?;
            optimizer.load_state_dict(state.step, moments, &device.clone().without_autodiff())?;
            batcher.restore(state.data.clone())?;
            start = state.step;
            tokens_total = state.tokens;
            resumed_from = Some(state.step);
        }
    }
    let metrics_path = out.join("metrics.jsonl");
    truncate_metrics(&metrics_path, start)?;
    let mut metrics = fs::OpenOptions::new().create(true).append(true).open(&metrics_path).map_err(at(&metrics_path))?;

    let bar = progress_bar(config.max_steps, start, control.progress);
    let pad = tokenizer.pad_id().unwrap_or(0);
    let began = Instant::now();
    let mut last_loss = f64::NAN;
    let mut rate = 0.0;
    let end = control.stop_after.map_or(config.max_steps, |n| (start + n).min(config.max_steps));
    for step in start..end {
        let step_began = Instant::now();
        let indices = batcher.next_batch();
        let batch: Vec<&Row> = indices.iter().map(|&i| &rows[i]).collect();
        let targets: usize = batch.iter().map(|r| r.targets.iter().skip(1).filter(|&&t| t).count()).sum();
        let scale = 1.0 / targets.max(1) as f64;
        let mut grads = GradSum::default();
        let mut loss = 0.0;
        for micro in batch.chunks(config.per_device_train_batch_size) {
            let (inputs, target_ids, weights) = micro_batch(micro, pad, config.max_seq_length, &device);
            let step_loss = model.nll_sum(&inputs, target_ids, weights) * scale;
            let mut g = step_loss.backward();
            loss += scalar(step_loss.inner());
            grads.add(take_grads(&model, &mut g));
        }
        let lr = config.optim.lr_at(step, config.max_steps);
        let (updated, stats) = optimizer.step(model, grads, lr);
        model = updated;
        tokens_total += targets as u64;
        let seconds = step_began.elapsed().as_secs_f64();
        rate = targets as f64 / seconds.max(1e-9);
        last_loss = loss;
        let line = StepMetrics {
            step: step + 1,
            loss,
            lr,
            grad_norm: stats.grad_norm,
            tokens: targets as u64,
            tokens_per_s: rate,
            elapsed_s: began.elapsed().as_secs_f64(),
        };
        if (step + 1) % config.logging_steps == 0 || step + 1 == config.max_steps {
            let json = serde_json::to_string(&line).map_err(|e| Error::Config(e.to_string()))?;
            writeln!(metrics, "{json}").and_then(|_| metrics.flush()).map_err(at(&metrics_path))?;
        }
        bar.set_position(step + 1);
        bar.set_message(format!("loss {loss:.4}  {rate:.0} tok/s"));
        if (step + 1) % config.save_steps == 0 || step + 1 == config.max_steps {
            let state = TrainerState { step: step + 1, data: batcher.position(), config: config.clone(), tokens: tokens_total };
            save_checkpoint(out, &model, &optimizer, tokenizer, &state)?;
            prune_checkpoints(out, config.save_total_limit)?;
        }
    }
    bar.finish_and_clear();
    let done = end == config.max_steps;
    if done {
        save_model(&model, out, special_ids(tokenizer))?;
        tokenizer.save_dir(out)?;
    }
    let report = TrainReport { steps: end, final_loss: last_loss, tokens_per_s: rate, resumed_from };
    Ok((model, report))
}

/// Inputs, targets and weights of one micro-batch: rows right-padded to the
/// longest, inputs `ids[..n-1]`, targets `ids[1..]`, weight 1 where the
/// target counts.
fn micro_batch(rows: &[&Row], pad: u32, max_len: usize, device: &Device) -> (Inputs, Tensor<2, Int>, Tensor<2>) {
    let len = rows.iter().map(|r| r.ids.len().min(max_len + 1)).max().unwrap_or(2).max(2);
    let mut inputs = Vec::with_capacity(rows.len());
    let mut targets = Vec::with_capacity(rows.len() * (len - 1));
    let mut weights = Vec::with_capacity(rows.len() * (len - 1));
    for row in rows {
        let n = row.ids.len().min(len);
        let mut ids = row.ids[..n].to_vec();
        ids.resize(len, pad);
        let mut mask = row.targets[..n].to_vec();
        mask.resize(len, false);
        targets.extend(ids[1..].iter().map(|&t| t as i64));
        weights.extend(mask[1..].iter().map(|&m| if m { 1.0f32 } else { 0.0 }));
        ids.pop();
        inputs.push(ids);
    }
    let b = rows.len();
    (
        Inputs::causal(&inputs, device),
        Tensor::from_data(TensorData::new(targets, [b, len - 1]), device),
        Tensor::from_data(TensorData::new(weights, [b, len - 1]), device),
    )
}

/// A one-element tensor's value.
pub fn scalar(t: Tensor<1>) -> f64 {
    t.into_data().convert::<f64>().try_to_vec::<f64>().map_or(f64::NAN, |v| v[0])
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

/// Writes `out/checkpoints/step-N` under a temporary name and renames it.
pub fn save_checkpoint(
    out: &Path,
    model: &CausalLm,
    optimizer: &AdamW,
    tokenizer: &TextTokenizer,
    state: &TrainerState,
) -> Result<PathBuf> {
    let json = serde_json::to_string_pretty(state).map_err(|e| Error::Config(e.to_string()))?;
    write_checkpoint(out, state.step, model, optimizer, tokenizer, &json, &[])
}

/// Writes `out/checkpoints/step-N`: the model, tokenizer, optimizer state,
/// `trainer_state.json` (`state_json`) and any `extra` safetensors files
/// (name, tensors), under a temporary name, then renamed into place.
pub fn write_checkpoint(
    out: &Path,
    step: u64,
    model: &CausalLm,
    optimizer: &AdamW,
    tokenizer: &TextTokenizer,
    state_json: &str,
    extra: &[(&str, std::collections::BTreeMap<String, crate::params::HostTensor>)],
) -> Result<PathBuf> {
    let dir = out.join("checkpoints").join(checkpoint_name(step));
    let tmp = crate::fsutil::temp_path(&dir);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(at(&tmp))?;
    }
    save_model(model, &tmp, special_ids(tokenizer))?;
    tokenizer.save_dir(&tmp)?;
    write_safetensors(&tmp.join("optimizer.safetensors"), &optimizer.state_dict())?;
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

pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join("trainer_state.json");
    let text = fs::read_to_string(&path).map_err(at(&path))?;
    serde_json::from_str(&text).map_err(|e| Error::file(&path, e))
}

/// Drops metric lines past `step`, so a resumed run's file reads as if the
/// run had never stopped. Rewritten atomically.
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

/// Reads `metrics.jsonl`.
pub fn read_metrics(path: &Path) -> Result<Vec<StepMetrics>> {
    let text = fs::read_to_string(path).map_err(at(path))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::Line { path: path.to_path_buf(), line: i + 1, message: e.to_string() })
        })
        .collect()
}
