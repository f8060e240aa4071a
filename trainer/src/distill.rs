//! Distillation of a teacher into a smaller student (docs/method.md, distillation), as a
//! stage of the shared loop.
//!
//! - `seq`, the paper's method: the teacher writes reasoning traces for the
//!   prompts, filtered as rejection sampling filters them ([`crate::sample`]:
//!   verified, well formed, one language), and the student is trained by SFT
//!   on them, the loss on the response tokens only.
//! - `kd`, token level: the student matches the teacher's whole next-token
//!   distribution on each response token, with TRL GKD's knobs (Agarwal et
//!   al. 2024, "On-Policy Distillation of Language Models"): `beta`
//!   interpolates the generalised Jensen–Shannon divergence (0: forward
//!   KL(teacher‖student), 1: reverse KL(student‖teacher)); `lmbda` is the
//!   share of steps whose sequences the student samples itself (on-policy,
//!   as Qwen3's on-policy distillation does); `seq_kd` makes the teacher
//!   write the other steps' sequences (else they are the data's own
//!   responses); `temperature` scales both distributions. The teacher runs
//!   forward once per micro-batch, without gradient.
//!
//! Teacher and student may differ in width and depth but must share the
//! tokenizer. Held-out metrics every `eval_steps`: KL both ways on held-out
//! teacher sequences and accuracy through the shared evaluator.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::checkpoint::load_model;
use crate::config::read_config;
use crate::data::{tokenize_sft, Batcher, DataPosition, Message, PromptFormat, PromptRecord, SftRecord};
use crate::error::{Error, Result};
use crate::eval::{encode_prompts, EvalConfig, EvalSet, EVAL_SALT};
use crate::generate::{Completion, GenerateConfig};
use crate::grpo::rollout::Engine;
use crate::model::{CausalLm, Inputs};
use crate::optim::AdamW;
use crate::recipes::{Init, Source};
use crate::run::{accumulate, run, Cadence, Metrics, Policy, RunControl, RunReport, Stage};
use crate::sample::{rejection_sample, Filters, RejectionConfig, SamplingModel};
use crate::tasks::{r1_completion, task_by_name, TASK_NAMES};
use crate::tokenizer::TextTokenizer;
use crate::train::{Row, Supervised, SupervisedState, TrainConfig};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistillMode {
    /// Sequence level: SFT on the teacher's filtered traces (the paper's).
    #[default]
    Seq,
    /// Token level: match the teacher's distributions (generalised JSD).
    Kd,
}

impl std::str::FromStr for DistillMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<DistillMode> {
        match s {
            "seq" => Ok(DistillMode::Seq),
            "kd" => Ok(DistillMode::Kd),
            other => Err(Error::Config(format!("mode `{other}`: expected seq or kd"))),
        }
    }
}

/// Settings of `aha distill`: the training settings (TrainingArguments
/// names), the traces' and TRL `GKDConfig`'s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DistillConfig {
    #[serde(flatten)]
    pub train: TrainConfig,
    pub mode: DistillMode,
    /// Prompt format (r1-zero: the paper's R1-Zero template).
    pub template: String,
    /// Built-in tasks: prompts generated for training.
    pub train_prompts: usize,
    pub max_prompt_length: usize,
    /// Tokens the teacher (or, on-policy, the student) writes per response (GKD: 128).
    pub max_new_tokens: usize,
    /// `seq`: traces sampled per prompt before filtering.
    pub teacher_samples: usize,
    /// `seq`: which traces are kept.
    pub filters: Filters,
    /// `seq`: the teacher samples at the paper's 0.6 / 0.95.
    pub teacher_temperature: f32,
    pub teacher_top_p: f32,
    /// `kd`: 0 = forward KL(teacher‖student), 1 = reverse KL(student‖teacher), between: generalised JSD (GKD: 0.5).
    pub beta: f64,
    /// `kd`: share of steps on the student's own samples (GKD: 0.5).
    pub lmbda: f64,
    /// `kd`: off-policy steps on the teacher's samples instead of the data's responses.
    pub seq_kd: bool,
    /// `kd`: temperature of both distributions and of sampling (GKD: 0.9).
    pub temperature: f32,
    /// Evaluate every N steps (and before the first and after the last); 0 = never.
    pub eval_steps: u64,
    pub eval_prompts: usize,
    pub eval_samples: usize,
    pub eval_temperature: f32,
    pub eval_top_p: f32,
    /// Who samples: auto (runtime on CPU), trainer or runtime.
    pub engine: String,
}

