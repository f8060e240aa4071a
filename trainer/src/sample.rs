//! Sampling many outputs from a model, and rejection sampling (R1's stage
//! after reasoning RL, docs/method.md, stages): sample N outputs per prompt, keep
//! those the task's verifier accepts, that are well formed and whose chain
//! of thought is in one language, optionally only for prompts whose pass
//! rate lies in a band (open-r1's filtering of too-easy and too-hard
//! prompts), optionally the best of the kept ones by a reward model.
//!
//! [`SamplingModel`] is what `aha eval`, `aha sample` and `aha distill`'s
//! teacher sample with: a trainer checkpoint (sampled by the trainer, or on
//! CPU by the runtime with the checkpoint's f32 weights) or an `.aha` file
//! (always the runtime, in the file's own weight format).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::load_model;
use crate::config::{read_config, Config};
use crate::data::{PromptFormat, PromptRecord};
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::eval::{encode_prompts, judge, Judged};
use crate::fsutil::write_atomic;
use crate::generate::{Completion, GenerateConfig};
use crate::grpo::rollout::Engine;
use crate::model::CausalLm;
use crate::rewards::{Reward, Sample};
use crate::tokenizer::TextTokenizer;

/// A model to sample from, with its tokenizer.
pub struct SamplingModel {
    pub path: PathBuf,
    pub tokenizer: TextTokenizer,
    pub config: Config,
    /// The trainer's model (checkpoints only).
    pub model: Option<CausalLm>,
    pub engine: Engine,
}

/// Whether `path` names an `.aha` model file (not a checkpoint folder).
pub fn is_model_file(path: &Path) -> bool {
    path.is_file()
}

impl SamplingModel {
    /// A checkpoint folder on `device` (in `precision`; empty = the
    /// device's default) or an `.aha` file, sampled by `engine`.
    pub fn open(path: &Path, device: &str, precision: &str, engine: &str) -> Result<SamplingModel> {
        if is_model_file(path) {
            let engine_ = Engine::open(path)?;
            let bytes = std::fs::read(path).map_err(crate::error::at(path))?;
            let tokenizer = TextTokenizer::from_model_file(&bytes, path)?;
            let config = aha_runtime::ModelFile::parse(&bytes).map_err(|e| Error::file(path, e))?.header.config;
            if engine == "trainer" {
                return Err(Error::Usage(format!("{}: a model file runs in the runtime, not the trainer", path.display())));
            }
            return Ok(SamplingModel { path: path.to_path_buf(), tokenizer, config, model: None, engine: engine_ });
        }
        let choice: DeviceChoice = device.parse()?;
        let dtype = choice.precision(precision)?.dtype();
        let model = load_model(path, &choice.device())?.with_compute(dtype);
        let tokenizer = TextTokenizer::from_dir(path)?;
        let mut engine = Engine::named(engine, choice)?;
        engine.refresh(&model, &tokenizer)?;
        Ok(SamplingModel { path: path.to_path_buf(), tokenizer, config: read_config(path)?, model: Some(model), engine })
    }

    /// `n` completions of each prompt (token ids), in `(prompt, sample)` order.
    pub fn generate(&mut self, prompts: &[Vec<u32>], n: usize, config: &GenerateConfig) -> Result<Vec<Completion>> {
        self.engine.generate(self.model.as_ref(), &self.tokenizer, prompts, n, config)
    }

    /// The prompts of `records` in the prompt format `template`.
    pub fn encode(&self, records: &[PromptRecord], template: &str, max_len: usize) -> Result<(PromptFormat, Vec<Vec<u32>>)> {
        let format = PromptFormat::from_name(template, &self.tokenizer)?;
        let ids = encode_prompts(records, &self.tokenizer, &format, max_len)?;
        Ok((format, ids))
    }
}

/// Which samples rejection sampling keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filters {
    /// The task's verifier accepts the answer.
    pub verified: bool,
    /// One `<think>…</think>` then one non-empty `<answer>…</answer>`.
    pub format: bool,
    /// Every word of the chain of thought in the prompt's language.
    pub one_language: bool,
    /// At most one copy of each response per prompt.
    pub dedupe: bool,
}

