//! R1-Zero: GRPO with rule-based rewards (R1-METHOD.md §3–5).
//!
//! One step:
//! 1. take `prompts_per_step` prompts and sample `num_generations` outputs of
//!    each from the current policy (π_old), with the trainer's batched
//!    generation or the runtime's engine ([`rollout`]);
//! 2. score every output with every reward, sum them with their weights;
//!    with `dynamic_sampling`, groups whose rewards all agree are dropped
//!    and replaced by fresh prompts;
//! 3. turn rewards into group-relative advantages ([`objective::advantages`]);
//! 4. recompute log π_old (when μ > 1) and log π_ref (when β > 0) with the
//!    trainer, then take `num_iterations` (μ) optimizer steps on
//!    [`objective::loss`], every output of the step in each;
//! 5. log metrics, evaluate every `eval_steps`, checkpoint every `save_steps`,
//!    and every `ref_reset_every` steps make the reference the policy.
//!
//! A run's folder is the trainer's (config.toml, metrics.jsonl,
//! checkpoints/step-N, the final model) plus `eval.jsonl` (pass@1 on the
//! held-out prompts) and, in each checkpoint, `reference.safetensors`.

pub mod objective;
pub mod rollout;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{load_model, load_weights, read_safetensors, read_weights_dir, save_model};
use crate::data::{read_prompts_jsonl, DataPosition, PromptFormat, PromptRecord};
use crate::device::{DeviceChoice, Precision};
use crate::error::{at, Error, Result};
use crate::generate::{Completion, Finish, GenerateConfig};
use crate::model::{CausalLm, Inputs};
use crate::optim::{AdamW, GradSum, OptimConfig};
use crate::params::{state_dict, take_grads};
use crate::recipes::Source;
use crate::rewards::{self, Reward, RewardSet, Sample};
use crate::tasks::{prompt_records, task_by_name, TASK_NAMES};
use crate::tokenizer::TextTokenizer;
use crate::train::{latest_checkpoint, progress_bar, prune_checkpoints, special_ids, truncate_metrics, write_checkpoint, RunControl};
use objective::{LossType, Normalizer, ScaleRewards, Settings, TokenStats};

/// Every knob of a GRPO run. Names are TRL's `GRPOConfig` names where TRL
/// has the knob; the defaults are the paper's R1-Zero values where they make
/// sense at small size, TRL's otherwise (README.md lists each and its source).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// Steps; each samples a batch and takes `num_iterations` optimizer steps on it.
    pub max_steps: u64,
    /// Questions per step (the paper: 32; fewer by default so a CPU step takes seconds).
    pub prompts_per_step: usize,
    /// G, outputs per question (the paper: 16).
    pub num_generations: usize,
    /// μ, optimizer steps per sampled batch (TRL: 1).
    pub num_iterations: usize,
    /// Lower clip ε (TRL: 0.2).
    pub epsilon: f64,
    /// Upper clip; unset = `epsilon` (DAPO's clip-higher uses 0.28).
    pub epsilon_high: Option<f64>,
    /// Dual clip: cap on ρ for negative advantages (INTELLECT-2 / TRL `delta`); unset = off.
    pub delta: Option<f64>,
    /// KL weight β (the paper: 0.001); 0 loads no reference model.
    pub beta: f64,
    /// Replace the reference by the policy every N steps (the paper: 400); 0 = never.
    pub ref_reset_every: u64,
    pub loss_type: LossType,
    pub scale_rewards: ScaleRewards,
    /// Drop groups whose rewards all agree and sample new prompts in their place (DAPO).
    pub dynamic_sampling: bool,
    /// With `dynamic_sampling`, extra rounds of sampling per step at most.
    pub max_refill_rounds: usize,
    /// Leave outputs cut at `max_completion_length` out of the loss (DAPO's overlong filtering).
    pub mask_truncated: bool,
    /// Sampling temperature (the paper: 1).
    pub temperature: f32,
    pub top_p: f32,
    /// 0 = off.
    pub top_k: usize,
    /// Prompts longer than this keep their last tokens (TRL: 512).
    pub max_prompt_length: usize,
    /// Output tokens at most (TRL: 256).
    pub max_completion_length: usize,
    /// Extra strings that end an output (the end-of-sequence token always does).
    pub stop_strings: Vec<String>,
    /// `name` or `name:weight`: accuracy, format, language, code, countdown,
    /// `rm:<checkpoint>`. Empty: the task's own (accuracy + format; Countdown
    /// and code tasks use their verifier instead of accuracy).
    pub rewards: Vec<String>,
    /// Prompt format: r1-zero (the paper), chat (the tokenizer's template), chatml, ...
    pub template: String,
    /// Built-in tasks: prompts generated for training.
    pub train_prompts: usize,
    /// Evaluate every N steps (and before the first and after the last); 0 = never.
    pub eval_steps: u64,
    /// Held-out prompts evaluated.
    pub eval_prompts: usize,
    /// k: samples per held-out prompt; pass@1 is the mean accuracy over them.
    pub eval_samples: usize,
    /// The paper evaluates at temperature 0.6, top-p 0.95.
    pub eval_temperature: f32,
    pub eval_top_p: f32,
    /// Who samples: `trainer` (burn, batched), `runtime` (the aha runtime on
    /// CPU, weights handed over each step), or `auto` (runtime on flex,
    /// trainer on GPUs).
    pub rollout_engine: String,
    /// Sequences per forward when the trainer generates.
    pub generation_batch_size: usize,
    /// Sequences per forward/backward in the update (gradients accumulate
    /// over the whole step's batch).
    pub per_device_train_batch_size: usize,
    pub save_steps: u64,
    pub save_total_limit: usize,
    pub logging_steps: u64,
    pub seed: u64,
    pub device: String,
    /// Empty: the device's default (bf16 on GPU, f32 on CPU).
    pub precision: String,
    pub gradient_checkpointing: bool,
    #[serde(flatten)]
    pub optim: OptimConfig,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig {
            max_steps: 200,
            prompts_per_step: 8,
            num_generations: 16,
            num_iterations: 1,
            epsilon: 0.2,
            epsilon_high: None,
            delta: None,
            beta: 0.001,
            ref_reset_every: 400,
            loss_type: LossType::Grpo,
            scale_rewards: ScaleRewards::Group,
            dynamic_sampling: false,
            max_refill_rounds: 3,
            mask_truncated: false,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_prompt_length: 512,
            max_completion_length: 256,
            stop_strings: Vec::new(),
            rewards: Vec::new(),
            template: "r1-zero".into(),
            train_prompts: 10_000,
            eval_steps: 50,
            eval_prompts: 100,
            eval_samples: 4,
            eval_temperature: 0.6,
            eval_top_p: 0.95,
            rollout_engine: "auto".into(),
            generation_batch_size: 128,
            per_device_train_batch_size: 32,
            save_steps: 50,
            save_total_limit: 2,
            logging_steps: 1,
            seed: 42,
            device: "flex".into(),
            precision: String::new(),
            gradient_checkpointing: false,
            // TRL's optimizer defaults (no warm-up, no decay), with a larger
            // learning rate than its 1e-6: the students here are small.
            optim: OptimConfig {
                learning_rate: 1e-5,
                min_lr_ratio: 1.0,
                warmup_steps: 0,
                adam_beta1: 0.9,
                adam_beta2: 0.999,
                adam_epsilon: 1e-8,
                weight_decay: 0.0,
                max_grad_norm: 1.0,
            },
        }
    }
}

