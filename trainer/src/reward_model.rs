//! A learned reward model: the policy's architecture with a scalar head, as
//! transformers' `Qwen2ForSequenceClassification` / `LlamaForSequenceClassification`
//! with `num_labels = 1` store it (`model.*` plus `score.weight`, `[1, hidden]`).
//! The score of a text is the head applied to the hidden state of its last
//! token. R1-Zero uses no reward model (docs/method.md, rewards: it invites reward
//! hacking); R1's later stages do, for helpfulness and harmlessness.
//!
//! Training ([`BradleyTerry`], `aha reward-model`) fits the Bradley–Terry
//! model of preferences (Bradley & Terry 1952; InstructGPT's reward model):
//! P(chosen ≻ rejected) = σ(r_c - r_r), so the loss per pair is
//! `-log σ(r_c - r_r - margin)`, plus TRL `RewardConfig`'s
//! `center_rewards_coefficient · mean((r_c + r_r)²)`, which keeps scores
//! centred on 0 (the loss alone fixes only differences). The body starts
//! from a policy checkpoint, the head from small random weights.
//!
//! In memory it is a [`CausalLm`] whose output projection has one row: the
//! checkpoint's `score.weight` is its `lm_head.weight`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::module::Module;
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint::{load_weights, read_weights_dir, write_safetensors};
use crate::config::{hf_config_json, read_config_dir, Config};
use crate::data::{kind, read_jsonl, Batcher, DataPosition, Message, PromptFormat};
use crate::error::{at, Error, Result};
use crate::fsutil::write_atomic;
use crate::model::{CausalLm, Inputs, Linear};
use crate::optim::AdamW;
use crate::params::state_dict;
use crate::recipes::Source;
use crate::rewards::{Reward, Sample};
use crate::run::{accumulate, run, Cadence, Metrics, Policy, RunControl, RunReport, Stage};
use crate::tasks::{r1_completion, task_by_name, Problem, TASK_NAMES};
use crate::tokenizer::TextTokenizer;
use crate::train::TrainConfig;

const HEAD: &str = "lm_head.weight";
const SCORE: &str = "score.weight";

/// A scalar-head model.
#[derive(Debug)]
pub struct RewardModel {
    pub model: CausalLm,
}

impl RewardModel {
    /// Fresh weights for `config` (its vocabulary and body; the head is one row).
    pub fn init(config: &Config, device: &Device) -> RewardModel {
        let config = Config { tie_embeddings: false, ..*config };
        let mut model = CausalLm::init(&config, device);
        model.lm_head = Some(Linear::init(config.hidden_size as usize, 1, false, 0.02, device));
        RewardModel { model }
    }

    /// Loads a checkpoint folder (config.json + safetensors with `score.weight`).
    pub fn load(dir: &Path, device: &Device) -> Result<RewardModel> {
        let config = read_config_dir(dir)?;
        let mut weights = read_weights_dir(dir)?;
        let head = weights
            .remove(SCORE)
            .ok_or_else(|| Error::tensor(SCORE, format!("missing from {}: not a reward model (no scalar head)", dir.display())))?;
        if head.shape != [1, config.hidden_size as usize] {
            return Err(Error::tensor(SCORE, format!("has shape {:?}; a reward model's is [1, {}]", head.shape, config.hidden_size)));
        }
        weights.remove(HEAD);
        weights.insert(HEAD.to_string(), head);
        let model = load_weights(RewardModel::init(&config, device).model, weights, dir)?;
        Ok(RewardModel { model })
    }

    /// Writes `config.json` (architecture `…ForSequenceClassification`,
    /// `num_labels` 1) and `model.safetensors` with transformers' names.
    pub fn save(&self, dir: &Path, tokenizer: &TextTokenizer) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
        let mut tensors = state_dict(&self.model);
        if let Some(head) = tensors.remove(HEAD) {
            tensors.insert(SCORE.to_string(), head);
        }
        write_safetensors(&dir.join("model.safetensors"), &tensors)?;
        let mut json = hf_config_json(&self.model.config, crate::train::special_ids(tokenizer));
        let class = match self.model.config.arch {
            aha_runtime::Arch::Qwen2 => "Qwen2ForSequenceClassification",
            aha_runtime::Arch::Llama => "LlamaForSequenceClassification",
        };
        json["architectures"] = serde_json::json!([class]);
        json["num_labels"] = 1.into();
        json["tie_word_embeddings"] = false.into();
        let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Config(e.to_string()))?;
        write_atomic(&dir.join("config.json"), text.as_bytes())?;
        tokenizer.save_dir(dir)
    }

    /// One score per token sequence: the head on each sequence's last token.
    pub fn score_ids(&self, rows: &[Vec<u32>]) -> Result<Vec<f32>> {
        let scores = scores(&self.model, rows)?;
        scores.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| Error::tensor("score", format!("{e:?}")))
    }
}