impl Default for DistillConfig {
    fn default() -> Self {
        let mut train = TrainConfig { max_steps: 300, per_device_train_batch_size: 16, save_steps: 100, ..TrainConfig::default() };
        train.optim.learning_rate = 1e-3;
        DistillConfig {
            train,
            mode: DistillMode::Seq,
            template: "r1-zero".into(),
            train_prompts: 2000,
            max_prompt_length: 256,
            max_new_tokens: 128,
            teacher_samples: 4,
            filters: Filters::all(),
            teacher_temperature: 0.6,
            teacher_top_p: 0.95,
            beta: 0.5,
            lmbda: 0.5,
            seq_kd: false,
            temperature: 0.9,
            eval_steps: 50,
            eval_prompts: 100,
            eval_samples: 4,
            eval_temperature: 0.6,
            eval_top_p: 0.95,
            engine: "auto".into(),
        }
    }
}

impl DistillConfig {
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        if !(0.0..=1.0).contains(&self.beta) {
            return Err(Error::Config(format!("`beta` {} must be in [0, 1]", self.beta)));
        }
        if !(0.0..=1.0).contains(&self.lmbda) {
            return Err(Error::Config(format!("`lmbda` {} must be in [0, 1]", self.lmbda)));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::Config("`temperature` must be positive".into()));
        }
        if self.teacher_samples == 0 || self.max_new_tokens == 0 {
            return Err(Error::Config("`teacher_samples` and `max_new_tokens` must be positive".into()));
        }
        if self.eval_steps > 0 && (self.eval_prompts == 0 || self.eval_samples == 0) {
            return Err(Error::Config("`eval_prompts` and `eval_samples` must be positive when `eval_steps` is".into()));
        }
        Engine::named(&self.engine, self.train.device_choice()?)?;
        Ok(())
    }

    fn sampling(&self, temperature: f32, top_p: f32, seed: u64) -> GenerateConfig {
        GenerateConfig { max_new_tokens: self.max_new_tokens, temperature, top_p, seed, ..GenerateConfig::default() }
    }
}

/// A `distill` run.
pub struct DistillJob {
    /// A checkpoint folder, or for `seq` also an `.aha` file.
    pub teacher: PathBuf,
    /// The student: a fresh model of a config (it takes the teacher's
    /// tokenizer) or a checkpoint to continue.
    pub student: Init,
    pub prompts: Source,
    /// Held-out prompts; default: the task's test items (another seed), or
    /// the last `eval_prompts` rows of a file.
    pub eval: Option<PathBuf>,
    /// How a prompt file (and `eval`) is read: columns, split, bad rows.
    pub data: crate::data::DataOptions,
    pub out: PathBuf,
    pub config: DistillConfig,
    pub control: RunControl,
}

