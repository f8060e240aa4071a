//! The trainer's commands: `pretrain`, `sft`, `generate`, `export`. Each
//! turns flags into a job for `aha_trainer` and prints what it did.

use std::path::PathBuf;

use aha_trainer::generate::GenerateConfig;
use aha_trainer::recipes::{self, GenerateJob, Init, PretrainJob, SftJob, Source};
use aha_trainer::train::{RunControl, TrainConfig, TrainReport};
use anyhow::{bail, Result};
use clap::Args;

use crate::dataset_cli::DatasetArgs;

/// Training settings: a TOML file with transformers' `TrainingArguments`
/// names, then flags on top.
#[derive(Args, Debug)]
pub struct TrainFlags {
    /// TOML file of training settings (max_steps, learning_rate, ...).
    #[arg(long)]
    pub train_config: Option<PathBuf>,
    /// flex (CPU, default), wgpu or vulkan.
    #[arg(long)]
    pub device: Option<String>,
    /// f32, bf16 or f16 compute (master weights stay f32); default: bf16 on GPU, f32 on CPU.
    #[arg(long)]
    pub precision: Option<String>,
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Sequences per micro-batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Micro-batches per optimizer step.
    #[arg(long)]
    pub grad_accum: Option<usize>,
    /// Tokens per sequence.
    #[arg(long)]
    pub seq_len: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub warmup_steps: Option<u64>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Global gradient-norm clip (0 = off).
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Checkpoint every N steps.
    #[arg(long)]
    pub save_steps: Option<u64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Recompute activations in the backward pass to save memory.
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// Batch rows of about one length together, so micro-batches pad little.
    #[arg(long)]
    pub group_by_length: bool,
    /// Continue from the latest checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
}

impl TrainFlags {
    /// The resolved settings: defaults, then the file, then the flags.
    pub fn resolve(&self) -> Result<TrainConfig> {
        let mut c = match &self.train_config {
            Some(path) => TrainConfig::from_toml_file(path)?,
            None => TrainConfig::default(),
        };
        self.apply(&mut c);
        c.validate()?;
        Ok(c)
    }

    /// The flags over settings read elsewhere (a stage's own TOML holds
    /// the training settings beside its own).
    pub fn apply(&self, c: &mut TrainConfig) {
        let set = |slot: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                *slot = v.clone();
            }
        };
        set(&mut c.device, &self.device);
        set(&mut c.precision, &self.precision);
        macro_rules! over {
            ($($field:expr => $flag:expr),* $(,)?) => {$( if let Some(v) = $flag { $field = v; } )*};
        }
        over!(
            c.max_steps => self.max_steps,
            c.per_device_train_batch_size => self.batch_size,
            c.gradient_accumulation_steps => self.grad_accum,
            c.max_seq_length => self.seq_len,
            c.optim.learning_rate => self.lr,
            c.optim.warmup_steps => self.warmup_steps,
            c.optim.weight_decay => self.weight_decay,
            c.optim.max_grad_norm => self.max_grad_norm,
            c.save_steps => self.save_steps,
            c.seed => self.seed,
        );
        c.gradient_checkpointing |= self.gradient_checkpointing;
        c.group_by_length |= self.group_by_length;
    }

    /// A stage's settings: its TOML (`--train-config`) or defaults, then the
    /// training flags over its training part.
    pub fn resolve_stage<T: Default + serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        train: impl FnOnce(&mut T) -> &mut TrainConfig,
    ) -> Result<T> {
        let mut c = match &self.train_config {
            Some(path) => aha_trainer::run::read_settings(path)?,
            None => T::default(),
        };
        self.apply(train(&mut c));
        Ok(c)
    }

    pub fn control(&self) -> RunControl {
        RunControl { resume: self.resume, stop_after: None, progress: true }
    }
}

#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// A text file (documents separated by blank lines), a .jsonl with "text", or a built-in task (arith).
    #[arg(long)]
    pub corpus: Option<String>,
    /// A built-in task that writes its own corpus of worked examples (same as --corpus NAME).
    #[arg(long, conflicts_with = "corpus")]
    pub task: Option<String>,
    /// Examples a task writes.
    #[arg(long, default_value_t = 20_000)]
    pub examples: usize,
    /// Model config (model.toml or config.json with transformers' names) for fresh weights.
    #[arg(long, required_unless_present = "init")]
    pub config: Option<PathBuf>,
    /// Continue pre-training a checkpoint instead.
    #[arg(long, conflicts_with = "config")]
    pub init: Option<PathBuf>,
    /// tokenizer.json to use (default: the checkpoint's, or a byte-level BPE trained on the corpus).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub train: TrainFlags,
}

