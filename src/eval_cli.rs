//! `aha eval` and `aha sample`: flags into the trainer's evaluator and
//! rejection sampler, then a table (or JSON) of what they found.

use std::io::Write;
use std::path::PathBuf;

use aha_trainer::eval::{evaluate, held_out_prompts, EvalConfig, EvalReport, EvalSet};
use aha_trainer::generate::GenerateConfig;
use aha_trainer::recipes::Source;
use aha_trainer::sample::{parse_pass_rate, rejection_sample, Filters, RejectionConfig, SamplingModel};
use anyhow::{bail, Context, Result};
use clap::Args;

use crate::dataset_cli::{CodeArgs, DatasetArgs};

/// Sampling flags shared by `eval` and `sample` (the paper's evaluation defaults).
#[derive(Args, Debug)]
pub struct SamplingFlags {
    #[arg(long, default_value_t = 0.6)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Seed of the samples, and of a built-in task's held-out prompts (as in training: seed ^ salt).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Prompt format: auto (the tokenizer's chat template, else r1-zero), r1-zero, chat, chatml, r1-distill, raw.
    #[arg(long, default_value = "auto")]
    pub template: String,
    #[arg(long, default_value_t = 512)]
    pub max_prompt_length: usize,
    /// Sequences per forward when the trainer samples.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// For a checkpoint: flex (CPU), wgpu or vulkan.
    #[arg(long, default_value = "flex")]
    pub device: String,
    #[arg(long, default_value = "")]
    pub precision: String,
    /// Who samples a checkpoint: auto (the runtime on CPU), trainer or runtime. A model file always runs in the runtime.
    #[arg(long, default_value = "auto")]
    pub engine: String,
    /// Runtime worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub code: CodeArgs,
}

impl SamplingFlags {
    fn generation(&self) -> GenerateConfig {
        GenerateConfig {
            max_new_tokens: self.max_new_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            seed: self.seed,
            batch_size: self.batch_size,
            ..GenerateConfig::default()
        }
    }

    fn open(&self, model: &std::path::Path) -> Result<SamplingModel> {
        self.code.configure()?;
        let mut m = SamplingModel::open(model, &self.device, &self.precision, &self.engine)
            .with_context(|| format!("cannot open {}", model.display()))?;
        if let Some(t) = self.threads {
            if t == 0 {
                bail!("--threads must be at least 1");
            }
            m.engine.set_threads(t);
        }
        Ok(m)
    }
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A trainer checkpoint folder, or an .aha model file (run in the runtime, in its own weight format).
    pub model: PathBuf,
    /// A built-in task (its held-out prompts) or a JSONL of prompts with answers.
    #[arg(long)]
    pub task: String,
    /// Prompts evaluated (a task's held-out ones; a file's first N).
    #[arg(long, default_value_t = 100)]
    pub prompts: usize,
    /// n: samples per prompt (pass@1 is their mean accuracy).
    #[arg(short, long, default_value_t = 8)]
    pub n: usize,
    /// The k of pass@k, comma-separated (default: 1 and n).
    #[arg(long, value_delimiter = ',')]
    pub k: Vec<usize>,
    /// The k of maj@k (default: n).
    #[arg(long, default_value_t = 0)]
    pub maj_k: usize,
    /// Test-time scaling: think budgets to evaluate at, comma-separated (s1's budget forcing).
    #[arg(long, value_delimiter = ',')]
    pub think_budget: Vec<usize>,
    /// Refuse </think> and end-of-sequence before N thinking tokens, writing --wait-text instead.
    #[arg(long, default_value_t = 0)]
    pub min_think: usize,
    #[arg(long, default_value = "Wait")]
    pub wait_text: String,
    /// Print JSON (one report per budget) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Folder for eval.json, samples.jsonl and the plot.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw accuracy against thinking tokens (PNG + SVG in --out).
    #[arg(long, requires = "out")]
    pub plot: bool,
    #[command(flatten)]
    pub sampling: SamplingFlags,
}

pub fn eval(a: &EvalArgs) -> Result<()> {
    let s = &a.sampling;
    let mut model = s.open(&a.model)?;
    let records = held_out_prompts(&Source::parse(&a.task, 0), &s.dataset.options(), a.prompts, s.seed)?;
    let format = aha_trainer::data::PromptFormat::from_name(&s.template, &model.tokenizer)?;
    let set = EvalSet::new(records, &model.tokenizer, &format, s.max_prompt_length)?;
    let budgets: Vec<Option<usize>> = if a.think_budget.is_empty() { vec![None] } else { a.think_budget.iter().map(|&b| Some(b)).collect() };
    let mut reports = Vec::new();
    let mut samples = String::new();
    for budget in budgets {
        let config = EvalConfig {
            samples: a.n,
            pass_k: a.k.clone(),
            maj_k: a.maj_k,
            generation: GenerateConfig { think_budget: budget, min_think: a.min_think, wait_text: a.wait_text.clone(), ..s.generation() },
        };
        let e = evaluate(&mut model.engine, model.model.as_ref(), &model.tokenizer, &set, &config)?;
        for (c, j) in e.completions.iter().zip(&e.judged) {
            let line = serde_json::json!({
                "think_budget": budget, "prompt_index": c.prompt_index, "sample_index": c.sample_index,
                "prompt": set.records[c.prompt_index].question(), "completion": c.text, "correct": j.correct,
                "formatted": j.formatted, "language": j.language, "tokens": j.length, "thinking": j.thinking,
            });
            samples.push_str(&line.to_string());
            samples.push('\n');
        }
        reports.push(e.report);
    }
    let json = serde_json::json!({
        "model": a.model, "task": a.task, "template": format.name(), "temperature": s.temperature, "top_p": s.top_p,
        "reports": reports,
    });
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        aha_trainer::fsutil::write_atomic(&dir.join("eval.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
        aha_trainer::fsutil::write_atomic(&dir.join("samples.jsonl"), samples.as_bytes())?;
        if a.plot {
            let points: Vec<(f64, f64)> = reports.iter().map(|r| (r.think_length, r.pass_at_1)).collect();
            let series = [aha_trainer::plot::Series { label: a.model.display().to_string(), points }];
            for path in aha_trainer::plot::plot_xy(dir, "think-budget", "Accuracy against thinking tokens", "mean thinking tokens", "pass@1", &series)? {
                eprintln!("wrote {}", path.display());
            }
        }
    }
    let mut stdout = std::io::stdout().lock();
    if a.json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        write!(stdout, "{}", table(&reports))?;
    }
    Ok(())
}