/// The generalised Jensen–Shannon divergence per position, `[b, t]`, from
/// log-probabilities `[b, t, vocab]` (TRL `GKDTrainer.generalized_jsd_loss`):
/// with `M = β·P_teacher + (1-β)·P_student`,
/// `JSD_β = β·KL(teacher‖M) + (1-β)·KL(student‖M)`; at the ends, where that
/// vanishes, the two KLs themselves: β = 0 gives KL(teacher‖student),
/// β = 1 KL(student‖teacher).
pub fn generalized_jsd(student: Tensor<3>, teacher: Tensor<3>, beta: f64) -> Tensor<2> {
    let kl = |p: Tensor<3>, q: Tensor<3>| (p.clone().exp() * (p - q)).sum_dim(2).squeeze_dim::<2>(2);
    if beta == 0.0 {
        return kl(teacher, student);
    }
    if beta == 1.0 {
        return kl(student, teacher);
    }
    // log M = logsumexp(log P_s + log(1-β), log P_t + log β), elementwise.
    let a = student.clone() + (1.0 - beta).ln();
    let b = teacher.clone() + beta.ln();
    let top = a.clone().max_pair(b.clone()).detach();
    let mixture = top.clone() + ((a - top.clone()).exp() + (b - top).exp()).log();
    kl(teacher, mixture.clone()) * beta + kl(student, mixture) * (1.0 - beta)
}

/// A sequence to distil on: prompt then response, the response's first index.
#[derive(Clone, Debug)]
struct Sequence {
    ids: Vec<u32>,
    first_target: usize,
}

/// Inputs, and the mask of positions whose next token is a response token
/// (`[b, len]`), of right-padded sequences.
fn micro_inputs(rows: &[&Sequence], pad: u32, device: &Device) -> (Inputs, Tensor<2>, usize) {
    let len = rows.iter().map(|r| r.ids.len() - 1).max().unwrap_or(1).max(1);
    let mut inputs = Vec::with_capacity(rows.len());
    let mut mask = Vec::with_capacity(rows.len() * len);
    let mut tokens = 0;
    for r in rows {
        let mut input = r.ids[..r.ids.len() - 1].to_vec();
        input.resize(len, pad);
        inputs.push(input);
        for j in 0..len {
            let counts = j + 1 >= r.first_target && j + 1 < r.ids.len();
            tokens += counts as usize;
            mask.push(counts as u8 as f32);
        }
    }
    let mask = Tensor::from_data(TensorData::new(mask, [rows.len(), len]), device);
    (Inputs::causal(&inputs, device), mask, tokens)
}

/// log-softmax(logits / temperature) of `model` on `inputs`, `[b, len, vocab]`.
fn log_probs(model: &CausalLm, inputs: &Inputs, temperature: f32) -> Tensor<3> {
    let logits = model.forward(inputs, None);
    let logits = if temperature != 1.0 { logits / temperature as f64 } else { logits };
    log_softmax(logits, 2)
}

/// The teacher's log-probs, computed without gradient on its own device
/// and moved to `device`.
fn teacher_log_probs(teacher: &CausalLm, rows: &[&Sequence], pad: u32, temperature: f32, device: &Device) -> Result<Tensor<3>> {
    let (inputs, _, _) = micro_inputs(rows, pad, &teacher.device());
    let t = log_probs(teacher, &inputs, temperature);
    let dims = t.dims();
    let values = t.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| Error::tensor("teacher logits", format!("{e:?}")))?;
    Ok(Tensor::from_data(TensorData::new(values, dims), device))
}

/// Distillation as a [`Stage`].
struct Distill<'r> {
    config: DistillConfig,
    tokenizer: &'r TextTokenizer,
    /// `seq`: SFT on the traces.
    supervised: Option<Supervised<'r>>,
    /// `kd`: the prompts, their data responses (when the data has them) and the batcher.
    prompt_ids: Vec<Vec<u32>>,
    responses: Vec<Option<Vec<u32>>>,
    batcher: Batcher,
    teacher: SamplingModel,
    student_engine: Engine,
    eval: EvalSet,
    /// Held-out teacher sequences for the KL metrics.
    held_out: Vec<Sequence>,
    pad: u32,
    tokens: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistillState {
    pub data: DataPosition,
    pub tokens: u64,
    /// `seq`: the SFT stage's own.
    pub supervised: Option<SupervisedState>,
}

