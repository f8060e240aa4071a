//! Hugging Face checkpoint folder -> `.aha` (std): config.json in the
//! transformers 4 (`rope_theta`, `torch_dtype`) or 5 (`rope_parameters`,
//! `dtype`) style, one or many safetensors files (with
//! `model.safetensors.index.json`), weights in f32, f16 or bf16, and
//! tokenizer.json if present.
//!
//! Conversion streams: safetensors headers are parsed and each tensor is read
//! row by row, converted and written, so memory stays at a few rows whatever
//! the model's size.

use crate::error::{Error, Result};
use crate::format::{Arch, Config, Provenance, RopeScaling};
use crate::model::{EMBED, LM_HEAD};
use crate::writer::{canonical_specs, ModelWriter, TensorSpec};
use aha_kernels::DType;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

fn invalid(msg: String) -> Error {
    Error::Invalid(msg)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| invalid(format!("{}: not valid JSON: {e}", path.display())))
}

/// Reads `config.json` into the runtime's hyperparameters.
pub fn read_config(dir: &Path) -> Result<Config> {
    let path = dir.join("config.json");
    let v = read_json(&path)?;
    parse_config(&v).map_err(|field| invalid(format!("{}: {field}", path.display())))
}

/// The config from a parsed config.json; the error names the field.
pub fn parse_config(v: &Value) -> core::result::Result<Config, String> {
    if !v.is_object() {
        return Err(format!("expected a JSON object of hyperparameters, found {}", json_kind(v)));
    }
    let uint = |key: &str| -> core::result::Result<Option<u32>, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => match x.as_u64() {
                Some(n) => u32::try_from(n)
                    .map(Some)
                    .map_err(|_| format!("field `{key}` = {n} is too large (at most {})", u32::MAX)),
                None => Err(format!("field `{key}` must be a non-negative integer, found {x}")),
            },
        }
    };
    let need = |key: &str| uint(key)?.ok_or_else(|| format!("missing field `{key}`"));
    let float = |x: &Value, key: &str| x.as_f64().ok_or_else(|| format!("field `{key}` must be a number, found {x}"));

    let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("");
    let arch = match model_type {
        "qwen2" => Arch::Qwen2,
        "llama" => Arch::Llama,
        other => return Err(format!("model_type `{other}` is not supported (qwen2 and llama are)")),
    };
    if let Some(act) = v.get("hidden_act").and_then(Value::as_str) {
        if act != "silu" {
            return Err(format!("hidden_act `{act}` is not supported (silu is)"));
        }
    }
    if v.get("use_sliding_window").and_then(Value::as_bool) == Some(true) {
        return Err("use_sliding_window = true is not supported".to_string());
    }
    if v.get("mlp_bias").and_then(Value::as_bool) == Some(true) {
        return Err("mlp_bias = true is not supported".to_string());
    }
    let hidden = need("hidden_size")?;
    let heads = need("num_attention_heads")?;
    if heads == 0 {
        return Err("num_attention_heads must be positive".to_string());
    }
    let kv_heads = uint("num_key_value_heads")?.unwrap_or(heads);
    let head_dim = uint("head_dim")?.unwrap_or(hidden / heads);

    // transformers 5 keeps RoPE settings in `rope_parameters`; 4 at the top
    // level (`rope_theta`) and in `rope_scaling`.
    let rope = v.get("rope_parameters").filter(|r| r.is_object());
    let theta = match rope.and_then(|r| r.get("rope_theta")).or_else(|| v.get("rope_theta")) {
        Some(x) => float(x, "rope_theta")?,
        None => 10000.0,
    };
    let scaling_obj = match rope {
        Some(r) => Some(r),
        None => v.get("rope_scaling").filter(|r| r.is_object()),
    };
    let rope_scaling = match scaling_obj {
        None => RopeScaling::None,
        Some(r) => {
            let kind = r.get("rope_type").or_else(|| r.get("type")).and_then(Value::as_str).unwrap_or("default");
            let get = |k: &str| r.get(k).ok_or_else(|| format!("rope scaling: missing `{k}`")).and_then(|x| float(x, k));
            match kind {
                "default" => RopeScaling::None,
                "llama3" => RopeScaling::Llama3 {
                    factor: get("factor")? as f32,
                    low_freq_factor: get("low_freq_factor")? as f32,
                    high_freq_factor: get("high_freq_factor")? as f32,
                    original_max_position: get("original_max_position_embeddings")? as u32,
                },
                other => return Err(format!("rope type `{other}` is not supported (default and llama3 are)")),
            }
        }
    };
    let eps = match v.get("rms_norm_eps") {
        Some(x) => float(x, "rms_norm_eps")?,
        None => 1e-6,
    };
    let attention_bias = match arch {
        Arch::Qwen2 => true,
        Arch::Llama => v.get("attention_bias").and_then(Value::as_bool).unwrap_or(false),
    };
    let config = Config {
        arch,
        vocab_size: need("vocab_size")?,
        hidden_size: hidden,
        intermediate_size: need("intermediate_size")?,
        num_layers: need("num_hidden_layers")?,
        num_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        rope_theta: theta as f32,
        rope_scaling,
        rms_norm_eps: eps as f32,
        max_position: uint("max_position_embeddings")?.unwrap_or(4096),
        // Decided by the checkpoint's tensors when the field is absent.
        tie_embeddings: v.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false),
        attention_bias,
    };
    config.validate().map_err(|e| format!("{e}"))?;
    Ok(config)
}

