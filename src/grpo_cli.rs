//! `aha grpo` and `aha plot`: flags into a [`GrpoJob`], then a summary.

use std::path::PathBuf;

use aha_trainer::grpo::{self, GrpoConfig, GrpoJob};
use aha_trainer::recipes::Source;
use aha_trainer::train::RunControl;
use anyhow::Result;
use clap::Args;

use crate::dataset_cli::{CodeArgs, DatasetArgs};

#[derive(Args, Debug)]
pub struct GrpoArgs {
    /// The policy's starting checkpoint (also the first reference model).
    #[arg(long)]
    pub init: PathBuf,
    /// A built-in task (arith, words, countdown, listprog) or a dataset:
    /// JSONL, JSON or Parquet, a file or a folder of shards, in TRL's
    /// {"prompt", "answer"} or a recognised layout (GSM8K, MATH, NuminaMath,
    /// OpenR1-Math, Countdown, MBPP, HumanEval; see docs/datasets.md).
    #[arg(long)]
    pub task: String,
    /// Held-out prompts (a dataset as --task); default: the task's own test
    /// items, or the last rows of the dataset.
    #[arg(long)]
    pub eval: Option<PathBuf>,
    #[command(flatten)]
    pub data: DatasetArgs,
    #[command(flatten)]
    pub code: CodeArgs,
    #[arg(long)]
    pub out: PathBuf,
    /// TOML file with any GrpoConfig names (num_generations, beta, ...);
    /// flags below override it.
    #[arg(long)]
    pub train_config: Option<PathBuf>,
    /// A reward, `name` or `name:weight` (repeatable): accuracy, format,
    /// language, code, countdown, rm:<checkpoint>. Default: the task's.
    #[arg(long = "reward")]
    pub rewards: Vec<String>,
    /// A reward for the general prompts (rows with "kind": "general"), repeatable:
    /// rm:<dir> judges the whole output, rm-answer:<dir> the final answer only.
    #[arg(long = "general-reward")]
    pub general_rewards: Vec<String>,
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Questions per step.
    #[arg(long)]
    pub prompts_per_step: Option<usize>,
    /// G: outputs per question.
    #[arg(long, short = 'G')]
    pub num_generations: Option<usize>,
    /// μ: optimizer steps per sampled batch.
    #[arg(long)]
    pub num_iterations: Option<usize>,
    #[arg(long)]
    pub epsilon: Option<f64>,
    #[arg(long)]
    pub epsilon_high: Option<f64>,
    /// Dual clip on ρ for negative advantages.
    #[arg(long)]
    pub delta: Option<f64>,
    /// KL weight (0: no reference model).
    #[arg(long)]
    pub beta: Option<f64>,
    #[arg(long)]
    pub ref_reset_every: Option<u64>,
    /// grpo, dapo or dr_grpo.
    #[arg(long)]
    pub loss_type: Option<String>,
    /// group, batch or none.
    #[arg(long)]
    pub scale_rewards: Option<String>,
    #[arg(long)]
    pub dynamic_sampling: bool,
    #[arg(long)]
    pub mask_truncated: bool,
    #[arg(long)]
    pub temperature: Option<f32>,
    #[arg(long)]
    pub max_completion_length: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub warmup_steps: Option<u64>,
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// r1-zero (default), chat (the tokenizer's template), chatml, ...
    #[arg(long)]
    pub template: Option<String>,
    /// Evaluate every N steps (0: never).
    #[arg(long)]
    pub eval_steps: Option<u64>,
    #[arg(long)]
    pub eval_prompts: Option<usize>,
    /// k samples per held-out prompt for pass@1.
    #[arg(long)]
    pub eval_samples: Option<usize>,
    /// auto, trainer or runtime.
    #[arg(long)]
    pub rollout_engine: Option<String>,
    /// Sequences per forward/backward in the update.
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub save_steps: Option<u64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// flex (CPU), wgpu or vulkan.
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long)]
    pub precision: Option<String>,
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// Continue from the latest checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
}