/// Mixes a step into the run's seed (SplitMix64's finaliser).
fn mix(seed: u64, step: u64, salt: u64) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Distill<'_> {
    /// Sequences of the prompts `chosen` for a `kd` step: the student's own
    /// samples (on-policy), the teacher's, or the data's responses.
    fn kd_sequences(&mut self, policy: &Policy, chosen: &[usize], step: u64) -> Result<(Vec<Sequence>, f64)> {
        let c = &self.config;
        let draw = (mix(c.train.seed, step, 1) >> 11) as f64 / (1u64 << 53) as f64;
        let on_policy = draw < c.lmbda;
        let prompts: Vec<Vec<u32>> = chosen.iter().map(|&i| self.prompt_ids[i].clone()).collect();
        let sampling = c.sampling(c.temperature, 1.0, mix(c.train.seed, step, 2));
        let has_data = chosen.iter().all(|&i| self.responses[i].is_some());
        let completions: Vec<Vec<u32>> = if on_policy {
            self.student_engine.refresh(&policy.model, self.tokenizer)?;
            let out = self.student_engine.generate(Some(&policy.model), self.tokenizer, &prompts, 1, &sampling)?;
            out.into_iter().map(|c| c.ids).collect()
        } else if c.seq_kd || !has_data {
            self.teacher.generate(&prompts, 1, &sampling)?.into_iter().map(|c| c.ids).collect()
        } else {
            chosen.iter().map(|&i| self.responses[i].clone().unwrap_or_default()).collect()
        };
        let sequences = prompts
            .into_iter()
            .zip(completions)
            .filter(|(_, c)| !c.is_empty())
            .map(|(p, c)| {
                let first_target = p.len();
                Sequence { ids: p.into_iter().chain(c).collect(), first_target }
            })
            .collect();
        Ok((sequences, on_policy as u8 as f64))
    }

    fn kd_step(&mut self, policy: &mut Policy, step: u64) -> Result<Metrics> {
        let chosen = self.batcher.next_batch();
        let (mut sequences, on_policy) = self.kd_sequences(policy, &chosen, step)?;
        sequences.sort_by_key(|s| s.ids.len());
        let c = &self.config;
        let total: usize = sequences.iter().map(|s| s.ids.len() - s.first_target).sum();
        if total == 0 {
            return Err(Error::Usage(format!("distill step {}: every sequence of the batch is empty", step + 1)));
        }
        let device = policy.model.device();
        let teacher = self.teacher.model.as_ref().ok_or_else(|| Error::Usage("kd needs the teacher's checkpoint".into()))?;
        let (pad, beta, temperature) = (self.pad, c.beta, c.temperature);
        let refs: Vec<&Sequence> = sequences.iter().collect();
        let micros: Vec<&[&Sequence]> = refs.chunks(c.train.per_device_train_batch_size).collect();
        let scale = 1.0 / total as f64;
        let mut line = accumulate(policy, &micros, c.train.optim.lr_at(step, c.train.max_steps), step, |model, micro| {
            let (inputs, mask, _) = micro_inputs(micro, pad, &device);
            let teacher_logp = teacher_log_probs(teacher, micro, pad, temperature, &device)?;
            let student_logp = log_probs(model, &inputs, temperature);
            let divergence = generalized_jsd(student_logp, teacher_logp, beta);
            Ok(((divergence * mask).sum() * scale, Metrics::new()))
        })?;
        self.tokens += total as u64;
        line.insert("tokens".into(), total as f64);
        line.insert("on_policy".into(), on_policy);
        Ok(line)
    }

    /// Mean per-token KL(teacher‖student) and KL(student‖teacher) on the
    /// held-out sequences, at temperature 1.
    fn held_out_kl(&self, student: &CausalLm) -> Result<(f64, f64)> {
        let Some(teacher) = self.teacher.model.as_ref() else { return Ok((f64::NAN, f64::NAN)) };
        let student = student.valid();
        let device = student.device();
        let (mut forward, mut reverse, mut tokens) = (0.0, 0.0, 0usize);
        let refs: Vec<&Sequence> = self.held_out.iter().collect();
        for micro in refs.chunks(self.config.train.per_device_train_batch_size) {
            let (inputs, mask, n) = micro_inputs(micro, self.pad, &device);
            let t = teacher_log_probs(teacher, micro, self.pad, 1.0, &device)?;
            let s = log_probs(&student, &inputs, 1.0);
            forward += crate::run::scalar((generalized_jsd(s.clone(), t.clone(), 0.0) * mask.clone()).sum());
            reverse += crate::run::scalar((generalized_jsd(s, t, 1.0) * mask).sum());
            tokens += n;
        }
        let n = tokens.max(1) as f64;
        Ok((forward / n, reverse / n))
    }
}