/// The scalar head on each row's last token, `[rows]`, differentiable.
fn scores(model: &CausalLm, rows: &[Vec<u32>]) -> Result<Tensor<1>> {
    if rows.is_empty() || rows.iter().any(Vec::is_empty) {
        return Err(Error::Usage("reward model: an empty sequence has no last token to score".into()));
    }
    let device = model.device();
    let len = rows.iter().map(Vec::len).max().unwrap_or(1);
    // Right padding: under the causal mask it cannot change earlier positions.
    let padded: Vec<Vec<u32>> = rows.iter().map(|r| r.iter().copied().chain(std::iter::repeat(0)).take(len).collect()).collect();
    let out = model.forward(&Inputs::causal(&padded, &device), None); // [b, len, 1]
    let b = rows.len();
    let last: Vec<i64> = rows.iter().map(|r| r.len() as i64 - 1).collect();
    let index = Tensor::<2, Int>::from_data(TensorData::new(last, [b, 1]), &device);
    Ok(out.reshape([b, len]).gather(1, index).reshape([b]))
}

/// The text a reward model scores: the conversation (question, reply) in
/// its prompt format. Training and scoring both go through here.
fn scored_ids(format: &PromptFormat, tokenizer: &TextTokenizer, prompt: &str, reply: &str) -> Result<Vec<u32>> {
    let text = format.render_conversation(&[Message::user(prompt), Message::assistant(reply)])?;
    tokenizer.encode(&text)
}

/// A reward model as a [`Reward`]: each sample is rendered as the
/// conversation (question, answer) in the model's prompt format and scored.
pub struct RewardModelReward {
    model: Mutex<RewardModel>,
    tokenizer: TextTokenizer,
    format: PromptFormat,
    scope: Scope,
}

/// What of an output a reward model reads. R1 judges helpfulness on the
/// final answer only (the reasoning is left alone) and harmlessness on the
/// whole output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Whole,
    Answer,
}

impl RewardModelReward {
    /// The checkpoint in `dir` (with its tokenizer) on `device`, for inference.
    pub fn load(dir: &Path, device: &Device) -> Result<RewardModelReward> {
        Self::load_scoped(dir, device, Scope::Whole)
    }

    pub fn load_scoped(dir: &Path, device: &Device, scope: Scope) -> Result<RewardModelReward> {
        let model = RewardModel::load(dir, &device.clone().without_autodiff())?;
        let tokenizer = TextTokenizer::from_dir(dir)?;
        let format = PromptFormat::from_name("auto", &tokenizer)?;
        Ok(RewardModelReward { model: Mutex::new(RewardModel { model: model.model.valid() }), tokenizer, format, scope })
    }
}

impl Reward for RewardModelReward {
    fn name(&self) -> &str {
        match self.scope {
            Scope::Whole => "reward_model",
            Scope::Answer => "reward_model_answer",
        }
    }

    fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
        let rows = samples
            .iter()
            .map(|s| {
                let reply = match self.scope {
                    Scope::Whole => s.completion,
                    Scope::Answer => crate::rewards::answer::extract_answer(s.completion).unwrap_or(""),
                };
                scored_ids(&self.format, &self.tokenizer, s.prompt, reply)
            })
            .collect::<Result<Vec<_>>>()?;
        let model = self.model.lock().map_err(|_| Error::Usage("reward model: poisoned by an earlier panic".into()))?;
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(16) {
            out.extend(model.score_ids(chunk)?);
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// Training

/// One preference: for `prompt`, `chosen` is better than `rejected`, by at
/// least `margin` in score (TRL's column names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    #[serde(default)]
    pub margin: f32,
}

/// Reads `{"prompt", "chosen", "rejected"[, "margin"]}` lines.
pub fn read_pairs_jsonl(path: &Path) -> Result<Vec<PreferencePair>> {
    read_jsonl(path, |obj| {
        let text = |key: &str| match obj.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("{key}: expected text, found {}", kind(other))),
            None => Err(format!("missing field \"{key}\"")),
        };
        let margin = match obj.get("margin") {
            None | Some(Value::Null) => 0.0,
            Some(Value::Number(n)) => n.as_f64().filter(|m| m.is_finite()).ok_or("margin: not a finite number")? as f32,
            Some(other) => return Err(format!("margin: expected a number, found {}", kind(other))),
        };
        Ok(PreferencePair { prompt: text("prompt")?, chosen: text("chosen")?, rejected: text("rejected")?, margin })
    })
}

/// Preference pairs made from a task's problems, so a pipeline needs no
/// outside data. They rotate through three preferences R1's reward model
/// stands for: a correct answer over a wrong one, a concise correct reply
/// over one that rambles (restating the question instead of working), and
/// a chain of thought in the prompt's language over one that mixes in another.
pub fn task_pairs(task_name: &str, n: usize, seed: u64) -> Result<Vec<PreferencePair>> {
    let task = task_by_name(task_name)
        .ok_or_else(|| Error::Usage(format!("unknown task `{task_name}` (built-in: {})", TASK_NAMES.join(", "))))?;
    task_pairs_from(task.as_ref(), n, seed)
}

/// [`task_pairs`] of any task.
pub fn task_pairs_from(task: &dyn crate::tasks::Task, n: usize, seed: u64) -> Result<Vec<PreferencePair>> {
    let mut rng = aha_runtime::sampler::Rng::new(seed);
    let problems: Vec<Problem> = (0..n.max(2)).map(|_| task.problem(&mut rng)).collect();
    Ok((0..n)
        .map(|i| {
            let p = &problems[i];
            let chosen = r1_completion(p);
            let rejected = match i % 3 {
                0 => {
                    // Another problem's answer where it differs, else a number off by one.
                    let other = &problems[(i + 1) % problems.len()].answer;
                    let wrong = match p.answer.trim().parse::<i64>() {
                        Ok(v) => (v + 1 + (i as i64 % 5)).to_string(),
                        Err(_) if other != &p.answer => other.clone(),
                        Err(_) => format!("{} 0", p.answer),
                    };
                    format!("<think> {} </think> <answer> {wrong} </answer>", p.solution)
                }
                1 => {
                    let restate = format!("The question is: {} Let me read it again.", p.question);
                    format!("<think> {restate} {restate} {restate} {} </think> <answer> {} </answer>", p.solution, p.answer)
                }
                _ => format!("<think> {} 所以答案是 {} </think> <answer> {} </answer>", p.solution, p.answer, p.answer),
            };
            PreferencePair { prompt: p.question.clone(), chosen, rejected, margin: 0.0 }
        })
        .collect())
}

/// `-log σ(r_c - r_r - margin)` averaged over the pairs, plus
/// `coefficient · mean((r_c + r_r)²)` (TRL `RewardTrainer.compute_loss`).
pub fn bradley_terry_loss(chosen: Tensor<1>, rejected: Tensor<1>, margin: Tensor<1>, coefficient: f64) -> Tensor<1> {
    let loss = -log_sigmoid(chosen.clone() - rejected.clone() - margin).mean();
    if coefficient == 0.0 {
        return loss;
    }
    loss + (chosen + rejected).square().mean() * coefficient
}

/// Settings of `aha reward-model`: the training settings (TrainingArguments
/// names) and TRL `RewardConfig`'s own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RewardModelConfig {
    #[serde(flatten)]
    pub train: TrainConfig,
    /// Weight of `mean((r_c + r_r)²)` (TRL: unset = 0; its docs suggest 0.01).
    pub center_rewards_coefficient: f64,
    /// Built-in pairs made from the task (`--pairs TASK`).
    pub train_pairs: usize,
    /// Pairs held out for accuracy (the last ones of a file, or another seed's for a task).
    pub eval_pairs: usize,
    /// Evaluate held-out accuracy every N steps (and before the first and after the last); 0 = never.
    pub eval_steps: u64,
}

