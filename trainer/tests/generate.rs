//! Batched generation on the qwen2-tiny fixture: greedy decoding reproduces
//! transformers, left padding and batch size change nothing, the returned
//! log-probs are the model's, and the ends (eos, stop strings, length) cut
//! where they should.
//!
//! The fixture has no tokenizer, so the tests make one whose token `i` is
//! the text `<i>` for every id of the model's vocabulary (a word-level
//! `tokenizer.json` with a concatenating decoder): decoded completions read
//! as their ids, and a stop string can be aimed at a known token sequence.

use std::path::{Path, PathBuf};

use aha_trainer::checkpoint::load_model;
use aha_trainer::generate::{generate, Completion, Finish, GenerateConfig};
use aha_trainer::model::{CausalLm, Inputs};
use aha_trainer::tokenizer::TextTokenizer;
use aha_trainer::Error;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde_json::{json, Value};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/hf/qwen2-tiny")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// The greedy prompt and transformers' 24 greedy tokens after it.
fn reference_greedy() -> (Vec<u32>, Vec<u32>) {
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(fixture().join("reference.json")).unwrap()).unwrap();
    (ids(&reference["greedy"]["prompt"]), ids(&reference["greedy"]["generated"]))
}

/// Prompts of lengths 4, 1, 9 and 16 (the fixture's input rows, cut).
fn prompts() -> Vec<Vec<u32>> {
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(fixture().join("reference.json")).unwrap()).unwrap();
    let rows: Vec<Vec<u32>> = reference["inputs"].as_array().unwrap().iter().map(ids).collect();
    vec![reference_greedy().0, rows[1][..1].to_vec(), rows[2][..9].to_vec(), rows[0].clone()]
}

fn model() -> CausalLm {
    load_model(&fixture(), &Device::flex()).unwrap()
}

