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
//! small students; the runtime reads it memory-mapped), then decodes up to
//! `batch_size` sequences at once in one [`BatchSession`] (each step one pass
//! over the weights for all of them, the rows of every product split across
//! the threads). A prompt is prefilled once and its KV prefix forked to each
//! of its samples; a sequence that ends frees its slot for the next one.
//! Sampling is split across the same threads. Because the batched kernels
//! never mix sequences, a sequence's tokens do not depend on `batch_size` or
//! on which others shared its steps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use aha_kernels::pool::ThreadPool;
use aha_kernels::DType;
use aha_runtime::format::Provenance;
use aha_runtime::load::ModelBytes;
use aha_runtime::sampler::{logprob, Sampler};
use aha_runtime::writer::{canonical_specs, ModelWriter};
use aha_runtime::{BatchSession, KvType, Model};
use std::sync::{Arc, Mutex};

use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::generate::{check_prompts, completion, Completion, Ends, Finish, GenerateConfig, GenerateStats};
use crate::model::CausalLm;
use crate::params::state_dict;
use crate::tokenizer::TextTokenizer;

/// The rollout engine of a run.
pub struct Engine {
    runtime: Option<RuntimeEngine>,
}

struct RuntimeEngine {
    /// The policy's weights as a temporary file (deleted on drop), or a
    /// model file the caller named (kept).
    path: PathBuf,
    temporary: bool,
    bytes: Option<ModelBytes>,
    threads: usize,
}

