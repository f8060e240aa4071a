//! Text <-> token ids for training: a Hugging Face tokenizer (`tokenizer.json`
//! plus the `tokenizer_config.json` beside it) loaded, trained or saved.
//!
//! The trainer uses the `tokenizers` crate itself so that what it trains on is
//! encoded exactly as `transformers` would encode it; the runtime has its own
//! no_std byte-level BPE, and a tokenizer this module trains or saves is one
//! that the runtime reads and encodes identically (tested below). A trained
//! tokenizer follows Qwen2's design (NFC, Qwen2's split regex, byte-level BPE
//! over all 256 bytes, so any text encodes) with ChatML's special tokens and the
//! R1 tags as single tokens.

use std::collections::HashSet;
use std::path::Path;

use serde_json::{json, Map, Value};
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::error::{at, Error, Result};
use crate::fsutil::write_atomic;

/// End of text: separates pre-training documents, ends raw completions, pads.
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// ChatML's turn delimiters (Qwen2's chat format).
pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";
/// The R1 tags (docs/method.md, the prompt). A trained tokenizer makes each one token,
/// but not a *special* one, so `decode(.., skip_special = true)` keeps them:
/// they are part of the answer the reward functions read.
pub const R1_TAGS: [&str; 4] = ["<think>", "</think>", "<answer>", "</answer>"];

/// ChatML without a default system prompt: what [`crate::data::PromptFormat::ChatMl`]
/// renders, as a Jinja chat template for `tokenizer_config.json`.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const TOKENIZER_JSON: &str = "tokenizer.json";
const TOKENIZER_CONFIG_JSON: &str = "tokenizer_config.json";
/// Where newer `transformers` save the chat template instead of the config.
const CHAT_TEMPLATE_JINJA: &str = "chat_template.jinja";

/// A Hugging Face tokenizer with the facts `tokenizer_config.json` adds to
/// it, or the tokenizer inside an `.aha` model file (the runtime's, which
/// encodes as Hugging Face does), so that a quantized student is prompted and
/// decoded exactly as the checkpoint it came from.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Backend,
    /// `tokenizer_config.json` as read (or as made for a trained tokenizer),
    /// kept whole so that saving preserves the fields this type ignores.
    config: Map<String, Value>,
    chat_template: Option<String>,
    bos: Option<u32>,
    eos: Option<u32>,
    pad: Option<u32>,
    /// Whether [`Self::encode`] puts `bos` first.
    add_bos: bool,
    /// The largest id plus one.
    vocab_size: usize,
}

#[derive(Clone)]
enum Backend {
    Hf(Box<Tokenizer>),
    /// The tokenizer blob of a model file (parsed in place on each use: it
    /// builds no tables).
    Blob(std::sync::Arc<[u8]>),
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("pad", &self.pad)
            .field("add_bos", &self.add_bos)
            .field("chat_template", &self.chat_template.is_some())
            .finish()
    }
}

