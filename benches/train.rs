//! Trainer speed on flex (CPU): target tokens/s of one optimizer step
//! (forward, backward, AdamW) and completion tokens/s of batched generation
//! with the KV cache, on a ~4M-parameter Qwen2 (256 wide, 4 layers, 4 heads /
//! 2 KV heads, intermediate 768, vocab 4096, tied embeddings).
//! Run: `cargo bench --bench train`.

use std::time::Duration;

use aha_trainer::config::parse_config_toml;
use aha_trainer::generate::{generate, GenerateConfig};
use aha_trainer::model::{CausalLm, Inputs};
use aha_trainer::optim::{AdamW, GradSum, OptimConfig};
use aha_trainer::params::take_grads;
use aha_trainer::tasks::{task_by_name, write_corpus};
use aha_trainer::tokenizer::TextTokenizer;
use burn::tensor::{Device, Int, Tensor, TensorData};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const MODEL: &str = include_str!("../configs/qwen2-4m.toml");

const BATCH: usize = 8;
const SEQ: usize = 128;

fn rows(vocab: u32) -> Vec<Vec<u32>> {
    (0..BATCH).map(|b| (0..=SEQ).map(|i| ((i * 31 + b * 17) as u32) % vocab).collect()).collect()
}

fn training_step(c: &mut Criterion) {
    let config = parse_config_toml(MODEL).unwrap();
    let device = Device::flex().autodiff();
    device.seed(1);
    let mut model = Some(CausalLm::init(&config, &device));
    let mut optim = AdamW::new(OptimConfig::default());
    let data = rows(config.vocab_size);
    let inputs: Vec<Vec<u32>> = data.iter().map(|r| r[..SEQ].to_vec()).collect();
    let targets: Vec<i64> = data.iter().flat_map(|r| r[1..].iter().map(|&t| t as i64)).collect();
    let mut group = c.benchmark_group("train/qwen2-4m");
    group.throughput(Throughput::Elements((BATCH * SEQ) as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function(format!("step b{BATCH}x{SEQ} f32"), |b| {
        b.iter(|| {
            let m = model.take().unwrap();
            let x = Inputs::causal(&inputs, &device);
            let y = Tensor::<2, Int>::from_data(TensorData::new(targets.clone(), [BATCH, SEQ]), &device);
            let w = Tensor::<2>::ones([BATCH, SEQ], &device);
            let loss = m.nll_sum(&x, y, w) / (BATCH * SEQ) as f64;
            let mut grads = loss.backward();
            let mut sum = GradSum::default();
            sum.add(take_grads(&m, &mut grads));
            let (m, _) = optim.step(m, sum, 1e-3);
            model = Some(m);
        })
    });
    group.finish();
}

fn generation(c: &mut Criterion) {
    let corpus = write_corpus(task_by_name("arith").unwrap().as_ref(), 500, 0);
    let tokenizer = TextTokenizer::train_bpe(&corpus, 1024).unwrap();
    // Every id the random model samples must decode.
    let mut config = parse_config_toml(MODEL).unwrap();
    config.vocab_size = tokenizer.vocab_size() as u32;
    let device = Device::flex();
    device.seed(2);
    let model = CausalLm::init(&config, &device);
    let prompts: Vec<Vec<u32>> = corpus[..8].iter().map(|t| tokenizer.encode(&t[..t.len().min(200)]).unwrap()).collect();
    let (samples, new_tokens) = (8, 64);
    let config = GenerateConfig {
        max_new_tokens: new_tokens,
        temperature: 1.0,
        stop_at_eos: false,
        batch_size: 64,
        ..GenerateConfig::default()
    };
    let mut group = c.benchmark_group("generate/qwen2-4m");
    group.throughput(Throughput::Elements((prompts.len() * samples * new_tokens) as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function(format!("{}x{samples} samples, {new_tokens} tokens", prompts.len()), |b| {
        b.iter(|| generate(&model, &tokenizer, &prompts, samples, &config).unwrap())
    });
    group.finish();
}

criterion_group!(benches, training_step, generation);
criterion_main!(benches);
