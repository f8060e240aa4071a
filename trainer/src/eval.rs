//! Evaluation: one evaluator for every stage (GRPO's and distillation's
//! held-out checks, `aha eval`, the pipeline's report).
//!
//! Every sample of every prompt goes through the sampling engine in one call
//! (the engine batches), each is judged by the task's verifier (the accuracy
//! rule: the answer tag against the reference, unit tests for code, the
//! equation for Countdown), by the format rule and by language consistency,
//! and the judgements become:
//!
//! - pass@1: the mean over prompts of the share of a prompt's n samples that
//!   are correct (DeepSeek-R1 reports pass@1 this way, over k samples at
//!   temperature 0.6, top-p 0.95);
//! - pass@k: the unbiased estimator of Chen et al. 2021 ("Evaluating Large
//!   Language Models Trained on Code", eq. 1): with c of n samples correct,
//!   `1 - C(n-c, k) / C(n, k)`, averaged over prompts;
//! - maj@k (the paper's cons@64): the majority answer among a prompt's first
//!   k samples is right; a tie between answers scores the share of the tied
//!   answers that are right (the expected score of breaking the tie at
//!   random), so no tie-breaking order biases it;
//! - format rate, language consistency, mean response and thinking length,
//!   reflection rate (the share of outputs with a reflective phrase:
//!   "wait", "let me check", ...), tokens/s.
//!
//! Test-time scaling goes through the engine's budget forcing
//! ([`GenerateConfig::think_budget`], [`GenerateConfig::min_think`]).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::{DataOptions, PromptFormat, PromptRecord};
use crate::error::{Error, Result};
use crate::generate::{Completion, GenerateConfig};
use crate::grpo::rollout::Engine;
use crate::model::CausalLm;
use crate::recipes::Source;
use crate::rewards::answer::{extract_answer, normalize_text, parse_number};
use crate::rewards::{self, Reward, Sample};
use crate::run::Metrics;
use crate::tasks::{prompt_records, task_by_name, TASK_NAMES};
use crate::tokenizer::TextTokenizer;

/// Salt that makes a task's held-out prompts differ from its training ones.
pub const EVAL_SALT: u64 = 0x5EED_7E57;

/// How to evaluate. The sampling defaults are the paper's evaluation:
/// temperature 0.6, top-p 0.95.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// n: samples per prompt.
    pub samples: usize,
    /// The k of pass@k (each at most n); empty: 1 and n.
    pub pass_k: Vec<usize>,
    /// The k of maj@k (at most n); 0: n.
    pub maj_k: usize,
    pub generation: GenerateConfig,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            samples: 4,
            pass_k: Vec::new(),
            maj_k: 0,
            generation: GenerateConfig { temperature: 0.6, top_p: 0.95, ..GenerateConfig::default() },
        }
    }
}

impl EvalConfig {
    pub fn validate(&self) -> Result<()> {
        if self.samples == 0 {
            return Err(Error::Config("`samples` must be positive".into()));
        }
        if let Some(k) = self.pass_k.iter().chain([&self.maj_k]).find(|&&k| k > self.samples) {
            return Err(Error::Config(format!("k = {k} is more than the {} samples per prompt", self.samples)));
        }
        if self.pass_k.contains(&0) {
            return Err(Error::Config("pass@k needs k >= 1".into()));
        }
        self.generation.validate()
    }

    fn ks(&self) -> Vec<usize> {
        let mut ks = if self.pass_k.is_empty() { vec![1, self.samples] } else { self.pass_k.clone() };
        ks.sort_unstable();
        ks.dedup();
        ks
    }

    fn maj(&self) -> usize {
        if self.maj_k == 0 {
            self.samples
        } else {
            self.maj_k
        }
    }
}

/// Prompts to evaluate on, rendered and tokenized once.
pub struct EvalSet {
    pub records: Vec<PromptRecord>,
    pub prompt_ids: Vec<Vec<u32>>,
}

