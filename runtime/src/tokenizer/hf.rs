//! Conversion from a Hugging Face `tokenizer.json` (and, when given, its
//! `tokenizer_config.json` and `generation_config.json`) to the blob.
//!
//! Only byte-level BPE is accepted: a `BPE` model, a `ByteLevel` decoder, an
//! NFC or absent normalizer, and a pre-tokenizer that is either
//! `Sequence[Split(Regex), ByteLevel(use_regex=false)]` with one of the split
//! regexes in [`super::pretokenize`] (Qwen2, Llama 3, GPT-2) or
//! `ByteLevel(use_regex=true)` (GPT-2). Anything else is an
//! [`Error::Invalid`] naming the field, rather than a tokenizer that encodes
//! differently from the one the model was trained with.

// The crate's `Error` is large (it carries names inline for the no-alloc
// build); conversion is not a hot path.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::format;
use std::path::Path;
use std::string::{String, ToString};
use std::vec::Vec;

use serde_json::Value;

use super::blob::write::TokenizerTables;
use super::blob::{ADDED_LSTRIP, ADDED_NORMALIZED, ADDED_RSTRIP, ADDED_SINGLE_WORD, ADDED_SPECIAL};
use super::pretokenize::{GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN};
use super::{Normalizer, PreTokenizer};
use crate::Error;

/// Ids at or above this are refused (they would make the tables absurdly large).
const MAX_VOCAB: u64 = 1 << 24;

/// Converts a `tokenizer.json` (and its `tokenizer_config.json`, for the chat
/// template and the bos / eos / pad tokens) to a blob for
/// [`super::Tokenizer::parse`].
pub fn build_from_json(tokenizer_json: &str, tokenizer_config_json: Option<&str>) -> Result<Vec<u8>, Error> {
    let mut b = TokenizerBuilder::new(tokenizer_json);
    if let Some(c) = tokenizer_config_json {
        b = b.tokenizer_config(c);
    }
    b.build()
}

/// Reads `path` (a `tokenizer.json`), and `tokenizer_config.json` and
/// `generation_config.json` beside it when they exist, and converts them.
pub fn load_json(path: impl AsRef<Path>) -> Result<Vec<u8>, Error> {
    let path = path.as_ref();
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|source| Error::Io { path: p.to_path_buf(), source });
    let tokenizer = read(path)?;
    let sibling = |name: &str| -> Result<Option<String>, Error> {
        let p = path.with_file_name(name);
        if p.is_file() {
            read(&p).map(Some)
        } else {
            Ok(None)
        }
    };
    let config = sibling("tokenizer_config.json")?;
    let generation = sibling("generation_config.json")?;
    let mut b = TokenizerBuilder::new(&tokenizer);
    if let Some(c) = &config {
        b = b.tokenizer_config(c);
    }
    if let Some(g) = &generation {
        b = b.generation_config(g);
    }
    b.build()
}

/// Converts `tokenizer.json` plus the optional configs that name the chat
/// template and the bos / eos / pad / stop tokens.
#[derive(Clone, Copy, Debug)]
pub struct TokenizerBuilder<'j> {
    tokenizer_json: &'j str,
    tokenizer_config: Option<&'j str>,
    generation_config: Option<&'j str>,
}

fn invalid(file: &str, msg: impl core::fmt::Display) -> Error {
    Error::Invalid(format!("{file}: {msg}"))
}

fn tj(msg: impl core::fmt::Display) -> Error {
    invalid("tokenizer.json", msg)
}

