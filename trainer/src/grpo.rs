//! R1-Zero: GRPO with rule-based rewards (docs/method.md, GRPO, rewards, what to watch).
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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{load_model, load_weights, read_safetensors};
use crate::data::{read_prompts, DataOptions, DataPosition, PromptFormat, PromptRecord, ReadStats};
use crate::device::{DeviceChoice, Precision};
use crate::error::{Error, Result};
use crate::eval::{EvalConfig, EvalSet};
use crate::generate::{Completion, Finish, GenerateConfig};
use crate::model::{nonzero, positions, spread, CausalLm, Inputs};
use crate::optim::{AdamW, GradSum, OptimConfig};
use crate::params::{state_dict, take_grads, HostTensor};
use crate::recipes::Source;
use crate::rewards::{self, Reward, RewardSet, Sample};
use crate::run::{run, Cadence, Metrics, Policy, Stage};
use crate::tasks::{prompt_records, task_by_name, TASK_NAMES};
use crate::tokenizer::TextTokenizer;
use objective::{LossType, Normalizer, ScaleRewards, Settings, TokenStats};

pub use crate::run::RunControl;

/// Every knob of a GRPO run. Names are TRL's `GRPOConfig` names where TRL
/// has the knob; the defaults are the paper's R1-Zero values where they make
/// sense at small size, TRL's otherwise (docs/training.md lists each and its source).
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
    /// Rewards of the general prompts (rows of `kind = "general"`, R1's "RL
    /// for all scenarios"), the same syntax: `rm:<dir>` judges the whole
    /// output (harmlessness), `rm-answer:<dir>` the final answer only
    /// (helpfulness). Rule rewards never judge a general prompt.
    pub general_rewards: Vec<String>,
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
            general_rewards: Vec::new(),
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
        crate::run::read_settings(path)
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
            ..GenerateConfig::default()
        }
    }
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
    /// How the task's (and `eval`'s) dataset is read: columns, split, bad rows.
    pub data: DataOptions,
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
    /// What reading the task's dataset found (rows, layouts, skipped rows).
    pub data: Option<ReadStats>,
}

/// The rewards a task gets when none are named.
pub fn default_rewards(task: &Source, records: &[PromptRecord]) -> Vec<String> {
    let name = match task {
        Source::Task { name, .. } => name.as_str(),
        Source::File(_) => "",
    };
    let verifier = if name == "countdown" || records.iter().any(|r| !r.reference.numbers.is_empty()) {
        "countdown"
    } else if name == "listprog" || records.iter().any(|r| !r.reference.tests.is_empty() || r.reference.python.is_some()) {
        "code"
    } else {
        "accuracy"
    };
    vec![verifier.to_string(), "format".to_string()]
}

/// The reward set from specs like `accuracy`, `format:0.5`, `rm:runs/rm`
/// (the reasoning prompts') and `general` (the general prompts').
pub fn reward_set(specs: &[String], general: &[String], device: &Device) -> Result<RewardSet> {
    let mut set = RewardSet::new();
    for (spec, is_general) in specs.iter().map(|s| (s, false)).chain(general.iter().map(|s| (s, true))) {
        let (name, weight) = rewards::parse_weighted(spec)?;
        let model = |dir: &str, scope| -> Result<Box<dyn Reward>> {
            Ok(Box::new(crate::reward_model::RewardModelReward::load_scoped(Path::new(dir), device, scope)?))
        };
        let reward: Box<dyn Reward> = match (name.strip_prefix("rm:"), name.strip_prefix("rm-answer:")) {
            (Some(dir), _) => model(dir, crate::reward_model::Scope::Whole)?,
            (_, Some(dir)) => model(dir, crate::reward_model::Scope::Answer)?,
            _ => rewards::reward_by_name(&name)?,
        };
        if is_general {
            set.push_general(reward, weight);
        } else {
            set.push(reward, weight);
        }
    }
    if set.rewards.is_empty() {
        return Err(Error::Usage("no rewards".into()));
    }
    Ok(set)
}