impl EvalSet {
    /// `records` in `format`, each prompt cut to its last `max_prompt_length` tokens.
    pub fn new(records: Vec<PromptRecord>, tokenizer: &TextTokenizer, format: &PromptFormat, max_prompt_length: usize) -> Result<EvalSet> {
        let prompt_ids = encode_prompts(&records, tokenizer, format, max_prompt_length)?;
        Ok(EvalSet { records, prompt_ids })
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Every record's prompt, rendered in `format` and tokenized, keeping the
/// last `max_len` tokens.
pub fn encode_prompts(records: &[PromptRecord], tokenizer: &TextTokenizer, format: &PromptFormat, max_len: usize) -> Result<Vec<Vec<u32>>> {
    records
        .iter()
        .map(|r| {
            let ids = tokenizer.encode_prompt(&format.render_prompt(&r.messages)?)?;
            Ok(ids[ids.len().saturating_sub(max_len)..].to_vec())
        })
        .collect()
}

/// The held-out prompts of a task (drawn from another seed than its
/// training prompts: `seed ^ EVAL_SALT`), or the first `n` rows of a file.
pub fn held_out_prompts(source: &Source, data: &DataOptions, n: usize, seed: u64) -> Result<Vec<PromptRecord>> {
    match source {
        Source::Task { name, .. } => {
            let task =
                task_by_name(name).ok_or_else(|| Error::Usage(format!("unknown task `{name}` (built-in: {})", TASK_NAMES.join(", "))))?;
            Ok(prompt_records(task.as_ref(), n, seed ^ EVAL_SALT))
        }
        Source::File(path) => {
            let mut rows = crate::data::read_prompts(path, data)?.records;
            rows.truncate(n);
            Ok(rows)
        }
    }
}

/// One sample as the evaluation judged it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub correct: bool,
    pub formatted: bool,
    /// Language consistency of the chain of thought, in [0, 1].
    pub language: f32,
    /// Completion tokens.
    pub length: usize,
    /// Tokens inside `<think>…</think>`.
    pub thinking: usize,
    pub reflections: usize,
    /// The extracted answer as majority voting compares it (numbers by
    /// value); `None` when the sample gave none.
    pub vote: Option<String>,
}

/// Judges each completion of `records` (by `prompt_index`).
pub fn judge(records: &[PromptRecord], completions: &[Completion]) -> Result<Vec<Judged>> {
    let samples: Vec<Sample> = completions
        .iter()
        .map(|c| {
            let r = records.get(c.prompt_index).ok_or_else(|| Error::Usage(format!("completion of unknown prompt {}", c.prompt_index)))?;
            Ok(Sample { prompt: r.question(), completion: &c.text, reference: &r.reference })
        })
        .collect::<Result<_>>()?;
    let correct = rewards::Accuracy.score(&samples)?;
    let formatted = rewards::Format.score(&samples)?;
    let language = rewards::LanguageConsistency.score(&samples)?;
    Ok(completions
        .iter()
        .enumerate()
        .map(|(i, c)| Judged {
            correct: correct[i] >= 1.0,
            formatted: formatted[i] >= 1.0,
            language: language[i],
            length: c.ids.len(),
            thinking: c.thinking,
            reflections: rewards::format::reflection_words(&c.text),
            vote: extract_answer(&c.text).map(vote_key),
        })
        .collect())
}

/// How majority voting compares answers: numbers by exact value (`42`,
/// `42.0` and `84/2` are one vote), other text normalised.
pub fn vote_key(answer: &str) -> String {
    match parse_number(answer) {
        Some(n) => format!("#{}", n.to_f64()),
        None => normalize_text(answer),
    }
}

/// The unbiased pass@k of one prompt with `c` of `n` samples correct:
/// `1 - C(n-c, k) / C(n, k)`, computed as a product so it never overflows
/// (Chen et al. 2021).
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if k == 0 || k > n {
        return f64::NAN;
    }
    if n - c < k {
        return 1.0;
    }
    // C(n-c, k) / C(n, k) = Π_{i=n-c+1..=n} (1 - k / i)
    1.0 - ((n - c + 1)..=n).map(|i| 1.0 - k as f64 / i as f64).product::<f64>()
}

/// maj@k of one prompt: `votes` are its first k samples' (answer, correct).
/// The most frequent answer wins; a tie scores the share of tied answers
/// that are correct. No answer at all scores 0.
pub fn majority_correct(votes: &[(Option<&str>, bool)]) -> f64 {
    let mut tally: BTreeMap<&str, (usize, bool)> = BTreeMap::new();
    for (answer, correct) in votes {
        if let Some(a) = answer {
            let e = tally.entry(a).or_insert((0, false));
            e.0 += 1;
            e.1 |= correct;
        }
    }
    let Some(top) = tally.values().map(|v| v.0).max() else { return 0.0 };
    let tied: Vec<bool> = tally.values().filter(|v| v.0 == top).map(|v| v.1).collect();
    tied.iter().filter(|&&c| c).count() as f64 / tied.len() as f64
}

