//! End-to-end decode speed: tokens/s of one `Session::step` on a random
//! ~122M-parameter Qwen2 (768 wide, 12 layers, 12 heads / 2 KV heads, head
//! dim 64, intermediate 2048, vocab 32000, untied embeddings: the shape of the
//! llama.cpp comparison in the project brief), at Q8_0 and Q4_0, on 1 and 2
//! threads, with the context held between 16 and 144 tokens.
//!
//! Bytes of weights read per token are printed so tok/s converts to GB/s:
//! GB/s = tok/s × bytes/token (compare with the `bandwidth` group of the
//! kernels bench). The `batch-decode/` groups step 8 and 64 sequences of a
//! batch session together (aggregate tokens/s), on the 122M model and on the
//! 4.2M one GRPO's rollouts sample (256 wide, 4 layers, vocab 4096).
//! Run: `cargo bench --bench decode`.

use aha_kernels::DType;
use aha_runtime::Config;
use aha_runtime::{BatchSession, KvType, Model, Session};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::PathBuf;
use std::time::Duration;

/// The model file, written once into target/ and reused.
fn model_file(dtype: DType) -> PathBuf {
    model_file_of("qwen2-122m", &Config::qwen2_122m(), dtype)
}

fn model_file_of(name: &str, config: &Config, dtype: DType) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-models");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.aha", dtype.name()));
    if Model::from_bytes(&std::fs::read(&path).unwrap_or_default()).is_err() {
        aha_runtime::writer::write_random_model(&path, config, dtype, None, 42).unwrap();
    }
    path
}

/// The 4.2M Qwen2 of the rollout comparisons: 256 wide, 4 layers, 4/2 heads, ffn 768, vocab 4096.
fn qwen2_4m() -> Config {
    let mut c = Config::qwen2_122m();
    (c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size, c.vocab_size) =
        (256, 4, 4, 2, 64, 768, 4096);
    c
}

/// Aggregate tokens/s of `b` sequences stepped together after a shared 16-token prompt.
fn batch_decode(c: &mut Criterion) {
    for (name, config, dtypes) in [
        ("qwen2-4m", qwen2_4m(), &[DType::F32, DType::Q8_0, DType::Q4_0][..]),
        ("qwen2-122m", Config::qwen2_122m(), &[DType::Q8_0, DType::Q4_0][..]),
    ] {
        for &dtype in dtypes {
            let bytes = std::fs::read(model_file_of(name, &config, dtype)).unwrap();
            let model = Model::from_bytes(&bytes).unwrap();
            let mut group = c.benchmark_group(format!("batch-decode/{name}-{}", dtype.name()));
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(6));
            for threads in [1, 2] {
                for b in [8, 64] {
                    group.throughput(Throughput::Elements(b as u64));
                    let plan = model.memory_plan_sequences(160, KvType::F32, b, b);
                    let mut buf = plan.allocate();
                    let mut s = BatchSession::new(&model, &mut buf, &plan, aha_kernels::best()).unwrap();
                    s.set_threads(threads);
                    let prompt: Vec<u32> = (0..16).map(|i| (i * 997) % config.vocab_size).collect();
                    s.feed(0, &prompt).unwrap();
                    for i in 1..b {
                        s.fork(0, i, 16).unwrap();
                    }
                    let seqs: Vec<usize> = (0..b).collect();
                    let mut next = vec![1u32; b];
                    group.bench_function(format!("{b}-sequences/{threads}-thread"), |bench| {
                        bench.iter(|| {
                            if s.position(0).unwrap() >= 144 {
                                for &i in &seqs {
                                    s.truncate(i, 16).unwrap();
                                }
                            }
                            s.step(&seqs, &next).unwrap();
                            for (i, t) in next.iter_mut().enumerate() {
                                *t = aha_runtime::sampler::argmax(s.logits(i).unwrap());
                            }
                        })
                    });
                }
            }
            group.finish();
        }
    }
}

fn decode(c: &mut Criterion) {
    for dtype in [DType::Q8_0, DType::Q4_0] {
        let bytes = std::fs::read(model_file(dtype)).unwrap();
        let model = Model::from_bytes(&bytes).unwrap();
        let embed_row = model.embed().row_bytes() as u64;
        let per_token = model.weight_bytes() - model.embed().data.len() as u64 + embed_row;
        eprintln!("{}: {:.1} MB of weights read per token", dtype, per_token as f64 / 1e6);
        let mut group = c.benchmark_group(format!("decode/qwen2-122m-{}", dtype.name()));
        group.throughput(Throughput::Elements(1));
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(6));
        for threads in [1, 2] {
            let context = 160;
            let mut buf = model.memory_plan(context, KvType::F32).allocate();
            let mut session = Session::new(&model, &mut buf, context, KvType::F32).unwrap();
            session.set_threads(threads);
            let prompt: Vec<u32> = (0..16).map(|i| (i * 997) % 32000).collect();
            session.feed(&prompt).unwrap();
            let mut token = 1u32;
            group.bench_function(format!("{threads}-thread"), |b| {
                b.iter(|| {
                    if session.position() >= 144 {
                        session.truncate(16);
                    }
                    let logits = session.step(token).unwrap();
                    token = aha_runtime::sampler::argmax(logits);
                })
            });
        }
        group.finish();

        // Prompt processing: 64 tokens fed one at a time vs in batches of 32.
        let mut group = c.benchmark_group(format!("prefill/qwen2-122m-{}", dtype.name()));
        group.throughput(Throughput::Elements(64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(8));
        let prompt: Vec<u32> = (0..64).map(|i| (i * 7919) % 32000).collect();
        for threads in [1, 2] {
            for batch in [1, 32] {
                let plan = model.memory_plan_batched(64, KvType::F32, batch);
                let mut buf = plan.allocate();
                let mut session = Session::with_plan(&model, &mut buf, &plan, aha_kernels::best()).unwrap();
                session.set_threads(threads);
                group.bench_function(format!("batch-{batch}/{threads}-thread"), |b| {
                    b.iter(|| {
                        session.reset();
                        session.feed(&prompt).unwrap()[0]
                    })
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, decode, batch_decode);
criterion_main!(benches);
