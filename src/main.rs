//! `aha`: the command-line program. Argument parsing and dispatch only; the
//! work lives in the library crates.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

mod commands;
mod dataset_cli;
mod distill_cli;
mod eval_cli;
mod grpo_cli;
mod pipeline_cli;
mod score_cli;
mod train_cli;

#[derive(Parser)]
#[command(name = "aha", version, about = "R1-style reasoning: train, distil, and run small students on small devices")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a Hugging Face checkpoint folder into an .aha model file.
    Convert {
        /// Folder with config.json, *.safetensors and (optionally) tokenizer.json.
        hf_dir: PathBuf,
        #[arg(short, long)]
        out: PathBuf,
        /// Weight format: f32, f16, bf16, q8_0 or q4_0.
        #[arg(long, default_value = "f16")]
        dtype: String,
        /// Format of the output projection (default: the weights' format; q8_0 for q4_0).
        #[arg(long)]
        output_dtype: Option<String>,
        /// Store NaN, infinite or out-of-range weights instead of refusing them.
        #[arg(long)]
        allow_non_finite: bool,
    },
    /// Generate text from a prompt, streaming it, then print tokens/s.
    Run(commands::RunArgs),
    /// Print logits as JSON for a token sequence (parity checks).
    Logits {
        model: PathBuf,
        /// Comma-separated token ids.
        #[arg(long)]
        tokens: String,
        /// Every position's logits, not only the last.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 1, value_parser = commands::parse_threads)]
        threads: usize,
        /// Skip checking every tensor's CRC-32 when loading.
        #[arg(long)]
        no_verify: bool,
    },
    /// Print the token ids of a text as JSON.
    Tokenize {
        /// An .aha model file or a tokenizer.json.
        tokenizer: PathBuf,
        /// The text; `-` reads it from standard input.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        text: Option<String>,
        /// Read the text from this file instead.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print the text of comma-separated token ids.
    Detokenize {
        /// An .aha model file or a tokenizer.json.
        tokenizer: PathBuf,
        ids: String,
    },
    /// Measure prompt and decode speed (tokens/s, GB/s of weights) on a model
    /// file, or on a random 122M Qwen2 (768 wide, 12 layers, 12/2 heads, vocab 32000).
    Bench(commands::BenchArgs),
    /// Pre-train a causal LM from scratch (or continue one) on a corpus or a built-in task.
    Pretrain(train_cli::PretrainArgs),
    /// Supervised fine-tuning on prompt/response or chat JSONL (loss on responses only).
    Sft(train_cli::SftArgs),
    /// Sample completions with their log-probs from a checkpoint (batched, KV cache).
    Generate(train_cli::GenerateArgs),
    /// Write a checkpoint as the runtime's .aha file, tokenizer inside.
    Export(train_cli::ExportArgs),
    /// R1-Zero: GRPO with rule-based rewards on a task or a prompt JSONL.
    Grpo(grpo_cli::GrpoArgs),
    /// Score given completions with rewards (each and the totals), as a run would.
    Score(score_cli::ScoreArgs),
    /// Charts of a run (reward, accuracy, response length, KL/entropy) as PNG and SVG.
    Plot(grpo_cli::PlotArgs),
    /// Evaluate a checkpoint or an .aha file on a task: pass@1, pass@k, maj@k, format, language, lengths, think budgets.
    Eval(eval_cli::EvalArgs),
    /// Rejection sampling: N samples per prompt, keep the verified, well-formed, one-language ones (SFT data).
    Sample(eval_cli::SampleArgs),
    /// Distil a teacher into a student: SFT on its filtered traces (seq) or token-level KD (kd).
    Distill(distill_cli::DistillArgs),
    /// Train a Bradley-Terry reward model on preference pairs (or pairs made from a task).
    RewardModel(distill_cli::RewardModelArgs),
    /// The whole R1 recipe, stage by stage (resumable), ending in report.md.
    Pipeline(pipeline_cli::PipelineArgs),
    /// Show a model file: architecture, tensors, memory at a context length.
    Inspect {
        model: PathBuf,
        #[arg(long, default_value_t = 4096)]
        context: usize,
        /// Read every tensor and check its checksum.
        #[arg(long)]
        verify: bool,
        /// Flash and RAM on a microcontroller (firmware/cortex-m) and whether it
        /// fits this board: cortex-m4 (= mps2-an386), stm32f4, stm32f411, nrf52840, stm32f7, stm32h7, rp2350.
        #[arg(long)]
        target: Option<String>,
    },
}