fn type_of(v: &Value) -> Option<&str> {
    v.get("type").and_then(Value::as_str)
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves,
/// the others for U+0100 onwards in byte order.
fn byte_chars() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in map.iter_mut().enumerate() {
        let b = b as u32;
        let printable = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let cp = if printable {
            b
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(cp).unwrap_or('\0');
    }
    map
}

/// Hugging Face's `ByteLevel` decoder for one token: its characters mapped
/// back to bytes, or its UTF-8 as it is if some character is not in the map.
fn token_to_bytes(token: &str, char_bytes: &HashMap<char, u8>) -> Vec<u8> {
    token.chars().map(|c| char_bytes.get(&c).copied()).collect::<Option<Vec<u8>>>().unwrap_or_else(|| token.as_bytes().to_vec())
}

fn as_id(v: &Value, what: &str) -> Result<u32, Error> {
    match v.as_u64() {
        Some(id) if id < MAX_VOCAB => Ok(id as u32),
        _ => Err(tj(format_args!("{what}: expected a token id below {MAX_VOCAB}, found {v}"))),
    }
}

/// Flattens nested `Sequence` steps (`key` names the list inside one).
fn flatten<'v>(v: &'v Value, key: &str, out: &mut Vec<&'v Value>) {
    if type_of(v) == Some("Sequence") {
        if let Some(items) = v.get(key).and_then(Value::as_array) {
            for item in items {
                flatten(item, key, out);
            }
            return;
        }
    }
    if !v.is_null() {
        out.push(v);
    }
}

fn pre_tokenizer(v: &Value) -> Result<(PreTokenizer, bool), Error> {
    let mut steps = Vec::new();
    flatten(v, "pretokenizers", &mut steps);
    let flag = |step: &Value, key: &str, default: bool| step.get(key).and_then(Value::as_bool).unwrap_or(default);
    match steps.as_slice() {
        [split, byte_level] if type_of(split) == Some("Split") && type_of(byte_level) == Some("ByteLevel") => {
            let pattern = split
                .get("pattern")
                .and_then(|p| p.get("Regex"))
                .and_then(Value::as_str)
                .ok_or_else(|| tj("pre_tokenizer.pattern: only a Regex split pattern is supported"))?;
            if split.get("behavior").and_then(Value::as_str) != Some("Isolated") || flag(split, "invert", false) {
                return Err(tj("pre_tokenizer: only a Split with behavior \"Isolated\" and invert false is supported"));
            }
            if flag(byte_level, "use_regex", true) || flag(byte_level, "add_prefix_space", true) {
                return Err(tj("pre_tokenizer: a ByteLevel after a Split must have use_regex and add_prefix_space false"));
            }
            let kind = match pattern {
                QWEN2_PATTERN => PreTokenizer::Qwen2,
                LLAMA3_PATTERN => PreTokenizer::Llama3,
                GPT2_PATTERN => PreTokenizer::Gpt2,
                other => {
                    return Err(tj(format_args!(
                        "pre_tokenizer.pattern: the split regex {other:?} is not one this runtime implements (Qwen2, Llama 3 or GPT-2)"
                    )))
                }
            };
            Ok((kind, false))
        }
        [byte_level] if type_of(byte_level) == Some("ByteLevel") => {
            if !flag(byte_level, "use_regex", true) {
                return Err(tj("pre_tokenizer: a lone ByteLevel must have use_regex true (GPT-2's split)"));
            }
            Ok((PreTokenizer::Gpt2, flag(byte_level, "add_prefix_space", true)))
        }
        _ => Err(tj(format_args!(
            "pre_tokenizer: {} is not a byte-level pre-tokenizer this runtime implements (Sequence[Split, ByteLevel] or ByteLevel)",
            v
        ))),
    }
}

fn normalizer(v: &Value) -> Result<Normalizer, Error> {
    let mut steps = Vec::new();
    flatten(v, "normalizers", &mut steps);
    match steps.as_slice() {
        [] => Ok(Normalizer::None),
        [n] if type_of(n) == Some("NFC") => Ok(Normalizer::Nfc),
        _ => Err(tj(format_args!("normalizer: {v} is not supported (only NFC or none)"))),
    }
}

fn check_decoder(v: &Value) -> Result<(), Error> {
    let mut steps = Vec::new();
    flatten(v, "decoders", &mut steps);
    match steps.as_slice() {
        [d] if type_of(d) == Some("ByteLevel") => Ok(()),
        _ => Err(tj(format_args!("decoder: {v} is not supported (only ByteLevel)"))),
    }
}