/// The figures of an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub prompts: usize,
    /// n.
    pub samples: usize,
    pub pass_at_1: f64,
    /// k -> pass@k.
    pub pass_at_k: BTreeMap<usize, f64>,
    pub maj_k: usize,
    pub maj_at_k: f64,
    pub format_rate: f64,
    pub language_consistency: f64,
    /// Mean completion tokens.
    pub completion_length: f64,
    /// Mean thinking tokens.
    pub think_length: f64,
    /// Share of outputs with at least one reflective phrase.
    pub reflection_rate: f64,
    /// Mean reflective phrases per output.
    pub reflection_words: f64,
    /// Generated tokens per second of sampling.
    pub tokens_per_s: f64,
    pub seconds: f64,
    /// The think budget the samples were drawn under (unset: none).
    pub think_budget: Option<usize>,
}

impl EvalReport {
    /// Aggregates `judged` (n per prompt, in `(prompt, sample)` order).
    pub fn new(judged: &[Judged], config: &EvalConfig, prompts: usize, seconds: f64) -> EvalReport {
        let n = config.samples;
        let groups: Vec<&[Judged]> = judged.chunks(n).collect();
        let per_prompt = |f: &dyn Fn(&[Judged]) -> f64| groups.iter().map(|g| f(g)).sum::<f64>() / groups.len().max(1) as f64;
        let correct = |g: &[Judged]| g.iter().filter(|j| j.correct).count();
        let pass_at_k = config.ks().into_iter().map(|k| (k, per_prompt(&|g| pass_at_k(g.len(), correct(g), k)))).collect();
        let maj_k = config.maj();
        let maj_at_k = per_prompt(&|g| {
            let votes: Vec<(Option<&str>, bool)> = g.iter().take(maj_k).map(|j| (j.vote.as_deref(), j.correct)).collect();
            majority_correct(&votes)
        });
        let count = judged.len().max(1) as f64;
        let mean = |f: &dyn Fn(&Judged) -> f64| judged.iter().map(f).sum::<f64>() / count;
        let tokens: usize = judged.iter().map(|j| j.length).sum();
        EvalReport {
            prompts,
            samples: n,
            pass_at_1: per_prompt(&|g| correct(g) as f64 / g.len() as f64),
            pass_at_k,
            maj_k,
            maj_at_k,
            format_rate: mean(&|j| j.formatted as u8 as f64),
            language_consistency: mean(&|j| j.language as f64),
            completion_length: mean(&|j| j.length as f64),
            think_length: mean(&|j| j.thinking as f64),
            reflection_rate: mean(&|j| (j.reflections > 0) as u8 as f64),
            reflection_words: mean(&|j| j.reflections as f64),
            tokens_per_s: tokens as f64 / seconds.max(1e-9),
            seconds,
            think_budget: config.generation.think_budget,
        }
    }

    /// As one line of `eval.jsonl`: `pass_at_1`, `pass_at_K`, `maj_at_K`, ...
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::new();
        m.insert("pass_at_1".into(), self.pass_at_1);
        for (k, v) in &self.pass_at_k {
            m.insert(format!("pass_at_{k}"), *v);
        }
        m.insert(format!("maj_at_{}", self.maj_k), self.maj_at_k);
        m.insert("prompts".into(), self.prompts as f64);
        m.insert("k".into(), self.samples as f64);
        m.insert("format_rate".into(), self.format_rate);
        m.insert("language_consistency".into(), self.language_consistency);
        m.insert("completion_length".into(), self.completion_length);
        m.insert("think_length".into(), self.think_length);
        m.insert("reflection_rate".into(), self.reflection_rate);
        m.insert("reflection_words".into(), self.reflection_words);
        m.insert("tokens_per_s".into(), self.tokens_per_s);
        if let Some(b) = self.think_budget {
            m.insert("think_budget".into(), b as f64);
        }
        m
    }
}

/// What an evaluation returns: the figures, and every sample with its judgement.
pub struct Evaluation {
    pub report: EvalReport,
    pub completions: Vec<Completion>,
    pub judged: Vec<Judged>,
}