/// The exit status when the reader of our output went away: what a shell
/// reports for a Unix tool killed by SIGPIPE (128 + 13).
const BROKEN_PIPE_STATUS: i32 = 141;

fn main() {
    quiet_on_broken_pipe();
    if let Err(e) = dispatch(Cli::parse()) {
        if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// `println!` and `eprintln!` panic when their pipe is closed (Rust ignores
/// SIGPIPE): such a panic, wherever it happens, ends the program quietly,
/// as a Unix tool ends when `| head` stops reading. Every other panic keeps
/// the default report.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
        if message.is_some_and(|m| m.starts_with("failed printing to std") && m.contains("Broken pipe")) {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
        default(info)
    }));
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Convert { hf_dir, out, dtype, output_dtype, allow_non_finite } => {
            commands::convert(&hf_dir, &out, &dtype, output_dtype.as_deref(), allow_non_finite)
        }
        Command::Run(args) => commands::run(&args),
        Command::Logits { model, tokens, all, threads, no_verify } => {
            commands::logits(&model, &parse_ids(&tokens)?, all, threads, !no_verify)
        }
        Command::Tokenize { tokenizer, text, file } => {
            let source = match (text, file) {
                (_, Some(file)) => commands::TextSource::File(file),
                (Some(text), None) if text == "-" => commands::TextSource::Stdin,
                (Some(text), None) => commands::TextSource::Arg(text),
                (None, None) => bail!("give the text, `-` for standard input, or --file PATH"),
            };
            commands::tokenize(&tokenizer, &source)
        }
        Command::Detokenize { tokenizer, ids } => commands::detokenize(&tokenizer, &parse_ids(&ids)?),
        Command::Bench(args) => commands::bench(&args),
        Command::Pretrain(args) => train_cli::pretrain(&args),
        Command::Sft(args) => train_cli::sft(&args),
        Command::Generate(args) => train_cli::generate(&args),
        Command::Export(args) => train_cli::export(&args),
        Command::Grpo(args) => grpo_cli::grpo(&args),
        Command::Score(args) => score_cli::score(&args),
        Command::Plot(args) => grpo_cli::plot(&args),
        Command::Eval(args) => eval_cli::eval(&args),
        Command::Sample(args) => eval_cli::sample(&args),
        Command::Distill(args) => distill_cli::distill(&args),
        Command::RewardModel(args) => distill_cli::reward_model(&args),
        Command::Pipeline(args) => pipeline_cli::pipeline(&args),
        Command::Inspect { model, context, verify, target } => {
            commands::inspect(&model, context, verify, target.as_deref())
        }
    }
}

/// "1,2, 3" -> [1, 2, 3]; the error names the item that is not an id (an
/// empty one, as in "1,,2" or "1,2,", too: a typo there must not silently
/// drop a token).
fn parse_ids(text: &str) -> Result<Vec<u32>> {
    if text.trim().is_empty() {
        bail!("no token ids given");
    }
    let mut ids = Vec::new();
    for (i, item) in text.split(',').map(str::trim).enumerate() {
        if item.is_empty() {
            bail!("`{text}`: item {} is empty (give comma-separated token ids, like 1,2,3)", i + 1);
        }
        ids.push(item.parse().with_context(|| format!("`{item}` is not a token id"))?);
    }
    Ok(ids)
}