/// What a JSON value is, for messages ("an array", "a string", ...).
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One tensor inside a safetensors file.
#[derive(Clone, Debug)]
struct SourceTensor {
    file: PathBuf,
    dtype: String,
    shape: Vec<u64>,
    /// Absolute byte range in the file.
    start: u64,
    end: u64,
}

/// Every tensor of the checkpoint, from the safetensors headers only.
fn index_tensors(dir: &Path) -> Result<BTreeMap<String, SourceTensor>> {
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<PathBuf> = if index.exists() {
        let v = read_json(&index)?;
        let map = v
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid(format!("{}: missing object `weight_map`", index.display())))?;
        let mut files: Vec<PathBuf> = map.values().filter_map(Value::as_str).map(|f| dir.join(f)).collect();
        files.sort();
        files.dedup();
        files
    } else if dir.join("model.safetensors").exists() {
        vec![dir.join("model.safetensors")]
    } else {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        files.sort();
        files
    };
    if files.is_empty() {
        return Err(invalid(format!("{}: no *.safetensors files", dir.display())));
    }
    let mut tensors = BTreeMap::new();
    for file in files {
        let mut f = File::open(&file).map_err(io(&file))?;
        let file_len = f.metadata().map_err(io(&file))?.len();
        let bad = |what: String| invalid(format!("{}: {what}", file.display()));
        if file_len < 8 {
            return Err(bad(format!(
                "{} ({file_len} bytes): a safetensors file starts with an 8-byte header length",
                if file_len == 0 { "the file is empty" } else { "the file is too short" }
            )));
        }
        let mut len = [0u8; 8];
        f.read_exact(&mut len).map_err(io(&file))?;
        let header_len = safetensors_header_len(len, file_len).map_err(bad)?;
        let mut header = vec![0u8; header_len as usize];
        f.read_exact(&mut header).map_err(io(&file))?;
        for t in parse_safetensors_header(&header, file_len).map_err(bad)? {
            tensors.insert(t.name, SourceTensor { file: file.clone(), dtype: t.dtype, shape: t.shape, start: t.start, end: t.end });
        }
    }
    Ok(tensors)
}

/// The largest safetensors header read (the format's own limit is 100 MB).
const MAX_SAFETENSORS_HEADER: u64 = 1 << 30;

/// The header length from a safetensors file's first 8 bytes, checked
/// against the file's length.
pub fn safetensors_header_len(first8: [u8; 8], file_len: u64) -> core::result::Result<u64, String> {
    let header_len = u64::from_le_bytes(first8);
    if header_len > file_len.saturating_sub(8) || header_len > MAX_SAFETENSORS_HEADER {
        return Err(format!("safetensors header length {header_len} exceeds the file ({file_len} bytes)"));
    }
    Ok(header_len)
}

/// One entry of a safetensors header, its byte range absolute in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct SafetensorsEntry {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub start: u64,
    pub end: u64,
}