/// Token `i` reads `<i>`; `eos`, if given, is the special end-of-sequence
/// token (and so left out of decoded text).
fn tokenizer(vocab: usize, eos: Option<u32>) -> TextTokenizer {
    let dir = tempfile::tempdir().unwrap();
    let vocab_map: serde_json::Map<String, Value> = (0..vocab).map(|i| (format!("<{i}>"), json!(i))).collect();
    let added: Vec<Value> = eos
        .iter()
        .map(|&id| {
            json!({"id": id, "content": format!("<{id}>"), "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": null, "post_processor": null,
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": vocab_map, "unk_token": "<0>"},
    });
    std::fs::write(dir.path().join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let eos_name = eos.map_or(Value::Null, |id| json!(format!("<{id}>")));
    let config = json!({"eos_token": eos_name, "pad_token": "<0>"});
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    TextTokenizer::from_dir(dir.path()).unwrap()
}

fn text_of(ids: &[u32]) -> String {
    ids.iter().map(|i| format!("<{i}>")).collect()
}

fn greedy(max_new_tokens: usize) -> GenerateConfig {
    GenerateConfig { max_new_tokens, temperature: 0.0, stop_at_eos: false, ..GenerateConfig::default() }
}

fn sampled(max_new_tokens: usize, seed: u64) -> GenerateConfig {
    GenerateConfig { max_new_tokens, temperature: 1.0, seed, stop_at_eos: false, ..GenerateConfig::default() }
}

fn all_ids(completions: &[Completion]) -> Vec<Vec<u32>> {
    completions.iter().map(|c| c.ids.clone()).collect()
}

#[test]
fn greedy_reproduces_transformers() {
    let model = model();
    let tok = tokenizer(512, None);
    let (prompt, want) = reference_greedy();
    let (out, stats) = generate(&model, &tok, std::slice::from_ref(&prompt), 1, &greedy(want.len())).unwrap();
    assert_eq!(out.len(), 1);
    let c = &out[0];
    assert_eq!((c.prompt_index, c.sample_index), (0, 0));
    assert_eq!(c.ids, want);
    assert_eq!(c.finish, Finish::Length);
    assert_eq!(c.text, text_of(&want));
    assert_eq!(c.logprobs.len(), want.len());
    assert!(c.logprobs.iter().all(|&l| l.is_finite() && l <= 0.0), "{:?}", c.logprobs);
    assert_eq!((stats.sequences, stats.new_tokens, stats.prompt_tokens), (1, want.len(), prompt.len()));
    assert!(stats.tokens_per_s > 0.0);
}

#[test]
fn left_padded_batch_matches_each_prompt_alone() {
    let model = model();
    // Token 92 ends the reference prompt's completion early (its 4th token),
    // so that row leaves the batch while the others go on.
    let tok = tokenizer(512, Some(92));
    let config = GenerateConfig { stop_at_eos: true, ..greedy(12) };
    let prompts = prompts();
    let (batched, _) = generate(&model, &tok, &prompts, 1, &config).unwrap();
    for (i, prompt) in prompts.iter().enumerate() {
        let (alone, _) = generate(&model, &tok, std::slice::from_ref(prompt), 1, &config).unwrap();
        assert_eq!(batched[i].prompt_index, i);
        assert_eq!(batched[i].ids, alone[0].ids, "prompt {i}");
        assert_eq!(batched[i].finish, alone[0].finish, "prompt {i}");
        for (a, b) in batched[i].logprobs.iter().zip(&alone[0].logprobs) {
            assert!((a - b).abs() < 1e-4, "prompt {i}: {a} vs {b}");
        }
    }
    assert_eq!(batched[0].ids, reference_greedy().1[..4]);
    assert_eq!(batched[0].finish, Finish::Eos);
    assert!(batched.iter().any(|c| c.finish == Finish::Length), "no row outlived the first");
}

/// log π(ids | prompt) recomputed by one forward over prompt + completion,
/// at `temperature`.
fn teacher_forced(model: &CausalLm, prompt: &[u32], completion: &[u32], temperature: f32) -> Vec<f32> {
    let device = model.device();
    let full: Vec<u32> = prompt.iter().chain(completion).copied().collect();
    let inputs = Inputs::causal(&[full[..full.len() - 1].to_vec()], &device);
    let targets: Vec<i64> = full[1..].iter().map(|&t| t as i64).collect();
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [1, full.len() - 1]), &device);
    let logp = if temperature == 1.0 {
        model.token_logprobs(&inputs, targets)
    } else {
        let logp = log_softmax(model.forward(&inputs, None) / temperature as f64, 2);
        logp.gather(2, targets.unsqueeze_dim::<3>(2)).squeeze_dim::<2>(2)
    };
    let logp = logp.into_data().try_into_vec::<f32>().unwrap();
    logp[prompt.len() - 1..].to_vec()
}

#[test]
fn logprobs_equal_teacher_forcing() {
    let model = model();
    let tok = tokenizer(512, None);
    let prompts = prompts();
    for config in [
        // Truncation does not change the reported log-probs: they are the
        // full distribution's.
        GenerateConfig { top_k: 20, top_p: 0.9, batch_size: 5, ..sampled(10, 3) },
        GenerateConfig { temperature: 0.7, min_p: 0.05, ..sampled(10, 4) },
    ] {
        let (out, _) = generate(&model, &tok, &prompts, 3, &config).unwrap();
        assert_eq!(out.len(), prompts.len() * 3);
        for c in &out {
            let want = teacher_forced(&model, &prompts[c.prompt_index], &c.ids, config.temperature);
            assert_eq!(want.len(), c.logprobs.len());
            for (t, (a, b)) in c.logprobs.iter().zip(&want).enumerate() {
                let (p, s, temperature) = (c.prompt_index, c.sample_index, config.temperature);
                assert!((a - b).abs() < 1e-4, "T={temperature} prompt {p} sample {s} token {t}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn samples_depend_on_the_seed_only() {
    let model = model();
    let tok = tokenizer(512, None);
    let prompts = prompts();
    let (a, _) = generate(&model, &tok, &prompts, 4, &sampled(8, 11)).unwrap();
    let order: Vec<(usize, usize)> = a.iter().map(|c| (c.prompt_index, c.sample_index)).collect();
    let want: Vec<(usize, usize)> = (0..prompts.len()).flat_map(|p| (0..4).map(move |s| (p, s))).collect();
    assert_eq!(order, want);
    for batch_size in [16, 3, 1] {
        let (b, _) = generate(&model, &tok, &prompts, 4, &GenerateConfig { batch_size, ..sampled(8, 11) }).unwrap();
        assert_eq!(all_ids(&a), all_ids(&b), "batch_size {batch_size}");
    }
    // The first prompt alone samples what it sampled among the others.
    let (alone, _) = generate(&model, &tok, &prompts[..1], 4, &sampled(8, 11)).unwrap();
    assert_eq!(all_ids(&alone), all_ids(&a[..4]));
    // The last two prompts in a call of their own, numbered on from 2.
    let (rest, _) = generate(&model, &tok, &prompts[2..], 4, &GenerateConfig { first_prompt_index: 2, ..sampled(8, 11) }).unwrap();
    assert_eq!(rest.iter().map(|c| c.prompt_index).collect::<Vec<_>>(), [2, 2, 2, 2, 3, 3, 3, 3]);
    assert_eq!(all_ids(&rest), all_ids(&a[8..]));
    // The samples of one prompt differ from each other, and another seed gives others.
    assert!(a[1..4].iter().all(|c| c.ids != a[0].ids));
    let (other, _) = generate(&model, &tok, &prompts, 4, &sampled(8, 12)).unwrap();
    assert_ne!(all_ids(&a), all_ids(&other));
}

#[test]
fn top_k_1_is_greedy() {
    let model = model();
    let tok = tokenizer(512, None);
    let prompts = prompts();
    let (greedy_out, _) = generate(&model, &tok, &prompts, 1, &greedy(16)).unwrap();
    let (top1, _) = generate(&model, &tok, &prompts, 2, &GenerateConfig { top_k: 1, ..sampled(16, 5) }).unwrap();
    for c in &top1 {
        assert_eq!(c.ids, greedy_out[c.prompt_index].ids, "prompt {} sample {}", c.prompt_index, c.sample_index);
    }
}

#[test]
fn max_new_tokens_is_respected() {
    let model = model();
    let tok = tokenizer(512, None);
    let (out, stats) = generate(&model, &tok, &prompts(), 3, &sampled(5, 1)).unwrap();
    assert!(out.iter().all(|c| c.ids.len() == 5 && c.logprobs.len() == 5 && c.finish == Finish::Length));
    assert_eq!(stats.new_tokens, out.len() * 5);
    assert_eq!(stats.prompt_tokens, prompts().iter().map(Vec::len).sum::<usize>() * 3);
}

/// The fewest leading tokens of `ids` whose text contains `stop`.
fn tokens_to_complete(ids: &[u32], stop: &str) -> usize {
    (1..=ids.len()).find(|&k| text_of(&ids[..k]).contains(stop)).unwrap()
}

#[test]
fn stop_strings_cut_the_text_and_keep_the_token() {
    let model = model();
    let tok = tokenizer(512, None);
    let (prompt, generated) = reference_greedy();
    let full = text_of(&generated);
    // A stop string inside one token pair, one that ends inside a token,
    // and one that never appears.
    for stops in [vec!["<255><388>"], vec!["83><83"], vec!["<999>", "83><83", "<255><388>"]] {
        let config = GenerateConfig { stop_strings: stops.iter().map(|s| s.to_string()).collect(), ..greedy(24) };
        let (out, _) = generate(&model, &tok, std::slice::from_ref(&prompt), 1, &config).unwrap();
        let c = &out[0];
        let (k, stop) = stops
            .iter()
            .filter(|s| full.contains(**s))
            .map(|s| (tokens_to_complete(&generated, s), *s))
            .min()
            .unwrap();
        assert_eq!(c.ids, generated[..k], "{stops:?}");
        assert_eq!(c.finish, Finish::Stop(stop.to_string()));
        let end = full.find(stop).unwrap() + stop.len();
        assert_eq!(c.text, full[..end], "{stops:?}");
        assert!(c.text.ends_with(stop));
    }
}

#[test]
fn eos_ends_a_completion_when_asked() {
    let model = model();
    let tok = tokenizer(512, Some(92));
    let (prompt, generated) = reference_greedy();
    let config = GenerateConfig { stop_at_eos: true, ..greedy(24) };
    let (out, _) = generate(&model, &tok, std::slice::from_ref(&prompt), 1, &config).unwrap();
    assert_eq!(out[0].ids, generated[..4]);
    assert_eq!(out[0].finish, Finish::Eos);
    assert_eq!(out[0].text, text_of(&generated[..3]), "the special eos token is not text");
    let (out, _) = generate(&model, &tok, &[prompt], 1, &greedy(24)).unwrap();
    assert_eq!(out[0].ids, generated);
    assert!(!out[0].text.contains("<92>"), "special tokens are left out of the text");
}

#[test]
fn a_model_on_an_autodiff_device_generates_the_same() {
    let device = Device::flex().autodiff();
    let model = load_model(&fixture(), &device).unwrap();
    let tok = tokenizer(512, None);
    let (prompt, want) = reference_greedy();
    let (out, _) = generate(&model, &tok, &[prompt], 1, &greedy(want.len())).unwrap();
    assert_eq!(out[0].ids, want);
}

#[test]
fn bad_requests_are_errors() {
    let model = model();
    let tok = tokenizer(512, None);
    let prompts = prompts();
    let config_error = |config: GenerateConfig| match generate(&model, &tok, &prompts, 1, &config) {
        Err(Error::Config(message)) => message,
        other => panic!("{config:?} gave {other:?}"),
    };
    assert!(config_error(GenerateConfig { temperature: -1.0, ..greedy(4) }).contains("temperature"));
    assert!(config_error(GenerateConfig { temperature: f32::NAN, ..greedy(4) }).contains("temperature"));
    assert!(config_error(GenerateConfig { top_p: 0.0, ..greedy(4) }).contains("top_p"));
    assert!(config_error(GenerateConfig { top_p: 1.5, ..greedy(4) }).contains("top_p"));
    assert!(config_error(GenerateConfig { min_p: 1.0, ..greedy(4) }).contains("min_p"));
    assert!(config_error(GenerateConfig { batch_size: 0, ..greedy(4) }).contains("batch_size"));
    assert!(config_error(GenerateConfig { max_new_tokens: 0, ..greedy(4) }).contains("max_new_tokens"));
    assert!(config_error(GenerateConfig { stop_strings: vec![String::new()], ..greedy(4) }).contains("stop_strings"));

    let usage_error = |prompts: &[Vec<u32>], samples: usize, config: &GenerateConfig| {
        match generate(&model, &tok, prompts, samples, config) {
            Err(Error::Usage(message)) => message,
            other => panic!("{prompts:?} gave {other:?}"),
        }
    };
    assert!(usage_error(&[], 1, &greedy(4)).contains("no prompts"));
    assert!(usage_error(&prompts, 0, &greedy(4)).contains("samples_per_prompt"));
    assert!(usage_error(&[vec![1], vec![]], 1, &greedy(4)).contains("prompt 1 is empty"));
    assert!(usage_error(&[vec![1, 512]], 1, &greedy(4)).contains("512"));
    // The fixture has 256 positions: a 16-token prompt leaves room for 240.
    assert!(generate(&model, &tok, &prompts[3..], 1, &greedy(240)).is_ok_and(|(c, _)| c[0].ids.len() == 240));
    let message = usage_error(&prompts, 1, &greedy(241));
    assert!(message.contains("prompt 3") && message.contains("256"), "{message}");
}

/// Rollout throughput on the CPU: 4 prompts × 8 samples × 32 tokens in one
/// batch. Prints tokens/s (`cargo test --test generate -- --nocapture`).
#[test]
fn throughput_of_a_rollout_batch() {
    let model = model();
    let tok = tokenizer(512, None);
    let config = GenerateConfig { batch_size: 32, ..sampled(32, 7) };
    let (out, stats) = generate(&model, &tok, &prompts(), 8, &config).unwrap();
    assert_eq!((out.len(), stats.sequences, stats.new_tokens), (32, 32, 32 * 32));
    println!(
        "flex, qwen2-tiny, 4 prompts x 8 samples x 32 tokens, batch 32: {:.0} tokens/s ({:.3} s)",
        stats.tokens_per_s, stats.seconds
    );
}
