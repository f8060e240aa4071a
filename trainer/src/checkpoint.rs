//! Hugging Face checkpoints in and out: `config.json` + `model.safetensors`
//! (or shards with `model.safetensors.index.json`), tensors named as
//! transformers names them. A folder this writes loads in transformers
//! unchanged (`AutoModelForCausalLM.from_pretrained(dir)`), and the other way
//! round. Every file is written atomically.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde_json::Value;

use crate::config::{hf_config_json, read_config_dir, SpecialIds};
use crate::error::{at, Error, Result};
use crate::fsutil::write_atomic;
use crate::model::CausalLm;
use crate::params::{map_params, state_dict, HostTensor};

/// Writes `tensors` as one safetensors file (f32), atomically.
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, HostTensor>) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, t)| (name.clone(), bytemuck_f32(&t.data), t.shape.clone()))
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape)| {
            TensorView::new(Dtype::F32, shape.clone(), data).map(|v| (name.clone(), v)).map_err(|e| Error::tensor(name, e))
        })
        .collect::<Result<Vec<_>>>()?;
    // transformers refuses safetensors files without `format`.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let serialized = safetensors::serialize(views, Some(metadata)).map_err(at(path))?;
    write_atomic(path, &serialized)
}

fn bytemuck_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Reads every tensor of a safetensors file as f32 (f32, f16, bf16 and f64
/// are accepted).
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let bytes = std::fs::read(path).map_err(at(path))?;
    if bytes.len() < 8 {
        let what = if bytes.is_empty() { "the file is empty" } else { "the file is too short" };
        return Err(Error::file(
            path,
            format!("{what} ({} bytes): a safetensors file starts with an 8-byte header length", bytes.len()),
        ));
    }
    let file = SafeTensors::deserialize(&bytes).map_err(|e| Error::file(path, format!("not a safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => data.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => data.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::F64 => data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or_default()) as f32).collect(),
            other => {
                return Err(Error::tensor(&name, format!("dtype {other:?} in {} is not supported (f32, f16, bf16, f64)", path.display())))
            }
        };
        out.insert(name, HostTensor { shape: view.shape().to_vec(), data: values });
    }
    Ok(out)
}

/// The weights of a checkpoint folder: `model.safetensors`, or the shards
/// listed in `model.safetensors.index.json`.
pub fn read_weights_dir(dir: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return read_safetensors(&single);
    }
    let index_path = dir.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&index_path)
        .map_err(|_| Error::file(dir, "no model.safetensors or model.safetensors.index.json"))?;
    let index: Value = serde_json::from_str(&text).map_err(|e| Error::file(&index_path, format!("not valid JSON: {e}")))?;
    let map = index
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::file(&index_path, "missing object `weight_map`"))?;
    let mut shards: Vec<&str> = map.values().filter_map(Value::as_str).collect();
    shards.sort_unstable();
    shards.dedup();
    let mut out = BTreeMap::new();
    for shard in shards {
        out.extend(read_safetensors(&dir.join(shard))?);
    }
    Ok(out)
}

/// Tensors transformers may keep in a checkpoint that carry no weights.
fn ignorable(name: &str, model: &CausalLm) -> bool {
    name.ends_with("rotary_emb.inv_freq") || (name == "lm_head.weight" && model.lm_head.is_none())
}

/// Replaces the model's parameters with `weights`. Every parameter must be
/// there with its exact shape, and nothing else may be: the error names the
/// tensor and `source`.
pub fn load_weights(model: CausalLm, mut weights: BTreeMap<String, HostTensor>, source: &Path) -> Result<CausalLm> {
    let device = model.device();
    let mut error = None;
    let model = map_params(model, |name, _, dims| {
        if error.is_some() {
            return None;
        }
        let Some(found) = weights.remove(name) else {
            error = Some(Error::tensor(name, format!("missing from {}", source.display())));
            return None;
        };
        if found.shape != dims {
            error = Some(Error::tensor(
                name,
                format!("{} has shape {:?}, the config needs {:?}", source.display(), found.shape, dims),
            ));
            return None;
        }
        let n = found.data.len();
        Some(Tensor::<1>::from_data(TensorData::new(found.data, [n]), &device))
    });
    if let Some(e) = error {
        return Err(e);
    }
    if let Some(name) = weights.keys().find(|name| !ignorable(name, &model)) {
        return Err(Error::tensor(name, format!("in {} but not part of this model (config mismatch?)", source.display())));
    }
    Ok(model)
}

/// Loads a checkpoint folder (`config.json` + safetensors) onto `device`.
pub fn load_model(dir: &Path, device: &Device) -> Result<CausalLm> {
    let config = read_config_dir(dir)?;
    let weights = read_weights_dir(dir)?;
    let tied = config.tie_embeddings || !weights.contains_key("lm_head.weight");
    let config = crate::config::Config { tie_embeddings: tied, ..config };
    load_weights(CausalLm::init(&config, device), weights, dir)
}

/// Writes `config.json` and `model.safetensors` into `dir` (created if
/// needed). Existing files are replaced atomically, one by one.
pub fn save_model(model: &CausalLm, dir: &Path, ids: SpecialIds) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    write_safetensors(&dir.join("model.safetensors"), &state_dict(model))?;
    let config = serde_json::to_string_pretty(&hf_config_json(&model.config, ids)).map_err(|e| Error::Config(e.to_string()))?;
    write_atomic(&dir.join("config.json"), config.as_bytes())
}
