//! What the trainer's integration tests share: a tiny base model
//! pre-trained briefly on easy arithmetic (built once, cached under the
//! target folder), and prompt files of the same problems.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use aha_trainer::data::{Message, PromptFormat};
use aha_trainer::recipes::{pretrain, Init, PretrainJob, Source};
use aha_trainer::tasks::{r1_completion, Arith, Task};
use aha_trainer::train::{RunControl, TrainConfig};

pub const TINY: &str = r#"
model_type = "qwen2"
vocab_size = 1024
hidden_size = 64
intermediate_size = 128
num_hidden_layers = 2
num_attention_heads = 4
num_key_value_heads = 2
max_position_embeddings = 256
tie_word_embeddings = true
"#;

/// Two-operand sums and products of 1..9: easy enough that a briefly
/// pre-trained tiny model is right some of the time, not always.
pub fn easy() -> Arith {
    Arith { max_operand: 9, min_operands: 2, max_operands: 2, parentheses: 0.0, ..Arith::default() }
}

/// The base model: pre-trained briefly on worked easy problems. Built once
/// and kept under the target folder (a version in the name: change it when
/// the recipe changes).
pub fn base() -> PathBuf {
    static BASE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BASE.get_or_init(build_base).clone()
}

fn build_base() -> PathBuf {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("grpo-base-v8");
    if cache.join("model.safetensors").exists() {
        return cache;
    }
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let corpus = work.path().join("corpus.txt");
    let mut rng = aha_runtime::sampler::Rng::new(1);
    let docs: Vec<String> = (0..3000)
        .map(|_| {
            let p = easy().problem(&mut rng);
            // Half the demonstrations put the answer where no verifier reads
            // it: the base model does either, and only the reward tells it which.
            let mut reply = r1_completion(&p);
            if rng.next_u32() % 2 == 0 {
                reply = reply.replace("answer>", "result>");
            }
            PromptFormat::R1Zero.render_conversation(&[Message::system(""), Message::user(p.question.as_str()), Message::assistant(reply)]).unwrap()
        })
        .collect();
    std::fs::write(&corpus, docs.join("\n\n")).unwrap();
    let config = work.path().join("model.toml");
    std::fs::write(&config, TINY).unwrap();
    // Rows of 128 tokens hold each ~90-token document whole (the packing
    // never splits one that fits); 8 rows a step.
    let mut train =
        TrainConfig { max_steps: 1000, per_device_train_batch_size: 8, max_seq_length: 128, save_steps: 1000, ..TrainConfig::default() };
    train.optim.learning_rate = 3e-3;
    train.optim.warmup_steps = 5;
    let out = work.path().join("run");
    let job = PretrainJob {
        corpus: Source::File(corpus),
        init: Init::Config(config),
        tokenizer: None,
        out: out.clone(),
        train,
        control: RunControl::default(),
    };
    pretrain(&job).unwrap();
    std::fs::remove_dir_all(out.join("checkpoints")).unwrap();
    // Another test process may have won the race; either copy is the same.
    let _ = std::fs::rename(&out, &cache);
    cache
}

/// Easy prompts as JSONL (train and held-out come from different seeds).
pub fn prompts(dir: &Path, name: &str, n: usize, seed: u64) -> PathBuf {
    let mut rng = aha_runtime::sampler::Rng::new(seed);
    let lines: Vec<String> = (0..n)
        .map(|_| {
            let p = easy().problem(&mut rng);
            let messages = [serde_json::json!({"role": "system", "content": ""}), serde_json::json!({"role": "user", "content": p.question})];
            serde_json::json!({ "messages": messages, "answer": p.answer }).to_string()
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