impl TextTokenizer {
    /// Reads a `tokenizer.json`, and `tokenizer_config.json` (chat template,
    /// bos / eos / pad tokens, `add_bos_token`) and `chat_template.jinja`
    /// beside it when they exist.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(at(path))?;
        let inner: Tokenizer = text.parse().map_err(|e| Error::file(path, format!("not a tokenizer.json: {e}")))?;
        let config_path = path.with_file_name(TOKENIZER_CONFIG_JSON);
        let config = if config_path.is_file() {
            let text = std::fs::read_to_string(&config_path).map_err(at(&config_path))?;
            match serde_json::from_str(&text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(Error::file(&config_path, "not a JSON object")),
                Err(e) => return Err(Error::file(&config_path, format!("not valid JSON: {e}"))),
            }
        } else {
            Map::new()
        };
        let mut tokenizer = Self::from_parts(inner, config, &config_path)?;
        if tokenizer.chat_template.is_none() {
            let jinja = path.with_file_name(CHAT_TEMPLATE_JINJA);
            if jinja.is_file() {
                tokenizer.chat_template = Some(std::fs::read_to_string(&jinja).map_err(at(&jinja))?);
            }
        }
        Ok(tokenizer)
    }

    /// Reads `dir/tokenizer.json` and its companions (see [`Self::from_file`]).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_file(dir.as_ref().join(TOKENIZER_JSON))
    }

    /// Trains a byte-level BPE of at most `vocab_size` tokens on `texts`.
    ///
    /// The ids are: [`END_OF_TEXT`], [`IM_START`], [`IM_END`] (special), the
    /// [`R1_TAGS`] (added, not special), the 256 byte symbols, then one token
    /// per merge, most frequent first. Every byte has a token, so any text
    /// encodes. Merges need a pair seen at least twice, so a small corpus may
    /// give fewer than `vocab_size` tokens. The same texts give the same
    /// `tokenizer.json` (the `tokenizers` trainer breaks ties by pair ids).
    ///
    /// Added tokens are cut out of the texts before training, as encoding cuts
    /// them out, so no merge is spent on spelling `<think>`.
    pub fn train_bpe<I, S>(texts: I, vocab_size: usize) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let added = added_tokens();
        let smallest = added.len() + 256;
        if vocab_size < smallest {
            return Err(Error::Usage(format!(
                "a byte-level BPE needs a vocabulary of at least {smallest} tokens ({} added + 256 bytes); {vocab_size} was asked for",
                added.len()
            )));
        }
        let contents: Vec<&str> = added.iter().map(|t| t.content.as_str()).collect();
        let mut segments = Vec::new();
        for text in texts {
            segments.extend(split_at_added(text.as_ref(), &contents).map(str::to_string));
        }

        let mut inner = Tokenizer::new(BPE::default());
        inner.with_normalizer(Some(NFC)).map_err(tokenizer_error)?;
        let split = Split::new(
            SplitPattern::Regex(aha_runtime::tokenizer::pretokenize::QWEN2_PATTERN.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(tokenizer_error)?;
        let byte_level = ByteLevel::new(false, false, false);
        inner.with_pre_tokenizer(Some(Sequence::new(vec![split.into(), byte_level.into()])));
        inner.with_post_processor(Some(byte_level));
        inner.with_decoder(Some(byte_level));

        let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
        let trainer = BpeTrainer::builder()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(added)
            .initial_alphabet(alphabet)
            .build();
        let mut trainer = TrainerWrapper::BpeTrainer(trainer);
        inner.train(&mut trainer, segments.into_iter()).map_err(tokenizer_error)?;

        let mut config = Map::new();
        config.insert("add_bos_token".into(), json!(false));
        config.insert("add_prefix_space".into(), json!(false));
        config.insert("bos_token".into(), Value::Null);
        config.insert("chat_template".into(), json!(CHATML_TEMPLATE));
        config.insert("clean_up_tokenization_spaces".into(), json!(false));
        config.insert("eos_token".into(), json!(END_OF_TEXT));
        config.insert("errors".into(), json!("replace"));
        config.insert("pad_token".into(), json!(END_OF_TEXT));
        config.insert("split_special_tokens".into(), json!(false));
        // The pipeline is Qwen2's, so `transformers` loads it as Qwen2's class.
        config.insert("tokenizer_class".into(), json!("Qwen2Tokenizer"));
        config.insert("unk_token".into(), Value::Null);
        Self::from_parts(inner, config, Path::new(TOKENIZER_CONFIG_JSON))
    }

    /// Reads the special-token facts out of `config` (`config_path` names it in errors).
    fn from_parts(inner: Tokenizer, config: Map<String, Value>, config_path: &Path) -> Result<Self> {
        let vocab_size = inner.get_vocab(true).values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let id_of = |key: &str| -> Result<Option<u32>> {
            let Some(value) = config.get(key) else { return Ok(None) };
            let name = match value {
                Value::Null => return Ok(None),
                Value::String(s) => s.as_str(),
                other => other.get("content").and_then(Value::as_str).ok_or_else(|| {
                    Error::file(config_path, format!("{key}: expected a token string or {{\"content\": ...}}, found {other}"))
                })?,
            };
            inner
                .token_to_id(name)
                .map(Some)
                .ok_or_else(|| Error::file(config_path, format!("{key}: {name:?} is not a token of {TOKENIZER_JSON}")))
        };
        let template_bos = post_processor_bos(&inner)?;
        let bos = id_of("bos_token")?.or(template_bos);
        let eos = id_of("eos_token")?;
        let pad = id_of("pad_token")?;
        // `add_bos_token`, when given, wins over the post-processor, as in
        // `transformers` (which rebuilds the post-processor from it) and in
        // the runtime's converter.
        let add_bos = match config.get("add_bos_token").and_then(Value::as_bool) {
            Some(add) => add && bos.is_some(),
            None => template_bos.is_some(),
        };
        let chat_template = match config.get("chat_template") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(named)) => {
                let template = |n: &Value| n.get("template").and_then(Value::as_str).map(str::to_string);
                named.iter().find(|n| n.get("name").and_then(Value::as_str) == Some("default")).or_else(|| named.first()).and_then(template)
            }
            Some(_) => return Err(Error::file(config_path, "chat_template: not a string or a list of named templates")),
        };
        Ok(TextTokenizer { inner: Backend::Hf(Box::new(inner)), config, chat_template, bos, eos, pad, add_bos, vocab_size })
    }

    /// The tokenizer inside an `.aha` model file's bytes.
    pub fn from_model_file(bytes: &[u8], path: &Path) -> Result<Self> {
        let file = aha_runtime::format::ModelFile::parse(bytes).map_err(|e| Error::file(path, e))?;
        let blob = file.header.tokenizer.ok_or_else(|| Error::file(path, "the model file holds no tokenizer"))?;
        let t = aha_runtime::tokenizer::Tokenizer::parse(blob).map_err(|e| Error::file(path, format!("tokenizer: {e:?}")))?;
        Ok(TextTokenizer {
            config: Map::new(),
            chat_template: t.chat_template().map(str::to_string),
            bos: t.bos(),
            eos: t.eos(),
            pad: t.pad(),
            add_bos: t.add_bos(),
            vocab_size: t.vocab_size() as usize,
            inner: Backend::Blob(blob.into()),
        })
    }

    fn blob(blob: &[u8]) -> aha_runtime::tokenizer::Tokenizer<'_> {
        // The blob parsed when the tokenizer was made; it cannot fail now.
        aha_runtime::tokenizer::Tokenizer::parse(blob).expect("a tokenizer blob that parsed once parses again")
    }

    fn hf(&self) -> Result<&Tokenizer> {
        match &self.inner {
            Backend::Hf(t) => Ok(t),
            Backend::Blob(_) => Err(Error::Tokenizer("a model file's tokenizer cannot be written as tokenizer.json".into())),
        }
    }

    /// Replaces the chat template (saved by [`Self::save_dir`]); for a base
    /// model's tokenizer that is being taught a chat format.
    pub fn with_chat_template(mut self, template: Option<String>) -> Self {
        self.chat_template = template;
        self
    }

    /// The ids of `text` as `transformers`' `tokenizer(text)` gives them: the
    /// bos token first when the tokenizer adds one, then the text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if let (true, Some(bos)) = (self.add_bos, self.bos) {
            ids.push(bos);
        }
        ids.extend(self.encode_raw(text)?);
        Ok(ids)
    }

    /// The ids of `text` alone, no bos: for a piece of a longer text, or a
    /// rendered chat template that writes its own bos (as `apply_chat_template`
    /// encodes with `add_special_tokens=False`).
    pub fn encode_raw(&self, text: &str) -> Result<Vec<u32>> {
        match &self.inner {
            Backend::Hf(t) => Ok(t.encode(text, false).map_err(tokenizer_error)?.get_ids().to_vec()),
            Backend::Blob(b) => Self::blob(b).encode_to_vec(text).map_err(|e| Error::Tokenizer(format!("{e:?}"))),
        }
    }

    /// The first `max_tokens` ids of `text` alone (as [`Self::encode_raw`]),
    /// tokenizing no more of a long text than they need: a prefix of 8 bytes
    /// a token (doubled until it yields a margin of 16 tokens past the
    /// limit, so the cut, which can only change the word it falls in, lies
    /// beyond the ids kept), else the whole text. What a 5 MB example costs is
    /// then the tokens it keeps, not the text it has.
    pub fn encode_raw_prefix(&self, text: &str, max_tokens: usize) -> Result<Vec<u32>> {
        const MARGIN: usize = 16;
        let mut bytes = (max_tokens + MARGIN).saturating_mul(8).max(256);
        loop {
            if bytes >= text.len() {
                let mut ids = self.encode_raw(text)?;
                ids.truncate(max_tokens);
                return Ok(ids);
            }
            let mut cut = bytes;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let mut ids = self.encode_raw(&text[..cut])?;
            if ids.len() >= max_tokens + MARGIN {
                ids.truncate(max_tokens);
                return Ok(ids);
            }
            bytes = bytes.saturating_mul(2);
        }
    }

    /// The ids of a rendered prompt or conversation: bos first when the
    /// tokenizer adds one, unless the text already begins with it (a chat
    /// template that writes `{{ bos_token }}` itself), so bos is never doubled.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_prompt_prefix(text, usize::MAX)
    }

    /// [`Self::encode_prompt`], cut to `max_tokens` ids (bos included) the
    /// way [`Self::encode_raw_prefix`] cuts.
    pub fn encode_prompt_prefix(&self, text: &str, max_tokens: usize) -> Result<Vec<u32>> {
        let ids = if max_tokens == usize::MAX { self.encode_raw(text)? } else { self.encode_raw_prefix(text, max_tokens)? };
        let mut ids = match (self.add_bos, self.bos) {
            (true, Some(bos)) if ids.first() != Some(&bos) => std::iter::once(bos).chain(ids).collect(),
            _ => ids,
        };
        ids.truncate(max_tokens);
        Ok(ids)
    }

    /// The text of `ids`; `skip_special` leaves out special tokens
    /// (`<|im_end|>`, ...) but keeps the R1 tags, which are not special.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(Error::Tokenizer(format!("token id {bad} is outside the vocabulary of {} tokens", self.vocab_size)));
        }
        match &self.inner {
            Backend::Hf(t) => t.decode(ids, skip_special).map_err(tokenizer_error),
            Backend::Blob(b) => {
                let t = Self::blob(b);
                let kept: Vec<u32> = ids.iter().copied().filter(|&id| !(skip_special && t.is_special(id))).collect();
                t.decode_to_string(&kept).map_err(|e| Error::Tokenizer(format!("{e:?}")))
            }
        }
    }

    /// The id of the token with exactly this text (`<think>`, `<|im_end|>`, `Ġthe`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        match &self.inner {
            Backend::Hf(t) => t.token_to_id(token),
            Backend::Blob(b) => Self::blob(b).token_id(token),
        }
    }

    /// The largest id plus one: the rows an embedding table needs.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// The padding id: `pad_token`, or else the eos token (what `transformers`
    /// users set when a tokenizer has no pad token).
    pub fn pad_id(&self) -> Option<u32> {
        self.pad.or(self.eos)
    }

    /// Whether [`Self::encode`] puts the bos token first.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// The text of a token id (`<|endoftext|>` for the eos id): what a chat
    /// template's `eos_token` / `bos_token` variables hold.
    pub fn token_text(&self, id: u32) -> Option<String> {
        match &self.inner {
            Backend::Hf(t) => t.get_added_tokens_decoder().get(&id).map(|a| a.content.clone()).or_else(|| t.id_to_token(id)),
            Backend::Blob(b) => {
                let t = Self::blob(b);
                match t.added_token(id) {
                    Some(a) => Some(a.content.to_string()),
                    None => t.token_bytes(id).map(|bytes| String::from_utf8_lossy(bytes).into_owned()),
                }
            }
        }
    }

    /// The Jinja chat template, if the tokenizer has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The wrapped `tokenizers` tokenizer (none for a model file's).
    pub fn inner(&self) -> Option<&Tokenizer> {
        self.hf().ok()
    }

    /// Writes `dir/tokenizer.json` and, when there is a chat template or a
    /// special token to name, `dir/tokenizer_config.json` in the format
    /// `transformers.AutoTokenizer.from_pretrained(dir)` reads. Both writes are
    /// atomic; the directory is created if needed.
    pub fn save_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(at(dir))?;
        let path = dir.join(TOKENIZER_JSON);
        let json = self.hf()?.to_string(false).map_err(|e| Error::file(&path, format!("cannot serialize the tokenizer: {e}")))?;
        write_atomic(&path, json.as_bytes())?;
        if let Some(config) = self.config_json() {
            let path = dir.join(TOKENIZER_CONFIG_JSON);
            let mut text = serde_json::to_string_pretty(&config).map_err(at(&path))?;
            text.push('\n');
            write_atomic(&path, text.as_bytes())?;
        }
        Ok(())
    }

    /// `tokenizer_config.json` as it should be saved, or `None` when it would
    /// say nothing.
    fn config_json(&self) -> Option<Value> {
        let has_tokens = self.bos.is_some() || self.eos.is_some() || self.pad.is_some();
        if self.config.is_empty() && self.chat_template.is_none() && !has_tokens {
            return None;
        }
        let mut config = self.config.clone();
        let name = |id: Option<u32>| id.and_then(|id| self.token_text(id)).map_or(Value::Null, Value::String);
        config.insert("bos_token".into(), name(self.bos));
        config.insert("eos_token".into(), name(self.eos));
        config.insert("pad_token".into(), name(self.pad));
        // Say `add_bos_token` only where the config said it or the
        // post-processor alone would say otherwise: `transformers` classes
        // differ in whether they honour it.
        let inner = self.hf().ok()?;
        let post_processor_adds_bos = post_processor_bos(inner).ok().flatten().is_some();
        if config.contains_key("add_bos_token") || self.add_bos != post_processor_adds_bos {
            config.insert("add_bos_token".into(), json!(self.add_bos));
        }
        match &self.chat_template {
            Some(t) => config.insert("chat_template".into(), json!(t)),
            None => config.remove("chat_template"),
        };
        config.entry("tokenizer_class").or_insert_with(|| json!("PreTrainedTokenizerFast"));
        // `transformers` lists the added tokens by id; keep that index current.
        let mut added: Vec<_> = inner.get_added_tokens_decoder().into_iter().collect();
        added.sort_by_key(|(id, _)| *id);
        let decoder: Map<String, Value> = added
            .into_iter()
            .map(|(id, t)| {
                let entry = json!({
                    "content": t.content,
                    "lstrip": t.lstrip,
                    "normalized": t.normalized,
                    "rstrip": t.rstrip,
                    "single_word": t.single_word,
                    "special": t.special,
                });
                (id.to_string(), entry)
            })
            .collect();
        config.insert("added_tokens_decoder".into(), Value::Object(decoder));
        Some(Value::Object(config))
    }
}