impl Stage for Distill<'_> {
    type Config = DistillConfig;
    type State = DistillState;

    fn config(&self) -> &DistillConfig {
        &self.config
    }

    fn cadence(&self) -> Cadence {
        self.config.train.cadence(self.config.eval_steps)
    }

    fn step(&mut self, policy: &mut Policy, step: u64) -> Result<Metrics> {
        match self.supervised.as_mut() {
            Some(s) => s.step(policy, step),
            None => self.kd_step(policy, step),
        }
    }

    fn state(&self) -> DistillState {
        DistillState { data: self.batcher.position(), tokens: self.tokens, supervised: self.supervised.as_ref().map(Stage::state) }
    }

    fn restore(&mut self, state: DistillState, dir: &Path, policy: &Policy) -> Result<()> {
        self.batcher.restore(state.data)?;
        self.tokens = state.tokens;
        match (self.supervised.as_mut(), state.supervised) {
            (Some(s), Some(inner)) => s.restore(inner, dir, policy),
            (None, None) => Ok(()),
            _ => Err(Error::Usage(format!("{}: written by a run of the other distillation mode", dir.display()))),
        }
    }

    fn evaluate(&mut self, policy: &Policy, step: u64) -> Result<Option<Metrics>> {
        let mut m = Metrics::new();
        if !self.held_out.is_empty() {
            let (forward, reverse) = self.held_out_kl(&policy.model)?;
            m.insert("kl_forward".into(), forward);
            m.insert("kl_reverse".into(), reverse);
        }
        if !self.eval.is_empty() {
            let c = &self.config;
            let config = EvalConfig {
                samples: c.eval_samples,
                generation: c.sampling(c.eval_temperature, c.eval_top_p, mix(c.train.seed ^ EVAL_SALT, step, 0)),
                ..EvalConfig::default()
            };
            self.student_engine.refresh(&policy.model, self.tokenizer)?;
            let e = crate::eval::evaluate(&mut self.student_engine, Some(&policy.model), self.tokenizer, &self.eval, &config)?;
            m.extend(e.report.metrics());
        }
        Ok((!m.is_empty()).then_some(m))
    }

    fn progress(&self, m: &Metrics) -> String {
        let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
        format!("loss {:.4}", get("loss"))
    }
}