/// The advantage scaling's epsilon (TRL's 1e-4).
const EPS_STD: f32 = 1e-4;

impl GrpoConfig {
    pub fn from_toml_file(path: &Path) -> Result<GrpoConfig> {
        let text = fs::read_to_string(path).map_err(at(path))?;
        toml::from_str(&text).map_err(|e| Error::file(path, e))
    }

    pub fn device_choice(&self) -> Result<DeviceChoice> {
        self.device.parse()
    }

    pub fn precision(&self) -> Result<Precision> {
        self.device_choice()?.precision(&self.precision)
    }

    pub fn settings(&self) -> Settings {
        Settings {
            epsilon: self.epsilon,
            epsilon_high: self.epsilon_high.unwrap_or(self.epsilon),
            delta: self.delta,
            beta: self.beta,
            loss_type: self.loss_type,
        }
    }

    /// Whether the runtime engine samples the rollouts.
    pub fn runtime_rollouts(&self) -> Result<bool> {
        match self.rollout_engine.as_str() {
            "trainer" => Ok(false),
            "runtime" => Ok(true),
            "auto" => Ok(self.device_choice()? == DeviceChoice::Flex),
            other => Err(Error::Config(format!("rollout_engine `{other}`: expected auto, trainer or runtime"))),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("max_steps", self.max_steps as usize),
            ("prompts_per_step", self.prompts_per_step),
            ("num_generations", self.num_generations),
            ("num_iterations", self.num_iterations),
            ("max_prompt_length", self.max_prompt_length),
            ("max_completion_length", self.max_completion_length),
            ("generation_batch_size", self.generation_batch_size),
            ("per_device_train_batch_size", self.per_device_train_batch_size),
            ("save_steps", self.save_steps as usize),
            ("logging_steps", self.logging_steps as usize),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!("`{name}` must be positive")));
        }
        if self.num_generations < 2 {
            return Err(Error::Config("`num_generations` must be at least 2: advantages compare outputs of a group".into()));
        }
        let non_negative = [("epsilon", self.epsilon), ("beta", self.beta), ("epsilon_high", self.epsilon_high.unwrap_or(0.0))];
        if let Some((name, v)) = non_negative.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            return Err(Error::Config(format!("`{name}` must be a finite number ≥ 0, not {v}")));
        }
        if self.epsilon >= 1.0 {
            return Err(Error::Config(format!("`epsilon` {} must be below 1 (the clip range is [1 - ε, 1 + ε_high])", self.epsilon)));
        }
        if let Some(d) = self.delta {
            if !(d.is_finite() && d > 1.0 + self.epsilon_high.unwrap_or(self.epsilon)) {
                return Err(Error::Config(format!("`delta` {d} must exceed 1 + epsilon_high")));
            }
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::Config("`temperature` must be positive: GRPO samples".into()));
        }
        if self.eval_steps > 0 && (self.eval_prompts == 0 || self.eval_samples == 0) {
            return Err(Error::Config("`eval_prompts` and `eval_samples` must be positive when `eval_steps` is".into()));
        }
        if self.optim.learning_rate.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(Error::Config("`learning_rate` must be positive".into()));
        }
        self.runtime_rollouts()?;
        self.precision()?;
        Ok(())
    }

    fn sampling(&self, seed: u64) -> GenerateConfig {
        GenerateConfig {
            max_new_tokens: self.max_completion_length,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: 0.0,
            stop_strings: self.stop_strings.clone(),
            stop_at_eos: true,
            seed,
            batch_size: self.generation_batch_size,
            first_prompt_index: 0,
        }
    }
}

