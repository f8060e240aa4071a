//! The jobs behind `aha pretrain` and `aha sft`: where the text, the
//! tokenizer and the first weights come from, then [`train::train`].

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::checkpoint::load_model;
use crate::config::{read_config, Config};
use crate::data::{pack, read_corpus, read_examples, read_prompts_for_sampling, tokenize_sft, DataOptions, PromptFormat, ReadStats, SftRecord};
use crate::device::DeviceChoice;
use crate::generate::{Finish, GenerateConfig, GenerateStats};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::model::CausalLm;
use crate::tasks::{prompt_records, sft_records, task_by_name, write_corpus, TASK_NAMES};
use crate::tokenizer::TextTokenizer;
use crate::train::{train, Row, RunControl, TrainConfig, TrainReport};

/// Where text comes from: a file, or a built-in task that writes its own.
#[derive(Clone, Debug)]
pub enum Source {
    File(PathBuf),
    Task { name: String, examples: usize },
}

impl Source {
    /// `--corpus` / `--data` accept either a path or a task name.
    pub fn parse(text: &str, examples: usize) -> Source {
        if TASK_NAMES.contains(&text) && !Path::new(text).exists() {
            Source::Task { name: text.to_string(), examples }
        } else {
            Source::File(PathBuf::from(text))
        }
    }
}

/// Where the model comes from.
#[derive(Clone, Debug)]
pub enum Init {
    /// Fresh weights for this config (`model.toml` or `config.json`).
    Config(PathBuf),
    /// A checkpoint folder to continue from.
    Checkpoint(PathBuf),
}

#[derive(Clone, Debug)]
pub struct PretrainJob {
    pub corpus: Source,
    pub init: Init,
    /// A tokenizer.json to use; otherwise the checkpoint's, or a byte-level
    /// BPE trained on the corpus (vocab = the config's `vocab_size`).
    pub tokenizer: Option<PathBuf>,
    pub out: PathBuf,
    pub train: TrainConfig,
    pub control: RunControl,
}

fn task(name: &str) -> Result<Box<dyn crate::tasks::Task>> {
    task_by_name(name).ok_or_else(|| Error::Usage(format!("unknown task `{name}` (built-in: {})", TASK_NAMES.join(", "))))
}

/// Causal-LM pre-training on packed documents.
pub fn pretrain(job: &PretrainJob) -> Result<TrainReport> {
    let texts = match &job.corpus {
        Source::File(path) => read_corpus(path)?,
        Source::Task { name, examples } => {
            let texts = write_corpus(task(name)?.as_ref(), *examples, job.train.seed);
            std::fs::create_dir_all(&job.out).map_err(crate::error::at(&job.out))?;
            write_atomic(&job.out.join("corpus.txt"), texts.join("\n\n").as_bytes())?;
            texts
        }
    };
    if texts.is_empty() {
        return Err(Error::Usage("the corpus has no documents".into()));
    }
    let config = match &job.init {
        Init::Config(path) => read_config(path)?,
        Init::Checkpoint(dir) => read_config(dir)?,
    };
    let saved = job.out.join("tokenizer.json");
    let tokenizer = match (&job.tokenizer, &job.init) {
        (Some(path), _) => TextTokenizer::from_file(path)?,
        (None, Init::Checkpoint(dir)) => TextTokenizer::from_dir(dir)?,
        // A resumed run must see the tokens it started with.
        (None, Init::Config(_)) if job.control.resume && saved.exists() => TextTokenizer::from_dir(&job.out)?,
        (None, Init::Config(_)) => {
            // No chat template: the corpus is in R1-Zero's format, so `auto`
            // must pick that for this model, not ChatML.
            let trained = TextTokenizer::train_bpe(&texts, config.vocab_size as usize)?.with_chat_template(None);
            trained.save_dir(&job.out)?;
            trained
        }
    };
    check_vocab(&tokenizer, &config)?;
    let eos = tokenizer.eos_id().ok_or_else(|| Error::Tokenizer("no end-of-text token to separate documents".into()))?;
    let documents = texts.iter().map(|t| tokenizer.encode(t)).collect::<Result<Vec<_>>>()?;
    let rows: Vec<Row> = pack(&documents, eos, job.train.max_seq_length)
        .into_iter()
        .map(|ids| {
            let mut targets = vec![true; ids.len()];
            targets[0] = false;
            Row { ids, targets }
        })
        .collect();
    if rows.is_empty() {
        return Err(Error::Usage(format!(
            "the corpus is shorter than one sequence of {} tokens; lower max_seq_length",
            job.train.max_seq_length
        )));
    }
    let model = initial_model(&job.init, &config, &job.train)?;
    let (_, report) = train(model, &tokenizer, &rows, &job.train, &job.out, job.control)?;
    Ok(report)
}