impl Filters {
    /// `verified,format,one-language,dedupe` (any subset, any order).
    pub fn parse(list: &str) -> Result<Filters> {
        let mut f = Filters::default();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "verified" => f.verified = true,
                "format" => f.format = true,
                "one-language" | "one_language" => f.one_language = true,
                "dedupe" => f.dedupe = true,
                other => {
                    return Err(Error::Usage(format!("filter `{other}`: expected verified, format, one-language or dedupe")))
                }
            }
        }
        Ok(f)
    }

    /// Every filter on: what the paper's rejection sampling keeps.
    pub fn all() -> Filters {
        Filters { verified: true, format: true, one_language: true, dedupe: true }
    }
}

/// Settings of rejection sampling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RejectionConfig {
    /// N: samples per prompt.
    pub samples: usize,
    pub filters: Filters,
    /// Keep only prompts whose pass rate (verified share of N) lies in this band.
    pub pass_rate: Option<(f64, f64)>,
    /// The least language consistency `one_language` accepts.
    pub min_language: f32,
    pub generation: GenerateConfig,
}

impl Default for RejectionConfig {
    fn default() -> Self {
        RejectionConfig {
            samples: 4,
            filters: Filters::all(),
            pass_rate: None,
            min_language: 1.0,
            generation: GenerateConfig { temperature: 0.6, top_p: 0.95, ..GenerateConfig::default() },
        }
    }
}

/// `MIN:MAX`, each in [0, 1].
pub fn parse_pass_rate(text: &str) -> Result<(f64, f64)> {
    let bad = || Error::Usage(format!("--pass-rate `{text}`: expected MIN:MAX with 0 <= MIN <= MAX <= 1, e.g. 0.1:0.9"));
    let (a, b) = text.split_once(':').ok_or_else(bad)?;
    let (a, b): (f64, f64) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    if !(0.0..=1.0).contains(&a) || !(0.0..=1.0).contains(&b) || a > b {
        return Err(bad());
    }
    Ok((a, b))
}

/// One kept sample: the question as asked (not the rendered template), so
/// `aha sft --data` reads the file as it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeptSample {
    /// The question as text, or the whole conversation as a list of
    /// `{"role", "content"}` when it is more than one user turn (a system
    /// prompt is kept, so SFT renders what the sampler saw).
    pub prompt: serde_json::Value,
    pub response: String,
    /// The verifier's verdict (1 or 0), or the reward model's score when it chose.
    pub reward: f32,
    pub answer: Option<String>,
    /// The prompt's verified share of its N samples.
    pub pass_rate: f64,
    pub prompt_index: usize,
    pub sample_index: usize,
}

/// How many samples and prompts survived each filter, in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterCounts {
    pub samples: usize,
    pub prompts: usize,
    /// `(filter, samples kept, prompts with a sample left)` after each filter.
    pub after: Vec<(String, usize, usize)>,
}

impl FilterCounts {
    pub fn kept(&self) -> (usize, usize) {
        self.after.last().map_or((self.samples, self.prompts), |&(_, s, p)| (s, p))
    }
}