/// What `trainer_state.json` of a GRPO checkpoint records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpoState {
    pub step: u64,
    pub data: DataPosition,
    pub config: GrpoConfig,
    /// Output tokens sampled so far.
    pub tokens: u64,
}

/// A GRPO run.
pub struct GrpoJob {
    /// The policy's starting checkpoint (also the first reference).
    pub init: PathBuf,
    /// A built-in task or a JSONL of prompts with answers (and tests).
    pub task: Source,
    /// Held-out prompts; default: the task's own test items (another seed),
    /// or the last `eval_prompts` rows of a JSONL.
    pub eval: Option<PathBuf>,
    pub out: PathBuf,
    pub config: GrpoConfig,
    pub control: RunControl,
}

/// How the run ended.
#[derive(Clone, Debug, Default)]
pub struct GrpoReport {
    pub steps: u64,
    /// pass@1 on the held-out prompts: before training and at the end (when evaluated).
    pub first_eval: Option<f64>,
    pub last_eval: Option<f64>,
    pub resumed_from: Option<u64>,
}

/// One line of `eval.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalLine {
    pub step: u64,
    /// Mean over prompts of the share of the k samples that are correct.
    pub pass_at_1: f64,
    pub k: usize,
    pub prompts: usize,
    pub format_rate: f64,
    pub completion_length: f64,
}

/// Salt that makes a task's held-out prompts differ from its training ones.
const EVAL_SALT: u64 = 0x5EED_7E57;

/// The rewards a task gets when none are named.
pub fn default_rewards(task: &Source, records: &[PromptRecord]) -> Vec<String> {
    let name = match task {
        Source::Task { name, .. } => name.as_str(),
        Source::File(_) => "",
    };
    let verifier = if name == "countdown" || records.iter().any(|r| !r.reference.numbers.is_empty()) {
        "countdown"
    } else if name == "listprog" || records.iter().any(|r| !r.reference.tests.is_empty()) {
        "code"
    } else {
        "accuracy"
    };
    vec![verifier.to_string(), "format".to_string()]
}

/// The reward set from specs like `accuracy`, `format:0.5`, `rm:runs/rm`.
pub fn reward_set(specs: &[String], device: &Device) -> Result<RewardSet> {
    let mut set = RewardSet::new();
    for spec in specs {
        let (name, weight) = rewards::parse_weighted(spec)?;
        let reward: Box<dyn Reward> = match name.strip_prefix("rm:") {
            Some(dir) => Box::new(crate::reward_model::RewardModelReward::load(Path::new(dir), device)?),
            None => rewards::reward_by_name(&name)?,
        };
        set.push(reward, weight);
    }
    if set.rewards.is_empty() {
        return Err(Error::Usage("no rewards".into()));
    }
    Ok(set)
}

/// Training and held-out prompts for `job`.
fn prompts(job: &GrpoJob) -> Result<(Vec<PromptRecord>, Vec<PromptRecord>)> {
    let c = &job.config;
    let (mut train, mut eval) = match &job.task {
        Source::Task { name, .. } => {
            let task =
                task_by_name(name).ok_or_else(|| Error::Usage(format!("unknown task `{name}` (built-in: {})", TASK_NAMES.join(", "))))?;
            let eval = prompt_records(task.as_ref(), c.eval_prompts, c.seed ^ EVAL_SALT);
            (prompt_records(task.as_ref(), c.train_prompts, c.seed), eval)
        }
        Source::File(path) => {
            let mut rows = read_prompts_jsonl(path)?;
            let held = if job.eval.is_some() || c.eval_steps == 0 { 0 } else { c.eval_prompts.min(rows.len() / 5) };
            let eval = rows.split_off(rows.len() - held);
            (rows, eval)
        }
    };
    if let Some(path) = &job.eval {
        eval = read_prompts_jsonl(path)?;
    }
    // Held-out means held out: a generated test question never trains.
    let held: BTreeSet<&str> = eval.iter().map(|r| r.question()).collect();
    train.retain(|r| !held.contains(r.question()));
    eval.truncate(c.eval_prompts);
    if train.is_empty() {
        return Err(Error::Usage("no training prompts".into()));
    }
    Ok((train, eval))
}

