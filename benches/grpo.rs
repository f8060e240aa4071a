//! One GRPO step on flex (CPU) — sampling, scoring, the update — on a ~4M
//! Qwen2 (256 wide, 4 layers, 4 heads / 2 KV heads, intermediate 768, BPE
//! vocab ~1k, tied), 8 prompts × G = 8, 64 new tokens per output, with each
//! rollout engine. Criterion times the steps themselves (the run's own
//! `step_time_s`, not its set-up); the share of the step spent generating
//! and both token rates are printed from the run's metrics.
//! Run: `cargo bench --bench grpo`.

use std::path::Path;
use std::time::Duration;

use aha_trainer::checkpoint::save_model;
use aha_trainer::config::parse_config_toml;
use aha_trainer::grpo::{grpo, GrpoConfig, GrpoJob};
use aha_trainer::model::CausalLm;
use aha_trainer::recipes::Source;
use aha_trainer::tasks::{task_by_name, write_corpus};
use aha_trainer::tokenizer::TextTokenizer;
use aha_trainer::train::{special_ids, RunControl};
use burn::tensor::Device;
use criterion::{criterion_group, criterion_main, Criterion};

const MODEL: &str = include_str!("../configs/qwen2-4m.toml");

/// A random policy with a BPE tokenizer trained on the arithmetic corpus.
fn policy(dir: &Path) {
    let corpus = write_corpus(task_by_name("arith").unwrap().as_ref(), 500, 0);
    let tokenizer = TextTokenizer::train_bpe(&corpus, 1024).unwrap();
    let mut config = parse_config_toml(MODEL).unwrap();
    config.vocab_size = tokenizer.vocab_size() as u32;
    let device = Device::flex();
    device.seed(2);
    save_model(&CausalLm::init(&config, &device), dir, special_ids(&tokenizer)).unwrap();
    tokenizer.save_dir(dir).unwrap();
}

fn step(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    policy(dir.path());
    let mut group = c.benchmark_group("grpo/qwen2-4m");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    for engine in ["runtime", "trainer"] {
        group.bench_function(format!("step 8x8x64 {engine} rollouts"), |b| {
            b.iter_custom(|iters| {
                let out = dir.path().join(format!("run-{engine}"));
                let _ = std::fs::remove_dir_all(&out);
                let config = GrpoConfig {
                    max_steps: iters,
                    prompts_per_step: 8,
                    num_generations: 8,
                    max_completion_length: 64,
                    eval_steps: 0,
                    save_steps: u64::MAX,
                    rollout_engine: engine.into(),
                    ..GrpoConfig::default()
                };
                let job = GrpoJob {
                    data: Default::default(),
                    init: dir.path().to_path_buf(),
                    task: Source::Task { name: "arith".into(), examples: 0 },
                    eval: None,
                    out: out.clone(),
                    config,
                    control: RunControl::default(),
                };
                grpo(&job).unwrap();
                let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
                let lines: Vec<serde_json::Value> = metrics.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
                let mean = |k: &str| lines.iter().map(|v| v[k].as_f64().unwrap_or(0.0)).sum::<f64>() / lines.len() as f64;
                eprintln!(
                    "  {engine}: {:.2} s/step, generation {:.0}% of it at {:.0} tok/s, update {:.0} tok/s",
                    mean("step_time_s"),
                    100.0 * mean("gen_time_share"),
                    mean("gen_tokens_per_s"),
                    mean("train_tokens_per_s")
                );
                Duration::from_secs_f64(lines.iter().map(|v| v["step_time_s"].as_f64().unwrap_or(0.0)).sum())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, step);
criterion_main!(benches);
