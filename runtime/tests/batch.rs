//! The batch session: many sequences decoded together against each alone
//! and against a one-sequence `Session`, sequences dropping out, forked
//! prefills, and refused calls (on a tiny random model of each format).

use aha_kernels::DType;
use aha_runtime::{BatchSession, Config, Error, KvType, Model, Session};

fn tiny() -> Config {
    let mut c = Config::qwen2_122m();
    (c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size) = (64, 96, 2, 4, 2, 16, 160);
    c
}

fn model_bytes(dtype: DType) -> Vec<u8> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("m.aha");
    aha_runtime::writer::write_random_model(&path, &tiny(), dtype, None, 5).unwrap();
    std::fs::read(&path).unwrap()
}

fn prompt(i: usize, len: usize) -> Vec<u32> {
    (0..len).map(|t| ((t * 37 + i * 11 + 3) % 160) as u32).collect()
}

/// Greedy continuations of several prompts decoded together, against
/// each decoded alone, and their logits against a one-sequence
/// [`Session`] fed the same tokens (float within 1e-5 of the row's largest
/// logit; the integer path within the activation-quantization bound).
#[test]
fn many_sequences_equal_one_at_a_time() {
    for dtype in [DType::F32, DType::F16, DType::Q8_0, DType::Q4_0] {
        let bytes = model_bytes(dtype);
        let model = Model::from_bytes(&bytes).unwrap();
        let (seqs, ctx, steps) = (5, 24, 8);
        let run = |ids: &[usize], threads: usize| -> Vec<Vec<Vec<f32>>> {
            let plan = model.memory_plan_sequences(ctx, KvType::F32, seqs, 4);
            let mut buf = plan.allocate();
            let mut bs = BatchSession::new(&model, &mut buf, &plan, aha_kernels::best()).unwrap();
            bs.set_threads(threads);
            let mut logits: Vec<Vec<Vec<f32>>> = vec![Vec::new(); seqs];
            for &i in ids {
                logits[i].push(bs.feed(i, &prompt(i, 3 + i)).unwrap().to_vec());
            }
            let mut live: Vec<usize> = ids.to_vec();
            for s in 0..steps {
                // Sequences drop out as they finish: sequence i stops after 3 + i steps.
                live.retain(|&i| s < 3 + i);
                let toks: Vec<u32> = live.iter().map(|&i| aha_runtime::sampler::argmax(bs.logits(i).unwrap())).collect();
                bs.step(&live, &toks).unwrap();
                for &i in &live {
                    logits[i].push(bs.logits(i).unwrap().to_vec());
                }
            }
            logits
        };
        let together = run(&[0, 1, 2, 3, 4], 1);
        assert_eq!(run(&[4, 2, 0, 1, 3], 2), together, "{dtype}: order or threads changed a logit");
        for i in 0..seqs {
            let alone = run(&[i], 1);
            assert_eq!(alone[i], together[i], "{dtype}: sequence {i} alone");
            // Against the one-sequence session (matvec kernels).
            let mut buf = model.memory_plan(ctx, KvType::F32).allocate();
            let mut s = Session::new(&model, &mut buf, ctx, KvType::F32).unwrap();
            let mut want = vec![s.feed(&prompt(i, 3 + i)).unwrap().to_vec()];
            // Fed the tokens the batch chose, so only rounding differs.
            while want.len() < together[i].len() {
                let t = aha_runtime::sampler::argmax(&together[i][want.len() - 1]);
                want.push(s.step(t).unwrap().to_vec());
            }
            // Integer path: the Q8_0 rounding of an activation that lands
            // within an ulp of a half step can go either way, moving that
            // token's logits by ~one quant step (1/127 of its block's
            // largest value); otherwise the two differ by ~1e-7.
            let tol = if dtype.is_quantized() { 2e-2 } else { 1e-5 };
            let mut worst = 0f32;
            for (got, want) in together[i].iter().zip(&want) {
                let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
                for (g, w) in got.iter().zip(want) {
                    worst = worst.max((g - w).abs() / scale);
                }
            }
            assert!(worst <= tol, "{dtype}: sequence {i}: logits differ by {worst} of the row's largest");
        }
    }
}

#[test]
fn forked_samples_share_the_prefill() {
    let bytes = model_bytes(DType::Q8_0);
    let model = Model::from_bytes(&bytes).unwrap();
    let plan = model.memory_plan_sequences(16, KvType::F16, 3, 3);
    let mut buf = plan.allocate();
    let mut bs = BatchSession::new(&model, &mut buf, &plan, aha_kernels::best()).unwrap();
    let p = prompt(1, 6);
    let after = bs.feed(0, &p).unwrap().to_vec();
    bs.fork(0, 1, 6).unwrap();
    bs.fork(0, 2, 4).unwrap();
    assert_eq!(bs.logits(1).unwrap(), &after[..]);
    assert_eq!((bs.position(1).unwrap(), bs.tokens(2).unwrap()), (6, &p[..4]));
    // The same token after the copied prefix gives the same logits.
    bs.step(&[0, 1], &[7, 7]).unwrap();
    assert_eq!(bs.logits(0).unwrap().to_vec(), bs.logits(1).unwrap().to_vec());
    // Sequence 2 resumes from its 4 tokens as if fed them itself.
    bs.step(&[2, 2], &[p[4], p[5]]).unwrap();
    bs.step(&[2], &[7]).unwrap();
    assert_eq!(bs.logits(2).unwrap().to_vec(), bs.logits(0).unwrap().to_vec());
}

#[test]
fn bad_calls_are_errors_and_change_nothing() {
    let bytes = model_bytes(DType::F32);
    let model = Model::from_bytes(&bytes).unwrap();
    let plan = model.memory_plan_sequences(4, KvType::F32, 2, 2);
    let mut buf = plan.allocate();
    let mut bs = BatchSession::new(&model, &mut buf, &plan, aha_kernels::best()).unwrap();
    assert!(matches!(bs.feed(2, &[1]), Err(Error::NoSequence { index: 2, sequences: 2 })));
    bs.feed(0, &[1, 2, 3]).unwrap();
    assert!(matches!(bs.step(&[0, 0], &[1, 1]), Err(Error::ContextFull { .. })));
    assert!(matches!(bs.step(&[1, 0], &[1, 999]), Err(Error::TokenOutOfRange { .. })));
    assert!(bs.step(&[0], &[1, 2]).is_err());
    assert_eq!((bs.position(0).unwrap(), bs.position(1).unwrap()), (3, 0));
    let small = model.memory_plan(4, KvType::F32);
    assert!(BatchSession::new(&model, &mut small.allocate(), &small, aha_kernels::best()).is_err());
}
