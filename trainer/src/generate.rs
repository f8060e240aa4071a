//! Batched sampling with a KV cache, for RL rollouts: GRPO wants G
//! completions of each prompt together with the log-probability of every
//! token that was sampled (the "old policy" log-probs of its ratio).
//!
//! The prompts × G sequences are cut into chunks of `batch_size`. A chunk is
//! left-padded to its longest prompt and prefilled in one forward; then each
//! step feeds one token per row, pulls only the last position's logits
//! (`[rows, vocab]`) to the host and samples there with the runtime's
//! [`Sampler`], so the trainer and the runtime choose tokens the same way.
//! A row that ends (end-of-sequence, a stop string, the length limit) leaves
//! the batch and the KV cache at once, so the work per step shrinks as rows
//! finish.
//!
//! Every sequence draws from its own RNG, seeded from `(seed, prompt_index,
//! sample_index)`: what a sequence samples does not depend on `batch_size`
//! or on which other prompts are in the call.

use std::time::Instant;

use aha_runtime::sampler::{logprob, Sampler, SamplerConfig};
use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{CausalLm, Inputs, KvCache};
use crate::tokenizer::TextTokenizer;

/// How to sample. The sampling fields mean what they mean in transformers'
/// `generate` and in the runtime's [`SamplerConfig`], applied in the same
/// order: temperature, top-k, top-p, min-p.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateConfig {
    /// Completion tokens at most (the end-of-sequence token included).
    pub max_new_tokens: usize,
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 = off.
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p; 1 = off.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` × the most likely; 0 = off.
    pub min_p: f32,
    /// End a completion once its text contains one of these; the text and
    /// the ids keep it (a reward that checks `</answer>` must see it).
    pub stop_strings: Vec<String>,
    /// End a completion at the tokenizer's end-of-sequence token (kept in
    /// `ids`, since the policy must learn to emit it).
    pub stop_at_eos: bool,
    pub seed: u64,
    /// Most sequences in one forward.
    pub batch_size: usize,
    /// The index of `prompts[0]` in a longer stream of prompts. Completions
    /// are numbered, and seeded, from it, so a stream generated over several
    /// calls samples what one call over all of it would.
    pub first_prompt_index: usize,
    /// Budget forcing (s1, Muennighoff et al. 2025): once a completion has
    /// thought this many tokens, `</think>` is written for it and it goes
    /// on to answer. Unset: no cap.
    pub think_budget: Option<usize>,
    /// s1's other half: `</think>` or end-of-sequence sampled before this
    /// many thinking tokens is replaced by `wait_text`, so the model thinks
    /// on. 0: off.
    pub min_think: usize,
    pub wait_text: String,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            max_new_tokens: 256,
            // GRPO samples from the policy itself: temperature 1, no truncation.
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            stop_strings: Vec::new(),
            stop_at_eos: true,
            seed: 42,
            batch_size: 64,
            first_prompt_index: 0,
            think_budget: None,
            min_think: 0,
            wait_text: "Wait".into(),
        }
    }
}

impl GenerateConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::Config(message));
        if self.max_new_tokens == 0 {
            return bad("`max_new_tokens` must be positive".into());
        }
        if self.batch_size == 0 {
            return bad("`batch_size` must be positive".into());
        }
        // Written negated so that NaN fails too.
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!("`temperature` must be a finite number >= 0, not {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("`top_p` must be in (0, 1], not {}", self.top_p));
        }
        if !(self.min_p >= 0.0 && self.min_p < 1.0) {
            return bad(format!("`min_p` must be in [0, 1), not {}", self.min_p));
        }
        if self.stop_strings.iter().any(String::is_empty) {
            return bad("`stop_strings` may not hold an empty string".into());
        }
        if self.min_think > 0 && self.wait_text.is_empty() {
            return bad("`wait_text` may not be empty when `min_think` is set".into());
        }
        if let Some(b) = self.think_budget {
            if self.min_think > b {
                return bad(format!("`min_think` {} exceeds `think_budget` {b}", self.min_think));
            }
        }
        Ok(())
    }

    /// The sampler of sequence `(prompt_index, sample_index)`.
    pub(crate) fn sampler(&self, prompt_index: usize, sample_index: usize) -> Result<Sampler> {
        let config = SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: 1.0,
            seed: sequence_seed(self.seed, prompt_index, sample_index),
        };
        Ok(Sampler::new(config)?)
    }
}

/// Why a completion ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finish {
    /// The end-of-sequence token was sampled (it is the last id).
    Eos,
    /// The text came to contain this stop string.
    Stop(String),
    /// `max_new_tokens` were sampled.
    Length,
}

/// One sampled continuation of one prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub prompt_index: usize,
    /// Which of the prompt's `samples_per_prompt` samples this is.
    pub sample_index: usize,
    /// The sampled tokens, without the prompt.
    pub ids: Vec<u32>,
    /// `logprobs[i] = log softmax(logits / temperature)[ids[i]]` (plain
    /// log-softmax when greedy): the log-probability under the temperature-scaled
    /// policy, *not* renormalised over what top-k / top-p / min-p kept, so
    /// that it matches what teacher forcing the model on `ids` gives.
    pub logprobs: Vec<f32>,
    /// `ids` decoded without special tokens, ending with the stop string
    /// when one ended it.
    pub text: String,
    pub finish: Finish,
    /// Tokens inside `<think>…</think>` (the tags not counted).
    #[serde(default)]
    pub thinking: usize,
}

/// What a call to [`generate`] did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerateStats {
    pub sequences: usize,
    /// Completion tokens sampled, over all sequences.
    pub new_tokens: usize,
    /// Prompt tokens prefilled (each prompt counted once per sample, padding not counted).
    pub prompt_tokens: usize,
    pub seconds: f64,
    /// `new_tokens / seconds`.
    pub tokens_per_s: f64,
}

impl GenerateStats {
    /// The figures of `completions` of `prompts` made in `seconds`.
    pub fn of(completions: &[Completion], prompts: &[Vec<u32>], samples_per_prompt: usize, seconds: f64) -> GenerateStats {
        let new_tokens = completions.iter().map(|c| c.ids.len()).sum();
        GenerateStats {
            sequences: completions.len(),
            new_tokens,
            prompt_tokens: prompts.iter().map(Vec::len).sum::<usize>() * samples_per_prompt,
            seconds,
            tokens_per_s: if seconds > 0.0 { new_tokens as f64 / seconds } else { 0.0 },
        }
    }
}

/// Samples `samples_per_prompt` completions of each prompt (token ids, as
/// the tokenizer encodes them). Completions come back in order of
/// `(prompt_index, sample_index)`; `prompt_index` counts from
/// `config.first_prompt_index`.
///
/// Runs on the model's device. A model on an autodiff device is used
/// through its [`Module::valid`] copy (which shares the weights), so
/// generating builds no graph.
pub fn generate(
    model: &CausalLm,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    samples_per_prompt: usize,
    config: &GenerateConfig,
) -> Result<(Vec<Completion>, GenerateStats)> {
    let started = Instant::now();
    config.validate()?;
    check_prompts(&model.config, prompts, samples_per_prompt, config)?;
    let inference;
    let model = if model.device().is_autodiff() {
        inference = model.valid();
        &inference
    } else {
        model
    };
    let ends = Ends::new(tokenizer, config)?;
    let pad = tokenizer.pad_id().unwrap_or(0);

    let mut sequences = Vec::with_capacity(prompts.len() * samples_per_prompt);
    for (i, prompt) in prompts.iter().enumerate() {
        let prompt_index = config.first_prompt_index + i;
        for sample_index in 0..samples_per_prompt {
            sequences.push(Sequence {
                prompt_index,
                sample_index,
                prompt,
                sampler: config.sampler(prompt_index, sample_index)?,
                think: ends.thinking.start(prompt),
                ids: Vec::new(),
                logprobs: Vec::new(),
                finish: None,
            });
        }
    }
    let mut completions = Vec::with_capacity(sequences.len());
    for chunk in sequences.chunks_mut(config.batch_size) {
        generate_chunk(model, chunk, pad, &ends, config)?;
    }
    for s in sequences {
        completions.push(completion(&ends, s.prompt_index, s.sample_index, s.ids, s.logprobs, s.finish, s.think.count)?);
    }

    let stats = GenerateStats::of(&completions, prompts, samples_per_prompt, started.elapsed().as_secs_f64());
    Ok((completions, stats))
}

/// A finished sequence as a [`Completion`]: its text decoded, cut after
/// the stop string that ended it.
pub(crate) fn completion(
    ends: &Ends,
    prompt_index: usize,
    sample_index: usize,
    ids: Vec<u32>,
    logprobs: Vec<f32>,
    finish: Option<Finish>,
    thinking: usize,
) -> Result<Completion> {
    let (text, finish) = match finish {
        Some(Finish::Stop(stop)) => {
            let text = ends.decode(&ids)?;
            let end = stop_end(&text, std::slice::from_ref(&stop)).map_or(text.len(), |(end, _)| end);
            (text[..end].to_string(), Finish::Stop(stop))
        }
        finish => (ends.decode(&ids)?, finish.unwrap_or(Finish::Length)),
    };
    Ok(Completion { prompt_index, sample_index, ids, logprobs, text, finish, thinking })
}

/// A sequence being generated.
struct Sequence<'p> {
    prompt_index: usize,
    sample_index: usize,
    prompt: &'p [u32],
    sampler: Sampler,
    think: ThinkState,
    ids: Vec<u32>,
    logprobs: Vec<f32>,
    finish: Option<Finish>,
}

/// What ends a completion, and the tokenizer that decodes it to check.
pub(crate) struct Ends<'a> {
    pub tokenizer: &'a TextTokenizer,
    pub eos: Option<u32>,
    pub stop_strings: &'a [String],
    pub thinking: Thinking,
}

impl<'a> Ends<'a> {
    pub(crate) fn new(tokenizer: &'a TextTokenizer, config: &'a GenerateConfig) -> Result<Ends<'a>> {
        let eos = if config.stop_at_eos { tokenizer.eos_id() } else { None };
        Ok(Ends { tokenizer, eos, stop_strings: &config.stop_strings, thinking: Thinking::new(tokenizer, config, eos)? })
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true)
    }

    /// Whether the completion `ids`, whose last token was just sampled, is done.
    pub(crate) fn check(&self, ids: &[u32], max_new_tokens: usize) -> Result<Option<Finish>> {
        if self.eos.is_some() && ids.last() == self.eos.as_ref() {
            return Ok(Some(Finish::Eos));
        }
        if !self.stop_strings.is_empty() {
            // The whole completion is decoded again: a token can complete a
            // multi-byte character, or a stop string, begun by earlier ones.
            let text = self.decode(ids)?;
            if let Some((_, stop)) = stop_end(&text, self.stop_strings) {
                return Ok(Some(Finish::Stop(stop.clone())));
            }
        }
        Ok((ids.len() >= max_new_tokens).then_some(Finish::Length))
    }
}

/// Where the first stop string to be completed in `text` ends, and which it is.
fn stop_end<'s>(text: &str, stops: &'s [String]) -> Option<(usize, &'s String)> {
    stops.iter().filter_map(|s| text.find(s.as_str()).map(|at| (at + s.len(), s))).min_by_key(|&(end, _)| end)
}

/// How a tokenizer marks thinking, and the budget-forcing rules of a call
/// (s1: "s1: Simple test-time scaling", Muennighoff et al. 2025).
pub(crate) struct Thinking {
    open: Option<u32>,
    close: Vec<u32>,
    wait: Vec<u32>,
    eos: Option<u32>,
    budget: Option<usize>,
    min: usize,
}

impl Thinking {
    pub(crate) fn new(tokenizer: &TextTokenizer, config: &GenerateConfig, eos: Option<u32>) -> Result<Thinking> {
        let close = tokenizer.encode_raw("</think>")?;
        let forcing = config.think_budget.is_some() || config.min_think > 0;
        let open = tokenizer.token_id("<think>");
        if forcing && (open.is_none() || close.is_empty()) {
            return Err(Error::Usage("think budgets need a tokenizer with a `<think>` token".into()));
        }
        let wait = if config.min_think > 0 { tokenizer.encode_raw(&config.wait_text)? } else { Vec::new() };
        Ok(Thinking { open, close, wait, eos, budget: config.think_budget, min: config.min_think })
    }

    /// A sequence's state after `prompt`: thinking already when the prompt's
    /// last think tag opens (R1's distilled students' template ends `<think>\n`).
    pub(crate) fn start(&self, prompt: &[u32]) -> ThinkState {
        let last_open = self.open.and_then(|o| prompt.iter().rposition(|&t| t == o));
        let last_close = self.close.last().and_then(|c| prompt.iter().rposition(|t| t == c));
        let inside = match (last_open, last_close) {
            (Some(o), Some(c)) => o > c,
            (Some(_), None) => true,
            _ => false,
        };
        ThinkState { inside, count: 0, forced: std::collections::VecDeque::new(), recent: Vec::new() }
    }
}

/// Where one sequence is in its thinking, and what is to be written for it.
pub(crate) struct ThinkState {
    inside: bool,
    /// Thinking tokens so far.
    pub count: usize,
    /// Tokens to write instead of sampling (the close tag, or "Wait"), and
    /// whether each counts as thinking.
    forced: std::collections::VecDeque<(u32, bool)>,
    /// The last few tokens, to see a multi-token close tag complete.
    recent: Vec<u32>,
}

impl ThinkState {
    /// The next token: a forced one if any is due, else `sample()`'s, with
    /// an early `</think>` or end-of-sequence replaced by the wait text.
    pub(crate) fn choose(&mut self, rules: &Thinking, sample: impl FnOnce() -> u32) -> u32 {
        let (token, counts) = match self.forced.pop_front() {
            Some(forced) => forced,
            None => {
                let token = sample();
                let closes = rules.close.len() == 1 && rules.close[0] == token;
                if self.inside && self.count < rules.min && (closes || Some(token) == rules.eos) {
                    self.forced.extend(rules.wait.iter().map(|&t| (t, true)));
                    self.forced.pop_front().unwrap_or((token, true))
                } else {
                    (token, true)
                }
            }
        };
        self.observe(rules, token, counts);
        token
    }

    fn observe(&mut self, rules: &Thinking, token: u32, counts: bool) {
        self.recent.push(token);
        if self.recent.len() > rules.close.len().max(1) {
            self.recent.remove(0);
        }
        if !self.inside {
            self.inside = Some(token) == rules.open;
        } else if !rules.close.is_empty() && self.recent.ends_with(&rules.close) {
            self.inside = false;
            self.forced.clear();
            // The close tag's earlier tokens were counted as they came.
            if counts {
                self.count = self.count.saturating_sub(rules.close.len() - 1);
            }
            return;
        } else if counts {
            self.count += 1;
        }
        // The budget is for all thinking: a thought reopened after it is
        // spent is closed at once.
        if self.inside && self.forced.is_empty() && rules.budget.is_some_and(|b| self.count >= b) {
            self.forced.extend(rules.close.iter().map(|&t| (t, false)));
        }
    }
}

/// Generates `rows` to the end, in one batch.
fn generate_chunk(model: &CausalLm, rows: &mut [Sequence], pad: u32, ends: &Ends, config: &GenerateConfig) -> Result<()> {
    let device = model.device();
    let vocab = model.config.vocab_size as usize;
    let width = rows.iter().map(|r| r.prompt.len()).max().unwrap_or(0);
    // Per active row: its index in `rows` and its left padding.
    let mut active: Vec<usize> = (0..rows.len()).collect();
    let mut pads: Vec<usize> = rows.iter().map(|r| width - r.prompt.len()).collect();
    let padded: Vec<Vec<u32>> =
        rows.iter().zip(&pads).map(|(r, &p)| std::iter::repeat_n(pad, p).chain(r.prompt.iter().copied()).collect()).collect();
    let mut cache = KvCache::new(&model.config, rows.len(), width + config.max_new_tokens, model.compute, &device);
    let mut logits = last_logits(model, &Inputs::left_padded(&padded, &pads, &device), &mut cache)?;
    let mut scratch = vec![0f32; vocab];
    let mut index = vec![0u32; vocab];
    // Checkpoints often pad the embedding past the tokenizer's last id
    // (Qwen2.5: 151936 rows, 151665 tokens); those rows name no text and are
    // never sampled. Log-probs still use the full softmax, as teacher forcing does.
    let sampleable = ends.tokenizer.vocab_size().clamp(1, vocab);

    loop {
        // Sample one token for every active row.
        let mut keep = Vec::with_capacity(active.len());
        let mut next = Vec::with_capacity(active.len());
        for (b, &r) in active.iter().enumerate() {
            let row = &logits[b * vocab..(b + 1) * vocab];
            let seq = &mut rows[r];
            let token = seq.think.choose(&ends.thinking, || {
                scratch.copy_from_slice(row);
                scratch[sampleable..].fill(f32::NEG_INFINITY);
                seq.sampler.sample(&mut scratch, &mut index, &[])
            });
            seq.logprobs.push(logprob(row, token, config.temperature));
            seq.ids.push(token);
            seq.finish = ends.check(&seq.ids, config.max_new_tokens)?;
            if seq.finish.is_none() {
                keep.push(b);
                next.push(vec![token]);
            }
        }
        if keep.is_empty() {
            return Ok(());
        }
        if keep.len() < active.len() {
            let kept: Vec<i64> = keep.iter().map(|&b| b as i64).collect();
            cache.select_rows(Tensor::<1, Int>::from_data(TensorData::new(kept, [keep.len()]), &device));
            active = keep.iter().map(|&b| active[b]).collect();
            pads = keep.iter().map(|&b| pads[b]).collect();
        }
        let inputs = Inputs::continuing(&next, &pads, cache.len, &device);
        logits = last_logits(model, &inputs, &mut cache)?;
    }
}

/// Runs `inputs` through the model, extending `cache`, and returns the
/// logits of each row's last position on the host, `[rows × vocab]`. Only
/// the last position goes through the output projection.
fn last_logits(model: &CausalLm, inputs: &Inputs, cache: &mut KvCache) -> Result<Vec<f32>> {
    let hidden = model.hidden(inputs, Some(cache));
    let [b, t, h] = hidden.dims();
    let last = model.project(hidden.slice([0..b, t - 1..t, 0..h]));
    let vocab = last.dims()[2];
    last.reshape([b, vocab]).into_data().try_into_vec::<f32>().map_err(|e| Error::tensor("logits", format!("{e:?}")))
}

/// The seed of one sequence's RNG: SplitMix64's finaliser (Steele et al.
/// 2014) over the run's seed, the prompt's index and the sample's index, so
/// that neighbouring indices give unrelated streams.
fn sequence_seed(seed: u64, prompt_index: usize, sample_index: usize) -> u64 {
    fn splitmix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    splitmix(splitmix(splitmix(seed) ^ prompt_index as u64) ^ sample_index as u64)
}

/// Refuses what the model cannot run: no prompts, empty prompts, unknown
/// ids, or a prompt that would outgrow the model's positions.
pub(crate) fn check_prompts(
    model: &crate::config::Config,
    prompts: &[Vec<u32>],
    samples_per_prompt: usize,
    config: &GenerateConfig,
) -> Result<()> {
    if prompts.is_empty() {
        return Err(Error::Usage("generate: no prompts given".into()));
    }
    if samples_per_prompt == 0 {
        return Err(Error::Usage("generate: samples_per_prompt must be positive".into()));
    }
    let vocab = model.vocab_size;
    let max_position = model.max_position as usize;
    for (i, prompt) in prompts.iter().enumerate() {
        let i = config.first_prompt_index + i;
        if prompt.is_empty() {
            return Err(Error::Usage(format!("generate: prompt {i} is empty")));
        }
        if let Some(&id) = prompt.iter().find(|&&id| id >= vocab) {
            return Err(Error::Usage(format!("generate: prompt {i} holds token {id}, outside the model's vocabulary of {vocab}")));
        }
        if prompt.len() + config.max_new_tokens > max_position {
            return Err(Error::Usage(format!(
                "generate: prompt {i} has {} tokens; with max_new_tokens = {} that is more than the model's {max_position} positions",
                prompt.len(),
                config.max_new_tokens
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_stop_string_to_end_wins() {
        let stops = ["</answer>".to_string(), "wer".to_string()];
        assert_eq!(stop_end("a </answer> b", &stops), Some((10, &stops[1])));
        assert_eq!(stop_end("no stop", &stops), None);
    }

    #[test]
    fn sequence_seeds_differ_per_index() {
        let seeds = [sequence_seed(0, 0, 0), sequence_seed(0, 0, 1), sequence_seed(0, 1, 0), sequence_seed(1, 0, 0)];
        for (i, a) in seeds.iter().enumerate() {
            assert!(seeds[i + 1..].iter().all(|b| a != b));
        }
    }
}