/// Parses a safetensors JSON header (the bytes after the 8-byte length) of
/// a file `file_len` bytes long: every tensor's dtype, shape and byte range,
/// each range checked to lie inside the file. The error names the tensor.
pub fn parse_safetensors_header(header: &[u8], file_len: u64) -> core::result::Result<Vec<SafetensorsEntry>, String> {
    let v: Value = serde_json::from_slice(header).map_err(|e| format!("safetensors header is not valid JSON: {e}"))?;
    let obj = v.as_object().ok_or_else(|| format!("safetensors header is {}, not an object", json_kind(&v)))?;
    let data_start = 8 + header.len() as u64;
    let mut out = Vec::with_capacity(obj.len());
    for (name, t) in obj {
        if name == "__metadata__" {
            continue;
        }
        let bad = |what: &str| format!("tensor {name}: {what}");
        let dtype = t.get("dtype").and_then(Value::as_str).ok_or_else(|| bad("missing dtype"))?.to_string();
        let shape: Vec<u64> = t
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("missing shape"))?
            .iter()
            .map(|d| d.as_u64().ok_or_else(|| bad("shape must be integers")))
            .collect::<core::result::Result<_, _>>()?;
        let offsets = t.get("data_offsets").ok_or_else(|| bad("missing data_offsets"))?;
        let pair = offsets.as_array().filter(|o| o.len() == 2).map(|o| (o[0].as_u64(), o[1].as_u64()));
        let Some((Some(b), Some(e))) = pair else {
            return Err(bad(&format!("data_offsets must be two integers, found {offsets}")));
        };
        let range = data_start.checked_add(b).zip(data_start.checked_add(e));
        match range {
            Some((start, end)) if b <= e && end <= file_len => {
                out.push(SafetensorsEntry { name: name.clone(), dtype, shape, start, end })
            }
            _ => return Err(bad(&format!("data_offsets [{b}, {e}] lie outside the file ({file_len} bytes)"))),
        }
    }
    Ok(out)
}

fn element_bytes(dtype: &str) -> Option<usize> {
    match dtype {
        "F32" => Some(4),
        "F16" | "BF16" => Some(2),
        "F64" => Some(8),
        _ => None,
    }
}

fn to_f32(dtype: &str, bytes: &[u8], out: &mut Vec<f32>) {
    out.clear();
    match dtype {
        "F32" => out.extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        "F16" => out.extend(bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())),
        "BF16" => out.extend(bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())),
        "F64" => out.extend(bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)),
        _ => {}
    }
}

/// What to convert to.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Format of the 2-D weights.
    pub dtype: DType,
    /// Format of the output projection (lm_head, or the tied embedding).
    /// Default: the weights' format, except Q4_0 -> Q8_0 (the output layer is
    /// the most sensitive to quantization; llama.cpp keeps it at 6 bits).
    pub output_dtype: Option<DType>,
    /// Store NaN, infinite and out-of-range weights instead of refusing the
    /// checkpoint (they make the model's outputs NaN or zero, silently).
    pub allow_non_finite: bool,
}

impl ConvertOptions {
    pub fn new(dtype: DType) -> Self {
        ConvertOptions { dtype, output_dtype: None, allow_non_finite: false }
    }

    fn output(&self) -> DType {
        self.output_dtype.unwrap_or(match self.dtype {
            DType::Q4_0 => DType::Q8_0,
            d => d,
        })
    }
}

/// What a conversion did.
#[derive(Clone, Debug, Default)]
pub struct ConvertReport {
    pub config: Option<Config>,
    pub tensors: usize,
    /// Tensors stored in another format than asked (columns not a multiple of 32).
    pub fallbacks: Vec<String>,
    /// Checkpoint tensors the runtime does not use (e.g. rotary inv_freq buffers).
    pub skipped: Vec<String>,
    pub tokenizer: bool,
    pub weight_bytes: u64,
    /// Tensors with NaN, infinite or out-of-range values, stored anyway
    /// because [`ConvertOptions::allow_non_finite`] was set.
    pub non_finite: Vec<String>,
}