impl Default for RewardModelConfig {
    fn default() -> Self {
        let mut train = TrainConfig { max_steps: 200, per_device_train_batch_size: 16, save_steps: 100, ..TrainConfig::default() };
        train.optim.learning_rate = 1e-4;
        RewardModelConfig { train, center_rewards_coefficient: 0.01, train_pairs: 2000, eval_pairs: 200, eval_steps: 50 }
    }
}

/// A `reward-model` run.
pub struct RewardModelJob {
    /// The policy checkpoint whose body the reward model starts from.
    pub init: PathBuf,
    /// A JSONL of pairs or a built-in task to make them from.
    pub pairs: Source,
    /// Held-out pairs; default: see [`RewardModelConfig::eval_pairs`].
    pub eval: Option<PathBuf>,
    pub out: PathBuf,
    pub config: RewardModelConfig,
    pub control: RunControl,
}

/// A pair as token ids.
struct PairIds {
    chosen: Vec<u32>,
    rejected: Vec<u32>,
    margin: f32,
}

/// Bradley–Terry training as a [`Stage`] of the shared loop.
pub struct BradleyTerry {
    config: RewardModelConfig,
    pairs: Vec<PairIds>,
    held_out: Vec<PairIds>,
    batcher: Batcher,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BradleyTerryState {
    pub data: DataPosition,
}

impl BradleyTerry {
    /// The scores of `pairs` (chosen then rejected), and their margins.
    fn forward(model: &CausalLm, pairs: &[&PairIds]) -> Result<(Tensor<1>, Tensor<1>, Tensor<1>)> {
        let rows: Vec<Vec<u32>> = pairs.iter().map(|p| p.chosen.clone()).chain(pairs.iter().map(|p| p.rejected.clone())).collect();
        let s = scores(model, &rows)?;
        let n = pairs.len();
        let margins = pairs.iter().map(|p| p.margin).collect::<Vec<f32>>();
        let margin = Tensor::<1>::from_data(TensorData::new(margins, [n]), &model.device());
        Ok((s.clone().slice([0..n]), s.slice([n..2 * n]), margin))
    }
}

fn host(t: Tensor<1>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default()
}

impl Stage for BradleyTerry {
    type Config = RewardModelConfig;
    type State = BradleyTerryState;

    fn config(&self) -> &RewardModelConfig {
        &self.config
    }

    fn cadence(&self) -> Cadence {
        self.config.train.cadence(if self.held_out.is_empty() { 0 } else { self.config.eval_steps })
    }

    fn step(&mut self, policy: &mut Policy, step: u64) -> Result<Metrics> {
        let c = &self.config.train;
        let batch: Vec<&PairIds> = self.batcher.next_batch().into_iter().map(|i| &self.pairs[i]).collect();
        let share = 1.0 / batch.len() as f64;
        let micros: Vec<&[&PairIds]> = batch.chunks(c.per_device_train_batch_size).collect();
        let coefficient = self.config.center_rewards_coefficient;
        let mut line = accumulate(policy, &micros, c.optim.lr_at(step, c.max_steps), step, |model, micro| {
            let (chosen, rejected, margin) = Self::forward(model, micro)?;
            let (rc, rr) = (host(chosen.clone().detach()), host(rejected.clone().detach()));
            let right = rc.iter().zip(&rr).filter(|(c, r)| c > r).count() as f64;
            let gap: f64 = rc.iter().zip(&rr).map(|(c, r)| (c - r) as f64).sum();
            let loss = bradley_terry_loss(chosen, rejected, margin, coefficient) * (micro.len() as f64 * share);
            Ok((loss, Metrics::from([("accuracy".to_string(), right * share), ("margin".to_string(), gap * share)])))
        })?;
        line.insert("pairs".into(), batch.len() as f64);
        Ok(line)
    }

    fn state(&self) -> BradleyTerryState {
        BradleyTerryState { data: self.batcher.position() }
    }

    fn restore(&mut self, state: BradleyTerryState, _dir: &Path, _policy: &Policy) -> Result<()> {
        self.batcher.restore(state.data)
    }

