//! The burn model against transformers: logits on the qwen2-tiny fixture,
//! greedy decoding with the KV cache, and checkpoints that round-trip exactly
//! and keep transformers' names and shapes.

use std::path::{Path, PathBuf};

use aha_trainer::checkpoint::{load_model, read_safetensors, save_model};
use aha_trainer::config::SpecialIds;
use aha_trainer::model::{CausalLm, Inputs, KvCache};
use aha_trainer::params::state_dict;
use burn::tensor::{Device, FloatDType};
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/hf/qwen2-tiny")
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("reference.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// Largest |a - b| over a row, relative to the row's largest |b|.
fn row_error(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn logits_match_transformers_within_1e_4() {
    let device = Device::flex();
    let model = load_model(&fixture(), &device).unwrap();
    let reference = reference();
    let rows: Vec<Vec<u32>> = reference["inputs"].as_array().unwrap().iter().map(ids).collect();
    let logits = model.forward(&Inputs::causal(&rows, &device), None);
    let [b, t, v] = logits.dims();
    let got = logits.into_data().try_to_vec::<f32>().unwrap();
    let mut worst = 0f32;
    for (bi, row) in reference["logits"].as_array().unwrap().iter().enumerate() {
        for (ti, want) in row.as_array().unwrap().iter().enumerate() {
            let want: Vec<f32> = want.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            let at = (bi * t + ti) * v;
            worst = worst.max(row_error(&got[at..at + v], &want));
        }
    }
    assert_eq!(b, rows.len());
    assert!(worst < 1e-4, "max error {worst} of the row max");
}

/// Greedy continuation with the KV cache, one token at a time.
fn greedy(model: &CausalLm, prompt: &[u32], n: usize, device: &Device) -> Vec<u32> {
    let mut cache = KvCache::new(&model.config, 1, prompt.len() + n, FloatDType::F32, device);
    let mut out = Vec::new();
    let mut next = prompt.to_vec();
    for _ in 0..n {
        let start = cache.len;
        let len = next.len();
        let inputs = Inputs::continuing(&[next.clone()], &[0], start, device);
        let logits = model.forward(&inputs, Some(&mut cache));
        let last = logits.slice([0..1, len - 1..len]).argmax(2).into_data().convert::<i64>().try_to_vec::<i64>().unwrap()[0] as u32;
        out.push(last);
        next = vec![last];
    }
    out
}

#[test]
fn greedy_with_kv_cache_matches_transformers() {
    let device = Device::flex();
    let model = load_model(&fixture(), &device).unwrap();
    let reference = reference();
    let prompt = ids(&reference["greedy"]["prompt"]);
    let want = ids(&reference["greedy"]["generated"]);
    assert_eq!(greedy(&model, &prompt, want.len(), &device), want);
}

#[test]
fn save_load_is_bit_exact_with_transformers_names_and_shapes() {
    let device = Device::flex();
    let model = load_model(&fixture(), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    save_model(&model, dir.path(), SpecialIds::default()).unwrap();

    let theirs = read_safetensors(&fixture().join("model.safetensors")).unwrap();
    let ours = read_safetensors(&dir.path().join("model.safetensors")).unwrap();
    let shapes = |m: &std::collections::BTreeMap<String, aha_trainer::params::HostTensor>| {
        m.iter().map(|(k, v)| (k.clone(), v.shape.clone())).collect::<Vec<_>>()
    };
    assert_eq!(shapes(&ours), shapes(&theirs));
    assert_eq!(ours, theirs, "values changed on the way through");

    let again = load_model(dir.path(), &device).unwrap();
    assert_eq!(state_dict(&again), state_dict(&model));
    let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "Qwen2ForCausalLM");
    assert_eq!(again.config, model.config);
}

#[test]
fn a_checkpoint_that_disagrees_with_its_config_names_the_tensor() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let model = load_model(&fixture(), &device).unwrap();
    save_model(&model, dir.path(), SpecialIds::default()).unwrap();
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"intermediate_size\": 176", "\"intermediate_size\": 128");
    std::fs::write(&path, text).unwrap();
    let err = load_model(dir.path(), &device).unwrap_err().to_string();
    assert!(err.contains("model.layers.0.mlp.") && err.contains("[176, 64]") || err.contains("[64, 176]"), "{err}");
}