/// Applies `config`'s filters to the judged completions (N per prompt) of
/// `records`; `best_of` picks the best of each prompt's kept samples.
pub fn reject(
    records: &[PromptRecord],
    completions: &[Completion],
    judged: &[Judged],
    config: &RejectionConfig,
    best_of: Option<&dyn Reward>,
) -> Result<(Vec<KeptSample>, FilterCounts)> {
    let n = config.samples.max(1);
    let mut alive: Vec<bool> = vec![true; completions.len()];
    let mut counts = FilterCounts { samples: completions.len(), prompts: records.len(), after: Vec::new() };
    let tally = |alive: &[bool]| {
        let samples = alive.iter().filter(|&&a| a).count();
        let prompts = alive.chunks(n).filter(|g| g.iter().any(|&a| a)).count();
        (samples, prompts)
    };
    let pass_rates: Vec<f64> =
        judged.chunks(n).map(|g| g.iter().filter(|j| j.correct).count() as f64 / g.len().max(1) as f64).collect();
    let mut apply = |name: &str, keep: &dyn Fn(usize) -> bool, alive: &mut Vec<bool>| {
        for (i, a) in alive.iter_mut().enumerate() {
            *a = *a && keep(i);
        }
        let (s, p) = tally(alive);
        counts.after.push((name.to_string(), s, p));
    };
    if let Some((lo, hi)) = config.pass_rate {
        apply("pass-rate", &|i| (lo..=hi).contains(&pass_rates[i / n]), &mut alive);
    }
    let f = &config.filters;
    if f.verified {
        apply("verified", &|i| judged[i].correct, &mut alive);
    }
    if f.format {
        apply("format", &|i| judged[i].formatted, &mut alive);
    }
    if f.one_language {
        apply("one-language", &|i| judged[i].language >= config.min_language, &mut alive);
    }
    if f.dedupe {
        let mut seen: BTreeSet<(usize, &str)> = BTreeSet::new();
        let first: Vec<bool> = completions.iter().map(|c| seen.insert((c.prompt_index, c.text.trim()))).collect();
        apply("dedupe", &|i| first[i], &mut alive);
    }
    let mut reward: Vec<f32> = judged.iter().map(|j| j.correct as u8 as f32).collect();
    if let Some(rm) = best_of {
        let chosen: Vec<usize> = (0..completions.len()).filter(|&i| alive[i]).collect();
        let samples: Vec<Sample> = chosen
            .iter()
            .map(|&i| {
                let r = &records[completions[i].prompt_index];
                Sample { prompt: r.question(), completion: &completions[i].text, reference: &r.reference }
            })
            .collect();
        let scores = rm.score(&samples)?;
        let mut best: std::collections::BTreeMap<usize, (f32, usize)> = std::collections::BTreeMap::new();
        for (&i, &s) in chosen.iter().zip(&scores) {
            reward[i] = s;
            let e = best.entry(completions[i].prompt_index).or_insert((s, i));
            if s > e.0 {
                *e = (s, i);
            }
        }
        let winners: BTreeSet<usize> = best.values().map(|&(_, i)| i).collect();
        apply("best-of", &|i| winners.contains(&i), &mut alive);
    }
    let kept = completions
        .iter()
        .enumerate()
        .filter(|(i, _)| alive[*i])
        .map(|(i, c)| {
            let r = &records[c.prompt_index];
            KeptSample {
                prompt: prompt_value(r),
                response: c.text.clone(),
                reward: reward[i],
                answer: r.reference.answer.clone(),
                pass_rate: pass_rates[i / n],
                prompt_index: c.prompt_index,
                sample_index: c.sample_index,
            }
        })
        .collect();
    Ok((kept, counts))
}

/// A prompt as `aha sft` reads it: the text of a lone user turn, else the
/// list of messages.
pub fn prompt_value(record: &PromptRecord) -> serde_json::Value {
    match record.messages.as_slice() {
        [only] if only.role == crate::data::Role::User => only.content.clone().into(),
        all => all.iter().map(|m| serde_json::json!({"role": m.role.as_str(), "content": m.content})).collect(),
    }
}

/// Samples `config.samples` outputs of every prompt with `model`, judges and
/// filters them, and writes the kept ones as JSONL to `out` (atomically).
pub fn rejection_sample(
    model: &mut SamplingModel,
    records: &[PromptRecord],
    template: &str,
    max_prompt_length: usize,
    config: &RejectionConfig,
    best_of: Option<&dyn Reward>,
    out: &Path,
) -> Result<(Vec<KeptSample>, FilterCounts)> {
    if records.is_empty() {
        return Err(Error::Usage("rejection sampling: no prompts".into()));
    }
    let (_, ids) = model.encode(records, template, max_prompt_length)?;
    let completions = model.generate(&ids, config.samples, &config.generation)?;
    let judged = judge(records, &completions)?;
    let (kept, counts) = reject(records, &completions, &judged, config, best_of)?;
    write_jsonl(out, &kept)?;
    Ok((kept, counts))
}