/// Runs GRPO and writes the run folder.
pub fn grpo(job: &GrpoJob) -> Result<GrpoReport> {
    let c = &job.config;
    c.validate()?;
    let (records, eval_records) = prompts(job)?;
    let tokenizer = TextTokenizer::from_dir(&job.init)?;
    let format = PromptFormat::from_name(&c.template, &tokenizer)?;
    let encode = |records: &[PromptRecord]| -> Result<Vec<Vec<u32>>> {
        records
            .iter()
            .map(|r| {
                let ids = tokenizer.encode(&format.render_prompt(&r.messages)?)?;
                Ok(ids[ids.len().saturating_sub(c.max_prompt_length)..].to_vec())
            })
            .collect()
    };
    let prompt_ids = encode(&records)?;
    let eval_ids = encode(&eval_records)?;

    let choice = c.device_choice()?;
    let dtype = c.precision()?.dtype();
    let device = choice.training_device(c.gradient_checkpointing);
    let specs = if c.rewards.is_empty() { default_rewards(&job.task, &records) } else { c.rewards.clone() };
    let rewards = reward_set(&specs, &choice.device())?;

    fs::create_dir_all(job.out.join("checkpoints")).map_err(at(&job.out))?;
    let resolved = toml::to_string(c).map_err(|e| Error::Config(e.to_string()))?;
    crate::fsutil::write_atomic(&job.out.join("config.toml"), resolved.as_bytes())?;

    let mut model = load_model(&job.init, &device)?.with_compute(dtype);
    let mut reference = (c.beta > 0.0).then(|| model.valid());
    let mut optimizer = AdamW::new(c.optim.clone());
    let mut batcher = crate::data::Batcher::new(records.len(), c.prompts_per_step.min(records.len()), c.seed)?;
    let mut start = 0;
    let mut tokens_total = 0u64;
    let mut resumed_from = None;
    if job.control.resume {
        if let Some(dir) = latest_checkpoint(&job.out)? {
            let path = dir.join("trainer_state.json");
            let text = fs::read_to_string(&path).map_err(at(&path))?;
            let state: GrpoState = serde_json::from_str(&text).map_err(|e| Error::file(&path, e))?;
            if state.config != *c {
                return Err(Error::Usage(format!(
                    "{} was written with different settings; resume with the same ones (see its trainer_state.json)",
                    dir.display()
                )));
            }
            model = load_weights(model, read_weights_dir(&dir)?, &dir)?;
            let inner = device.clone().without_autodiff();
            optimizer.load_state_dict(
                state.step * c.num_iterations as u64,
                read_safetensors(&dir.join("optimizer.safetensors"))?,
                &inner,
            )?;
            if let Some(r) = reference.take() {
                let path = dir.join("reference.safetensors");
                reference = Some(load_weights(r, read_safetensors(&path)?, &path)?);
            }
            batcher.restore(state.data)?;
            start = state.step;
            tokens_total = state.tokens;
            resumed_from = Some(state.step);
        }
    }
    let metrics_path = job.out.join("metrics.jsonl");
    let eval_path = job.out.join("eval.jsonl");
    truncate_metrics(&metrics_path, start)?;
    truncate_metrics(&eval_path, start)?;
    let open = |path: &Path| fs::OpenOptions::new().create(true).append(true).open(path).map_err(at(path));
    let mut metrics = open(&metrics_path)?;
    let mut evals = open(&eval_path)?;
    // The engine holds the policy's current weights: handed over once here
    // and once after each update, then used by sampling and evaluation alike.
    let mut engine = rollout::Engine::new(c.runtime_rollouts()?);
    engine.refresh(&model, &tokenizer)?;

    let mut report = GrpoReport { resumed_from, ..GrpoReport::default() };
    let mut write_eval = |model: &CausalLm, engine: &mut rollout::Engine, step: u64| -> Result<Option<f64>> {
        if c.eval_steps == 0 || eval_ids.is_empty() {
            return Ok(None);
        }
        let line = evaluate(model, engine, &tokenizer, &eval_ids, &eval_records, c, step)?;
        let json = serde_json::to_string(&line).map_err(|e| Error::Config(e.to_string()))?;
        writeln!(evals, "{json}").and_then(|_| evals.flush()).map_err(at(&eval_path))?;
        Ok(Some(line.pass_at_1))
    };
    if start == 0 {
        report.first_eval = write_eval(&model, &mut engine, 0)?;
    }

    let bar = progress_bar(c.max_steps, start, job.control.progress);
    let end = job.control.stop_after.map_or(c.max_steps, |n| (start + n).min(c.max_steps));
    let settings = c.settings();
    let pad = tokenizer.pad_id().or(tokenizer.eos_id()).unwrap_or(0);
    for step in start..end {
        let began = Instant::now();
        // 1–2. Sample groups from π_old and score them.
        let rollouts = sample_groups(&model, &mut engine, &tokenizer, &rewards, &mut batcher, &prompt_ids, &records, c, step)?;
        let gen_seconds = rollouts.gen_seconds;
        tokens_total += rollouts.new_tokens as u64;
        let mut line = rollouts.metrics();
        // 3. Advantages, then the rows the update trains on.
        let kept_rewards: Vec<f32> = rollouts.kept.iter().flat_map(|g| g.samples.iter().map(|s| s.reward)).collect();
        let advantages = objective::advantages(&kept_rewards, c.num_generations, c.scale_rewards, EPS_STD);
        let mut rows = Vec::with_capacity(advantages.len());
        for (sample, &advantage) in rollouts.kept.iter().flat_map(|g| g.samples.iter().map(move |s| (g, s))).zip(&advantages) {
            let (group, sample) = sample;
            let counts = !(c.mask_truncated && sample.finish == Finish::Length) && !sample.ids.is_empty();
            let mut ids = prompt_ids[group.prompt].clone();
            let first_target = ids.len();
            ids.extend(&sample.ids);
            rows.push(TrainRow { ids, first_target, counts, advantage });
        }
        // Similar lengths together: less padding per micro-batch.
        rows.sort_by_key(|r| r.ids.len());
        let normalizer = Normalizer {
            sequences: rows.len(),
            tokens: rows.iter().filter(|r| r.counts).map(|r| r.ids.len() - r.first_target).sum(),
            max_completion_length: c.max_completion_length,
        };
        // 4. The update.
        let train_began = Instant::now();
        let update = if normalizer.tokens > 0 {
            Some(update(&mut model, &mut optimizer, reference.as_ref(), &rows, pad, &settings, &normalizer, c, step)?)
        } else {
            None
        };
        let train_seconds = train_began.elapsed().as_secs_f64();
        if update.is_some() {
            engine.refresh(&model, &tokenizer)?;
        }
        if let Some(u) = &update {
            let tokens = u.stats.tokens.max(1.0);
            line.insert("loss".into(), u.loss);
            line.insert("grad_norm".into(), u.grad_norm);
            line.insert("lr".into(), u.lr);
            line.insert("kl".into(), u.stats.kl / tokens);
            line.insert("clip_low".into(), u.stats.clip_low / (tokens * c.num_iterations as f64));
            line.insert("clip_high".into(), u.stats.clip_high / (tokens * c.num_iterations as f64));
            line.insert("entropy".into(), u.entropy / tokens);
            line.insert("train_tokens_per_s".into(), normalizer.tokens as f64 * c.num_iterations as f64 / train_seconds.max(1e-9));
        }
        if let Some(r) = reference.as_mut() {
            if c.ref_reset_every > 0 && (step + 1) % c.ref_reset_every == 0 {
                *r = model.valid();
            }
        }
        let step_seconds = began.elapsed().as_secs_f64();
        line.insert("gen_tokens_per_s".into(), rollouts.new_tokens as f64 / gen_seconds.max(1e-9));
        line.insert("gen_time_share".into(), gen_seconds / step_seconds.max(1e-9));
        line.insert("step_time_s".into(), step_seconds);
        // 5. Log, evaluate, checkpoint.
        if (step + 1) % c.logging_steps == 0 || step + 1 == c.max_steps {
            let mut json = serde_json::Map::new();
            json.insert("step".into(), (step + 1).into());
            for (k, v) in &line {
                json.insert(k.clone(), serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into));
            }
            writeln!(metrics, "{}", serde_json::Value::Object(json)).and_then(|_| metrics.flush()).map_err(at(&metrics_path))?;
        }
        bar.set_position(step + 1);
        let get = |k: &str| line.get(k).copied().unwrap_or(f64::NAN);
        bar.set_message(format!(
            "reward {:.3}  acc {:.2}  len {:.0}  kl {:.4}",
            get("reward"),
            get("accuracy"),
            get("completion_length"),
            get("kl")
        ));
        if (c.eval_steps > 0 && (step + 1) % c.eval_steps == 0) || step + 1 == c.max_steps {
            report.last_eval = write_eval(&model, &mut engine, step + 1)?.or(report.last_eval);
        }
        if (step + 1) % c.save_steps == 0 || step + 1 == c.max_steps {
            let state = GrpoState { step: step + 1, data: batcher.position(), config: c.clone(), tokens: tokens_total };
            let json = serde_json::to_string_pretty(&state).map_err(|e| Error::Config(e.to_string()))?;
            let extra: Vec<(&str, _)> = reference.iter().map(|r| ("reference.safetensors", state_dict(r))).collect();
            write_checkpoint(&job.out, step + 1, &model, &optimizer, &tokenizer, &json, &extra)?;
            prune_checkpoints(&job.out, c.save_total_limit)?;
        }
    }
    bar.finish_and_clear();
    if end == c.max_steps {
        save_model(&model, &job.out, special_ids(&tokenizer))?;
        tokenizer.save_dir(&job.out)?;
    }
    report.steps = end;
    Ok(report)
}