impl GrpoArgs {
    /// Defaults, then the TOML file, then the flags.
    pub fn resolve(&self) -> Result<GrpoConfig> {
        let mut c = match &self.train_config {
            Some(path) => GrpoConfig::from_toml_file(path)?,
            None => GrpoConfig::default(),
        };
        macro_rules! over {
            ($($field:expr => $flag:expr),* $(,)?) => {$( if let Some(v) = $flag.clone() { $field = v; } )*};
        }
        over!(
            c.max_steps => self.max_steps,
            c.prompts_per_step => self.prompts_per_step,
            c.num_generations => self.num_generations,
            c.num_iterations => self.num_iterations,
            c.epsilon => self.epsilon,
            c.beta => self.beta,
            c.ref_reset_every => self.ref_reset_every,
            c.temperature => self.temperature,
            c.max_completion_length => self.max_completion_length,
            c.optim.learning_rate => self.lr,
            c.optim.warmup_steps => self.warmup_steps,
            c.optim.max_grad_norm => self.max_grad_norm,
            c.template => self.template,
            c.eval_steps => self.eval_steps,
            c.eval_prompts => self.eval_prompts,
            c.eval_samples => self.eval_samples,
            c.rollout_engine => self.rollout_engine,
            c.per_device_train_batch_size => self.batch_size,
            c.save_steps => self.save_steps,
            c.seed => self.seed,
            c.device => self.device,
            c.precision => self.precision,
        );
        if self.epsilon_high.is_some() {
            c.epsilon_high = self.epsilon_high;
        }
        if self.delta.is_some() {
            c.delta = self.delta;
        }
        if let Some(t) = &self.loss_type {
            c.loss_type = t.parse()?;
        }
        if let Some(s) = &self.scale_rewards {
            c.scale_rewards = s.parse()?;
        }
        if !self.rewards.is_empty() {
            c.rewards = self.rewards.clone();
        }
        if !self.general_rewards.is_empty() {
            c.general_rewards = self.general_rewards.clone();
        }
        c.dynamic_sampling |= self.dynamic_sampling;
        c.mask_truncated |= self.mask_truncated;
        c.gradient_checkpointing |= self.gradient_checkpointing;
        c.validate()?;
        Ok(c)
    }
}

pub fn grpo(a: &GrpoArgs) -> Result<()> {
    a.code.configure()?;
    let job = GrpoJob {
        init: a.init.clone(),
        task: Source::parse(&a.task, 0),
        eval: a.eval.clone(),
        data: a.data.options(),
        out: a.out.clone(),
        config: a.resolve()?,
        control: RunControl { resume: a.resume, stop_after: None, progress: true },
    };
    let report = grpo::grpo(&job)?;
    if let Some(data) = &report.data {
        eprintln!("data: {}", data.summary());
    }
    if let Some(step) = report.resumed_from {
        eprintln!("resumed from step {step}");
    }
    let pass = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    eprintln!(
        "grpo: {} steps; held-out pass@1 {} -> {}; model in {}, metrics in {} and {}",
        report.steps,
        pass(report.first_eval),
        pass(report.last_eval),
        a.out.display(),
        a.out.join("metrics.jsonl").display(),
        a.out.join("eval.jsonl").display()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A run folder with metrics.jsonl (and eval.jsonl).
    pub run: PathBuf,
    /// Where the charts go (default: RUN/plots).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Weight of the exponential moving average drawn over noisy series (0 = raw only).
    #[arg(long, default_value_t = 0.9)]
    pub smoothing: f64,
}

pub fn plot(a: &PlotArgs) -> Result<()> {
    let options = aha_trainer::plot::PlotOptions { smoothing: a.smoothing };
    let written = aha_trainer::plot::plot_run_with(&a.run, a.out.as_deref(), &options)?;
    let mut out = std::io::stdout().lock();
    for path in written {
        std::io::Write::write_all(&mut out, format!("{}\n", path.display()).as_bytes())?;
    }
    Ok(())
}