#[derive(Clone, Debug)]
pub struct SftJob {
    pub init: PathBuf,
    pub data: Source,
    /// How a dataset file is read: columns, split, bad rows.
    pub data_options: DataOptions,
    /// Prompt format name (`auto`, `r1-zero`, `chatml`, `chat`, `raw`, ...).
    pub template: String,
    pub out: PathBuf,
    pub train: TrainConfig,
    pub control: RunControl,
}

/// How an SFT run went: the training, and what became of the examples.
#[derive(Clone, Debug)]
pub struct SftReport {
    pub train: TrainReport,
    /// What reading the dataset found (`None` for a built-in task).
    pub data: Option<ReadStats>,
    /// Examples read.
    pub examples: usize,
    /// Examples cut at `max_seq_length` (trained on their first tokens).
    pub truncated: usize,
    /// Examples left out: their prompt fills `max_seq_length`, leaving no
    /// reply token to learn.
    pub too_long: usize,
}

/// Supervised fine-tuning: loss on the response tokens only. Examples are
/// tokenized as they are read (a dataset is never held in memory whole, nor
/// a long example's text beyond the tokens it keeps).
pub fn sft(job: &SftJob) -> Result<SftReport> {
    let tokenizer = TextTokenizer::from_dir(&job.init)?;
    let format = PromptFormat::from_name(&job.template, &tokenizer)?;
    let max_len = job.train.max_seq_length + 1;
    let mut rows = Vec::new();
    let (mut examples, mut truncated, mut too_long) = (0, 0, 0);
    let mut add = |record: SftRecord| -> Result<()> {
        examples += 1;
        let t = tokenize_sft(&record, &tokenizer, &format, max_len)?;
        truncated += usize::from(t.truncated);
        if t.num_targets() > 0 {
            rows.push(Row { ids: t.ids, targets: t.loss_mask });
        } else {
            too_long += 1;
        }
        Ok(())
    };
    let data = match &job.data {
        Source::File(path) => Some(read_examples(path, &job.data_options, &mut add)?),
        Source::Task { name, examples } => {
            for record in sft_records(task(name)?.as_ref(), *examples, job.train.seed) {
                add(record)?;
            }
            None
        }
    };
    if rows.is_empty() {
        let what = match &job.data {
            Source::File(path) => path.display().to_string(),
            Source::Task { name, .. } => format!("task {name}"),
        };
        return Err(Error::Usage(format!(
            "{what}: none of its {examples} examples has a reply within {max_len} tokens (their prompts fill max_seq_length {}); raise --seq-len",
            job.train.max_seq_length
        )));
    }
    let config = read_config(&job.init)?;
    check_vocab(&tokenizer, &config)?;
    let model = initial_model(&Init::Checkpoint(job.init.clone()), &config, &job.train)?;
    let (_, report) = train(model, &tokenizer, &rows, &job.train, &job.out, job.control)?;
    Ok(SftReport { train: report, data, examples, truncated, too_long })
}

fn check_vocab(tokenizer: &TextTokenizer, config: &Config) -> Result<()> {
    if tokenizer.vocab_size() > config.vocab_size as usize {
        return Err(Error::Config(format!(
            "the tokenizer has {} tokens but the model's vocab_size is {}",
            tokenizer.vocab_size(),
            config.vocab_size
        )));
    }
    Ok(())
}

/// The model training starts from, on the training device, in its precision.
fn initial_model(init: &Init, config: &Config, train: &TrainConfig) -> Result<CausalLm> {
    let device = train.device()?;
    let model = match init {
        Init::Config(_) => {
            device.seed(train.seed);
            CausalLm::init(config, &device)
        }
        Init::Checkpoint(dir) => load_model(dir, &device)?,
    };
    Ok(model.with_compute(train.precision()?.dtype()))
}

/// `aha generate`: samples for each prompt, with log-probs, as JSONL.
#[derive(Clone, Debug)]
pub struct GenerateJob {
    pub init: PathBuf,
    pub prompts: Source,
    /// How a dataset file is read: columns, split, bad rows.
    pub data_options: DataOptions,
    pub samples_per_prompt: usize,
    pub template: String,
    pub out: PathBuf,
    pub config: GenerateConfig,
    pub device: String,
    /// Empty: the device's default.
    pub precision: String,
    pub progress: bool,
    /// Who samples: `auto` (the runtime on CPU), `trainer` or `runtime`.
    pub engine: String,
}