/// One scored output.
pub struct Scored {
    pub ids: Vec<u32>,
    pub text: String,
    pub finish: Finish,
    /// Σ weight × reward.
    pub reward: f32,
    /// Unweighted, in the reward set's order.
    pub by_reward: Vec<f32>,
    pub correct: bool,
    pub formatted: bool,
}

/// A question's G outputs.
pub struct Group {
    /// Index into the run's prompts.
    pub prompt: usize,
    pub samples: Vec<Scored>,
}

/// What step 1–2 produced.
pub struct Rollouts {
    /// The groups the update uses.
    pub kept: Vec<Group>,
    /// Every group sampled (dynamic sampling may have dropped some).
    pub sampled: usize,
    pub zero_variance: usize,
    pub names: Vec<String>,
    pub new_tokens: usize,
    pub gen_seconds: f64,
    /// Every sampled output's statistics (all groups, kept or not).
    all: Vec<SampleStats>,
}

/// What the metrics keep of one sampled output.
struct SampleStats {
    length: usize,
    truncated: bool,
    reward: f32,
    by_reward: Vec<f32>,
    correct: bool,
    formatted: bool,
    reflections: usize,
}

impl Rollouts {
    /// The step's sample metrics: reward mean/std overall and per reward,
    /// accuracy, format rate, lengths, truncation, reflection words.
    fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        let mut m = std::collections::BTreeMap::new();
        let n = self.all.len().max(1) as f64;
        let mean = |f: &dyn Fn(&SampleStats) -> f64| self.all.iter().map(f).sum::<f64>() / n;
        let reward = mean(&|s| s.reward as f64);
        m.insert("reward".into(), reward);
        m.insert("reward_std".into(), (mean(&|s| (s.reward as f64 - reward).powi(2))).sqrt());
        for (i, name) in self.names.iter().enumerate() {
            m.insert(format!("rewards/{name}"), mean(&|s| s.by_reward[i] as f64));
        }
        m.insert("accuracy".into(), mean(&|s| s.correct as u8 as f64));
        m.insert("format_rate".into(), mean(&|s| s.formatted as u8 as f64));
        m.insert("completion_length".into(), mean(&|s| s.length as f64));
        m.insert("completion_length_min".into(), self.all.iter().map(|s| s.length).min().unwrap_or(0) as f64);
        m.insert("completion_length_max".into(), self.all.iter().map(|s| s.length).max().unwrap_or(0) as f64);
        m.insert("truncated".into(), mean(&|s| s.truncated as u8 as f64));
        m.insert("reflection_rate".into(), mean(&|s| s.reflections as f64));
        m.insert("zero_variance_groups".into(), self.zero_variance as f64 / self.sampled.max(1) as f64);
        m.insert("groups".into(), self.kept.len() as f64);
        m
    }
}

