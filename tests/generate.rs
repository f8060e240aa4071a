//! Text in, text out: the tokenizer stored in the model file, greedy
//! generation against transformers, thinking/answer phases, stop tokens and
//! the think budget.

mod common;
use aha_kernels::DType;
use aha_runtime::{Finish, GenerateOptions, Generator, KvType, Model, Phase, Sampler, SamplerConfig, Session};
use common::*;
use std::path::PathBuf;

fn tokenizer_fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2-tokenizer")
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect()
}

/// Runs the generator; returns (token, phase, text) per event and why it ended.
fn generate(model: &Model, prompt: &[u32], sampler: SamplerConfig, options: GenerateOptions) -> (Vec<(u32, Phase, String)>, Finish) {
    let tokenizer = model.tokenizer().unwrap();
    let ctx = prompt.len() + options.max_tokens + 1;
    let mut buf = model.memory_plan(ctx, KvType::F32).allocate();
    let mut session = Session::new(model, &mut buf, ctx, KvType::F32).unwrap();
    let mut g = Generator::new(&mut session, &tokenizer, Sampler::new(sampler).unwrap(), options);
    g.prompt(prompt).unwrap();
    let mut events = Vec::new();
    while let Some(e) = g.next().unwrap() {
        events.push((e.token, e.phase, e.text.to_string()));
    }
    (events, g.finish().unwrap())
}

#[test]
fn text_prompt_greedy_generation_matches_transformers() {
    let dir = tokenizer_fixture();
    let r = reference(&dir);
    let g = &r.json["greedy_text"];
    let (_tmp, _path, bytes) = convert_fixture(&dir, DType::F32);
    let model = Model::from_bytes(&bytes).unwrap();
    let tokenizer = model.tokenizer().unwrap();
    let prompt = tokenizer.encode_to_vec(g["prompt"].as_str().unwrap()).unwrap();
    assert_eq!(prompt, ids(&g["prompt_ids"]), "prompt ids differ from HF tokenizers");
    let want = ids(&g["generated"]);
    let options = GenerateOptions { max_tokens: want.len(), ..Default::default() };
    let (events, finish) = generate(&model, &prompt, SamplerConfig::greedy(), options);
    let got: Vec<u32> = events.iter().map(|e| e.0).collect();
    assert_eq!(got, want);
    assert_eq!(finish, Finish::Length);
    // The streamed text is the decoded continuation.
    let streamed: String = events.iter().map(|e| e.2.as_str()).collect();
    let whole = tokenizer.decode_to_string(&want).unwrap();
    assert_eq!(streamed.trim_end_matches('\u{FFFD}'), whole.trim_end_matches('\u{FFFD}'));
}

#[test]
fn phases_follow_think_tags_and_the_budget_forces_the_close() {
    let dir = tokenizer_fixture();
    let (_tmp, _path, bytes) = convert_fixture(&dir, DType::F32);
    let model = Model::from_bytes(&bytes).unwrap();
    let t = model.tokenizer().unwrap();
    let (open, close) = (t.token_id("<think>").unwrap(), t.token_id("</think>").unwrap());
    let mut prompt = t.encode_to_vec("12 + 30 =").unwrap();
    prompt.push(open);
    let options = GenerateOptions { max_tokens: 8, think_budget: Some(3), ..Default::default() };
    let (events, _) = generate(&model, &prompt, SamplerConfig::greedy(), options);
    let phases: Vec<Phase> = events.iter().map(|e| e.1).collect();
    assert_eq!(events[3].0, close, "the 4th token is the forced </think>");
    assert_eq!(&phases[..4], &[Phase::Thinking; 4]);
    // After the close, the model may still emit its own tags; until then it answers.
    let after: Vec<_> = events[4..].iter().take_while(|e| e.0 != open).collect();
    assert!(after.iter().all(|e| e.1 == Phase::Answer));

    // Without a <think> in the prompt, tokens are answer tokens.
    let plain = t.encode_to_vec("12 + 30 =").unwrap();
    let (events, _) = generate(&model, &plain, SamplerConfig::greedy(), GenerateOptions { max_tokens: 4, ..Default::default() });
    let first_tag = events.iter().position(|e| e.0 == open).unwrap_or(events.len());
    assert!(events[..first_tag].iter().all(|e| e.1 == Phase::Answer));
}

#[test]
fn stop_tokens_end_generation_and_sampling_is_reproducible() {
    let dir = tokenizer_fixture();
    let (_tmp, _path, bytes) = convert_fixture(&dir, DType::Q8_0);
    let model = Model::from_bytes(&bytes).unwrap();
    let t = model.tokenizer().unwrap();
    let prompt = t.encode_to_vec("Wait, that's an aha moment").unwrap();
    let sampled = SamplerConfig { temperature: 1.0, top_p: 0.9, seed: 11, ..Default::default() };
    let options = GenerateOptions { max_tokens: 16, ..Default::default() };
    let (a, _) = generate(&model, &prompt, sampled, options.clone());
    let (b, _) = generate(&model, &prompt, sampled, options.clone());
    assert_eq!(a, b, "same seed, same output");

    // Make the 3rd greedy token a stop token: generation ends there, unfed.
    let (greedy, _) = generate(&model, &prompt, SamplerConfig::greedy(), options.clone());
    let mut stop = GenerateOptions { max_tokens: 16, ..Default::default() };
    stop.stop_tokens.push(greedy[2].0).unwrap();
    let (events, finish) = generate(&model, &prompt, SamplerConfig::greedy(), stop);
    assert_eq!(finish, Finish::Stop);
    assert_eq!(events.len(), 3);
    assert!(events[2].2.is_empty(), "a stop token prints nothing");
}

#[test]
fn context_full_ends_generation_cleanly() {
    let dir = tokenizer_fixture();
    let (_tmp, _path, bytes) = convert_fixture(&dir, DType::F32);
    let model = Model::from_bytes(&bytes).unwrap();
    let t = model.tokenizer().unwrap();
    let prompt = t.encode_to_vec("Hello world").unwrap();
    let ctx = prompt.len() + 3;
    let mut buf = model.memory_plan(ctx, KvType::F32).allocate();
    let mut session = Session::new(&model, &mut buf, ctx, KvType::F32).unwrap();
    let mut g = Generator::new(&mut session, &t, Sampler::new(SamplerConfig::greedy()).unwrap(), GenerateOptions::default());
    g.prompt(&prompt).unwrap();
    let mut n = 0;
    while g.next().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(g.finish(), Some(Finish::ContextFull));
    assert_eq!(n, 4, "three fed tokens fill the context, the fourth is sampled but not fed");
}