impl Drop for RuntimeEngine {
    fn drop(&mut self) {
        self.bytes = None;
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Engine {
    /// `runtime`: sample with the aha runtime (CPU) instead of the trainer.
    pub fn new(runtime: bool) -> Engine {
        let runtime = runtime.then(|| {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let name = format!("aha-rollout-{}-{:x}.aha", std::process::id(), &threads as *const _ as usize);
            RuntimeEngine { path: std::env::temp_dir().join(name), temporary: true, bytes: None, threads }
        });
        Engine { runtime }
    }

    /// The runtime engine on a model file (any weight format: a quantized
    /// student is sampled as it will run on a device). [`Self::refresh`]
    /// must not be called on it.
    pub fn open(path: &Path) -> Result<Engine> {
        let bytes = ModelBytes::open(path)?;
        Model::from_bytes(bytes.bytes()).map_err(|e| Error::file(path, e))?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Engine { runtime: Some(RuntimeEngine { path: path.to_path_buf(), temporary: false, bytes: Some(bytes), threads }) })
    }

    /// The runtime engine with `threads` worker threads (tests, benches).
    pub fn runtime_with_threads(threads: usize) -> Engine {
        let mut e = Engine::new(true);
        e.set_threads(threads);
        e
    }

    /// Worker threads of the runtime engine.
    pub fn set_threads(&mut self, threads: usize) {
        if let Some(r) = self.runtime.as_mut() {
            r.threads = threads.max(1);
        }
    }

    /// The engine `name`d `trainer`, `runtime` or `auto` (the runtime when
    /// the work runs on the CPU, the trainer on a GPU).
    pub fn named(name: &str, device: DeviceChoice) -> Result<Engine> {
        match name {
            "trainer" => Ok(Engine::new(false)),
            "runtime" => Ok(Engine::new(true)),
            "auto" => Ok(Engine::new(device == DeviceChoice::Flex)),
            other => Err(Error::Config(format!("engine `{other}`: expected auto, trainer or runtime"))),
        }
    }

    pub fn is_runtime(&self) -> bool {
        self.runtime.is_some()
    }

    /// Hands the policy's current weights to the runtime (no-op for the trainer).
    pub fn refresh(&mut self, model: &CausalLm, _tokenizer: &TextTokenizer) -> Result<()> {
        let Some(r) = self.runtime.as_mut() else { return Ok(()) };
        if !r.temporary {
            return Err(Error::Usage(format!("rollout engine: {} is a model file, not the policy's weights", r.path.display())));
        }
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
    /// `model` is the trainer's model: required by the trainer engine,
    /// unused by the runtime one (none for a model file).
    pub fn generate(
        &mut self,
        model: Option<&CausalLm>,
        tokenizer: &TextTokenizer,
        prompts: &[Vec<u32>],
        samples_per_prompt: usize,
        config: &GenerateConfig,
    ) -> Result<Vec<Completion>> {
        Ok(self.generate_with_stats(model, tokenizer, prompts, samples_per_prompt, config)?.0)
    }

    /// As [`Engine::generate`], with what the call did.
    pub fn generate_with_stats(
        &mut self,
        model: Option<&CausalLm>,
        tokenizer: &TextTokenizer,
        prompts: &[Vec<u32>],
        samples_per_prompt: usize,
        config: &GenerateConfig,
    ) -> Result<(Vec<Completion>, GenerateStats)> {
        match &self.runtime {
            None => {
                let model = model.ok_or_else(|| Error::Usage("rollout engine: the trainer engine needs the model".into()))?;
                crate::generate::generate(model, tokenizer, prompts, samples_per_prompt, config)
            }
            Some(r) => {
                let started = Instant::now();
                config.validate()?;
                let bytes = r.bytes.as_ref().ok_or_else(|| Error::Usage("rollout engine: refresh before generate".into()))?;
                let runtime_model = Model::from_bytes(bytes.bytes())?;
                check_prompts(&runtime_model.config, prompts, samples_per_prompt, config)?;
                let done = runtime_generate(&runtime_model, tokenizer, prompts, samples_per_prompt, config, r.threads)?;
                let stats = GenerateStats::of(&done, prompts, samples_per_prompt, started.elapsed().as_secs_f64());
                Ok((done, stats))
            }
        }
    }
}

/// Prompt tokens one prefill pass takes, at most.
const PREFILL_BATCH: usize = 64;

/// A sequence being sampled in a slot of the batch session.
struct Live {
    job: usize,
    prompt: usize,
    sampler: Sampler,
    ids: Vec<u32>,
    logprobs: Vec<f32>,
    /// Where it is in its thinking (budget forcing).
    think: crate::generate::ThinkState,
    /// Its first token is drawn from its prompt's logits (kept aside: a
    /// prefix forked from a sequence that has moved on carries the KV rows only).
    first: bool,
    finish: Option<Finish>,
    error: Option<Error>,
}

fn lock(m: &Mutex<Option<Live>>) -> std::sync::MutexGuard<'_, Option<Live>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Samples every `(prompt, sample)` with the runtime: up to
/// `config.batch_size` sequences at a time in one batch session over `threads` threads.
fn runtime_generate(
    model: &Model,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    samples_per_prompt: usize,
    config: &GenerateConfig,
    threads: usize,
) -> Result<Vec<Completion>> {
    let jobs: Vec<(usize, usize)> = (0..prompts.len()).flat_map(|p| (0..samples_per_prompt).map(move |s| (p, s))).collect();
    let slots = config.batch_size.clamp(1, jobs.len().max(1));
    let context = prompts.iter().map(Vec::len).max().unwrap_or(0) + config.max_new_tokens;
    let plan = model.memory_plan_sequences(context, KvType::F32, slots, slots.max(PREFILL_BATCH));
    let mut buf = plan.try_allocate()?;
    let mut session = BatchSession::new(model, &mut buf, &plan, aha_kernels::best())?;
    let pool = Arc::new(ThreadPool::new(threads.max(1)));
    session.set_pool((pool.threads() > 1).then(|| Arc::clone(&pool)));
    let ends = Ends::new(tokenizer, config)?;
    let vocab = model.config.vocab_size as usize;
    let sampleable = tokenizer.vocab_size().clamp(1, vocab);
    // Per thread: the sampler's copy of the logits and its index buffer.
    let scratch: Vec<Mutex<(Vec<f32>, Vec<u32>)>> =
        (0..pool.threads()).map(|_| Mutex::new((vec![0f32; vocab], vec![0u32; vocab]))).collect();
    let live: Vec<Mutex<Option<Live>>> = (0..slots).map(|_| Mutex::new(None)).collect();
    let mut results: Vec<Option<Completion>> = (0..jobs.len()).map(|_| None).collect();
    // The prompt most recently prefilled and its slot; prompts' logits after their last token.
    let mut prefilled: Option<(usize, usize)> = None;
    let mut prompt_logits: Vec<Option<Vec<f32>>> = vec![None; prompts.len()];
    let mut next_job = 0;
    // This round's prompts to prefill (slot, prompt) and the forks waiting on them.
    let (mut feeds, mut waiting): (Vec<(usize, usize)>, Vec<(usize, usize, usize)>) = (Vec::new(), Vec::new());
    let (mut feed_slots, mut feed_tokens): (Vec<usize>, Vec<u32>) = (Vec::new(), Vec::new());
    loop {
        // Free slots take the next jobs: a new prompt is prefilled once, its
        // further samples fork that prefix. The round's new prompts are
        // prefilled together, in one pass over the weights per `batch` tokens.
        for slot in 0..slots {
            if next_job == jobs.len() {
                break;
            }
            if lock(&live[slot]).is_some() {
                continue;
            }
            let (p, s) = jobs[next_job];
            let prompt = &prompts[p];
            match prefilled {
                // A prefix being prefilled this round is forked once it is there.
                Some((q, from)) if q == p && feeds.last() == Some(&(from, p)) => waiting.push((from, slot, prompt.len())),
                Some((q, from)) if q == p => session.fork(from, slot, prompt.len())?,
                _ => {
                    session.reset(slot)?;
                    feeds.push((slot, p));
                    prefilled = Some((p, slot));
                }
            }
            let sampler = config.sampler(config.first_prompt_index + p, s)?;
            *lock(&live[slot]) = Some(Live {
                job: next_job,
                prompt: p,
                sampler,
                ids: Vec::new(),
                logprobs: Vec::new(),
                think: ends.thinking.start(prompt),
                first: true,
                finish: None,
                error: None,
            });
            next_job += 1;
        }
        if !feeds.is_empty() {
            feed_slots.clear();
            feed_tokens.clear();
            for &(slot, p) in &feeds {
                feed_slots.extend(std::iter::repeat_n(slot, prompts[p].len()));
                feed_tokens.extend_from_slice(&prompts[p]);
            }
            session.step(&feed_slots, &feed_tokens)?;
            for &(slot, p) in &feeds {
                prompt_logits[p] = Some(session.logits(slot)?.to_vec());
            }
            for (from, to, len) in waiting.drain(..) {
                session.fork(from, to, len)?;
            }
            feeds.clear();
        }
        let active: Vec<usize> = (0..slots).filter(|&i| lock(&live[i]).is_some()).collect();
        if active.is_empty() {
            break;
        }
        // One token for every live sequence, the sequences split across threads.
        let (session_ref, ends_ref, live_ref, scratch_ref, active_ref, firsts) =
            (&session, &ends, &live, &scratch, &active, &prompt_logits);
        let share = active.len().div_ceil(pool.threads());
        pool.run(&|t| {
            let mut guard = scratch_ref[t].lock().unwrap_or_else(|e| e.into_inner());
            let (buf, index) = &mut *guard;
            for &slot in active_ref.iter().skip(t * share).take(share) {
                let mut seq = lock(&live_ref[slot]);
                let Some(seq) = seq.as_mut() else { continue };
                let logits = match (seq.first, &firsts[seq.prompt]) {
                    (true, Some(l)) => &l[..],
                    _ => match session_ref.logits(slot) {
                        Ok(l) => l,
                        Err(e) => {
                            seq.error = Some(e.into());
                            continue;
                        }
                    },
                };
                seq.first = false;
                let (sampler, thinking) = (&mut seq.sampler, &ends_ref.thinking);
                let token = seq.think.choose(thinking, || {
                    buf.copy_from_slice(logits);
                    buf[sampleable..].fill(f32::NEG_INFINITY);
                    sampler.sample(buf, index, &[])
                });
                seq.logprobs.push(logprob(logits, token, config.temperature));
                seq.ids.push(token);
                match ends_ref.check(&seq.ids, config.max_new_tokens) {
                    Ok(finish) => seq.finish = finish,
                    Err(e) => seq.error = Some(e),
                }
            }
        });
        // Finished sequences leave; the rest take their token in one step.
        let (mut step_slots, mut step_tokens) = (Vec::with_capacity(active.len()), Vec::with_capacity(active.len()));
        for &slot in &active {
            let mut guard = lock(&live[slot]);
            let seq = guard.as_mut().ok_or_else(|| Error::Usage("rollout engine: a live slot emptied".into()))?;
            if let Some(e) = seq.error.take() {
                return Err(e);
            }
            if seq.finish.is_some() {
                let Some(seq) = guard.take() else { continue };
                let (p, s) = jobs[seq.job];
                let thinking = seq.think.count;
                results[seq.job] = Some(completion(&ends, config.first_prompt_index + p, s, seq.ids, seq.logprobs, seq.finish, thinking)?);
            } else {
                step_slots.push(slot);
                step_tokens.push(*seq.ids.last().unwrap_or(&0));
            }
        }
        if !step_slots.is_empty() {
            session.step(&step_slots, &step_tokens)?;
        }
        // Every sequence has drawn its first token: only the current prompt's
        // logits can still be needed.
        for (p, l) in prompt_logits.iter_mut().enumerate() {
            if prefilled.is_some_and(|(q, _)| q != p) {
                *l = None;
            }
        }
    }
    results.into_iter().map(|r| r.ok_or_else(|| Error::Usage("rollout engine: a sequence was never sampled".into()))).collect()
}