    /// Held-out pair accuracy (r_c > r_r) and mean score gap.
    fn evaluate(&mut self, policy: &Policy, _step: u64) -> Result<Option<Metrics>> {
        let model = policy.model.valid();
        let (mut right, mut gap) = (0usize, 0f64);
        let all: Vec<&PairIds> = self.held_out.iter().collect();
        for chunk in all.chunks(self.config.train.per_device_train_batch_size) {
            let (chosen, rejected, _) = Self::forward(&model, chunk)?;
            for (c, r) in host(chosen).iter().zip(&host(rejected)) {
                right += (c > r) as usize;
                gap += (c - r) as f64;
            }
        }
        let n = self.held_out.len().max(1) as f64;
        Ok(Some(Metrics::from([
            ("accuracy".to_string(), right as f64 / n),
            ("margin".to_string(), gap / n),
            ("pairs".to_string(), self.held_out.len() as f64),
        ])))
    }

    fn progress(&self, m: &Metrics) -> String {
        let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
        format!("loss {:.4}  acc {:.2}  margin {:.2}", get("loss"), get("accuracy"), get("margin"))
    }

    fn save_final(&self, policy: &Policy, tokenizer: &TextTokenizer, out: &Path) -> Result<()> {
        RewardModel { model: policy.model.clone() }.save(out, tokenizer)
    }
}

/// The scalar head's first weights: uniform with standard deviation 0.02,
/// from the run's seed alone (not a process-wide generator), so a run is the
/// same whatever else the process does.
fn initial_head(hidden: usize, seed: u64) -> crate::params::HostTensor {
    let mut rng = aha_runtime::sampler::Rng::new(seed ^ 0x5C0E_4EAD);
    let half_width = 0.02 * 3f32.sqrt();
    let data = (0..hidden).map(|_| (rng.next_u32() as f32 / u32::MAX as f32 * 2.0 - 1.0) * half_width).collect();
    crate::params::HostTensor { data, shape: vec![1, hidden] }
}

/// Trains a reward model and writes its run folder (the final model in
/// `…ForSequenceClassification` layout, which `--reward rm:<dir>` reads).
pub fn train_reward_model(job: &RewardModelJob) -> Result<RunReport> {
    let c = &job.config;
    c.train.validate()?;
    let (mut train, mut held) = match &job.pairs {
        Source::Task { name, .. } => (task_pairs(name, c.train_pairs, c.train.seed)?, task_pairs(name, c.eval_pairs, c.train.seed ^ crate::eval::EVAL_SALT)?),
        Source::File(path) => {
            let mut rows = read_pairs_jsonl(path)?;
            let held = if job.eval.is_some() { 0 } else { c.eval_pairs.min(rows.len() / 5) };
            let eval = rows.split_off(rows.len() - held);
            (rows, eval)
        }
    };
    if let Some(path) = &job.eval {
        held = read_pairs_jsonl(path)?;
    }
    let seen: std::collections::BTreeSet<(&str, &str)> = held.iter().map(|p| (p.prompt.as_str(), p.chosen.as_str())).collect();
    let seen: std::collections::BTreeSet<(String, String)> = seen.into_iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    train.retain(|p| !seen.contains(&(p.prompt.clone(), p.chosen.clone())));
    if train.is_empty() {
        return Err(Error::Usage("reward model: no training pairs".into()));
    }
    let tokenizer = TextTokenizer::from_dir(&job.init)?;
    let format = PromptFormat::from_name("auto", &tokenizer)?;
    let max = c.train.max_seq_length;
    let encode = |pairs: &[PreferencePair]| -> Result<Vec<PairIds>> {
        pairs
            .iter()
            .map(|p| {
                let keep_tail = |ids: Vec<u32>| ids[ids.len().saturating_sub(max)..].to_vec();
                Ok(PairIds {
                    chosen: keep_tail(scored_ids(&format, &tokenizer, &p.prompt, &p.chosen)?),
                    rejected: keep_tail(scored_ids(&format, &tokenizer, &p.prompt, &p.rejected)?),
                    margin: p.margin,
                })
            })
            .collect()
    };
    let pairs = encode(&train)?;
    let held_out = encode(&held)?;

    let device = c.train.device()?;
    let config = read_config_dir(&job.init)?;
    let fresh = RewardModel::init(&config, &device).model;
    let mut weights = read_weights_dir(&job.init)?;
    if weights.contains_key(SCORE) {
        return Err(Error::tensor(SCORE, format!("{} is already a reward model; start from a policy checkpoint", job.init.display())));
    }
    weights.remove(HEAD);
    weights.insert(HEAD.to_string(), initial_head(config.hidden_size as usize, c.train.seed));
    let model = load_weights(fresh, weights, &job.init)?.with_compute(c.train.precision()?.dtype());
    let per_step = c.train.per_device_train_batch_size * c.train.gradient_accumulation_steps;
    let mut stage = BradleyTerry { config: c.clone(), batcher: Batcher::new(pairs.len(), per_step, c.train.seed)?, pairs, held_out };
    let mut policy = Policy::new(model, AdamW::new(c.train.optim.clone()));
    run(&mut stage, &mut policy, &tokenizer, &job.out, job.control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tolerance;

    fn autodiff() -> Device {
        crate::device::DeviceChoice::Flex.training_device(false)
    }

    #[test]
    fn bradley_terry_loss_and_gradient_by_hand() {
        let device = autodiff();
        let t = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [2]), &device).require_grad();
        let (rc, rr) = (t(vec![1.0, -0.5]), t(vec![0.0, 0.5]));
        let margin = Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 0.5], [2]), &device);
        let coefficient = 0.1;
        let loss = bradley_terry_loss(rc.clone(), rr.clone(), margin, coefficient);
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        // d = r_c - r_r - margin: 1 and -1.5; sums r_c + r_r: 1 and 0.
        let d = [1.0f64, -1.5];
        let sums = [1.0f64, 0.0];
        let want = (-sigmoid(d[0]).ln() - sigmoid(d[1]).ln()) / 2.0 + coefficient * (sums[0].powi(2) + sums[1].powi(2)) / 2.0;
        let got = crate::run::scalar(loss.clone());
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        let grads = loss.backward();
        // ∂/∂r_c = -(1 - σ(d))/N + 2c(r_c + r_r)/N; ∂/∂r_r = (1 - σ(d))/N + 2c(r_c + r_r)/N.
        let gc: Vec<f32> = (0..2).map(|i| (-(1.0 - sigmoid(d[i])) / 2.0 + coefficient * sums[i]) as f32).collect();
        let gr: Vec<f32> = (0..2).map(|i| ((1.0 - sigmoid(d[i])) / 2.0 + coefficient * sums[i]) as f32).collect();
        rc.grad(&grads).unwrap().into_data().assert_approx_eq::<f32>(&TensorData::new(gc, [2]), Tolerance::absolute(1e-6));
        rr.grad(&grads).unwrap().into_data().assert_approx_eq::<f32>(&TensorData::new(gr, [2]), Tolerance::absolute(1e-6));
    }

    #[test]
    fn pairs_read_with_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prefs.jsonl");
        std::fs::write(&path, "{\"prompt\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\", \"margin\": 1.5}\n\n{\"prompt\": \"q\", \"chosen\": \"a\"}\n").unwrap();
        let err = read_pairs_jsonl(&path).unwrap_err().to_string();
        assert!(err.contains("prefs.jsonl:3") && err.contains("rejected"), "{err}");
        std::fs::write(&path, "{\"prompt\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\", \"margin\": 1.5}\n").unwrap();
        assert_eq!(read_pairs_jsonl(&path).unwrap()[0].margin, 1.5);
    }

    #[test]
    fn task_pairs_prefer_the_right_thing() {
        let pairs = task_pairs("arith", 6, 3).unwrap();
        let r = |text: &str| crate::rewards::answer::extract_answer(text).map(str::to_string);
        for (i, p) in pairs.iter().enumerate() {
            assert_ne!(p.chosen, p.rejected);
            match i % 3 {
                0 => assert_ne!(r(&p.chosen), r(&p.rejected), "{p:?}"),
                1 => assert!(p.rejected.len() > p.chosen.len() && r(&p.chosen) == r(&p.rejected)),
                _ => {
                    let lang = |t: &str| crate::rewards::language::consistency(&p.prompt, t);
                    assert!(lang(&p.chosen) > lang(&p.rejected), "{p:?}");
                }
            }
        }
    }
}