/// Training and held-out prompts for `job`, and what reading the dataset found.
fn prompts(job: &GrpoJob) -> Result<(Vec<PromptRecord>, Vec<PromptRecord>, Option<ReadStats>)> {
    let c = &job.config;
    let mut stats = None;
    let (mut train, mut eval) = match &job.task {
        Source::Task { name, .. } => {
            let task =
                task_by_name(name).ok_or_else(|| Error::Usage(format!("unknown task `{name}` (built-in: {})", TASK_NAMES.join(", "))))?;
            let eval = prompt_records(task.as_ref(), c.eval_prompts, c.seed ^ crate::eval::EVAL_SALT);
            (prompt_records(task.as_ref(), c.train_prompts, c.seed), eval)
        }
        Source::File(path) => {
            let set = read_prompts(path, &job.data)?;
            stats = Some(set.stats);
            let mut rows = set.records;
            let held = if job.eval.is_some() || c.eval_steps == 0 { 0 } else { c.eval_prompts.min(rows.len() / 5) };
            let eval = rows.split_off(rows.len() - held);
            (rows, eval)
        }
    };
    if let Some(path) = &job.eval {
        eval = read_prompts(path, &job.data)?.records;
    }
    // Held-out means held out: a generated test question never trains.
    let held: BTreeSet<&str> = eval.iter().map(|r| r.question()).collect();
    train.retain(|r| !held.contains(r.question()));
    eval.truncate(c.eval_prompts);
    if train.is_empty() {
        return Err(Error::Usage("no training prompts".into()));
    }
    Ok((train, eval, stats))
}

impl GrpoConfig {
    fn cadence(&self) -> Cadence {
        Cadence {
            max_steps: self.max_steps,
            logging_steps: self.logging_steps,
            eval_steps: self.eval_steps,
            save_steps: self.save_steps,
            save_total_limit: self.save_total_limit,
        }
    }

    /// The held-out evaluation at `step`: `eval_samples` per prompt at the
    /// evaluation's temperature and top-p.
    fn eval_config(&self, step: u64) -> EvalConfig {
        let sampling = self.sampling(mix(self.seed ^ crate::eval::EVAL_SALT, step, 0));
        EvalConfig {
            samples: self.eval_samples,
            generation: GenerateConfig { temperature: self.eval_temperature, top_p: self.eval_top_p, top_k: 0, ..sampling },
            ..EvalConfig::default()
        }
    }
}

/// GRPO as a [`Stage`] of the shared loop: a step samples and scores groups,
/// builds the rows the update trains on, and takes μ optimizer steps.
struct GrpoStage<'t> {
    config: GrpoConfig,
    tokenizer: &'t TextTokenizer,
    records: Vec<PromptRecord>,
    prompt_ids: Vec<Vec<u32>>,
    eval: EvalSet,
    rewards: RewardSet,
    engine: rollout::Engine,
    batcher: crate::data::Batcher,
    /// π_ref (β > 0 only).
    reference: Option<CausalLm>,
    /// Output tokens sampled so far.
    tokens: u64,
    pad: u32,
}

/// What a GRPO checkpoint records besides step and settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpoState {
    pub data: DataPosition,
    /// Output tokens sampled so far.
    pub tokens: u64,
}