/// One line of `aha generate`'s output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SampleLine {
    pub prompt_index: usize,
    pub sample_index: usize,
    pub prompt: String,
    pub completion: String,
    pub answer: Option<String>,
    pub finish: String,
    pub token_ids: Vec<u32>,
    pub logprobs: Vec<f32>,
}

/// Runs a [`GenerateJob`]: writes the samples (atomically), the resolved
/// settings beside them (`<out>.config.json`) and one metrics line
/// (`<out>.metrics.jsonl`).
pub fn generate(job: &GenerateJob) -> Result<GenerateStats> {
    let choice: DeviceChoice = job.device.parse()?;
    let precision = choice.precision(&job.precision)?;
    let device = choice.device();
    let tokenizer = TextTokenizer::from_dir(&job.init)?;
    let format = PromptFormat::from_name(&job.template, &tokenizer)?;
    let records = match &job.prompts {
        Source::File(path) => read_prompts_for_sampling(path, &job.data_options)?.records,
        Source::Task { name, examples } => prompt_records(task(name)?.as_ref(), *examples, job.config.seed),
    };
    if records.is_empty() {
        return Err(Error::Usage("no prompts".into()));
    }
    let texts = records.iter().map(|r| format.render_prompt(&r.messages)).collect::<Result<Vec<_>>>()?;
    let prompts = texts.iter().map(|t| tokenizer.encode(t)).collect::<Result<Vec<_>>>()?;
    let model = load_model(&job.init, &device)?.with_compute(precision.dtype());

    let bar = if job.progress { ProgressBar::new(prompts.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} prompts {pos}/{len} [{bar:30}] {msg}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut engine = crate::grpo::rollout::Engine::named(&job.engine, choice)?;
    engine.refresh(&model, &tokenizer)?;
    let per_call = (job.config.batch_size / job.samples_per_prompt.max(1)).max(1);
    let mut completions = Vec::new();
    let mut total = GenerateStats::default();
    for (chunk_index, chunk) in prompts.chunks(per_call).enumerate() {
        let config = GenerateConfig { first_prompt_index: chunk_index * per_call, ..job.config.clone() };
        let (done, stats) = engine.generate_with_stats(Some(&model), &tokenizer, chunk, job.samples_per_prompt, &config)?;
        completions.extend(done);
        total.sequences += stats.sequences;
        total.new_tokens += stats.new_tokens;
        total.prompt_tokens += stats.prompt_tokens;
        total.seconds += stats.seconds;
        total.tokens_per_s = total.new_tokens as f64 / total.seconds.max(1e-9);
        bar.inc(chunk.len() as u64);
        bar.set_message(format!("{:.0} tok/s", total.tokens_per_s));
    }
    bar.finish_and_clear();

    let mut lines = String::new();
    for c in &completions {
        let record = &records[c.prompt_index];
        let line = SampleLine {
            prompt_index: c.prompt_index,
            sample_index: c.sample_index,
            prompt: texts[c.prompt_index].clone(),
            completion: c.text.clone(),
            answer: record.reference.answer.clone(),
            finish: match &c.finish {
                Finish::Eos => "eos".into(),
                Finish::Length => "length".into(),
                Finish::Stop(s) => format!("stop:{s}"),
            },
            token_ids: c.ids.clone(),
            logprobs: c.logprobs.clone(),
        };
        lines.push_str(&serde_json::to_string(&line).map_err(|e| Error::Config(e.to_string()))?);
        lines.push('\n');
    }
    write_atomic(&job.out, lines.as_bytes())?;
    let resolved = serde_json::json!({
        "init": job.init, "prompts": format!("{:?}", job.prompts), "samples_per_prompt": job.samples_per_prompt,
        "template": format.name(), "device": choice.to_string(), "precision": precision.to_string(),
        "generation": job.config,
    });
    let side = |suffix: &str| {
        let mut name = job.out.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        job.out.with_file_name(name)
    };
    write_atomic(&side(".config.json"), serde_json::to_string_pretty(&resolved).unwrap_or_default().as_bytes())?;
    let metrics = serde_json::json!({
        "sequences": total.sequences, "new_tokens": total.new_tokens, "prompt_tokens": total.prompt_tokens,
        "seconds": total.seconds, "tokens_per_s": total.tokens_per_s,
    });
    write_atomic(&side(".metrics.jsonl"), format!("{metrics}\n").as_bytes())?;
    Ok(total)
}