/// The bos token a `TemplateProcessing` post-processor puts first, if any.
fn post_processor(v: &Value, added: &HashMap<String, u32>, vocab: &HashMap<String, u32>) -> Result<Option<u32>, Error> {
    let mut steps = Vec::new();
    flatten(v, "processors", &mut steps);
    let mut bos = None;
    for step in steps {
        match type_of(step) {
            Some("ByteLevel") => {}
            Some("TemplateProcessing") => {
                let single = step.get("single").and_then(Value::as_array).ok_or_else(|| tj("post_processor.single: missing"))?;
                let mut items = single.iter();
                let mut first = items.next();
                if let Some(name) = first.and_then(|f| f.get("SpecialToken")).and_then(|s| s.get("id")).and_then(Value::as_str) {
                    let id = step
                        .get("special_tokens")
                        .and_then(|s| s.get(name))
                        .and_then(|s| s.get("ids"))
                        .and_then(Value::as_array)
                        .and_then(|ids| ids.first())
                        .and_then(Value::as_u64)
                        .map(|id| id as u32)
                        .or_else(|| added.get(name).or_else(|| vocab.get(name)).copied())
                        .ok_or_else(|| tj(format_args!("post_processor: special token {name:?} has no id")))?;
                    bos = Some(id);
                    first = items.next();
                }
                let is_sequence = first.is_some_and(|f| f.get("Sequence").is_some());
                if !is_sequence || items.next().is_some() {
                    return Err(tj("post_processor: only a template of one optional leading special token then the text is supported"));
                }
            }
            _ => return Err(tj(format_args!("post_processor: {step} is not supported (ByteLevel or TemplateProcessing)"))),
        }
    }
    Ok(bos)
}

/// A token named in `tokenizer_config.json`: a string or `{"content": ...}`.
fn config_token<'v>(config: &'v Value, key: &str) -> Option<&'v str> {
    let v = config.get(key)?;
    v.as_str().or_else(|| v.get("content").and_then(Value::as_str))
}

impl<'j> TokenizerBuilder<'j> {
    pub fn new(tokenizer_json: &'j str) -> Self {
        TokenizerBuilder { tokenizer_json, tokenizer_config: None, generation_config: None }
    }

    /// `tokenizer_config.json`: chat template, bos / eos / pad tokens, `add_bos_token`.
    pub fn tokenizer_config(mut self, json: &'j str) -> Self {
        self.tokenizer_config = Some(json);
        self
    }

    /// `generation_config.json`: bos / eos / pad ids; every eos id is a stop id.
    pub fn generation_config(mut self, json: &'j str) -> Self {
        self.generation_config = Some(json);
        self
    }

    /// Checks and converts; the blob is ready for [`super::Tokenizer::parse`].
    pub fn build(&self) -> Result<Vec<u8>, Error> {
        self.tables()?.to_blob().map_err(|e| tj(format_args!("cannot write the tokenizer: {e}")))
    }