/// Writes one JSON object a line, atomically.
pub fn write_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut text = String::new();
    for row in rows {
        text.push_str(&serde_json::to_string(row).map_err(|e| Error::Config(e.to_string()))?);
        text.push('\n');
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(crate::error::at(dir))?;
    }
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Message, Reference};
    use crate::generate::Finish;

    fn record(q: &str, answer: &str) -> PromptRecord {
        PromptRecord { messages: vec![Message::user(q)], reference: Reference::answer(answer), id: None }
    }

    fn completion(prompt_index: usize, sample_index: usize, text: &str) -> Completion {
        Completion {
            prompt_index,
            sample_index,
            ids: vec![1; 4],
            logprobs: vec![0.0; 4],
            text: text.into(),
            finish: Finish::Eos,
            thinking: 2,
        }
    }

    #[test]
    fn filters_keep_and_drop_the_right_samples() {
        let records = [record("What is 2 + 2?", "4"), record("What is 3 + 3?", "6")];
        let texts = [
            "<think> 2 + 2 = 4 </think> <answer> 4 </answer>",          // kept
            "<think> 2 + 2 = 5 </think> <answer> 5 </answer>",          // wrong
            "<think> 2 + 2 = 4 </think> 4",                             // right, badly formed (no answer tag) -> not verified
            "<think> 2 加 2 等于 4 </think> <answer> 4 </answer>",       // mixed language
            "<think> 3 + 3 = 6 </think> <answer> 6 </answer>",          // kept
            "<think> 3 + 3 = 6 </think> <answer> 6 </answer>",          // duplicate
            "<answer> 6 </answer>",                                     // right, no think: format fails
            "<think> 3 + 3 = 7 </think> <answer> 7 </answer>",          // wrong
        ];
        let completions: Vec<Completion> = texts.iter().enumerate().map(|(i, t)| completion(i / 4, i % 4, t)).collect();
        let judged = judge(&records, &completions).unwrap();
        let config = RejectionConfig { samples: 4, ..RejectionConfig::default() };
        let (kept, counts) = reject(&records, &completions, &judged, &config, None).unwrap();
        let kept_texts: Vec<&str> = kept.iter().map(|k| k.response.as_str()).collect();
        assert_eq!(kept_texts, vec![texts[0], texts[4]]);
        assert_eq!(kept[0].prompt, "What is 2 + 2?");
        let with_system = PromptRecord { messages: vec![Message::system(""), Message::user("q")], reference: Reference::default(), id: None };
        assert_eq!(prompt_value(&with_system), serde_json::json!([{"role": "system", "content": ""}, {"role": "user", "content": "q"}]));
        assert_eq!(kept[0].reward, 1.0);
        let names: Vec<&str> = counts.after.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, vec!["verified", "format", "one-language", "dedupe"]);
        assert_eq!(counts.after[0], ("verified".to_string(), 5, 2));
        assert_eq!(counts.after[1], ("format".to_string(), 4, 2));
        assert_eq!(counts.after[2], ("one-language".to_string(), 3, 2));
        assert_eq!(counts.kept(), (2, 2));
        // Prompt 0 passed 2 of 4 (the unformatted right answer is not
        // verified), prompt 1 3 of 4: a band of [0.6, 1] keeps prompt 1 only.
        assert_eq!((kept[0].pass_rate, kept[1].pass_rate), (0.5, 0.75));
        let band = RejectionConfig { pass_rate: Some((0.6, 1.0)), ..config.clone() };
        let (kept, counts) = reject(&records, &completions, &judged, &band, None).unwrap();
        assert_eq!(kept.iter().map(|k| k.response.as_str()).collect::<Vec<_>>(), vec![texts[4]]);
        assert_eq!(counts.after[0], ("pass-rate".to_string(), 4, 1));
        // No filters: everything.
        let none = RejectionConfig { filters: Filters::default(), ..config };
        assert_eq!(reject(&records, &completions, &judged, &none, None).unwrap().0.len(), 8);
    }

    #[test]
    fn best_of_keeps_the_highest_scored_sample_per_prompt() {
        struct Longest;
        impl Reward for Longest {
            fn name(&self) -> &str {
                "longest"
            }
            fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
                Ok(samples.iter().map(|s| s.completion.len() as f32).collect())
            }
        }
        let records = [record("What is 2 + 2?", "4")];
        let texts = ["<think> 4 </think> <answer> 4 </answer>", "<think> 2 + 2 = 4 </think> <answer> 4 </answer>"];
        let completions: Vec<Completion> = texts.iter().enumerate().map(|(i, t)| completion(0, i, t)).collect();
        let judged = judge(&records, &completions).unwrap();
        let config = RejectionConfig { samples: 2, ..RejectionConfig::default() };
        let (kept, _) = reject(&records, &completions, &judged, &config, Some(&Longest)).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].response, texts[1]);
        assert_eq!(kept[0].reward, texts[1].len() as f32);
    }

    #[test]
    fn filter_names_and_bands_parse() {
        assert_eq!(Filters::parse("verified,format,one-language,dedupe").unwrap(), Filters::all());
        assert_eq!(Filters::parse("format").unwrap(), Filters { format: true, ..Filters::default() });
        assert!(Filters::parse("verfied").unwrap_err().to_string().contains("verfied"));
        assert_eq!(parse_pass_rate("0.1:0.9").unwrap(), (0.1, 0.9));
        assert!(parse_pass_rate("0.9:0.1").is_err());
        assert!(parse_pass_rate("2").is_err());
    }
}
