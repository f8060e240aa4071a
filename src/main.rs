//! `aha`: the command-line program. Argument parsing and dispatch only; the
//! work lives in the library crates.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

mod commands;
mod grpo_cli;
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
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Print the token ids of a text as JSON.
    Tokenize {
        /// An .aha model file or a tokenizer.json.
        tokenizer: PathBuf,
        text: String,
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
    /// Charts of a run (reward, accuracy, response length, KL/entropy) as PNG and SVG.
    Plot(grpo_cli::PlotArgs),
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

fn main() {
    if let Err(e) = dispatch(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Convert { hf_dir, out, dtype, output_dtype } => {
            commands::convert(&hf_dir, &out, &dtype, output_dtype.as_deref())
        }
        Command::Run(args) => commands::run(&args),
        Command::Logits { model, tokens, all, threads } => commands::logits(&model, &parse_ids(&tokens)?, all, threads),
        Command::Tokenize { tokenizer, text } => commands::tokenize(&tokenizer, &text),
        Command::Detokenize { tokenizer, ids } => commands::detokenize(&tokenizer, &parse_ids(&ids)?),
        Command::Bench(args) => commands::bench(&args),
        Command::Pretrain(args) => train_cli::pretrain(&args),
        Command::Sft(args) => train_cli::sft(&args),
        Command::Generate(args) => train_cli::generate(&args),
        Command::Export(args) => train_cli::export(&args),
        Command::Grpo(args) => grpo_cli::grpo(&args),
        Command::Plot(args) => grpo_cli::plot(&args),
        Command::Inspect { model, context, verify, target } => {
            commands::inspect(&model, context, verify, target.as_deref())
        }
    }
}

/// "1,2, 3" -> [1, 2, 3]; the error names the item that is not an id.
fn parse_ids(text: &str) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        ids.push(item.parse().with_context(|| format!("`{item}` is not a token id"))?);
    }
    if ids.is_empty() {
        bail!("no token ids given");
    }
    Ok(ids)
}