/// Mixes a step (and round) into the run's seed.
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Scores completions of `prompts` (G each, in order) with `rewards`, and
/// always with the accuracy and format checks for the metrics.
pub fn score(
    rewards: &RewardSet,
    records: &[PromptRecord],
    prompts: &[usize],
    completions: Vec<Completion>,
    group: usize,
) -> Result<Vec<Group>> {
    let samples: Vec<Sample> = completions
        .iter()
        .map(|c| {
            let r = &records[prompts[c.prompt_index]];
            Sample { prompt: r.question(), completion: &c.text, reference: &r.reference }
        })
        .collect();
    let scores = rewards.score(&samples)?;
    let reuse = |name: &str, fallback: &dyn Reward| -> Result<Vec<f32>> {
        match scores.by_reward.iter().find(|(n, _)| n == name) {
            Some((_, s)) => Ok(s.clone()),
            None => fallback.score(&samples),
        }
    };
    let correct = reuse("accuracy", &rewards::Accuracy)?;
    let formatted = reuse("format", &rewards::Format)?;
    drop(samples);
    let mut groups: Vec<Group> = Vec::new();
    for (i, c) in completions.into_iter().enumerate() {
        let g = i / group;
        if groups.len() <= g {
            groups.push(Group { prompt: prompts[c.prompt_index], samples: Vec::with_capacity(group) });
        }
        groups[g].samples.push(Scored {
            reward: scores.total[i],
            by_reward: scores.by_reward.iter().map(|(_, s)| s[i]).collect(),
            correct: correct[i] >= 1.0,
            formatted: formatted[i] >= 1.0,
            ids: c.ids,
            text: c.text,
            finish: c.finish,
        });
    }
    Ok(groups)
}