/// The largest magnitude a format stores without turning it into an
/// infinity (f16 itself, or the f16 scale of a quantized block: a block's
/// scale is its largest magnitude over 127 for Q8_0, over 8 for Q4_0).
fn largest_finite(dtype: DType) -> f32 {
    const F16_MAX: f32 = 65504.0;
    match dtype {
        DType::F32 | DType::BF16 => f32::MAX,
        DType::F16 => F16_MAX,
        DType::Q8_0 => F16_MAX * 127.0,
        DType::Q4_0 => F16_MAX * 8.0,
    }
}

/// Counts a tensor's values that are NaN, infinite, or beyond what its
/// stored format holds, keeping the first one's place.
#[derive(Default)]
struct NonFinite {
    count: u64,
    first: Option<(u64, f32)>,
}

impl NonFinite {
    fn scan(&mut self, values: &[f32], at: u64, limit: f32) {
        for (i, &v) in values.iter().enumerate() {
            if !(v.abs() <= limit) {
                self.count += 1;
                self.first.get_or_insert((at + i as u64, v));
            }
        }
    }

    fn describe(&self, name: &str, shape: &[u64], dtype: DType) -> Option<String> {
        let (index, value) = self.first?;
        let total: u64 = shape.iter().product();
        let cols = *shape.last().unwrap_or(&1);
        let place = if shape.len() == 2 { format!("[{}, {}]", index / cols, index % cols) } else { format!("[{index}]") };
        let what = if value.is_nan() {
            "NaN".to_string()
        } else if value.is_infinite() {
            format!("{value}")
        } else {
            format!("{value:e}, beyond what {dtype} holds (±{:e})", largest_finite(dtype))
        };
        Some(format!("tensor {name}: {} of {total} values are NaN, infinite or out of range (the first, at {place}, is {what})", self.count))
    }
}