/// The added tokens of a trained tokenizer, in id order.
fn added_tokens() -> Vec<AddedToken> {
    let special = [END_OF_TEXT, IM_START, IM_END].map(|t| AddedToken::from(t, true).normalized(false));
    let tags = R1_TAGS.map(|t| AddedToken::from(t, false).normalized(false));
    special.into_iter().chain(tags).collect()
}

/// The pieces of `text` between occurrences of `tokens` (leftmost, longest
/// match first, as added tokens are found when encoding), empty ones skipped.
fn split_at_added<'t>(text: &'t str, tokens: &'t [&'t str]) -> impl Iterator<Item = &'t str> + 't {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let next = tokens
            .iter()
            .filter(|t| !t.is_empty())
            .filter_map(|t| rest.find(t).map(|at| (at, t.len())))
            .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let (piece, after) = match next {
            Some((at, len)) => (&rest[..at], &rest[at + len..]),
            None => (rest, ""),
        };
        rest = after;
        if !piece.is_empty() {
            return Some(piece);
        }
    })
}

/// The token a post-processor puts before the text, if any.
fn post_processor_bos(inner: &Tokenizer) -> Result<Option<u32>> {
    let probe = "a";
    let with = inner.encode(probe, true).map_err(tokenizer_error)?;
    let without = inner.encode(probe, false).map_err(tokenizer_error)?;
    let (with, without) = (with.get_ids(), without.get_ids());
    Ok(match with.split_first() {
        Some((&first, rest)) if rest.starts_with(without) && with.len() > without.len() => Some(first),
        _ => None,
    })
}