#[derive(Args, Debug)]
pub struct SftArgs {
    /// Checkpoint folder to fine-tune.
    #[arg(long)]
    pub init: PathBuf,
    /// A dataset (JSONL, JSON or Parquet, a file or a folder of shards) of
    /// {"prompt", "completion"} (or "response") or {"messages": [...]}, a
    /// recognised layout (see docs/datasets.md), or a built-in task (arith).
    #[arg(long)]
    pub data: String,
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Examples a task writes.
    #[arg(long, default_value_t = 5_000)]
    pub examples: usize,
    /// Prompt format: auto (the tokenizer's chat template, else r1-zero), chat, r1-zero, chatml, r1-distill, raw.
    #[arg(long, default_value = "auto")]
    pub template: String,
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub train: TrainFlags,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Checkpoint folder.
    #[arg(long)]
    pub init: PathBuf,
    /// A dataset of prompts ({"prompt"}, {"messages"} or a recognised
    /// layout; JSONL, JSON or Parquet), or a built-in task (arith).
    #[arg(long)]
    pub prompts: String,
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Prompts a task writes.
    #[arg(long, default_value_t = 16)]
    pub examples: usize,
    /// Samples per prompt (GRPO's G).
    #[arg(short, long, default_value_t = 1)]
    pub n: usize,
    /// Where the samples go (JSONL); the resolved settings go beside it.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "auto")]
    pub template: String,
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// Stop a sample once its text contains this (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value = "flex")]
    pub device: String,
    #[arg(long)]
    pub precision: Option<String>,
    /// Who samples: auto (the aha runtime on CPU, the trainer on a GPU), trainer or runtime.
    #[arg(long, default_value = "auto")]
    pub engine: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Checkpoint folder (config.json, model.safetensors, tokenizer.json).
    pub checkpoint: PathBuf,
    #[arg(short, long)]
    pub out: PathBuf,
    /// f32, f16, bf16, q8_0 or q4_0.
    #[arg(long, default_value = "q8_0")]
    pub dtype: String,
    /// Format of the output projection (default: the weights'; q8_0 for q4_0).
    #[arg(long)]
    pub output_dtype: Option<String>,
    /// Store NaN, infinite or out-of-range weights instead of refusing them.
    #[arg(long)]
    pub allow_non_finite: bool,
}

fn print_report(what: &str, out: &std::path::Path, r: &TrainReport) {
    if let Some(step) = r.resumed_from {
        eprintln!("resumed from step {step}");
    }
    eprintln!(
        "{what}: {} steps, final loss {:.4}, {:.0} target tokens/s (last step); model in {}, metrics in {}",
        r.steps,
        r.final_loss,
        r.tokens_per_s,
        out.display(),
        out.join("metrics.jsonl").display()
    );
}

pub fn pretrain(a: &PretrainArgs) -> Result<()> {
    let corpus = match (&a.corpus, &a.task) {
        (_, Some(task)) => Source::Task { name: task.clone(), examples: a.examples },
        (Some(text), None) => Source::parse(text, a.examples),
        (None, None) => bail!("give --corpus FILE or --task NAME"),
    };
    let init = match (&a.config, &a.init) {
        (Some(config), _) => Init::Config(config.clone()),
        (None, Some(dir)) => Init::Checkpoint(dir.clone()),
        (None, None) => bail!("give --config model.toml (fresh weights) or --init CHECKPOINT"),
    };
    let job = PretrainJob {
        corpus,
        init,
        tokenizer: a.tokenizer.clone(),
        out: a.out.clone(),
        train: a.train.resolve()?,
        control: a.train.control(),
    };
    let report = recipes::pretrain(&job)?;
    print_report("pretrain", &a.out, &report);
    Ok(())
}

pub fn sft(a: &SftArgs) -> Result<()> {
    let job = SftJob {
        init: a.init.clone(),
        data: Source::parse(&a.data, a.examples),
        data_options: a.dataset.options(),
        template: a.template.clone(),
        out: a.out.clone(),
        train: a.train.resolve()?,
        control: a.train.control(),
    };
    let report = recipes::sft(&job)?;
    if let Some(data) = &report.data {
        eprintln!("data: {}", data.summary());
    }
    if report.truncated > 0 || report.too_long > 0 {
        eprintln!(
            "note: of {} examples, {} were cut at --seq-len {} and {} left out (their prompt fills it, leaving no reply to learn)",
            report.examples, report.truncated, job.train.max_seq_length, report.too_long
        );
    }
    print_report("sft", &a.out, &report.train);
    Ok(())
}

pub fn generate(a: &GenerateArgs) -> Result<()> {
    let config = GenerateConfig {
        max_new_tokens: a.max_new_tokens,
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        stop_strings: a.stop.clone(),
        seed: a.seed,
        batch_size: a.batch_size,
        ..GenerateConfig::default()
    };
    let job = GenerateJob {
        init: a.init.clone(),
        prompts: Source::parse(&a.prompts, a.examples),
        data_options: a.dataset.options(),
        samples_per_prompt: a.n,
        template: a.template.clone(),
        out: a.out.clone(),
        config,
        device: a.device.clone(),
        precision: a.precision.clone().unwrap_or_default(),
        progress: true,
        engine: a.engine.clone(),
    };
    let stats = recipes::generate(&job)?;
    eprintln!(
        "generated {} samples, {} tokens in {:.1}s: {:.0} tokens/s; wrote {}",
        stats.sequences,
        stats.new_tokens,
        stats.seconds,
        stats.tokens_per_s,
        a.out.display()
    );
    Ok(())
}

pub fn export(a: &ExportArgs) -> Result<()> {
    if !a.checkpoint.join("tokenizer.json").exists() {
        eprintln!("note: {} has no tokenizer.json; the model file will carry none", a.checkpoint.display());
    }
    crate::commands::convert(&a.checkpoint, &a.out, &a.dtype, a.output_dtype.as_deref(), a.allow_non_finite)
}