impl Stage for GrpoStage<'_> {
    type Config = GrpoConfig;
    type State = GrpoState;

    fn config(&self) -> &GrpoConfig {
        &self.config
    }

    fn cadence(&self) -> Cadence {
        self.config.cadence()
    }

    fn step(&mut self, policy: &mut Policy, step: u64) -> Result<Metrics> {
        let c = &self.config;
        let began = Instant::now();
        // 1–2. Sample groups from π_old and score them.
        let rollouts = sample_groups(
            &policy.model,
            &mut self.engine,
            self.tokenizer,
            &self.rewards,
            &mut self.batcher,
            &self.prompt_ids,
            &self.records,
            c,
            step,
        )?;
        self.tokens += rollouts.new_tokens as u64;
        let mut line = rollouts.metrics();
        // 3. Advantages, then the rows the update trains on.
        let (rows, normalizer) = build_rows(&rollouts, &self.prompt_ids, c);
        // 4. The update.
        let train_began = Instant::now();
        if normalizer.tokens > 0 {
            let u = update(policy, self.reference.as_ref(), &rows, self.pad, &normalizer, c, step)?;
            self.engine.refresh(&policy.model, self.tokenizer)?;
            let tokens = u.stats.tokens.max(1.0);
            let seconds = train_began.elapsed().as_secs_f64();
            line.insert("loss".into(), u.loss);
            line.insert("grad_norm".into(), u.grad_norm);
            line.insert("lr".into(), u.lr);
            line.insert("kl".into(), u.stats.kl / tokens);
            line.insert("clip_low".into(), u.stats.clip_low / (tokens * c.num_iterations as f64));
            line.insert("clip_high".into(), u.stats.clip_high / (tokens * c.num_iterations as f64));
            line.insert("entropy".into(), u.entropy / tokens);
            line.insert("train_tokens_per_s".into(), normalizer.tokens as f64 * c.num_iterations as f64 / seconds.max(1e-9));
        }
        if let Some(r) = self.reference.as_mut() {
            if c.ref_reset_every > 0 && (step + 1) % c.ref_reset_every == 0 {
                *r = policy.model.valid();
            }
        }
        let step_seconds = began.elapsed().as_secs_f64();
        line.insert("gen_tokens_per_s".into(), rollouts.new_tokens as f64 / rollouts.gen_seconds.max(1e-9));
        line.insert("gen_time_share".into(), rollouts.gen_seconds / step_seconds.max(1e-9));
        line.insert("step_time_s".into(), step_seconds);
        Ok(line)
    }

    fn state(&self) -> GrpoState {
        GrpoState { data: self.batcher.position(), tokens: self.tokens }
    }

    fn restore(&mut self, state: GrpoState, dir: &Path, policy: &Policy) -> Result<()> {
        if let Some(r) = self.reference.take() {
            let path = dir.join("reference.safetensors");
            self.reference = Some(load_weights(r, read_safetensors(&path)?, &path)?);
        }
        self.batcher.restore(state.data)?;
        self.tokens = state.tokens;
        self.engine.refresh(&policy.model, self.tokenizer)
    }

    fn optimizer_steps(&self, step: u64) -> u64 {
        step * self.config.num_iterations as u64
    }

    fn evaluate(&mut self, policy: &Policy, step: u64) -> Result<Option<Metrics>> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let config = self.config.eval_config(step);
        let e = crate::eval::evaluate(&mut self.engine, Some(&policy.model), self.tokenizer, &self.eval, &config)?;
        Ok(Some(e.report.metrics()))
    }

    fn checkpoint_files(&self) -> Vec<(&'static str, BTreeMap<String, HostTensor>)> {
        self.reference.iter().map(|r| ("reference.safetensors", state_dict(r))).collect()
    }

    fn progress(&self, m: &Metrics) -> String {
        let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
        format!("reward {:.3}  acc {:.2}  len {:.0}  kl {:.4}", get("reward"), get("accuracy"), get("completion_length"), get("kl"))
    }
}

/// Runs GRPO and writes the run folder.
pub fn grpo(job: &GrpoJob) -> Result<GrpoReport> {
    let c = &job.config;
    c.validate()?;
    let (records, eval_records, data) = prompts(job)?;
    let tokenizer = TextTokenizer::from_dir(&job.init)?;
    let format = PromptFormat::from_name(&c.template, &tokenizer)?;
    let prompt_ids = crate::eval::encode_prompts(&records, &tokenizer, &format, c.max_prompt_length)?;
    let eval = EvalSet::new(eval_records, &tokenizer, &format, c.max_prompt_length)?;

    let choice = c.device_choice()?;
    let device = choice.training_device(c.gradient_checkpointing);
    let specs = if c.rewards.is_empty() { default_rewards(&job.task, &records) } else { c.rewards.clone() };
    let rewards = reward_set(&specs, &c.general_rewards, &choice.device())?;
    let general = records.iter().filter(|r| r.reference.general).count();
    if general > 0 && !rewards.has_general() {
        return Err(Error::Usage(format!(
            "{general} of the prompts are general (kind = \"general\") but no general_rewards judge them (e.g. --general-reward rm:<dir>)"
        )));
    }
    let model = load_model(&job.init, &device)?.with_compute(c.precision()?.dtype());
    let mut engine = rollout::Engine::new(c.runtime_rollouts()?);
    // The engine holds the policy's current weights: handed over here and
    // after each update, then used by sampling and evaluation alike.
    engine.refresh(&model, &tokenizer)?;
    let mut stage = GrpoStage {
        config: c.clone(),
        tokenizer: &tokenizer,
        batcher: crate::data::Batcher::new(records.len(), c.prompts_per_step.min(records.len()), c.seed)?,
        records,
        prompt_ids,
        eval,
        rewards,
        engine,
        reference: (c.beta > 0.0).then(|| model.valid()),
        tokens: 0,
        pad: tokenizer.pad_id().or(tokenizer.eos_id()).unwrap_or(0),
    };
    let mut policy = Policy::new(model, AdamW::new(c.optim.clone()));
    let r = run(&mut stage, &mut policy, &tokenizer, &job.out, job.control)?;
    let pass = |m: &Option<Metrics>| m.as_ref().and_then(|m| m.get("pass_at_1").copied());
    Ok(GrpoReport { steps: r.steps, first_eval: pass(&r.first_eval), last_eval: pass(&r.last_eval), resumed_from: r.resumed_from, data })
}