/// Steps 1–2: sample, score, and with dynamic sampling refill the groups
/// whose rewards all agree.
#[allow(clippy::too_many_arguments)]
fn sample_groups(
    model: &CausalLm,
    engine: &mut rollout::Engine,
    tokenizer: &TextTokenizer,
    rewards: &RewardSet,
    batcher: &mut crate::data::Batcher,
    prompt_ids: &[Vec<u32>],
    records: &[PromptRecord],
    c: &GrpoConfig,
    step: u64,
) -> Result<Rollouts> {
    let mut out = Rollouts {
        kept: Vec::new(),
        sampled: 0,
        zero_variance: 0,
        names: rewards.names(),
        new_tokens: 0,
        gen_seconds: 0.0,
        all: Vec::new(),
    };
    let rounds = if c.dynamic_sampling { 1 + c.max_refill_rounds } else { 1 };
    for round in 0..rounds {
        let want = c.prompts_per_step - out.kept.len();
        if want == 0 {
            break;
        }
        let mut chosen = batcher.next_batch();
        chosen.truncate(want);
        let ids: Vec<Vec<u32>> = chosen.iter().map(|&i| prompt_ids[i].clone()).collect();
        let began = Instant::now();
        let completions = engine.generate(model, tokenizer, &ids, c.num_generations, &c.sampling(mix(c.seed, step, round as u64)))?;
        out.gen_seconds += began.elapsed().as_secs_f64();
        out.new_tokens += completions.iter().map(|c| c.ids.len()).sum::<usize>();
        for group in score(rewards, records, &chosen, completions, c.num_generations)? {
            let rewards: Vec<f32> = group.samples.iter().map(|s| s.reward).collect();
            let flat = objective::zero_variance(&rewards);
            out.sampled += 1;
            out.zero_variance += flat as usize;
            out.all.extend(group.samples.iter().map(|s| SampleStats {
                length: s.ids.len(),
                truncated: s.finish == Finish::Length,
                reward: s.reward,
                by_reward: s.by_reward.clone(),
                correct: s.correct,
                formatted: s.formatted,
                reflections: rewards::format::reflection_words(&s.text),
            }));
            // Without dynamic sampling every group is kept: its zero
            // advantages make it contribute nothing but its share of the mean.
            if !(c.dynamic_sampling && flat) {
                out.kept.push(group);
            }
        }
    }
    Ok(out)
}

/// A sequence the update trains on.
struct TrainRow {
    /// Prompt then output.
    ids: Vec<u32>,
    /// Index of the output's first token in `ids`.
    first_target: usize,
    /// False: masked out (truncated with `mask_truncated`, or empty).
    counts: bool,
    advantage: f32,
}

/// A micro-batch on the host: inputs `ids[..n-1]`, targets `ids[1..]`,
/// right-padded to the longest row.
struct Micro {
    inputs: Vec<Vec<u32>>,
    targets: Vec<i64>,
    mask: Vec<f32>,
    advantages: Vec<f32>,
    rows: usize,
    len: usize,
}

impl Micro {
    fn new(rows: &[TrainRow], pad: u32) -> Micro {
        let len = rows.iter().map(|r| r.ids.len() - 1).max().unwrap_or(1).max(1);
        let mut m = Micro { inputs: Vec::new(), targets: Vec::new(), mask: Vec::new(), advantages: Vec::new(), rows: rows.len(), len };
        for r in rows {
            let mut input = r.ids[..r.ids.len() - 1].to_vec();
            input.resize(len, pad);
            m.inputs.push(input);
            for j in 0..len {
                // Position j predicts token j + 1.
                let target = r.ids.get(j + 1).copied();
                m.targets.push(target.unwrap_or(pad) as i64);
                let counts = r.counts && target.is_some() && j + 1 >= r.first_target;
                m.mask.push(counts as u8 as f32);
            }
            m.advantages.push(r.advantage);
        }
        m
    }

    fn targets(&self, device: &Device) -> Tensor<2, Int> {
        Tensor::from_data(TensorData::new(self.targets.clone(), [self.rows, self.len]), device)
    }

    fn floats(&self, values: &[f32], cols: usize, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values.to_vec(), [self.rows, cols]), device)
    }
}

/// log π(target) of every position at `temperature` (`[rows, len]`) and,
/// when asked, each position's entropy (detached).
fn token_logprobs(model: &CausalLm, micro: &Micro, temperature: f32, entropy: bool) -> (Tensor<2>, Option<Tensor<2>>) {
    let device = model.device();
    let inputs = Inputs::causal(&micro.inputs, &device);
    let logits = model.forward(&inputs, None);
    let logits = if temperature != 1.0 { logits / temperature as f64 } else { logits };
    let logp_all = log_softmax(logits, 2);
    let entropy = entropy.then(|| {
        let l = logp_all.clone().detach();
        -(l.clone().exp() * l).sum_dim(2).squeeze_dim::<2>(2)
    });
    let logp = logp_all.gather(2, micro.targets(&device).unsqueeze_dim::<3>(2)).squeeze_dim::<2>(2);
    (logp, entropy)
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default()
}