fn tokenizer_error(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const QWEN2_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/qwen2-tokenizer");
    const BPE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/hf/bpe-tokenizer");

    /// Arithmetic in the R1 format, the kind of text the trainer's tasks make.
    fn arithmetic_corpus() -> Vec<String> {
        let mut texts = Vec::new();
        for a in 1..40 {
            for b in [3, 7, 12, 25] {
                texts.push(format!(
                    "User: Compute {a} * {b} + 5. Assistant: <think> {a} * {b} = {}. {} + 5 = {}. </think> <answer> {} </answer>\n",
                    a * b,
                    a * b,
                    a * b + 5,
                    a * b + 5
                ));
            }
        }
        texts.push("The quick brown fox jumps over the lazy dog. Wait, let me check that again.\n\n".into());
        texts
    }

    fn probe_strings() -> Vec<&'static str> {
        vec![
            "User: Compute 7 * 3 + 5. Assistant:",
            "<think> 7 * 3 = 21. 21 + 5 = 26. </think> <answer> 26 </answer>",
            "<think>12+30=42</think><answer>42</answer>",
            "1234567890 -17 (3 - 4) * 2",
            "  multiple   spaces\n\n\ttabs\r\n",
            "Émile's café — naïve 😀 计算 17 加 25",
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
            "words never seen: zebra quixotic xylophone",
            "<|endoftext|>next document",
            "",
        ]
    }

    #[test]
    fn trained_bpe_round_trips_through_the_runtime_tokenizer() {
        let tok = TextTokenizer::train_bpe(arithmetic_corpus(), 400).unwrap();
        assert!(tok.vocab_size() > 7 + 256 && tok.vocab_size() <= 400, "vocab {}", tok.vocab_size());
        let dir = tempfile::tempdir().unwrap();
        tok.save_dir(dir.path()).unwrap();

        let blob = aha_runtime::tokenizer::load_json(dir.path().join("tokenizer.json")).unwrap();
        let runtime = aha_runtime::tokenizer::Tokenizer::parse(&blob).unwrap();
        assert_eq!(runtime.vocab_size() as usize, tok.vocab_size());
        assert_eq!(runtime.eos(), tok.eos_id());
        assert_eq!(runtime.pad(), tok.pad_id());
        assert_eq!(runtime.chat_template(), Some(CHATML_TEMPLATE));
        for text in probe_strings() {
            let ours = tok.encode(text).unwrap();
            let theirs = runtime.encode_to_vec(text).unwrap();
            assert_eq!(ours, theirs, "encodings of {text:?} differ");
            assert_eq!(tok.decode(&ours, false).unwrap(), text);
        }
    }

    #[test]
    fn trained_bpe_has_the_tags_as_single_non_special_tokens() {
        let tok = TextTokenizer::train_bpe(arithmetic_corpus(), 350).unwrap();
        let ids: Vec<u32> = [END_OF_TEXT, IM_START, IM_END].into_iter().chain(R1_TAGS).map(|t| tok.token_id(t).unwrap()).collect();
        assert_eq!(ids, (0..7).collect::<Vec<u32>>());
        assert_eq!(tok.encode("<think>").unwrap(), vec![3]);
        assert_eq!(tok.encode("</answer>").unwrap(), vec![6]);
        assert_eq!((tok.eos_id(), tok.pad_id(), tok.bos_id()), (Some(0), Some(0), None));
        // Skipping special tokens drops ChatML's delimiters, keeps the tags.
        let ids = tok.encode("<|im_start|><think> 1 </think><|im_end|>").unwrap();
        assert_eq!(tok.decode(&ids, true).unwrap(), "<think> 1 </think>");
        // Any byte encodes, even in text the trainer never saw.
        let odd = "\u{0}\u{7f}ÿ\u{10FFFF}";
        assert_eq!(tok.decode(&tok.encode(odd).unwrap(), false).unwrap(), odd);
    }

    #[test]
    fn training_is_deterministic() {
        let a = TextTokenizer::train_bpe(arithmetic_corpus(), 380).unwrap();
        let b = TextTokenizer::train_bpe(arithmetic_corpus(), 380).unwrap();
        assert_eq!(a.inner().unwrap().to_string(false).unwrap(), b.inner().unwrap().to_string(false).unwrap());
    }

    #[test]
    fn too_small_a_vocabulary_is_refused() {
        let err = TextTokenizer::train_bpe(["x"], 100).unwrap_err();
        assert!(err.to_string().contains("at least 263"), "{err}");
    }

    #[test]
    fn saved_config_is_what_transformers_reads() {
        let tok = TextTokenizer::train_bpe(arithmetic_corpus(), 300).unwrap();
        let dir = tempfile::tempdir().unwrap();
        tok.save_dir(dir.path()).unwrap();
        let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("tokenizer_config.json")).unwrap()).unwrap();
        assert_eq!(config["eos_token"], "<|endoftext|>");
        assert_eq!(config["pad_token"], "<|endoftext|>");
        assert_eq!(config["bos_token"], Value::Null);
        assert_eq!(config["chat_template"], CHATML_TEMPLATE);
        assert_eq!(config["added_tokens_decoder"]["3"]["content"], "<think>");
        assert_eq!(config["added_tokens_decoder"]["3"]["special"], false);
        assert_eq!(config["added_tokens_decoder"]["2"]["special"], true);

        let again = TextTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(again.chat_template(), Some(CHATML_TEMPLATE));
        assert_eq!(again.eos_id(), tok.eos_id());
        for text in probe_strings() {
            assert_eq!(again.encode(text).unwrap(), tok.encode(text).unwrap());
        }
    }

    #[test]
    fn reads_the_qwen2_fixture_with_its_config() {
        let tok = TextTokenizer::from_dir(QWEN2_DIR).unwrap();
        assert_eq!(tok.eos_id(), Some(2)); // <|im_end|>, from tokenizer_config.json
        assert_eq!(tok.pad_id(), Some(0));
        assert_eq!(tok.bos_id(), None);
        assert!(!tok.add_bos());
        assert!(tok.chat_template().unwrap().contains("<|im_start|>"));
        assert_eq!(tok.token_text(2).as_deref(), Some("<|im_end|>"));
    }

    #[test]
    fn encodes_as_the_reference_for_the_bpe_fixture() {
        let tok = TextTokenizer::from_file(format!("{BPE_DIR}/tokenizer.json")).unwrap();
        let reference: Value = serde_json::from_str(&std::fs::read_to_string(format!("{BPE_DIR}/reference.json")).unwrap()).unwrap();
        let cases = reference.as_array().unwrap();
        assert!(!cases.is_empty());
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let want: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            assert_eq!(tok.encode(text).unwrap(), want, "{text:?}");
            assert_eq!(tok.decode(&want, false).unwrap(), case["decoded"].as_str().unwrap());
        }
    }

    #[test]
    fn bos_from_the_post_processor_is_added_once() {
        // The Qwen2 fixture given a Llama-style post-processor: bos, then the text.
        let mut json: Value = serde_json::from_str(&std::fs::read_to_string(format!("{QWEN2_DIR}/tokenizer.json")).unwrap()).unwrap();
        json["post_processor"] = json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}},
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), json.to_string()).unwrap();
        let tok = TextTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!((tok.bos_id(), tok.add_bos()), (Some(0), true));
        let plain = tok.encode_raw("hi").unwrap();
        assert_eq!(tok.encode("hi").unwrap(), [&[0][..], &plain].concat());
        assert_eq!(tok.encode_prompt("hi").unwrap(), [&[0][..], &plain].concat());
        assert_eq!(tok.encode_prompt("<|endoftext|>hi").unwrap(), [&[0][..], &plain].concat());

        let blob = aha_runtime::tokenizer::load_json(dir.path().join("tokenizer.json")).unwrap();
        let runtime = aha_runtime::tokenizer::Tokenizer::parse(&blob).unwrap();
        assert_eq!((runtime.bos(), runtime.add_bos()), (tok.bos_id(), tok.add_bos()));

        // Saved and read back, it still adds bos once; the config does not
        // restate what the post-processor already does.
        let out = tempfile::tempdir().unwrap();
        tok.save_dir(out.path()).unwrap();
        let config: Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("tokenizer_config.json")).unwrap()).unwrap();
        assert_eq!(config.get("add_bos_token"), None);
        assert_eq!(config["bos_token"], "<|endoftext|>");
        assert_eq!(TextTokenizer::from_dir(out.path()).unwrap().encode("hi").unwrap(), tok.encode("hi").unwrap());

        // `add_bos_token: false` in the config wins over the post-processor.
        std::fs::write(dir.path().join("tokenizer_config.json"), r#"{"add_bos_token": false}"#).unwrap();
        let tok = TextTokenizer::from_dir(dir.path()).unwrap();
        assert!(!tok.add_bos());
        assert_eq!(tok.encode("hi").unwrap(), plain);
    }

    #[test]
    fn bad_input_gives_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TextTokenizer::from_dir(dir.path()).unwrap_err();
        assert!(matches!(missing, Error::File { .. }), "{missing}");
        std::fs::write(dir.path().join("tokenizer.json"), "{").unwrap();
        let bad = TextTokenizer::from_dir(dir.path()).unwrap_err().to_string();
        assert!(bad.contains("tokenizer.json") && bad.contains("not a tokenizer.json"), "{bad}");

        let tok = TextTokenizer::from_dir(QWEN2_DIR).unwrap();
        let err = tok.decode(&[1_000_000], false).unwrap_err().to_string();
        assert!(err.contains("1000000"), "{err}");

        // A config naming a token the vocabulary lacks.
        std::fs::copy(format!("{QWEN2_DIR}/tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
        std::fs::write(dir.path().join("tokenizer_config.json"), r#"{"eos_token": "<nope>"}"#).unwrap();
        let err = TextTokenizer::from_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("tokenizer_config.json") && err.contains("eos_token") && err.contains("<nope>"), "{err}");
    }

    #[test]
    fn split_at_added_cuts_out_tokens() {
        let tokens = ["<think>", "</think>", "<|endoftext|>"];
        let pieces: Vec<&str> = split_at_added("a<think> b </think><|endoftext|>c", &tokens).collect();
        assert_eq!(pieces, ["a", " b ", "c"]);
        assert_eq!(split_at_added("", &tokens).count(), 0);
    }
}