/// Samples n outputs of every prompt of `set` with `engine` (all in one
/// call) and judges them. `model`: the trainer's model when the engine
/// needs it (see [`Engine::generate`]).
pub fn evaluate(
    engine: &mut Engine,
    model: Option<&CausalLm>,
    tokenizer: &TextTokenizer,
    set: &EvalSet,
    config: &EvalConfig,
) -> Result<Evaluation> {
    config.validate()?;
    if set.is_empty() {
        return Err(Error::Usage("evaluation: no prompts".into()));
    }
    let began = Instant::now();
    let completions = engine.generate(model, tokenizer, &set.prompt_ids, config.samples, &config.generation)?;
    let seconds = began.elapsed().as_secs_f64();
    let judged = judge(&set.records, &completions)?;
    let report = EvalReport::new(&judged, config, set.records.len(), seconds);
    Ok(Evaluation { report, completions, judged })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C(a, b) exactly, for small cases.
    fn choose(a: usize, b: usize) -> f64 {
        if b > a {
            return 0.0;
        }
        (0..b).fold(1.0, |acc, i| acc * (a - i) as f64 / (i + 1) as f64)
    }

    #[test]
    fn pass_at_k_equals_the_closed_form() {
        for n in 1..=10 {
            for c in 0..=n {
                for k in 1..=n {
                    let want = 1.0 - choose(n - c, k) / choose(n, k);
                    let got = pass_at_k(n, c, k);
                    assert!((got - want).abs() < 1e-12, "n {n} c {c} k {k}: {got} vs {want}");
                }
            }
        }
        // Hand-worked: 2 of 4 right; pass@2 = 1 - C(2,2)/C(4,2) = 1 - 1/6.
        assert!((pass_at_k(4, 2, 2) - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(pass_at_k(4, 1, 1), 0.25);
        assert_eq!(pass_at_k(5, 0, 3), 0.0);
        assert_eq!(pass_at_k(5, 3, 3), 1.0);
        assert!(pass_at_k(3, 1, 4).is_nan());
    }

    #[test]
    fn majority_vote_with_ties_and_blanks() {
        let v = |a: &'static str, c: bool| (Some(a), c);
        assert_eq!(majority_correct(&[v("4", true), v("4", true), v("5", false)]), 1.0);
        assert_eq!(majority_correct(&[v("4", true), v("5", false), v("5", false)]), 0.0);
        // A two-way tie: one of the two tied answers is right.
        assert_eq!(majority_correct(&[v("4", true), v("5", false)]), 0.5);
        // A three-way tie with one right answer.
        assert!((majority_correct(&[v("1", false), v("2", true), v("3", false)]) - 1.0 / 3.0).abs() < 1e-12);
        // Samples without an answer do not vote.
        assert_eq!(majority_correct(&[(None, false), (None, false), v("7", true)]), 1.0);
        assert_eq!(majority_correct(&[(None, false)]), 0.0);
        assert_eq!(majority_correct(&[]), 0.0);
    }

    #[test]
    fn votes_compare_numbers_by_value() {
        assert_eq!(vote_key("42"), vote_key("42.0"));
        assert_eq!(vote_key("84/2"), vote_key("42"));
        assert_ne!(vote_key("42"), vote_key("43"));
    }

    fn judged(correct: bool, vote: &str, thinking: usize, reflections: usize) -> Judged {
        Judged { correct, formatted: correct, language: 1.0, length: 10, thinking, reflections, vote: Some(vote.into()) }
    }

    #[test]
    fn report_aggregates_per_prompt_then_over_prompts() {
        let config = EvalConfig { samples: 2, pass_k: vec![1, 2], ..EvalConfig::default() };
        let all = [
            judged(true, "1", 4, 1),
            judged(false, "2", 2, 0), // prompt 0: 1 of 2
            judged(false, "3", 6, 0),
            judged(false, "3", 0, 2), // prompt 1: 0 of 2
        ];
        let r = EvalReport::new(&all, &config, 2, 2.0);
        assert_eq!(r.pass_at_1, 0.25);
        assert_eq!(r.pass_at_k[&2], 0.5);
        // prompt 0 ties 1 vs 2 (one right): 0.5; prompt 1: 3 is wrong.
        assert_eq!(r.maj_at_k, 0.25);
        assert_eq!(r.format_rate, 0.25);
        assert_eq!(r.think_length, 3.0);
        assert_eq!(r.reflection_rate, 0.5);
        assert_eq!(r.reflection_words, 0.75);
        assert_eq!(r.tokens_per_s, 20.0);
        let m = r.metrics();
        assert_eq!(m["pass_at_2"], 0.5);
        assert_eq!(m["maj_at_2"], 0.25);
    }

    #[test]
    fn config_refuses_k_beyond_n() {
        let c = EvalConfig { samples: 4, pass_k: vec![8], ..EvalConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("k = 8"));
        let c = EvalConfig { samples: 4, maj_k: 5, ..EvalConfig::default() };
        assert!(c.validate().is_err());
    }
}