/// Training prompts with their data responses (built-in tasks: the worked
/// solutions), and held-out prompts.
#[allow(clippy::type_complexity)]
fn distill_prompts(job: &DistillJob) -> Result<(Vec<(PromptRecord, Option<String>)>, Vec<PromptRecord>)> {
    let c = &job.config;
    let (train, mut eval): (Vec<(PromptRecord, Option<String>)>, Vec<PromptRecord>) = match &job.prompts {
        Source::Task { name, .. } => {
            let task =
                task_by_name(name).ok_or_else(|| Error::Usage(format!("unknown task `{name}` (built-in: {})", TASK_NAMES.join(", "))))?;
            let mut rng = aha_runtime::sampler::Rng::new(c.train.seed);
            let train = (0..c.train_prompts)
                .map(|_| {
                    let p = task.problem(&mut rng);
                    let response = r1_completion(&p);
                    (PromptRecord { messages: vec![Message::user(p.question)], reference: p.reference, id: None }, Some(response))
                })
                .collect();
            (train, crate::tasks::prompt_records(task.as_ref(), c.eval_prompts, c.train.seed ^ EVAL_SALT))
        }
        Source::File(path) => {
            let mut rows = crate::data::read_prompts_for_sampling(path, &job.data)?.records;
            let held = if job.eval.is_some() || c.eval_steps == 0 { 0 } else { c.eval_prompts.min(rows.len() / 5) };
            let eval = rows.split_off(rows.len() - held);
            (rows.into_iter().map(|r| (r, None)).collect(), eval)
        }
    };
    if let Some(path) = &job.eval {
        eval = crate::data::read_prompts_for_sampling(path, &job.data)?.records;
    }
    eval.truncate(c.eval_prompts);
    let held: std::collections::BTreeSet<&str> = eval.iter().map(|r| r.question()).collect();
    let train: Vec<_> = train.into_iter().filter(|(r, _)| !held.contains(r.question())).collect();
    if train.is_empty() {
        return Err(Error::Usage("distill: no training prompts".into()));
    }
    Ok((train, eval))
}

/// The student model and its tokenizer, refusing a vocabulary other than the teacher's.
fn student(job: &DistillJob, teacher: &SamplingModel) -> Result<(CausalLm, TextTokenizer)> {
    let train = &job.config.train;
    let device = train.device()?;
    let (model, tokenizer) = match &job.student {
        Init::Config(path) => {
            let config = read_config(path)?;
            if teacher.tokenizer.inner().is_none() {
                return Err(Error::Usage(format!(
                    "{}: a fresh student takes its teacher's tokenizer, and a model file's cannot be saved with it; give the teacher's checkpoint folder",
                    job.teacher.display()
                )));
            }
            check_vocab(config.vocab_size, teacher.config.vocab_size, path, &job.teacher)?;
            device.seed(train.seed);
            (CausalLm::init(&config, &device), teacher.tokenizer.clone())
        }
        Init::Checkpoint(dir) => {
            let model = load_model(dir, &device)?;
            check_vocab(model.config.vocab_size, teacher.config.vocab_size, dir, &job.teacher)?;
            let tokenizer = TextTokenizer::from_dir(dir)?;
            if tokenizer.vocab_size() != teacher.tokenizer.vocab_size() {
                return Err(Error::Usage(format!(
                    "the student's tokenizer has {} tokens, the teacher's {}: distillation needs one tokenizer",
                    tokenizer.vocab_size(),
                    teacher.tokenizer.vocab_size()
                )));
            }
            (model, tokenizer)
        }
    };
    Ok((model.with_compute(train.precision()?.dtype()), tokenizer))
}

fn check_vocab(student: u32, teacher: u32, student_path: &Path, teacher_path: &Path) -> Result<()> {
    if student != teacher {
        return Err(Error::Usage(format!(
            "the student ({}) has a vocabulary of {student} tokens and the teacher ({}) of {teacher}: distillation needs the same tokenizer",
            student_path.display(),
            teacher_path.display()
        )));
    }
    Ok(())
}

