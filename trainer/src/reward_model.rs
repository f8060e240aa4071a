//! A learned reward model: the policy's architecture with a scalar head, as
//! transformers' `Qwen2ForSequenceClassification` / `LlamaForSequenceClassification`
//! with `num_labels = 1` store it (`model.*` plus `score.weight`, `[1, hidden]`).
//! The score of a text is the head applied to the hidden state of its last
//! token. R1-Zero uses no reward model (R1-METHOD.md §4: it invites reward
//! hacking); R1's later stages do, for helpfulness and harmlessness. Training
//! one (Bradley–Terry on preference pairs) is a later step; this is the
//! interface a trained one plugs into.
//!
//! In memory it is a [`CausalLm`] whose output projection has one row: the
//! checkpoint's `score.weight` is its `lm_head.weight`.

use std::path::Path;
use std::sync::Mutex;

use burn::module::Module;
use burn::tensor::Device;

use crate::checkpoint::{load_weights, read_weights_dir, write_safetensors};
use crate::config::{hf_config_json, read_config_dir, Config};
use crate::data::{Message, PromptFormat};
use crate::error::{at, Error, Result};
use crate::fsutil::write_atomic;
use crate::model::{CausalLm, Inputs, Linear};
use crate::params::state_dict;
use crate::rewards::{Reward, Sample};
use crate::tokenizer::TextTokenizer;

const HEAD: &str = "lm_head.weight";
const SCORE: &str = "score.weight";

/// A scalar-head model.
#[derive(Debug)]
pub struct RewardModel {
    pub model: CausalLm,
}

impl RewardModel {
    /// Fresh weights for `config` (its vocabulary and body; the head is one row).
    pub fn init(config: &Config, device: &Device) -> RewardModel {
        let config = Config { tie_embeddings: false, ..*config };
        let mut model = CausalLm::init(&config, device);
        model.lm_head = Some(Linear::init(config.hidden_size as usize, 1, false, 0.02, device));
        RewardModel { model }
    }

    /// Loads a checkpoint folder (config.json + safetensors with `score.weight`).
    pub fn load(dir: &Path, device: &Device) -> Result<RewardModel> {
        let config = read_config_dir(dir)?;
        let mut weights = read_weights_dir(dir)?;
        let head = weights
            .remove(SCORE)
            .ok_or_else(|| Error::tensor(SCORE, format!("missing from {}: not a reward model (no scalar head)", dir.display())))?;
        if head.shape != [1, config.hidden_size as usize] {
            return Err(Error::tensor(SCORE, format!("has shape {:?}; a reward model's is [1, {}]", head.shape, config.hidden_size)));
        }
        weights.remove(HEAD);
        weights.insert(HEAD.to_string(), head);
        let model = load_weights(RewardModel::init(&config, device).model, weights, dir)?;
        Ok(RewardModel { model })
    }

    /// Writes `config.json` (architecture `…ForSequenceClassification`,
    /// `num_labels` 1) and `model.safetensors` with transformers' names.
    pub fn save(&self, dir: &Path, tokenizer: &TextTokenizer) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
        let mut tensors = state_dict(&self.model);
        if let Some(head) = tensors.remove(HEAD) {
            tensors.insert(SCORE.to_string(), head);
        }
        write_safetensors(&dir.join("model.safetensors"), &tensors)?;
        let mut json = hf_config_json(&self.model.config, crate::train::special_ids(tokenizer));
        let class = match self.model.config.arch {
            aha_runtime::Arch::Qwen2 => "Qwen2ForSequenceClassification",
            aha_runtime::Arch::Llama => "LlamaForSequenceClassification",
        };
        json["architectures"] = serde_json::json!([class]);
        json["num_labels"] = 1.into();
        json["tie_word_embeddings"] = false.into();
        let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Config(e.to_string()))?;
        write_atomic(&dir.join("config.json"), text.as_bytes())?;
        tokenizer.save_dir(dir)
    }

    /// One score per token sequence: the head on each sequence's last token.
    pub fn score_ids(&self, rows: &[Vec<u32>]) -> Result<Vec<f32>> {
        if rows.iter().any(Vec::is_empty) {
            return Err(Error::Usage("reward model: an empty sequence has no last token to score".into()));
        }
        let device = self.model.device();
        let len = rows.iter().map(Vec::len).max().unwrap_or(1);
        // Right padding: under the causal mask it cannot change earlier positions.
        let padded: Vec<Vec<u32>> = rows.iter().map(|r| r.iter().copied().chain(std::iter::repeat(0)).take(len).collect()).collect();
        let out = self.model.forward(&Inputs::causal(&padded, &device), None);
        let values = out.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| Error::tensor("score", format!("{e:?}")))?;
        Ok(rows.iter().enumerate().map(|(b, r)| values[b * len + r.len() - 1]).collect())
    }
}

/// A reward model as a [`Reward`]: each sample is rendered as the
/// conversation (question, answer) in the model's prompt format and scored.
pub struct RewardModelReward {
    model: Mutex<RewardModel>,
    tokenizer: TextTokenizer,
    format: PromptFormat,
}

impl RewardModelReward {
    /// The checkpoint in `dir` (with its tokenizer) on `device`, for inference.
    pub fn load(dir: &Path, device: &Device) -> Result<RewardModelReward> {
        let model = RewardModel::load(dir, &device.clone().without_autodiff())?;
        let tokenizer = TextTokenizer::from_dir(dir)?;
        let format = PromptFormat::from_name("auto", &tokenizer)?;
        Ok(RewardModelReward { model: Mutex::new(RewardModel { model: model.model.valid() }), tokenizer, format })
    }
}

impl Reward for RewardModelReward {
    fn name(&self) -> &str {
        "reward_model"
    }

    fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
        let rows = samples
            .iter()
            .map(|s| {
                let text = self.format.render_conversation(&[Message::user(s.prompt), Message::assistant(s.completion)])?;
                self.tokenizer.encode(&text)
            })
            .collect::<Result<Vec<_>>>()?;
        let model = self.model.lock().map_err(|_| Error::Usage("reward model: poisoned by an earlier panic".into()))?;
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(16) {
            out.extend(model.score_ids(chunk)?);
        }
        Ok(out)
    }
}
