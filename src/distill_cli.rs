//! `aha distill` and `aha reward-model`: flags into the trainer's jobs, then
//! a summary of the run's held-out figures.

use std::path::PathBuf;

use aha_trainer::distill::{self, DistillConfig, DistillJob};
use aha_trainer::recipes::{Init, Source};
use aha_trainer::reward_model::{train_reward_model, RewardModelConfig, RewardModelJob};
use aha_trainer::run::{Metrics, RunReport};
use anyhow::Result;
use clap::Args;

use crate::dataset_cli::{CodeArgs, DatasetArgs};
use crate::train_cli::TrainFlags;

#[derive(Args, Debug)]
pub struct DistillArgs {
    /// The teacher: a checkpoint folder (either mode) or an .aha file (seq only).
    #[arg(long)]
    pub teacher: PathBuf,
    /// The student: a model config (model.toml / config.json: fresh weights,
    /// the teacher's tokenizer) or a checkpoint folder.
    #[arg(long)]
    pub student: PathBuf,
    /// A built-in task or a JSONL of prompts (with answers, for the filters and the evaluation).
    #[arg(long)]
    pub prompts: String,
    /// Held-out prompts (JSONL); default: the task's test items, or the last rows of the file.
    #[arg(long)]
    pub eval: Option<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
    /// seq (SFT on the teacher's filtered traces, the paper's) or kd (match the teacher's distributions).
    #[arg(long)]
    pub mode: Option<String>,
    /// kd: 0 = forward KL(teacher||student), 1 = reverse KL, between: generalised JSD.
    #[arg(long)]
    pub beta: Option<f64>,
    /// kd: share of steps on the student's own samples.
    #[arg(long)]
    pub lmbda: Option<f64>,
    /// kd: off-policy steps on the teacher's samples.
    #[arg(long)]
    pub seq_kd: bool,
    #[arg(long)]
    pub temperature: Option<f32>,
    /// seq: traces sampled per prompt before filtering.
    #[arg(long)]
    pub teacher_samples: Option<usize>,
    /// seq: trace filters, comma-separated (verified, format, one-language, dedupe).
    #[arg(long)]
    pub filter: Option<String>,
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    #[arg(long)]
    pub train_prompts: Option<usize>,
    #[arg(long)]
    pub eval_steps: Option<u64>,
    #[arg(long)]
    pub eval_prompts: Option<usize>,
    #[arg(long)]
    pub template: Option<String>,
    /// TOML with any DistillConfig names (training settings and the above), under the flags.
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub code: CodeArgs,
    #[command(flatten)]
    pub train: TrainFlags,
}

impl DistillArgs {
    pub fn resolve(&self) -> Result<DistillConfig> {
        let mut c: DistillConfig = self.train.resolve_stage(|c: &mut DistillConfig| &mut c.train)?;
        if let Some(m) = &self.mode {
            c.mode = m.parse()?;
        }
        macro_rules! over {
            ($($field:expr => $flag:expr),* $(,)?) => {$( if let Some(v) = $flag.clone() { $field = v; } )*};
        }
        over!(
            c.beta => self.beta,
            c.lmbda => self.lmbda,
            c.temperature => self.temperature,
            c.teacher_samples => self.teacher_samples,
            c.max_new_tokens => self.max_new_tokens,
            c.train_prompts => self.train_prompts,
            c.eval_steps => self.eval_steps,
            c.eval_prompts => self.eval_prompts,
            c.template => self.template,
        );
        if let Some(f) = &self.filter {
            c.filters = aha_trainer::sample::Filters::parse(f)?;
        }
        c.seq_kd |= self.seq_kd;
        c.validate()?;
        Ok(c)
    }
}

/// `name a -> b` for the figures an evaluation before and after reported.
fn before_after(r: &RunReport, keys: &[&str]) -> String {
    let get = |m: &Option<Metrics>, k: &str| m.as_ref().and_then(|m| m.get(k).copied());
    keys.iter()
        .filter_map(|&k| {
            let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
            let (a, b) = (get(&r.first_eval, k), get(&r.last_eval, k));
            (a.is_some() || b.is_some()).then(|| format!("{k} {} -> {}", show(a), show(b)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn distill(a: &DistillArgs) -> Result<()> {
    a.code.configure()?;
    let student = if a.student.is_dir() { Init::Checkpoint(a.student.clone()) } else { Init::Config(a.student.clone()) };
    let job = DistillJob {
        teacher: a.teacher.clone(),
        student,
        prompts: Source::parse(&a.prompts, 0),
        eval: a.eval.clone(),
        data: a.dataset.options(),
        out: a.out.clone(),
        config: a.resolve()?,
        control: a.train.control(),
    };
    let r = distill::distill(&job)?;
    if let Some(step) = r.resumed_from {
        eprintln!("resumed from step {step}");
    }
    eprintln!("distill: {} steps, final loss {:.4}; held-out {}", r.steps, r.get("loss"), before_after(&r, &["pass_at_1", "kl_forward", "kl_reverse"]));
    eprintln!("student in {}, metrics in {} and {}", a.out.display(), a.out.join("metrics.jsonl").display(), a.out.join("eval.jsonl").display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct RewardModelArgs {
    /// The policy checkpoint whose body the reward model starts from.
    #[arg(long)]
    pub init: PathBuf,
    /// JSONL of {"prompt", "chosen", "rejected"[, "margin"]} (TRL's names), or a built-in task to make pairs from.
    #[arg(long)]
    pub pairs: String,
    /// Held-out pairs (JSONL); default: another seed's for a task, the last rows of a file.
    #[arg(long)]
    pub eval: Option<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
    /// Weight of mean((r_chosen + r_rejected)^2) (TRL RewardConfig).
    #[arg(long)]
    pub center_rewards_coefficient: Option<f64>,
    #[arg(long)]
    pub train_pairs: Option<usize>,
    #[arg(long)]
    pub eval_pairs: Option<usize>,
    #[arg(long)]
    pub eval_steps: Option<u64>,
    #[command(flatten)]
    pub train: TrainFlags,
}

pub fn reward_model(a: &RewardModelArgs) -> Result<()> {
    let mut c: RewardModelConfig = a.train.resolve_stage(|c: &mut RewardModelConfig| &mut c.train)?;
    if let Some(v) = a.center_rewards_coefficient {
        c.center_rewards_coefficient = v;
    }
    if let Some(v) = a.train_pairs {
        c.train_pairs = v;
    }
    if let Some(v) = a.eval_pairs {
        c.eval_pairs = v;
    }
    if let Some(v) = a.eval_steps {
        c.eval_steps = v;
    }
    let job = RewardModelJob {
        init: a.init.clone(),
        pairs: Source::parse(&a.pairs, 0),
        eval: a.eval.clone(),
        out: a.out.clone(),
        config: c,
        control: a.train.control(),
    };
    let r = train_reward_model(&job)?;
    eprintln!("reward-model: {} steps, final loss {:.4}; held-out {}", r.steps, r.get("loss"), before_after(&r, &["accuracy", "margin"]));
    eprintln!("reward model in {} (use it as --reward rm:{})", a.out.display(), a.out.display());
    Ok(())
}