/// Converts the checkpoint in `dir` into the model file `out`.
pub fn convert(dir: &Path, out: &Path, opts: &ConvertOptions) -> Result<ConvertReport> {
    let mut config = read_config(dir)?;
    let source = index_tensors(dir)?;
    let cfg_path = dir.join("config.json");
    let has_head = source.contains_key(LM_HEAD);
    let tie_field = read_json(&cfg_path)?.get("tie_word_embeddings").and_then(Value::as_bool);
    // transformers ignores a stored lm_head when tying; so do we.
    config.tie_embeddings = match tie_field {
        Some(true) => true,
        Some(false) if !has_head => {
            return Err(invalid(format!("{}: tie_word_embeddings is false but there is no {LM_HEAD}", dir.display())));
        }
        Some(false) => false,
        None => !has_head,
    };

    let mut report = ConvertReport { config: Some(config), ..Default::default() };
    // The canonical order and shapes the runtime reads, from the config alone.
    let expected = canonical_specs(&config, opts.dtype);
    for name in source.keys() {
        if !expected.iter().any(|s| &s.name == name) {
            report.skipped.push(name.clone());
        }
    }
    let mut specs = Vec::with_capacity(expected.len());
    for spec in expected {
        let name = spec.name;
        let t = source.get(&name).ok_or_else(|| invalid(format!("{}: tensor {name} is missing", dir.display())))?;
        if t.shape != spec.shape {
            return Err(invalid(format!(
                "{}: tensor {name} has shape {:?} but config.json implies {:?}",
                t.file.display(),
                t.shape,
                spec.shape
            )));
        }
        if element_bytes(&t.dtype).is_none() {
            return Err(invalid(format!("tensor {name}: dtype {} is not supported (F32, F16, BF16, F64 are)", t.dtype)));
        }
        let wanted = if spec.dtype == DType::F32 && t.shape.len() == 1 {
            DType::F32
        } else if name == LM_HEAD || (name == EMBED && config.tie_embeddings) {
            opts.output()
        } else {
            opts.dtype
        };
        let cols = *t.shape.last().unwrap_or(&0) as usize;
        let dtype = if wanted.row_bytes(cols).is_some() {
            wanted
        } else {
            report.fallbacks.push(format!("{name}: {cols} columns are not a multiple of 32, stored as f16"));
            DType::F16
        };
        specs.push(TensorSpec { name, dtype, shape: t.shape.clone() });
    }

    let tokenizer = read_tokenizer(dir)?;
    if let Some(blob) = &tokenizer {
        check_tokenizer_fits(blob, &config, dir)?;
    }
    report.tokenizer = tokenizer.is_some();
    let source_name = dir.display().to_string();
    let converter = format!("aha {}", env!("CARGO_PKG_VERSION"));
    let provenance = Provenance { source: &source_name, converter: &converter, quantization: opts.dtype.name() };
    let mut writer = ModelWriter::create(out, config, tokenizer, provenance, specs.clone())?;

    let mut raw = Vec::new();
    let mut values = Vec::new();
    let mut open: Option<(PathBuf, BufReader<File>)> = None;
    for spec in &specs {
        let t = &source[&spec.name];
        let eb = element_bytes(&t.dtype).unwrap_or(4);
        let cols = *t.shape.last().unwrap_or(&1) as usize;
        let elements: u64 = t.shape.iter().product();
        if elements * eb as u64 != t.end - t.start {
            return Err(invalid(format!("tensor {}: {} bytes do not hold shape {:?} of {}", spec.name, t.end - t.start, t.shape, t.dtype)));
        }
        if open.as_ref().map(|(p, _)| p != &t.file).unwrap_or(true) {
            let f = File::open(&t.file).map_err(io(&t.file))?;
            open = Some((t.file.clone(), BufReader::with_capacity(1 << 20, f)));
        }
        let (path, reader) = open.as_mut().expect("opened above");
        reader.seek(SeekFrom::Start(t.start)).map_err(io(path))?;
        // Stream ~1 MiB of rows at a time.
        let rows_per_chunk = ((1 << 20) / (cols * eb).max(1)).max(1);
        let rows = (elements as usize) / cols.max(1);
        let mut done = 0;
        let mut non_finite = NonFinite::default();
        let limit = largest_finite(spec.dtype);
        while done < rows {
            let n = rows_per_chunk.min(rows - done);
            raw.resize(n * cols * eb, 0);
            reader.read_exact(&mut raw).map_err(io(path))?;
            to_f32(&t.dtype, &raw, &mut values);
            non_finite.scan(&values, (done * cols) as u64, limit);
            // A refused tensor is read to its end (to count what is wrong)
            // but not written: the output file is never finished.
            if non_finite.count == 0 || opts.allow_non_finite {
                writer.write_rows(&spec.name, &values)?;
            }
            done += n;
        }
        if let Some(what) = non_finite.describe(&spec.name, &t.shape, spec.dtype) {
            if !opts.allow_non_finite {
                return Err(invalid(format!("{}: {what}; nothing was written (allow them with --allow-non-finite)", t.file.display())));
            }
            report.non_finite.push(what);
        }
        report.tensors += 1;
        report.weight_bytes += spec.dtype.row_bytes(cols).unwrap_or(0) as u64 * rows as u64;
    }
    writer.finish()?;
    Ok(report)
}

/// Refuses a tokenizer with ids the model has no embedding row for (they
/// would fail only later, when a prompt uses them).
fn check_tokenizer_fits(blob: &[u8], config: &Config, dir: &Path) -> Result<()> {
    let path = dir.join("tokenizer.json");
    let tokenizer = crate::tokenizer::Tokenizer::parse(blob).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    let vocab = config.vocab_size;
    if tokenizer.vocab_size() > vocab {
        let last = tokenizer.vocab_size() - 1;
        let text = tokenizer.token_bytes(last).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        return Err(invalid(format!(
            "{}: token id {last} (`{text}`) is outside the model's vocabulary of {vocab} (vocab_size in config.json); the tokenizer has {} ids",
            path.display(),
            last + 1
        )));
    }
    Ok(())
}

/// The tokenizer blob from `tokenizer.json` (with `tokenizer_config.json` and
/// `generation_config.json` beside it for the template, bos/eos and stop ids),
/// if the folder has one.
pub fn read_tokenizer(dir: &Path) -> Result<Option<Vec<u8>>> {
    let path = dir.join("tokenizer.json");
    if !path.exists() {
        return Ok(None);
    }
    crate::tokenizer::load_json(&path).map(Some).map_err(|e| match e {
        Error::Invalid(msg) => invalid(format!("{}: {msg}", path.display())),
        other => other,
    })
}
