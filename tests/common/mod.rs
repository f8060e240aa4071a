//! Helpers shared by the integration tests: fixtures, conversion into a
//! temporary folder, logits, and error measures.
#![allow(dead_code)]

use aha_kernels::DType;
use aha_runtime::convert::{convert, ConvertOptions};
use aha_runtime::{KvType, Model, Session};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The given fixture (made by Hugging Face transformers) and ours (made by
/// scripts/make_fixtures.py with a NumPy reference checked against it).
pub fn fixtures() -> Vec<PathBuf> {
    let mut dirs = vec![shared("hf/qwen2-tiny")];
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut local: Vec<PathBuf> = std::fs::read_dir(&ours)
        .expect("tests/fixtures exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("reference.json").exists())
        .collect();
    local.sort();
    dirs.extend(local);
    dirs
}

pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures").join(rel)
}

pub struct Reference {
    pub inputs: Vec<Vec<u32>>,
    /// [sequence][position][vocab]
    pub logits: Vec<Vec<Vec<f32>>>,
    pub greedy_prompt: Vec<u32>,
    pub greedy: Vec<u32>,
    pub json: Value,
}

pub fn reference(dir: &Path) -> Reference {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let ids = |x: &Value| x.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect::<Vec<_>>();
    let floats = |x: &Value| x.as_array().unwrap().iter().map(|f| f.as_f64().unwrap() as f32).collect::<Vec<_>>();
    Reference {
        inputs: v["inputs"].as_array().unwrap().iter().map(ids).collect(),
        logits: v["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|seq| seq.as_array().unwrap().iter().map(floats).collect())
            .collect(),
        greedy_prompt: ids(&v["greedy"]["prompt"]),
        greedy: ids(&v["greedy"]["generated"]),
        json: v,
    }
}

/// Converts `dir` at `dtype` into a temporary file; keep the TempDir alive.
pub fn convert_fixture(dir: &Path, dtype: DType) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model.aha");
    convert(dir, &out, &ConvertOptions { output_dtype: Some(dtype), ..ConvertOptions::new(dtype) }).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    (tmp, out, bytes)
}

/// Logits at every position of `tokens`.
pub fn logits_all(model: &Model, tokens: &[u32], kv: KvType, threads: usize, integer_path: bool) -> Vec<Vec<f32>> {
    let mut buf = model.memory_plan(tokens.len(), kv).allocate();
    let mut s = Session::new(model, &mut buf, tokens.len(), kv).unwrap();
    s.set_threads(threads);
    s.set_integer_path(integer_path);
    tokens.iter().map(|&t| s.step(t).unwrap().to_vec()).collect()
}

/// Greedy continuation of `prompt` for `n` tokens.
pub fn greedy(model: &Model, prompt: &[u32], n: usize, threads: usize) -> Vec<u32> {
    let ctx = prompt.len() + n;
    let mut buf = model.memory_plan(ctx, KvType::F32).allocate();
    let mut s = Session::new(model, &mut buf, ctx, KvType::F32).unwrap();
    s.set_threads(threads);
    let mut next = aha_runtime::sampler::argmax(s.feed(prompt).unwrap());
    let mut out = vec![next];
    while out.len() < n {
        next = aha_runtime::sampler::argmax(s.step(next).unwrap());
        out.push(next);
    }
    out
}

/// max over positions of max|a − b| / max|b| (the row's largest reference logit).
pub fn max_rel_err(got: &[Vec<f32>], want: &[Vec<f32>]) -> f32 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            assert_eq!(g.len(), w.len());
            let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
            g.iter().zip(w).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
        })
        .fold(0f32, f32::max)
}

/// Writes a copy of a model file where each tensor's values pass through
/// `values` and are stored as `dtype_of(name, stored_dtype, cols)`.
pub fn rewrite(
    bytes: &[u8],
    out: &Path,
    dtype_of: impl Fn(&str, DType, usize) -> DType,
    values: impl Fn(&str, DType, &mut Vec<f32>),
) {
    use aha_runtime::writer::{ModelWriter, TensorSpec};
    let file = aha_runtime::ModelFile::parse(bytes).unwrap();
    let infos: Vec<_> = file.tensors().map(|t| t.unwrap()).collect();
    let specs: Vec<TensorSpec> = infos
        .iter()
        .map(|t| {
            let (r, c) = t.rows_cols();
            let shape = if t.rank == 1 { vec![c] } else { vec![r, c] };
            TensorSpec { name: t.name.to_string(), dtype: dtype_of(t.name, t.dtype().unwrap(), c as usize), shape }
        })
        .collect();
    let h = file.header;
    let mut w = ModelWriter::create(out, h.config, h.tokenizer.map(|t| t.to_vec()), h.provenance, specs.clone()).unwrap();
    for (info, spec) in infos.iter().zip(&specs) {
        let (r, c) = info.rows_cols();
        let mut v = vec![0f32; (r * c) as usize];
        aha_kernels::dtype::dequantize(info.dtype().unwrap(), file.tensor_bytes(info).unwrap(), &mut v);
        values(&spec.name, spec.dtype, &mut v);
        w.write_tensor(&spec.name, &v).unwrap();
    }
    w.finish().unwrap();
}

/// dequantize(quantize(v)) at `dtype`: values the format represents exactly.
pub fn snap(dtype: DType, v: &mut [f32]) {
    let mut q = vec![0u8; dtype.row_bytes(v.len()).unwrap()];
    aha_kernels::dtype::quantize(dtype, v, &mut q);
    aha_kernels::dtype::dequantize(dtype, &q, v);
}
