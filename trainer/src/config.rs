//! Model hyperparameters. The trainer uses the runtime's own [`Config`], so a
//! model trained here and the file it exports can never disagree on shapes;
//! this module reads it from Hugging Face's `config.json` or from a
//! `model.toml` with the same field names, and writes `config.json` back.

use std::path::Path;

pub use aha_runtime::format::{Arch, Config, RopeScaling};
use serde_json::{json, Value};

use crate::error::{at, Error, Result};

/// Reads `config.json` in a Hugging Face checkpoint folder.
pub fn read_config_dir(dir: &Path) -> Result<Config> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(at(&path))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| Error::file(&path, format!("not valid JSON: {e}")))?;
    aha_runtime::convert::parse_config(&value).map_err(|e| Error::file(&path, e))
}

/// Reads a model config written as TOML with `config.json`'s field names
/// (`model_type`, `hidden_size`, `num_hidden_layers`, ...).
pub fn read_config_toml(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(at(path))?;
    parse_config_toml(&text).map_err(|e| Error::file(path, e))
}

/// [`read_config_toml`] on a string; the error names the field.
pub fn parse_config_toml(text: &str) -> std::result::Result<Config, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?;
    let value = serde_json::to_value(table).map_err(|e| e.to_string())?;
    aha_runtime::convert::parse_config(&value)
}

/// A config from a path: a checkpoint folder (its `config.json`), a `.json`
/// file or a `.toml` file.
pub fn read_config(path: &Path) -> Result<Config> {
    if path.is_dir() {
        return read_config_dir(path);
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => read_config_toml(path),
        _ => {
            let text = std::fs::read_to_string(path).map_err(at(path))?;
            let value: Value =
                serde_json::from_str(&text).map_err(|e| Error::file(path, format!("not valid JSON: {e}")))?;
            aha_runtime::convert::parse_config(&value).map_err(|e| Error::file(path, e))
        }
    }
}

/// Special token ids written into `config.json` (transformers reads
/// `bos_token_id`/`eos_token_id` from there for generation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
}

/// `config.json` as transformers writes it for this architecture. Both the
/// transformers-4 (`rope_theta`, `torch_dtype`) and -5 (`rope_parameters`,
/// `dtype`) spellings are written, so either version loads it.
pub fn hf_config_json(config: &Config, ids: SpecialIds) -> Value {
    let (class, model_type) = match config.arch {
        Arch::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
        Arch::Llama => ("LlamaForCausalLM", "llama"),
    };
    let mut rope = json!({ "rope_theta": config.rope_theta, "rope_type": "default" });
    let mut v = json!({
        "architectures": [class],
        "model_type": model_type,
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": config.max_position,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,
        "tie_word_embeddings": config.tie_embeddings,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": true,
        "torch_dtype": "float32",
        "dtype": "float32",
        "bos_token_id": ids.bos,
        "eos_token_id": ids.eos,
        "pad_token_id": ids.pad,
    });
    if let RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position } = config.rope_scaling
    {
        let scaling = json!({
            "rope_type": "llama3",
            "factor": factor,
            "low_freq_factor": low_freq_factor,
            "high_freq_factor": high_freq_factor,
            "original_max_position_embeddings": original_max_position,
        });
        rope = scaling.clone();
        rope["rope_theta"] = json!(config.rope_theta);
        v["rope_scaling"] = scaling;
    }
    v["rope_parameters"] = rope;
    match config.arch {
        Arch::Qwen2 => {
            v["use_sliding_window"] = json!(false);
            v["sliding_window"] = Value::Null;
            v["max_window_layers"] = json!(config.num_layers);
        }
        Arch::Llama => {
            v["attention_bias"] = json!(config.attention_bias);
            v["mlp_bias"] = json!(false);
            v["pretraining_tp"] = json!(1);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = r#"
        model_type = "qwen2"
        vocab_size = 512
        hidden_size = 64
        intermediate_size = 176
        num_hidden_layers = 2
        num_attention_heads = 4
        num_key_value_heads = 2
        tie_word_embeddings = true
    "#;

    #[test]
    fn toml_reads_with_config_json_names() {
        let c = parse_config_toml(TINY).unwrap();
        assert_eq!((c.vocab_size, c.hidden_size, c.num_layers, c.num_kv_heads, c.head_dim), (512, 64, 2, 2, 16));
        assert!(c.tie_embeddings && c.attention_bias);
    }

    #[test]
    fn toml_errors_name_the_field() {
        let err = parse_config_toml(&TINY.replace("hidden_size = 64", "hidden_size = -3")).unwrap_err();
        assert!(err.contains("hidden_size"), "{err}");
        let err = parse_config_toml(&TINY.replace("num_hidden_layers = 2\n", "")).unwrap_err();
        assert!(err.contains("num_hidden_layers"), "{err}");
    }

    #[test]
    fn config_json_round_trips() {
        let c = parse_config_toml(TINY).unwrap();
        let back = aha_runtime::convert::parse_config(&hf_config_json(&c, SpecialIds::default())).unwrap();
        assert_eq!(c, back);
        let mut llama = c;
        llama.arch = Arch::Llama;
        llama.attention_bias = false;
        llama.rope_scaling = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position: 8192,
        };
        let back = aha_runtime::convert::parse_config(&hf_config_json(&llama, SpecialIds::default())).unwrap();
        assert_eq!(llama, back);
    }
}
