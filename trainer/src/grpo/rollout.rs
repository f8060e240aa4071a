//! Who samples the rollouts: the trainer's batched generation (burn, any
//! device) or, on CPU, the aha runtime with the current weights handed over
//! before each step, as TRL hands its weights to vLLM.
//!
//! Both draw each sequence from the same seeded sampler
//! ([`GenerateConfig::sampler`]), end it by the same rules and report the
//! same temperature-scaled log-probs, so the engines differ only in float
//! rounding. The update never uses these log-probs: it recomputes them with
//! the trainer, so the objective is the same whichever engine sampled.
//!
//! The runtime path writes the policy as an f32 `.aha` file (a few MB for the
//! small students; the runtime reads it memory-mapped), then runs one
//! [`Session`] per thread. A thread's sequences are the same prompt's
//! samples one after another, so the prompt is prefilled once and the KV
//! cache is rewound to it for each further sample.

use std::path::PathBuf;

use aha_kernels::DType;
use aha_runtime::format::Provenance;
use aha_runtime::load::ModelBytes;
use aha_runtime::writer::{canonical_specs, ModelWriter};
use aha_runtime::{KvType, Model, Session};

use crate::error::{Error, Result};
use crate::generate::{check_prompts, completion, logprob, Completion, Ends, GenerateConfig};
use crate::model::CausalLm;
use crate::params::state_dict;
use crate::tokenizer::TextTokenizer;

/// The rollout engine of a run.
pub struct Engine {
    runtime: Option<RuntimeEngine>,
}

struct RuntimeEngine {
    path: PathBuf,
    bytes: Option<ModelBytes>,
    threads: usize,
}

impl Drop for RuntimeEngine {
    fn drop(&mut self) {
        self.bytes = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Engine {
    /// `runtime`: sample with the aha runtime (CPU) instead of the trainer.
    pub fn new(runtime: bool) -> Engine {
        let runtime = runtime.then(|| {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let name = format!("aha-rollout-{}-{:x}.aha", std::process::id(), &threads as *const _ as usize);
            RuntimeEngine { path: std::env::temp_dir().join(name), bytes: None, threads }
        });
        Engine { runtime }
    }

    /// The runtime engine with `threads` worker threads (tests, benches).
    pub fn runtime_with_threads(threads: usize) -> Engine {
        let mut e = Engine::new(true);
        if let Some(r) = e.runtime.as_mut() {
            r.threads = threads.max(1);
        }
        e
    }

    pub fn is_runtime(&self) -> bool {
        self.runtime.is_some()
    }

    /// Hands the policy's current weights to the runtime (no-op for the trainer).
    pub fn refresh(&mut self, model: &CausalLm, _tokenizer: &TextTokenizer) -> Result<()> {
        let Some(r) = self.runtime.as_mut() else { return Ok(()) };
        r.bytes = None;
        let config = model.config;
        let specs = canonical_specs(&config, DType::F32);
        let weights = state_dict(model);
        let provenance = Provenance { source: "grpo policy", converter: concat!("aha ", env!("CARGO_PKG_VERSION")), quantization: "f32" };
        let mut writer = ModelWriter::create(&r.path, config, None, provenance, specs.clone())?;
        for spec in &specs {
            let t = weights.get(&spec.name).ok_or_else(|| Error::tensor(&spec.name, "missing from the policy"))?;
            writer.write_tensor(&spec.name, &t.data)?;
        }
        writer.finish()?;
        r.bytes = Some(ModelBytes::open(&r.path)?);
        Ok(())
    }

    /// `samples_per_prompt` completions of each prompt, in order of
    /// `(prompt, sample)`, as [`crate::generate::generate`] returns them.
    pub fn generate(
        &mut self,
        model: &CausalLm,
        tokenizer: &TextTokenizer,
        prompts: &[Vec<u32>],
        samples_per_prompt: usize,
        config: &GenerateConfig,
    ) -> Result<Vec<Completion>> {
        match &self.runtime {
            None => Ok(crate::generate::generate(model, tokenizer, prompts, samples_per_prompt, config)?.0),
            Some(r) => {
                config.validate()?;
                check_prompts(model, prompts, samples_per_prompt, config)?;
                let bytes = r.bytes.as_ref().ok_or_else(|| Error::Usage("rollout engine: refresh before generate".into()))?;
                let runtime_model = Model::from_bytes(bytes.bytes())?;
                runtime_generate(&runtime_model, tokenizer, prompts, samples_per_prompt, config, r.threads)
            }
        }
    }
}

/// Samples every `(prompt, sample)` with the runtime, over `threads` threads.
fn runtime_generate(
    model: &Model,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    samples_per_prompt: usize,
    config: &GenerateConfig,
    threads: usize,
) -> Result<Vec<Completion>> {
    let jobs: Vec<(usize, usize)> = (0..prompts.len()).flat_map(|p| (0..samples_per_prompt).map(move |s| (p, s))).collect();
    let threads = threads.clamp(1, jobs.len().max(1));
    let context = prompts.iter().map(Vec::len).max().unwrap_or(0) + config.max_new_tokens;
    // Thread t takes a contiguous run of jobs, so consecutive jobs share a prompt.
    let per = jobs.len().div_ceil(threads);
    let results: Vec<Result<Vec<Completion>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(per.max(1))
            .map(|mine| scope.spawn(move || sample_jobs(model, tokenizer, prompts, mine, config, context)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::Usage("a rollout thread panicked".into())))).collect()
    });
    let mut out = Vec::with_capacity(jobs.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

fn sample_jobs(
    model: &Model,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    jobs: &[(usize, usize)],
    config: &GenerateConfig,
    context: usize,
) -> Result<Vec<Completion>> {
    let mut buf = model.memory_plan(context, KvType::F32).allocate();
    let mut session = Session::new(model, &mut buf, context, KvType::F32)?;
    let ends = Ends::new(tokenizer, config);
    let vocab = model.config.vocab_size as usize;
    let sampleable = tokenizer.vocab_size().clamp(1, vocab);
    let mut scratch = vec![0f32; vocab];
    let mut index = vec![0u32; vocab];
    let mut prefilled: Option<(usize, Vec<f32>)> = None;
    let mut out = Vec::with_capacity(jobs.len());
    for &(p, s) in jobs {
        let prompt = &prompts[p];
        // The prompt's KV cache and last logits, computed once per prompt.
        let logits_after_prompt = match &prefilled {
            Some((q, logits)) if *q == p => {
                session.truncate(prompt.len());
                logits.clone()
            }
            _ => {
                session.reset();
                let logits = session.feed(prompt)?.to_vec();
                prefilled = Some((p, logits.clone()));
                logits
            }
        };
        let prompt_index = config.first_prompt_index + p;
        let mut sampler = config.sampler(prompt_index, s)?;
        let mut ids = Vec::new();
        let mut logprobs = Vec::new();
        let mut logits = logits_after_prompt;
        let finish = loop {
            scratch.copy_from_slice(&logits);
            scratch[sampleable..].fill(f32::NEG_INFINITY);
            let token = sampler.sample(&mut scratch, &mut index, &[]);
            logprobs.push(logprob(&logits, token, config.temperature));
            ids.push(token);
            if let Some(finish) = ends.check(&ids, config.max_new_tokens)? {
                break finish;
            }
            logits.copy_from_slice(session.step(token)?);
        };
        out.push(completion(&ends, prompt_index, s, ids, logprobs, Some(finish))?);
    }
    Ok(out)
}