/// Runs a distillation and writes its run folder (plus `traces.jsonl` for `seq`).
pub fn distill(job: &DistillJob) -> Result<RunReport> {
    let c = &job.config;
    c.validate()?;
    let device = c.train.device_choice()?;
    let mut teacher = SamplingModel::open(&job.teacher, &c.train.device, &c.train.precision, &c.engine)?;
    if c.mode == DistillMode::Kd && teacher.model.is_none() {
        return Err(Error::Usage(format!(
            "{}: token-level distillation needs the teacher's distributions from its checkpoint folder, not a model file",
            job.teacher.display()
        )));
    }
    let (train, eval_records) = distill_prompts(job)?;
    let (model, tokenizer) = student(job, &teacher)?;
    let format = PromptFormat::from_name(&c.template, &tokenizer)?;
    let records: Vec<PromptRecord> = train.iter().map(|(r, _)| r.clone()).collect();
    let prompt_ids = encode_prompts(&records, &tokenizer, &format, c.max_prompt_length)?;
    let responses = train
        .iter()
        .map(|(_, r)| r.as_ref().map(|text| tokenizer.encode_raw(text)).transpose())
        .collect::<Result<Vec<_>>>()?;
    let eval = EvalSet::new(eval_records, &tokenizer, &format, c.max_prompt_length)?;

    // Held-out teacher sequences for the KL metrics.
    let held_out = if c.eval_steps > 0 && teacher.model.is_some() && !eval.is_empty() {
        let sampling = c.sampling(1.0, 1.0, c.train.seed ^ EVAL_SALT);
        let out: Vec<Completion> = teacher.generate(&eval.prompt_ids, 1, &sampling)?;
        out.into_iter()
            .filter(|o| !o.ids.is_empty())
            .map(|o| {
                let prompt = &eval.prompt_ids[o.prompt_index];
                Sequence { ids: prompt.iter().copied().chain(o.ids).collect(), first_target: prompt.len() }
            })
            .collect()
    } else {
        Vec::new()
    };

    // `seq`: the teacher's filtered traces become SFT rows.
    let rows: Vec<Row> = if c.mode == DistillMode::Seq {
        let config = RejectionConfig {
            samples: c.teacher_samples,
            filters: c.filters.clone(),
            generation: c.sampling(c.teacher_temperature, c.teacher_top_p, c.train.seed),
            ..RejectionConfig::default()
        };
        std::fs::create_dir_all(&job.out).map_err(crate::error::at(&job.out))?;
        let traces = job.out.join("traces.jsonl");
        let (kept, counts) = rejection_sample(&mut teacher, &records, &c.template, c.max_prompt_length, &config, None, &traces)?;
        let mut rows = Vec::with_capacity(kept.len());
        for k in &kept {
            let mut messages = records[k.prompt_index].messages.clone();
            messages.push(Message::assistant(k.response.as_str()));
            let record = SftRecord::Messages(messages);
            let t = tokenize_sft(&record, &tokenizer, &format, c.train.max_seq_length + 1)?;
            if t.num_targets() > 0 {
                rows.push(Row { ids: t.ids, targets: t.loss_mask });
            }
        }
        if kept.is_empty() {
            return Err(Error::Usage(format!(
                "distill: none of the teacher's {} traces passed the filters ({:?}); sample more (teacher_samples) or relax the filters",
                counts.samples, counts.after
            )));
        }
        if rows.is_empty() {
            return Err(Error::Usage(format!(
                "distill: {} traces passed the filters, but in none does the response start within max_seq_length = {} tokens",
                kept.len(),
                c.train.max_seq_length
            )));
        }
        rows
    } else {
        Vec::new()
    };
    let supervised = (c.mode == DistillMode::Seq).then(|| Supervised::new(&rows, &c.train, &tokenizer)).transpose()?;
    let per_step = c.train.per_device_train_batch_size * c.train.gradient_accumulation_steps;
    let mut stage = Distill {
        config: c.clone(),
        tokenizer: &tokenizer,
        supervised,
        batcher: Batcher::new(prompt_ids.len(), per_step.min(prompt_ids.len()), c.train.seed)?,
        prompt_ids,
        responses,
        teacher,
        student_engine: Engine::named(&c.engine, device)?,
        eval,
        held_out,
        pad: tokenizer.pad_id().or(tokenizer.eos_id()).unwrap_or(0),
        tokens: 0,
    };
    let mut policy = Policy::new(model, AdamW::new(c.train.optim.clone()));
    run(&mut stage, &mut policy, &tokenizer, &job.out, job.control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inference() -> Device {
        crate::device::DeviceChoice::Flex.device()
    }

    fn logp(values: &[f32], device: &Device) -> Tensor<3> {
        log_softmax(Tensor::<3>::from_data(TensorData::new(values.to_vec(), [1, 1, values.len()]), device), 2)
    }

    fn value(t: Tensor<2>) -> f64 {
        crate::run::scalar(t.sum())
    }

    #[test]
    fn jsd_ends_are_the_two_kls_and_zero_at_equality() {
        let d = inference();
        let (s, t) = ([0.3f32, -1.0, 2.0, 0.5], [1.0f32, 0.2, -0.4, 0.0]);
        let soft = |x: &[f32]| {
            let z: f64 = x.iter().map(|&v| (v as f64).exp()).sum();
            x.iter().map(|&v| (v as f64).exp() / z).collect::<Vec<f64>>()
        };
        let (ps, pt) = (soft(&s), soft(&t));
        let kl = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(a, b)| a * (a / b).ln()).sum::<f64>();
        let forward = value(generalized_jsd(logp(&s, &d), logp(&t, &d), 0.0));
        let reverse = value(generalized_jsd(logp(&s, &d), logp(&t, &d), 1.0));
        assert!((forward - kl(&pt, &ps)).abs() < 1e-5, "{forward} vs {}", kl(&pt, &ps));
        assert!((reverse - kl(&ps, &pt)).abs() < 1e-5, "{reverse} vs {}", kl(&ps, &pt));
        // β = 0.5 by hand: M = (P_s + P_t) / 2.
        let m: Vec<f64> = ps.iter().zip(&pt).map(|(a, b)| 0.5 * a + 0.5 * b).collect();
        let half = value(generalized_jsd(logp(&s, &d), logp(&t, &d), 0.5));
        assert!((half - (0.5 * kl(&pt, &m) + 0.5 * kl(&ps, &m))).abs() < 1e-5);
        for beta in [0.0, 0.3, 0.5, 1.0] {
            assert!(value(generalized_jsd(logp(&s, &d), logp(&s, &d), beta)).abs() < 1e-6, "beta {beta}");
        }
    }

    #[test]
    fn jsd_gradient_matches_finite_differences() {
        let d = crate::device::DeviceChoice::Flex.training_device(false);
        let teacher = logp(&[0.5, -0.2, 1.5, 0.1, -1.0], &d).detach();
        for beta in [0.0, 0.4, 1.0] {
            let base: Vec<f32> = vec![0.1, 0.7, -0.3, 0.2, 0.9];
            let logits = Tensor::<3>::from_data(TensorData::new(base.clone(), [1, 1, 5]), &d).require_grad();
            let loss = generalized_jsd(log_softmax(logits.clone(), 2), teacher.clone(), beta).sum();
            let grads = loss.backward();
            let analytic = logits.grad(&grads).unwrap().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
            let f = |x: Vec<f32>| {
                let l = Tensor::<3>::from_data(TensorData::new(x, [1, 1, 5]), &d);
                value(generalized_jsd(log_softmax(l, 2), teacher.clone(), beta))
            };
            let h = 1e-2f32;
            for i in 0..5 {
                let (mut up, mut down) = (base.clone(), base.clone());
                up[i] += h;
                down[i] -= h;
                let numeric = (f(up) - f(down)) / (2.0 * h as f64);
                assert!((numeric - analytic[i] as f64).abs() < 2e-3, "beta {beta} i {i}: {numeric} vs {}", analytic[i]);
            }
        }
    }

    #[test]
    fn response_mask_covers_only_response_tokens() {
        let d = inference();
        let a = Sequence { ids: vec![1, 2, 3, 4, 5], first_target: 3 };
        let b = Sequence { ids: vec![1, 2, 3], first_target: 1 };
        let (_, mask, tokens) = micro_inputs(&[&a, &b], 0, &d);
        let m = mask.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        // a: positions 2, 3 predict tokens 3 and 4 (ids[3], ids[4]); b: positions 0, 1.
        assert_eq!(m, vec![0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(tokens, 4);
    }
}
