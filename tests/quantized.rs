//! Quantized models (Q8_0, Q4_0).
//!
//! Against the f32 reference, quantization error on small random models is
//! large (DESIGN.md: ~6% of the row max for Q8_0, 80-100% for Q4_0), so such
//! a tolerance says little. Instead each fixture's matrices are first snapped
//! to values the format represents exactly (dequantize∘quantize is a fixed
//! point of ggml's quantizers), and the quantized model is compared with the
//! f32 model of the same snapped weights:
//! - float path (weights dequantized against f32 inputs): equal up to f32
//!   summation order, so any layout, nibble-order or scale bug shows;
//! - integer path (inputs quantized to Q8_0, as llama.cpp): only activation
//!   quantization remains; the bound is from measurement (see each test).

mod common;
use aha_kernels::DType;
use aha_runtime::{KvType, Model};
use common::*;

fn snapped_pair(dir: &std::path::Path, q: DType) -> (tempfile::TempDir, Vec<u8>, Vec<u8>) {
    let (tmp, _path, f32_bytes) = convert_fixture(dir, DType::F32);
    let quantizable = |name: &str, cols: usize| {
        cols.is_multiple_of(32) && (name.ends_with("proj.weight") || name == "model.embed_tokens.weight" || name == "lm_head.weight")
    };
    let exact = tmp.path().join("exact.aha");
    let quant = tmp.path().join("quant.aha");
    let snap_values = |name: &str, _d: DType, v: &mut Vec<f32>| {
        let file = aha_runtime::ModelFile::parse(&f32_bytes).unwrap();
        let (_, cols) = file.find(name).unwrap().rows_cols();
        if quantizable(name, cols as usize) {
            snap(q, v);
        }
    };
    rewrite(&f32_bytes, &exact, |_, d, _| d, snap_values);
    rewrite(&f32_bytes, &quant, |name, d, cols| if quantizable(name, cols) { q } else { d }, snap_values);
    (tmp, std::fs::read(exact).unwrap(), std::fs::read(quant).unwrap())
}

fn check(q: DType, integer_bound: f32) {
    for dir in fixtures() {
        let r = reference(&dir);
        let (_tmp, exact, quant) = snapped_pair(&dir, q);
        let (exact, quant) = (Model::from_bytes(&exact).unwrap(), Model::from_bytes(&quant).unwrap());
        assert!(quant.file.tensors().any(|t| t.unwrap().dtype().unwrap() == q));
        for seq in &r.inputs {
            let want = logits_all(&exact, seq, KvType::F32, 1, true);
            let float = logits_all(&quant, seq, KvType::F32, 1, false);
            let err = max_rel_err(&float, &want);
            assert!(err < 1e-5, "{} {q} float path: {err:e}", dir.display());
            for threads in [1, 2] {
                let int = logits_all(&quant, seq, KvType::F32, threads, true);
                let err = max_rel_err(&int, &want);
                eprintln!("{} {q} integer path: {err:e}", dir.display());
                assert!(err < integer_bound, "{} {q} integer path: {err:e}", dir.display());
            }
        }
    }
}

#[test]
fn q8_0_matches_its_exact_f32_twin() {
    check(DType::Q8_0, 0.1);
}

#[test]
fn q4_0_matches_its_exact_f32_twin() {
    check(DType::Q4_0, 0.1);
}