/// Step 3: group-relative advantages of the kept groups, and the rows the
/// update trains on (prompt then output), shortest first so micro-batches
/// pad little; with the step's token counts for the loss's normaliser.
fn build_rows(rollouts: &Rollouts, prompt_ids: &[Vec<u32>], c: &GrpoConfig) -> (Vec<TrainRow>, Normalizer) {
    let kept: Vec<(&Group, &Scored)> = rollouts.kept.iter().flat_map(|g| g.samples.iter().map(move |s| (g, s))).collect();
    let rewards: Vec<f32> = kept.iter().map(|(_, s)| s.reward).collect();
    let advantages = objective::advantages(&rewards, c.num_generations, c.scale_rewards, EPS_STD);
    let mut rows: Vec<TrainRow> = kept
        .iter()
        .zip(&advantages)
        .map(|((group, sample), &advantage)| {
            let counts = !(c.mask_truncated && sample.finish == Finish::Length) && !sample.ids.is_empty();
            let mut ids = prompt_ids[group.prompt].clone();
            let first_target = ids.len();
            ids.extend(&sample.ids);
            TrainRow { ids, first_target, counts, advantage }
        })
        .collect();
    rows.sort_by_key(|r| r.ids.len());
    let normalizer = Normalizer {
        sequences: rows.len(),
        tokens: rows.iter().filter(|r| r.counts).map(|r| r.ids.len() - r.first_target).sum(),
        max_completion_length: c.max_completion_length,
    };
    (rows, normalizer)
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
    /// The answer and the reference could not be compared (scored wrong).
    pub uncomparable: bool,
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
    uncomparable: bool,
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
        m.insert("rewards/accuracy_uncomparable".into(), mean(&|s| s.uncomparable as u8 as f64));
        m.insert("format_rate".into(), mean(&|s| s.formatted as u8 as f64));
        m.insert("completion_length".into(), mean(&|s| s.length as f64));
        m.insert("completion_length_min".into(), self.all.iter().map(|s| s.length).min().unwrap_or(0) as f64);
        m.insert("completion_length_max".into(), self.all.iter().map(|s| s.length).max().unwrap_or(0) as f64);
        m.insert("truncated".into(), mean(&|s| s.truncated as u8 as f64));
        m.insert("reflection_rate".into(), mean(&|s| (s.reflections > 0) as u8 as f64));
        m.insert("reflection_words".into(), mean(&|s| s.reflections as f64));
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
    let uncomparable = rewards::accuracy::uncomparable(&samples);
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
            uncomparable: uncomparable[i],
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
        let completions = engine.generate(Some(model), tokenizer, &ids, c.num_generations, &c.sampling(mix(c.seed, step, round as u64)))?;
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
                uncomparable: s.uncomparable,
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

/// log π(target) at `temperature` (`[rows, len]`) and, when asked, each
/// position's entropy (detached), at the completion positions the loss
/// reads (the mask), 0 elsewhere: the output projection and the softmax are
/// computed at those positions only (`CausalLm::logprobs_at`).
fn token_logprobs(model: &CausalLm, micro: &Micro, temperature: f32, entropy: bool) -> (Tensor<2>, Option<Tensor<2>>) {
    let device = model.device();
    let inputs = Inputs::causal(&micro.inputs, &device);
    let at = nonzero(&micro.mask);
    if at.is_empty() {
        // No completion token counts here (every row is masked): zeros that keep the graph.
        let zero = model.forward(&inputs, None).sum_dim(2).squeeze_dim::<2>(2) * 0.0;
        return (zero.clone(), entropy.then(|| zero.detach()));
    }
    let at = positions(&at, &device);
    let n = at.dims()[0];
    let (logp, logp_all) = model.target_logprobs_at(&inputs, micro.targets(&device), &at, temperature);
    let entropy = entropy.then(|| {
        let l = logp_all.detach();
        spread(-(l.clone().exp() * l).sum_dim(1).reshape([n]), at.clone(), micro.rows, micro.len)
    });
    (spread(logp, at, micro.rows, micro.len), entropy)
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
fn update(
    policy: &mut Policy,
    reference: Option<&CausalLm>,
    rows: &[TrainRow],
    pad: u32,
    n: &Normalizer,
    c: &GrpoConfig,
    step: u64,
) -> Result<UpdateStats> {
    let s = &c.settings();
    let micros: Vec<Micro> = rows.chunks(c.per_device_train_batch_size).map(|r| Micro::new(r, pad)).collect();
    let t = c.temperature;
    // log π_old: the policy before this step's first update. With μ = 1 the
    // ratio's value is 1 and only its gradient matters, so the detached
    // log π_θ of that very forward serves (no extra pass).
    let old: Option<Vec<Vec<f32>>> = (c.num_iterations > 1).then(|| {
        let frozen = policy.model.valid();
        micros.iter().map(|m| host(token_logprobs(&frozen, m, t, false).0)).collect()
    });
    let refs: Option<Vec<Vec<f32>>> =
        reference.filter(|_| s.beta != 0.0).map(|r| micros.iter().map(|m| host(token_logprobs(r, m, t, false).0)).collect());

    let device = policy.model.device();
    let mut out = UpdateStats { loss: 0.0, grad_norm: 0.0, lr: 0.0, stats: TokenStats::default(), entropy: 0.0 };
    for iteration in 0..c.num_iterations {
        let mut grads = GradSum::default();
        let mut loss = 0.0;
        for (k, micro) in micros.iter().enumerate() {
            let first = iteration == 0;
            let (logp, entropy) = token_logprobs(&policy.model, micro, t, first);
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
            let value = crate::run::scalar(o.loss.inner());
            if !value.is_finite() {
                return Err(Error::Usage(format!("step {}: the loss is {value}; the run stopped before updating, and its last checkpoint is intact", step + 1)));
            }
            loss += value;
            grads.add(take_grads(&policy.model, &mut g));
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
        let stats = policy.update(grads, lr, step + 1)?;
        out.loss = loss;
        out.grad_norm = stats.grad_norm;
        out.lr = lr;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::log_softmax;

    #[test]
    fn log_probs_at_completion_positions_equal_the_whole_softmax_there() {
        let device = Device::flex();
        device.seed(5);
        let config = crate::config::parse_config_toml(
            "model_type = \"qwen2\"\nvocab_size = 40\nhidden_size = 16\nintermediate_size = 24\nnum_hidden_layers = 1\nnum_attention_heads = 2\nnum_key_value_heads = 1\n",
        )
        .unwrap();
        let model = crate::params::map_params(CausalLm::init(&config, &device), |_, v, _| Some(v.clone() * 20.0));
        let row = |n: usize, first: usize, counts: bool, k: u32| TrainRow {
            ids: (0..n as u32).map(|i| (i * 7 + k) % 40).collect(),
            first_target: first,
            counts,
            advantage: 1.0,
        };
        let rows = [row(9, 4, true, 1), row(6, 2, true, 3), row(8, 3, false, 5)];
        let micro = Micro::new(&rows, 0);
        let t = 0.7;
        let (logp, entropy) = token_logprobs(&model, &micro, t, true);
        let all = log_softmax(model.forward(&Inputs::causal(&micro.inputs, &device), None) / t as f64, 2);
        let want = host(all.clone().gather(2, micro.targets(&device).unsqueeze_dim::<3>(2)).squeeze_dim::<2>(2));
        let want_entropy = host(-(all.clone().exp() * all).sum_dim(2).squeeze_dim::<2>(2));
        let (got, got_entropy) = (host(logp), host(entropy.unwrap()));
        assert!(micro.mask.iter().filter(|m| **m != 0.0).count() == 5 + 4);
        for (i, m) in micro.mask.iter().enumerate() {
            if *m != 0.0 {
                assert!((got[i] - want[i]).abs() < 1e-5 && (got_entropy[i] - want_entropy[i]).abs() < 1e-5, "position {i}");
            } else {
                assert!(got[i] == 0.0 && got_entropy[i] == 0.0, "position {i} is outside the loss");
            }
        }
    }
}