    /// The converted tables, before they are written out.
    pub fn tables(&self) -> Result<TokenizerTables, Error> {
        let root: Value = serde_json::from_str(self.tokenizer_json).map_err(|e| tj(format_args!("not valid JSON: {e}")))?;
        let model = root.get("model").ok_or_else(|| tj("model: missing"))?;
        match type_of(model) {
            Some("BPE") => {}
            None if model.get("merges").is_some() => {}
            Some(other) => return Err(tj(format_args!("model.type is {other:?}; only byte-level BPE is supported"))),
            None => return Err(tj("model.type: missing")),
        }
        if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
            return Err(tj("model.byte_fallback: true is not supported (not a byte-level BPE)"));
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if model.get(key).and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
                return Err(tj(format_args!("model.{key}: not supported")));
            }
        }

        let vocab_json = model.get("vocab").and_then(Value::as_object).ok_or_else(|| tj("model.vocab: missing or not an object"))?;
        let mut vocab: HashMap<String, u32> = HashMap::with_capacity(vocab_json.len());
        for (token, id) in vocab_json {
            vocab.insert(token.clone(), as_id(id, "model.vocab")?);
        }

        // Added tokens get their ids the way HF's `AddedVocabulary::add_tokens`
        // gives them when it loads the file (the stored "id" is only checked
        // there): an earlier added token or a model token with the same
        // content keeps its id; a new one goes after the vocabulary.
        let mut added_by_content: HashMap<String, u32> = HashMap::new();
        let mut added_by_id: BTreeMap<u32, (String, u32)> = BTreeMap::new();
        for (i, a) in root.get("added_tokens").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
            let content = a
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| tj(format_args!("added_tokens[{i}].content: missing")))?;
            if content.is_empty() {
                continue;
            }
            let flag = |key: &str, bit: u32, default: bool| if a.get(key).and_then(Value::as_bool).unwrap_or(default) { bit } else { 0 };
            let flags = flag("special", ADDED_SPECIAL, false)
                | flag("lstrip", ADDED_LSTRIP, false)
                | flag("rstrip", ADDED_RSTRIP, false)
                | flag("single_word", ADDED_SINGLE_WORD, false)
                | flag("normalized", ADDED_NORMALIZED, true);
            let vocab_len = vocab.len() as u32;
            let id = match added_by_content.get(content).or_else(|| vocab.get(content)) {
                Some(&id) => id,
                None => match added_by_content.values().max() {
                    Some(&max) if max >= vocab_len || vocab_len == 0 => max + 1,
                    _ => vocab_len,
                },
            };
            if u64::from(id) >= MAX_VOCAB {
                return Err(tj(format_args!("added_tokens[{i}]: id {id} is too large")));
            }
            added_by_content.insert(content.to_string(), id);
            added_by_id.insert(id, (content.to_string(), flags));
        }
        let added: Vec<(u32, String, u32)> = added_by_id.into_iter().map(|(id, (content, flags))| (id, content, flags)).collect();

        let vocab_size = vocab.values().chain(added.iter().map(|a| &a.0)).map(|&id| id as usize + 1).max().unwrap_or(0);
        let byte_chars = byte_chars();
        let char_bytes: HashMap<char, u8> = byte_chars.iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
        let mut tokens: Vec<Vec<u8>> = std::vec![Vec::new(); vocab_size];
        let mut model_token: Vec<Option<&str>> = std::vec![None; vocab_size];
        for (token, &id) in &vocab {
            tokens[id as usize] = token_to_bytes(token, &char_bytes);
            model_token[id as usize] = Some(token);
        }
        // As HF decodes: an added token's content (through the byte-level
        // decoder too) takes the place of the model's token with that id.
        for (id, content, _) in &added {
            tokens[*id as usize] = token_to_bytes(content, &char_bytes);
        }
        let added_ids: HashMap<u32, &str> = added.iter().map(|(id, c, _)| (*id, c.as_str())).collect();
        let vocab_ids: Vec<u32> = vocab
            .values()
            .copied()
            .filter(|id| added_ids.get(id).is_none_or(|c| model_token[*id as usize] == Some(*c)))
            .collect();

        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = vocab.get(byte_chars[b].to_string().as_str()).copied();
        }

        let merges_json = model.get("merges").and_then(Value::as_array).ok_or_else(|| tj("model.merges: missing or not a list"))?;
        let mut merges = Vec::with_capacity(merges_json.len());
        for (i, m) in merges_json.iter().enumerate() {
            let (left, right) = match m {
                Value::String(s) => {
                    let mut parts = s.split(' ');
                    match (parts.next(), parts.next(), parts.next()) {
                        (Some(l), Some(r), None) => (l, r),
                        _ => return Err(tj(format_args!("model.merges[{i}]: {s:?} is not two tokens separated by a space"))),
                    }
                }
                Value::Array(pair) if pair.len() == 2 => match (pair[0].as_str(), pair[1].as_str()) {
                    (Some(l), Some(r)) => (l, r),
                    _ => return Err(tj(format_args!("model.merges[{i}]: not two strings"))),
                },
                _ => return Err(tj(format_args!("model.merges[{i}]: not a pair"))),
            };
            let id = |t: &str| vocab.get(t).copied().ok_or_else(|| tj(format_args!("model.merges[{i}]: {t:?} is not in model.vocab")));
            let merged = format!("{left}{right}");
            merges.push((id(left)?, id(right)?, id(&merged)?));
        }

        let (pre_tokenizer, add_prefix_space) = pre_tokenizer(root.get("pre_tokenizer").unwrap_or(&Value::Null))?;
        let normalizer = normalizer(root.get("normalizer").unwrap_or(&Value::Null))?;
        check_decoder(root.get("decoder").unwrap_or(&Value::Null))?;
        let template_bos = post_processor(root.get("post_processor").unwrap_or(&Value::Null), &added_by_content, &vocab)?;

        let unk = model.get("unk_token").and_then(Value::as_str).and_then(|u| added_by_content.get(u).or_else(|| vocab.get(u)).copied());
        let lookup = |name: &str| added_by_content.get(name).or_else(|| vocab.get(name)).copied();

        let mut t = TokenizerTables {
            pre_tokenizer,
            normalizer,
            ignore_merges: model.get("ignore_merges").and_then(Value::as_bool).unwrap_or(false),
            add_prefix_space,
            add_bos: template_bos.is_some(),
            fuse_unk: model.get("fuse_unk").and_then(Value::as_bool).unwrap_or(false),
            bos: template_bos,
            eos: None,
            pad: None,
            unk,
            stop_ids: Vec::new(),
            tokens,
            byte_tokens,
            merges,
            vocab_ids,
            added,
            chat_template: None,
        };

        if let Some(json) = self.tokenizer_config {
            let file = "tokenizer_config.json";
            let c: Value = serde_json::from_str(json).map_err(|e| invalid(file, format_args!("not valid JSON: {e}")))?;
            let id_of = |key: &str| -> Result<Option<u32>, Error> {
                match config_token(&c, key) {
                    None => Ok(None),
                    Some(name) => lookup(name).map(Some).ok_or_else(|| invalid(file, format_args!("{key}: {name:?} is not a token"))),
                }
            };
            t.bos = t.bos.or(id_of("bos_token")?);
            t.eos = id_of("eos_token")?;
            t.pad = id_of("pad_token")?;
            if let Some(add) = c.get("add_bos_token").and_then(Value::as_bool) {
                t.add_bos = add && t.bos.is_some();
            }
            t.chat_template = match c.get("chat_template") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Array(named)) => {
                    let template = |n: &Value| n.get("template").and_then(Value::as_str).map(str::to_string);
                    named
                        .iter()
                        .find(|n| n.get("name").and_then(Value::as_str) == Some("default"))
                        .or_else(|| named.first())
                        .and_then(template)
                }
                Some(_) => return Err(invalid(file, "chat_template: not a string or a list of named templates")),
            };
        }

        let mut stops = BTreeSet::new();
        if let Some(json) = self.generation_config {
            let file = "generation_config.json";
            let g: Value = serde_json::from_str(json).map_err(|e| invalid(file, format_args!("not valid JSON: {e}")))?;
            let ids = |key: &str| -> Result<Vec<u32>, Error> {
                let bad = || invalid(file, format_args!("{key}: not a token id or a list of them"));
                let one = |v: &Value| v.as_u64().filter(|&id| (id as usize) < vocab_size).map(|id| id as u32).ok_or_else(bad);
                match g.get(key) {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(Value::Array(list)) => list.iter().map(one).collect(),
                    Some(v) => Ok(std::vec![one(v)?]),
                }
            };
            let eos = ids("eos_token_id")?;
            t.eos = t.eos.or(eos.first().copied());
            t.bos = t.bos.or(ids("bos_token_id")?.first().copied());
            t.pad = t.pad.or(ids("pad_token_id")?.first().copied());
            stops.extend(eos);
        }
        stops.extend(t.eos);
        t.stop_ids = stops.into_iter().collect();
        Ok(t)
    }
}