/// What the update did.
struct UpdateStats {
    loss: f64,
    grad_norm: f64,
    lr: f64,
    stats: TokenStats,
    entropy: f64,
}

/// Step 4: μ optimizer steps on the batch.
#[allow(clippy::too_many_arguments)]
fn update(
    model: &mut CausalLm,
    optimizer: &mut AdamW,
    reference: Option<&CausalLm>,
    rows: &[TrainRow],
    pad: u32,
    s: &Settings,
    n: &Normalizer,
    c: &GrpoConfig,
    step: u64,
) -> Result<UpdateStats> {
    let micros: Vec<Micro> = rows.chunks(c.per_device_train_batch_size).map(|r| Micro::new(r, pad)).collect();
    let t = c.temperature;
    // log π_old: the policy before this step's first update. With μ = 1 the
    // ratio's value is 1 and only its gradient matters, so the detached
    // log π_θ of that very forward serves (no extra pass).
    let old: Option<Vec<Vec<f32>>> = (c.num_iterations > 1).then(|| {
        let frozen = model.valid();
        micros.iter().map(|m| host(token_logprobs(&frozen, m, t, false).0)).collect()
    });
    let refs: Option<Vec<Vec<f32>>> =
        reference.filter(|_| s.beta != 0.0).map(|r| micros.iter().map(|m| host(token_logprobs(r, m, t, false).0)).collect());

    let device = model.device();
    let mut out = UpdateStats { loss: 0.0, grad_norm: 0.0, lr: 0.0, stats: TokenStats::default(), entropy: 0.0 };
    for iteration in 0..c.num_iterations {
        let mut grads = GradSum::default();
        let mut loss = 0.0;
        for (k, micro) in micros.iter().enumerate() {
            let first = iteration == 0;
            let (logp, entropy) = token_logprobs(model, micro, t, first);
            let old_logp = match &old {
                Some(old) => micro.floats(&old[k], micro.len, &device),
                None => logp.clone().detach(),
            };
            let mask = micro.floats(&micro.mask, micro.len, &device);
            let terms = objective::Terms {
                logp,
                old_logp,
                ref_logp: refs.as_ref().map(|r| micro.floats(&r[k], micro.len, &device)),
                advantages: micro.floats(&micro.advantages, 1, &device),
                mask,
            };
            let o = objective::loss(terms, s, n);
            let mut g = o.loss.backward();
            loss += crate::train::scalar(o.loss.inner());
            grads.add(take_grads(&*model, &mut g));
            let stats =
                TokenStats::measure(&host(o.ratio.inner()), o.kl.map(|k| host(k.inner())).as_deref(), &micro.mask, &micro.advantages, s);
            if first {
                if let Some(e) = entropy {
                    out.entropy += host(e.inner()).iter().zip(&micro.mask).map(|(e, m)| (e * m) as f64).sum::<f64>();
                }
                out.stats.tokens += stats.tokens;
                out.stats.kl += stats.kl;
            }
            out.stats.clip_low += stats.clip_low;
            out.stats.clip_high += stats.clip_high;
        }
        let updates = c.max_steps * c.num_iterations as u64;
        let lr = c.optim.lr_at(step * c.num_iterations as u64 + iteration as u64, updates);
        let taken = std::mem::replace(model, model.clone());
        let (updated, stats) = optimizer.step(taken, grads, lr);
        *model = updated;
        out.loss = loss;
        out.grad_norm = stats.grad_norm;
        out.lr = lr;
    }
    Ok(out)
}

/// pass@1 over `eval_samples` samples of each held-out prompt.
fn evaluate(
    model: &CausalLm,
    engine: &mut rollout::Engine,
    tokenizer: &TextTokenizer,
    prompt_ids: &[Vec<u32>],
    records: &[PromptRecord],
    c: &GrpoConfig,
    step: u64,
) -> Result<EvalLine> {
    let sampling =
        GenerateConfig { temperature: c.eval_temperature, top_p: c.eval_top_p, top_k: 0, ..c.sampling(mix(c.seed ^ EVAL_SALT, step, 0)) };
    let completions = engine.generate(model, tokenizer, prompt_ids, c.eval_samples, &sampling)?;
    let n = completions.len().max(1) as f64;
    let length = completions.iter().map(|c| c.ids.len()).sum::<usize>() as f64 / n;
    let index: Vec<usize> = (0..records.len()).collect();
    let groups = score(&RewardSet::new().with(rewards::Accuracy, 1.0), records, &index, completions, c.eval_samples)?;
    let all = groups.iter().flat_map(|g| &g.samples);
    let (correct, formatted) = all.fold((0usize, 0usize), |(a, f), s| (a + s.correct as usize, f + s.formatted as usize));
    Ok(EvalLine {
        step,
        pass_at_1: correct as f64 / n,
        k: c.eval_samples,
        prompts: records.len(),
        format_rate: formatted as f64 / n,
        completion_length: length,
    })
}
