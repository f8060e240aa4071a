//! Supervised training (pre-training, SFT, sequence-level distillation):
//! the [`Supervised`] stage, whose batches are fixed rows with target masks
//! and whose loss is the mean negative log-likelihood of the targets,
//! plugged into [`crate::run`]'s loop (resume, metrics, checkpoints).

use std::fs;
use std::path::Path;
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::{Batcher, DataPosition};
use crate::device::{DeviceChoice, Precision};
use crate::error::{at, Error, Result};
use crate::model::{CausalLm, Inputs};
use crate::optim::{AdamW, OptimConfig};
use crate::run::{accumulate, run, Cadence, Metrics, Policy, RunReport, Stage};
use crate::tokenizer::TextTokenizer;

pub use crate::run::{latest_checkpoint, scalar, special_ids, RunControl};

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
    /// Batch rows of about the same length together, so micro-batches pad
    /// little (transformers' `group_by_length`); each epoch is still a new
    /// shuffle. Off by default: batches then mix lengths.
    pub group_by_length: bool,
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
            group_by_length: false,
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
        crate::run::read_settings(path)
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

/// What a supervised run's checkpoint records besides step and settings.
/// Data order is a pure function of the seed and the position, so the
/// position is the whole random state of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SupervisedState {
    pub data: DataPosition,
    /// Total target tokens trained on.
    pub tokens: u64,
}

/// One line of `metrics.jsonl` of a supervised run.
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

/// The result of a run.
#[derive(Clone, Debug)]
pub struct TrainReport {
    pub steps: u64,
    pub final_loss: f64,
    pub tokens_per_s: f64,
    pub resumed_from: Option<u64>,
}

impl From<&RunReport> for TrainReport {
    fn from(r: &RunReport) -> TrainReport {
        TrainReport { steps: r.steps, final_loss: r.get("loss"), tokens_per_s: r.get("tokens_per_s"), resumed_from: r.resumed_from }
    }
}

/// Next-token prediction on fixed rows (pre-training, SFT, sequence-level
/// distillation): a step takes `batch_size × grad_accum` rows in the
/// batcher's order, and the loss is the mean negative log-likelihood of their
/// target tokens.
pub struct Supervised<'r> {
    rows: &'r [Row],
    config: TrainConfig,
    batcher: Batcher,
    pad: u32,
    tokens: u64,
}

impl<'r> Supervised<'r> {
    pub fn new(rows: &'r [Row], config: &TrainConfig, tokenizer: &TextTokenizer) -> Result<Supervised<'r>> {
        config.validate()?;
        if rows.is_empty() {
            return Err(Error::Usage("no training data".into()));
        }
        let per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps;
        Ok(Supervised {
            rows,
            config: config.clone(),
            batcher: if config.group_by_length {
                Batcher::by_length(rows.iter().map(|r| r.ids.len()).collect(), per_step, config.seed)?
            } else {
                Batcher::new(rows.len(), per_step, config.seed)?
            },
            pad: tokenizer.pad_id().unwrap_or(0),
            tokens: 0,
        })
    }
}

impl TrainConfig {
    pub fn cadence(&self, eval_steps: u64) -> Cadence {
        Cadence {
            max_steps: self.max_steps,
            logging_steps: self.logging_steps,
            eval_steps,
            save_steps: self.save_steps,
            save_total_limit: self.save_total_limit,
        }
    }
}

impl Stage for Supervised<'_> {
    type Config = TrainConfig;
    type State = SupervisedState;

    fn config(&self) -> &TrainConfig {
        &self.config
    }

    fn cadence(&self) -> Cadence {
        self.config.cadence(0)
    }

    fn step(&mut self, policy: &mut Policy, step: u64) -> Result<Metrics> {
        let began = Instant::now();
        let mut batch: Vec<&Row> = self.batcher.next_batch().into_iter().map(|i| &self.rows[i]).collect();
        if self.config.group_by_length {
            // Micro-batches of one step, each of about one length.
            batch.sort_by_key(|r| std::cmp::Reverse(r.ids.len()));
        }
        let targets: usize = batch.iter().map(|r| r.targets.iter().skip(1).filter(|&&t| t).count()).sum();
        let scale = 1.0 / targets.max(1) as f64;
        let c = &self.config;
        let device = policy.model.device();
        let micros: Vec<&[&Row]> = batch.chunks(c.per_device_train_batch_size).collect();
        let lr = c.optim.lr_at(step, c.max_steps);
        let mut line = accumulate(policy, &micros, lr, step, |model, micro| {
            let (inputs, target_ids, weights) = micro_batch(micro, self.pad, c.max_seq_length, &device);
            Ok((model.nll_sum(&inputs, target_ids, weights) * scale, Metrics::new()))
        })?;
        self.tokens += targets as u64;
        line.insert("tokens".into(), targets as f64);
        line.insert("tokens_per_s".into(), targets as f64 / began.elapsed().as_secs_f64().max(1e-9));
        Ok(line)
    }

    fn state(&self) -> SupervisedState {
        SupervisedState { data: self.batcher.position(), tokens: self.tokens }
    }

    fn restore(&mut self, state: SupervisedState, _dir: &Path, _policy: &Policy) -> Result<()> {
        self.batcher.restore(state.data)?;
        self.tokens = state.tokens;
        Ok(())
    }

    fn progress(&self, m: &Metrics) -> String {
        let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
        format!("loss {:.4}  {:.0} tok/s", get("loss"), get("tokens_per_s"))
    }
}

/// Trains `model` on `rows` and writes the run folder `out`.
pub fn train(
    model: CausalLm,
    tokenizer: &TextTokenizer,
    rows: &[Row],
    config: &TrainConfig,
    out: &Path,
    control: RunControl,
) -> Result<(CausalLm, TrainReport)> {
    let mut stage = Supervised::new(rows, config, tokenizer)?;
    let mut policy = Policy::new(model, AdamW::new(config.optim.clone()));
    let report = run(&mut stage, &mut policy, tokenizer, out, control)?;
    Ok((policy.model, TrainReport::from(&report)))
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
