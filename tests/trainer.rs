//! Trainer -> export -> runtime: the burn model reproduces transformers on
//! every fixture (sharded bf16, f16, explicit head_dim, Llama and Qwen2), and
//! a model the trainer initialises and saves runs in the runtime with the
//! same logits and the same greedy tokens.

mod common;

use aha_kernels::DType;
use aha_runtime::convert::{convert, ConvertOptions};
use aha_runtime::{KvType, Model};
use aha_trainer::checkpoint::{load_model, save_model};
use aha_trainer::config::{parse_config_toml, SpecialIds};
use aha_trainer::model::{CausalLm, Inputs, KvCache};
use burn::tensor::{Device, FloatDType};

/// Logits of every position, one row per position.
fn trainer_logits(model: &CausalLm, tokens: &[u32], device: &Device) -> Vec<Vec<f32>> {
    let logits = model.forward(&Inputs::causal(&[tokens.to_vec()], device), None);
    let [_, t, v] = logits.dims();
    let flat = logits.into_data().try_to_vec::<f32>().unwrap();
    (0..t).map(|i| flat[i * v..(i + 1) * v].to_vec()).collect()
}

/// Greedy continuation with the trainer's KV cache.
fn trainer_greedy(model: &CausalLm, prompt: &[u32], n: usize, device: &Device) -> Vec<u32> {
    let mut cache = KvCache::new(&model.config, 1, prompt.len() + n, FloatDType::F32, device);
    let mut next = prompt.to_vec();
    let mut out = Vec::new();
    while out.len() < n {
        let len = next.len();
        let inputs = Inputs::continuing(&[next.clone()], &[0], cache.len, device);
        let logits = model.forward(&inputs, Some(&mut cache));
        let token = logits.slice([0..1, len - 1..len]).argmax(2).into_data().convert::<i64>().try_to_vec::<i64>().unwrap()[0] as u32;
        out.push(token);
        next = vec![token];
    }
    out
}

#[test]
fn trainer_matches_transformers_on_every_fixture() {
    let device = Device::flex();
    for dir in common::fixtures() {
        let model = load_model(&dir, &device).unwrap();
        let reference = common::reference(&dir);
        for (tokens, want) in reference.inputs.iter().zip(&reference.logits) {
            let err = common::max_rel_err(&trainer_logits(&model, tokens, &device), want);
            assert!(err < 1e-4, "{}: logits off by {err} of the row max", dir.display());
        }
        let got = trainer_greedy(&model, &reference.greedy_prompt, reference.greedy.len(), &device);
        assert_eq!(got, reference.greedy, "{}: greedy tokens", dir.display());
    }
}

fn random_model(toml: &str, seed: u64) -> (CausalLm, Device) {
    let device = Device::flex();
    device.seed(seed);
    let config = parse_config_toml(toml).unwrap();
    (CausalLm::init(&config, &device), device)
}

const LLAMA_GQA_UNTIED: &str = r#"
    model_type = "llama"
    vocab_size = 320
    hidden_size = 64
    intermediate_size = 96
    num_hidden_layers = 3
    num_attention_heads = 8
    num_key_value_heads = 2
    rope_theta = 500000.0
    tie_word_embeddings = false
"#;

const QWEN2_TIED: &str = r#"
    model_type = "qwen2"
    vocab_size = 256
    hidden_size = 96
    intermediate_size = 160
    num_hidden_layers = 2
    num_attention_heads = 6
    num_key_value_heads = 2
    tie_word_embeddings = true
"#;

#[test]
fn exported_f32_model_runs_in_the_runtime_with_the_trainers_logits() {
    for (toml, seed) in [(LLAMA_GQA_UNTIED, 1), (QWEN2_TIED, 2)] {
        let (model, device) = random_model(toml, seed);
        let dir = tempfile::tempdir().unwrap();
        save_model(&model, dir.path(), SpecialIds::default()).unwrap();
        let file = dir.path().join("model.aha");
        convert(dir.path(), &file, &ConvertOptions::new(DType::F32)).unwrap();
        let bytes = std::fs::read(&file).unwrap();
        let runtime = Model::from_bytes(&bytes).unwrap();

        let tokens: Vec<u32> = (0..24).map(|i| (i * 37 + 11) % model.config.vocab_size).collect();
        let ours = trainer_logits(&model, &tokens, &device);
        let theirs = common::logits_all(&runtime, &tokens, KvType::F32, 1, false);
        let err = common::max_rel_err(&theirs, &ours);
        assert!(err < 1e-4, "runtime vs trainer: {err} of the row max");

        let prompt = &tokens[..5];
        assert_eq!(common::greedy(&runtime, prompt, 20, 1), trainer_greedy(&model, prompt, 20, &device));
    }
}

#[test]
fn trainer_saved_checkpoint_reloads_bit_exact() {
    let (model, device) = random_model(LLAMA_GQA_UNTIED, 3);
    let dir = tempfile::tempdir().unwrap();
    save_model(&model, dir.path(), SpecialIds::default()).unwrap();
    let again = load_model(dir.path(), &device).unwrap();
    assert_eq!(aha_trainer::params::state_dict(&again), aha_trainer::params::state_dict(&model));
}