/// The reports as an aligned text table, one row per think budget.
pub fn table(reports: &[EvalReport]) -> String {
    let Some(first) = reports.first() else { return String::new() };
    let mut header = vec!["budget".to_string(), "pass@1".into()];
    header.extend(first.pass_at_k.keys().filter(|&&k| k != 1).map(|k| format!("pass@{k}")));
    header.extend([format!("maj@{}", first.maj_k), "format".into(), "lang".into(), "len".into(), "think".into(), "reflect".into(), "tok/s".into()]);
    let mut rows = vec![header];
    for r in reports {
        let pct = |v: f64| format!("{:.1}", 100.0 * v);
        let mut row = vec![r.think_budget.map_or("-".to_string(), |b| b.to_string()), pct(r.pass_at_1)];
        row.extend(r.pass_at_k.iter().filter(|(&k, _)| k != 1).map(|(_, &v)| pct(v)));
        row.extend([
            pct(r.maj_at_k),
            pct(r.format_rate),
            pct(r.language_consistency),
            format!("{:.1}", r.completion_length),
            format!("{:.1}", r.think_length),
            pct(r.reflection_rate),
            format!("{:.0}", r.tokens_per_s),
        ]);
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = format!("{} prompts x {} samples (accuracy, format, language and reflection in %)\n", first.prompts, first.samples);
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:>w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// The model that writes the samples: a checkpoint folder or an .aha file.
    #[arg(long)]
    pub init: PathBuf,
    /// A built-in task (its training prompts) or a JSONL of prompts with answers.
    #[arg(long)]
    pub prompts: String,
    /// Prompts a built-in task generates.
    #[arg(long, default_value_t = 200)]
    pub examples: usize,
    /// N: samples per prompt.
    #[arg(short, long, default_value_t = 4)]
    pub n: usize,
    /// Where the kept samples go: {"prompt", "response", "reward", ...} lines that `aha sft --data` reads.
    #[arg(long)]
    pub out: PathBuf,
    /// Filters, comma-separated: verified, format, one-language, dedupe.
    #[arg(long, default_value = "verified,format,one-language,dedupe")]
    pub filter: String,
    /// Keep only prompts whose pass rate lies in MIN:MAX (e.g. 0.1:0.9).
    #[arg(long)]
    pub pass_rate: Option<String>,
    /// Least language consistency `one-language` accepts (share of CoT words in the prompt's language).
    #[arg(long, default_value_t = 1.0)]
    pub min_language: f32,
    /// Best-of-N: keep the highest-scored kept sample per prompt by this reward-model checkpoint.
    #[arg(long)]
    pub best_of: Option<PathBuf>,
    #[command(flatten)]
    pub sampling: SamplingFlags,
}

pub fn sample(a: &SampleArgs) -> Result<()> {
    let s = &a.sampling;
    let mut model = s.open(&a.init)?;
    let records = match Source::parse(&a.prompts, a.examples) {
        Source::Task { name, examples } => {
            let task = aha_trainer::tasks::task_by_name(&name).context("unknown task")?;
            aha_trainer::tasks::prompt_records(task.as_ref(), examples, s.seed)
        }
        Source::File(path) => aha_trainer::data::read_prompts_for_sampling(&path, &s.dataset.options())?.records,
    };
    let config = RejectionConfig {
        samples: a.n,
        filters: Filters::parse(&a.filter)?,
        pass_rate: a.pass_rate.as_deref().map(parse_pass_rate).transpose()?,
        min_language: a.min_language,
        generation: s.generation(),
    };
    let rm = match &a.best_of {
        Some(dir) => Some(aha_trainer::reward_model::RewardModelReward::load(dir, &aha_trainer::device::DeviceChoice::Flex.device())?),
        None => None,
    };
    let best: Option<&dyn aha_trainer::rewards::Reward> = rm.as_ref().map(|r| r as &dyn aha_trainer::rewards::Reward);
    let (kept, counts) = rejection_sample(&mut model, &records, &s.template, s.max_prompt_length, &config, best, &a.out)?;
    eprintln!("sampled {} outputs of {} prompts", counts.samples, counts.prompts);
    for (name, samples, prompts) in &counts.after {
        eprintln!("  after {name:<12} {samples:>6} samples of {prompts:>5} prompts");
    }
    eprintln!("kept {} samples; wrote {}", kept.len(), a.out.display());
    Ok(())
}
