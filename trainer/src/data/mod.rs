//! Training data: datasets (SFT pairs and conversations, prompts with
//! reference answers, pre-training text), the prompt formats that turn a
//! conversation into text, tokenization with a loss mask, packing for
//! pre-training, and a resumable shuffled batch order.
//!
//! Datasets (JSONL, Parquet, folders of shards; the common R1 datasets'
//! layouts) are read by [`dataset`]: [`read_prompts`] and [`read_examples`].
//! TRL's column names come first, so a dataset prepared for TRL works here:
//! `{"prompt", "completion"}` (or `"response"`), `{"messages": [...]}`. Every
//! unusable row is an error with the file, the 1-based line (JSONL) or row
//! (Parquet), the column and what is wrong with it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use aha_runtime::sampler::Rng;
use aha_runtime::template::{Template, R1_ZERO};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{at, Error, Result};
use crate::tokenizer::TextTokenizer;

pub mod dataset;
mod parquet;

pub use dataset::{
    data_files, read_examples, read_prompts, read_prompts_for_sampling, BadRows, Columns, DataOptions, PromptSet, ReadStats,
};

// ---------------------------------------------------------------------------
// Conversations

/// Who says a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The name chat templates and JSONL files use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        match name {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message { role, content: content.into() }
    }
    pub fn system(content: impl Into<String>) -> Message {
        Message::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Message {
        Message::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Message {
        Message::new(Role::Assistant, content)
    }
}

// ---------------------------------------------------------------------------
// Prompt formats

/// How a conversation becomes text. The built-in formats are the runtime's
/// [`Template`]s extended to whole conversations (a single user message renders
/// exactly as the runtime renders it, so training and inference agree);
/// `Chat` is a model's own Jinja chat template, rendered as `transformers`'
/// `apply_chat_template` renders it.
#[derive(Clone, Debug, PartialEq)]
pub enum PromptFormat {
    /// The contents as given, one after another; an assistant turn ends with eos.
    Raw,
    /// R1-Zero's "A conversation between User and Assistant…" (docs/method.md, the prompt);
    /// an assistant turn is ` <reply>` then eos. A system message replaces the preamble.
    R1Zero,
    /// Qwen's ChatML, without a default system prompt.
    ChatMl,
    /// DeepSeek-R1's distilled students: `<｜User｜>…<｜Assistant｜><think>\n`.
    R1Distill,
    /// The tokenizer's Jinja chat template.
    Chat(ChatTemplate),
}

/// A Jinja chat template with the special-token texts it may refer to
/// (`bos_token`, `eos_token`), which travel with it because templates print them.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatTemplate {
    pub source: String,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
}

/// R1-Distill's sentence delimiters, as the runtime's template writes them.
const R1_DISTILL_BOS: &str = "<｜begin▁of▁sentence｜>";
const R1_DISTILL_EOS: &str = "<｜end▁of▁sentence｜>";

impl PromptFormat {
    /// The names [`Self::from_name`] accepts.
    pub const NAMES: [&'static str; 6] = ["raw", "r1-zero", "chatml", "r1-distill", "chat", "auto"];

    /// `raw`, `r1-zero`, `chatml`, `r1-distill`; `chat` for the tokenizer's own
    /// chat template; `auto` for that template when there is one, else R1-Zero.
    pub fn from_name(name: &str, tokenizer: &TextTokenizer) -> Result<PromptFormat> {
        let chat = || -> Option<ChatTemplate> {
            tokenizer.chat_template().map(|source| ChatTemplate {
                source: source.to_string(),
                bos_token: tokenizer.bos_id().and_then(|id| tokenizer.token_text(id)),
                eos_token: tokenizer.eos_id().and_then(|id| tokenizer.token_text(id)),
            })
        };
        let format = match name {
            "chat" => PromptFormat::Chat(chat().ok_or_else(|| {
                Error::Config(
                    "prompt format \"chat\": the tokenizer has no chat_template (choose r1-zero, chatml, r1-distill or raw)".into(),
                )
            })?),
            "auto" => chat().map_or(PromptFormat::R1Zero, PromptFormat::Chat),
            other => match Template::from_name(other) {
                Some(Template::Raw) => PromptFormat::Raw,
                Some(Template::R1Zero) => PromptFormat::R1Zero,
                Some(Template::ChatMl) => PromptFormat::ChatMl,
                Some(Template::R1Distill) => PromptFormat::R1Distill,
                None => return Err(Error::Config(format!("prompt format {other:?} is not one of {}", Self::NAMES.join(", ")))),
            },
        };
        if let PromptFormat::Chat(t) = &format {
            // Surface a template that does not parse now, not at the first record.
            t.render(&[Message::user("hi")], true)?;
        }
        Ok(format)
    }

    /// The name this format goes by.
    pub fn name(&self) -> &'static str {
        match self {
            PromptFormat::Raw => "raw",
            PromptFormat::R1Zero => "r1-zero",
            PromptFormat::ChatMl => "chatml",
            PromptFormat::R1Distill => "r1-distill",
            PromptFormat::Chat(_) => "chat",
        }
    }

    /// The runtime's template for this format (`None` for a Jinja template).
    pub fn template(&self) -> Option<Template> {
        match self {
            PromptFormat::Raw => Some(Template::Raw),
            PromptFormat::R1Zero => Some(Template::R1Zero),
            PromptFormat::ChatMl => Some(Template::ChatMl),
            PromptFormat::R1Distill => Some(Template::R1Distill),
            PromptFormat::Chat(_) => None,
        }
    }

    /// The conversation so far plus the opening of the assistant's reply: the
    /// text a model continues to answer.
    pub fn render_prompt(&self, messages: &[Message]) -> Result<String> {
        self.render(messages, true)
    }

    /// [`Self::render_prompt`] for one user message.
    pub fn render_question(&self, question: &str) -> Result<String> {
        self.render_prompt(&[Message::user(question)])
    }

    /// The whole conversation, every turn closed. For `raw` and `r1-zero` an
    /// assistant turn's closing eos is a token, not text: [`tokenize_sft`] and
    /// [`pack`] add it.
    pub fn render_conversation(&self, messages: &[Message]) -> Result<String> {
        self.render(messages, false)
    }

    /// Whether an assistant turn ends with the eos token rather than with text
    /// the format writes (`<|im_end|>`, ...).
    fn ends_turn_with_eos(&self) -> bool {
        matches!(self, PromptFormat::Raw | PromptFormat::R1Zero)
    }

    fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let mut out = String::new();
        match self {
            PromptFormat::Chat(t) => return t.render(messages, add_generation_prompt),
            PromptFormat::Raw => {
                for m in messages {
                    out.push_str(&m.content);
                }
            }
            PromptFormat::R1Zero => {
                // R1_ZERO is `<preamble>User: {prompt}. Assistant:`.
                let (before, after) = R1_ZERO.split_once("{prompt}").unwrap_or((R1_ZERO, ""));
                let preamble = before.strip_suffix("User: ").unwrap_or(before);
                let mut rest = messages;
                match messages.split_first() {
                    Some((first, tail)) if first.role == Role::System => {
                        out.push_str(&first.content);
                        rest = tail;
                    }
                    _ => out.push_str(preamble),
                }
                for m in rest {
                    let needs_space = !out.is_empty() && !out.ends_with(char::is_whitespace);
                    match m.role {
                        Role::Assistant => {
                            if !m.content.starts_with(char::is_whitespace) {
                                out.push(' ');
                            }
                            out.push_str(&m.content);
                        }
                        Role::User | Role::System => {
                            if needs_space {
                                out.push(' ');
                            }
                            out.push_str("User: ");
                            out.push_str(&m.content);
                            out.push_str(after);
                        }
                    }
                }
            }
            PromptFormat::ChatMl => {
                for m in messages {
                    out.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role.as_str(), m.content));
                }
                if add_generation_prompt {
                    out.push_str("<|im_start|>assistant\n");
                }
            }
            PromptFormat::R1Distill => {
                out.push_str(R1_DISTILL_BOS);
                for m in messages {
                    match m.role {
                        Role::System => out.push_str(&m.content),
                        Role::User => {
                            out.push_str("<｜User｜>");
                            out.push_str(&m.content);
                        }
                        Role::Assistant => {
                            // The generation prompt opens `<think>\n`, so a
                            // reply always starts there; one without reasoning
                            // gets R1's empty think block.
                            out.push_str("<｜Assistant｜><think>\n");
                            match m.content.strip_prefix("<think>") {
                                Some(rest) => out.push_str(rest.strip_prefix('\n').unwrap_or(rest)),
                                None => {
                                    out.push_str("\n</think>\n\n");
                                    out.push_str(&m.content);
                                }
                            }
                            out.push_str(R1_DISTILL_EOS);
                        }
                    }
                }
                if add_generation_prompt {
                    out.push_str("<｜Assistant｜><think>\n");
                }
            }
        }
        Ok(out)
    }
}

impl ChatTemplate {
    /// Renders as `apply_chat_template` does: Jinja with `trim_blocks` and
    /// `lstrip_blocks`, Python's string methods, `raise_exception`, and the
    /// variables `messages`, `add_generation_prompt`, `bos_token`, `eos_token`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let mut env = minijinja::Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().map_err(|e| self.error(e))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
        });
        let messages: Vec<minijinja::Value> = messages
            .iter()
            .map(|m| {
                let mut map = BTreeMap::new();
                map.insert("role".to_string(), minijinja::Value::from(m.role.as_str()));
                map.insert("content".to_string(), minijinja::Value::from(m.content.as_str()));
                minijinja::Value::from(map)
            })
            .collect();
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.clone(),
            eos_token => self.eos_token.clone(),
        };
        env.render_str(&self.source, ctx).map_err(|e| self.error(e))
    }

    fn error(&self, e: minijinja::Error) -> Error {
        let head: String = self.source.chars().take(60).collect();
        Error::Config(format!("the tokenizer's chat template (starting {head:?}) failed to render: {e:#}"))
    }
}

// ---------------------------------------------------------------------------
// SFT data

/// One supervised example: a prompt and the reply to learn, or a conversation
/// whose assistant turns are all learnt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SftRecord {
    PromptResponse { prompt: String, response: String },
    Messages(Vec<Message>),
}

impl SftRecord {
    /// The record as a conversation.
    pub fn messages(&self) -> Vec<Message> {
        match self {
            SftRecord::PromptResponse { prompt, response } => vec![Message::user(prompt.as_str()), Message::assistant(response.as_str())],
            SftRecord::Messages(m) => m.clone(),
        }
    }
}

/// Every SFT record of a dataset, in memory, with the default columns:
/// [`read_examples`] collected. (Training streams them instead.)
pub fn read_sft_jsonl(path: impl AsRef<Path>) -> Result<Vec<SftRecord>> {
    let mut records = Vec::new();
    read_examples(path.as_ref(), &DataOptions::default(), |r| {
        records.push(r);
        Ok(())
    })?;
    Ok(records)
}

// ---------------------------------------------------------------------------
// Prompts for generation and RL

/// A unit test for a code answer: the input and the expected output, each a
/// value literal of the sandbox's language (e.g. `[3, 1, 2]` -> `[1, 2, 3]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeTest {
    pub input: String,
    pub expected: String,
}

/// Unit tests for a Python answer, run in [`crate::sandbox::python`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct PythonTests {
    /// Run after the program, before the tests (MBPP's `test_setup_code`).
    pub setup: String,
    /// Each a piece of Python that raises when the program is wrong
    /// (`assert f(1) == 2`; HumanEval's `check` and its call).
    pub tests: Vec<String>,
    /// HumanEval: the function the tests call.
    pub entry_point: Option<String>,
    /// HumanEval: the prompt's code (signature and docstring); a completion
    /// that does not define `entry_point` is taken as its body and run after it.
    pub stub: Option<String>,
}

/// What a prompt's samples are checked against. Which fields are set depends
/// on the task: an answer (arithmetic, GSM8K, MATH), unit tests (code, in the
/// list language or in Python), the numbers to use with the answer as target
/// (Countdown).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reference {
    /// The reference answer, as the data gives it (GSM8K's `… #### 42` is
    /// kept whole; [`final_answer`] takes the number).
    pub answer: Option<String>,
    /// Unit tests in the list language ([`crate::sandbox::list`]).
    pub tests: Vec<CodeTest>,
    /// Countdown: the numbers the equation must use, each once.
    pub numbers: Vec<i64>,
    /// Unit tests in Python.
    pub python: Option<PythonTests>,
    /// A general prompt (R1's "all scenarios" stage): nothing to verify, it
    /// is judged by the general rewards (a reward model) instead of the
    /// rule-based ones. Data: a `"kind"` column of `"general"` (default `"reasoning"`).
    pub general: bool,
}

impl Reference {
    pub fn answer(answer: impl Into<String>) -> Reference {
        Reference { answer: Some(answer.into()), ..Reference::default() }
    }
}

/// A prompt to answer, with what its answers are checked against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptRecord {
    /// The conversation to continue; a plain prompt is one user message.
    pub messages: Vec<Message>,
    pub reference: Reference,
    /// The dataset's id for the row (`task_id`, `unique_id`, ...), if it has one.
    pub id: Option<String>,
}

impl PromptRecord {
    /// The last user message: the question being asked.
    pub fn question(&self) -> &str {
        self.messages.iter().rev().find(|m| m.role == Role::User).map_or("", |m| m.content.as_str())
    }
}

/// Every prompt of a dataset with the default columns, references
/// optional: [`read_prompts_for_sampling`]'s records.
pub fn read_prompts_jsonl(path: impl AsRef<Path>) -> Result<Vec<PromptRecord>> {
    Ok(read_prompts_for_sampling(path.as_ref(), &DataOptions::default())?.records)
}

/// What follows the last `####` (GSM8K's final-answer marker), trimmed; else
/// the whole reference, trimmed.
pub fn final_answer(answer: &str) -> &str {
    match answer.rfind("####") {
        Some(at) => answer[at + 4..].trim(),
        None => answer.trim(),
    }
}

// ---------------------------------------------------------------------------
// JSONL parsing helpers

/// Parses each non-blank line of `path` as a JSON object and hands it to
/// `parse`, whose error message becomes an [`Error::Line`].
pub fn read_jsonl<T>(path: &Path, parse: impl Fn(&Map<String, Value>) -> std::result::Result<T, String>) -> Result<Vec<T>> {
    let file = std::fs::File::open(path).map_err(at(path))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line_error = |message: String| Error::Line { path: path.to_path_buf(), line: i + 1, message };
        let line = line.map_err(|e| line_error(format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line).map_err(|e| line_error(format!("not JSON: {e}")))?;
        let obj = value.as_object().ok_or_else(|| line_error(format!("expected a JSON object, found {}", kind(&value))))?;
        out.push(parse(obj).map_err(line_error)?);
    }
    Ok(out)
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A string as one message from `role`, or a list of messages.
fn text_or_messages(v: &Value, field: &str, role: Role) -> std::result::Result<Vec<Message>, String> {
    match v {
        Value::String(s) => Ok(vec![Message::new(role, s.as_str())]),
        Value::Array(_) => parse_messages(v, field),
        other => Err(format!("{field}: expected text or a list of messages, found {}", kind(other))),
    }
}

fn parse_messages(v: &Value, field: &str) -> std::result::Result<Vec<Message>, String> {
    let list = v.as_array().ok_or_else(|| format!("{field}: expected a list of messages, found {}", kind(v)))?;
    if list.is_empty() {
        return Err(format!("{field}: empty list"));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let at = format!("{field}[{i}]");
            let obj = m.as_object().ok_or_else(|| format!("{at}: expected an object with role and content, found {}", kind(m)))?;
            let role = match obj.get("role") {
                None => return Err(format!("{at}.role: missing")),
                Some(Value::String(r)) => {
                    Role::from_name(r).ok_or_else(|| format!("{at}.role: {r:?} is not one of system, user, assistant"))?
                }
                Some(other) => return Err(format!("{at}.role: not a string ({})", kind(other))),
            };
            let content = match obj.get("content") {
                None => return Err(format!("{at}.content: missing")),
                Some(Value::String(c)) => c.clone(),
                Some(other) => return Err(format!("{at}.content: not a string ({})", kind(other))),
            };
            Ok(Message { role, content })
        })
        .collect()
}

fn ends_with_assistant(messages: &[Message], field: &str) -> std::result::Result<(), String> {
    match messages.last() {
        Some(m) if m.role == Role::Assistant => Ok(()),
        Some(m) => Err(format!(
            "{field}: the last message is from the {}, not the assistant; an SFT example ends with the reply to learn",
            m.role.as_str()
        )),
        None => Err(format!("{field}: empty")),
    }
}

// ---------------------------------------------------------------------------
// Tokenization for SFT

/// Token ids with a loss mask.
///
/// Convention: `loss_mask[i]` says whether token `i` is a *target*, i.e. the
/// loss includes predicting `ids[i]` from the logits at position `i - 1`.
/// `loss_mask[0]` is always false (nothing predicts the first token). A
/// trainer computing the loss on `logits[..n-1]` against `ids[1..]` uses
/// `loss_mask[1..]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokenized {
    pub ids: Vec<u32>,
    pub loss_mask: Vec<bool>,
    /// The example was longer than `max_len` tokens and was cut.
    pub truncated: bool,
}

impl Tokenized {
    /// How many tokens are targets.
    pub fn num_targets(&self) -> usize {
        self.loss_mask.iter().filter(|&&t| t).count()
    }

    fn push(&mut self, ids: impl IntoIterator<Item = u32>, target: bool) {
        for id in ids {
            self.ids.push(id);
            self.loss_mask.push(target);
        }
    }
}

/// Tokenizes an SFT example in `format`: the prompt (and every non-assistant
/// turn) is context, masked out; each assistant turn's reply and its
/// end-of-turn (`<|im_end|>`, `<｜end▁of▁sentence｜>`, or the eos token for
/// `raw` / `r1-zero`) are targets. Whitespace a template writes after the
/// end-of-turn is context. The result is cut to its first `max_len` tokens
/// (and marked `truncated`); no more text is tokenized than those need
/// ([`TextTokenizer::encode_raw_prefix`]).
///
/// Turn boundaries are found by rendering the conversation progressively (up
/// to each assistant turn with the generation prompt, then through it), and
/// each piece is encoded on its own: the prompt is tokenized exactly as it is
/// at generation time. A chat template that renders earlier turns differently
/// once later ones exist (one that strips old reasoning) cannot be split this
/// way and gives an error; use a built-in format for it.
pub fn tokenize_sft(record: &SftRecord, tokenizer: &TextTokenizer, format: &PromptFormat, max_len: usize) -> Result<Tokenized> {
    if max_len == 0 {
        return Err(Error::Usage("max_len must be at least 1".into()));
    }
    let messages = record.messages();
    ends_with_assistant(&messages, "messages").map_err(Error::Usage)?;
    let eos = if format.ends_turn_with_eos() {
        Some(tokenizer.eos_id().ok_or_else(|| {
            Error::Config(format!("prompt format {:?} ends a reply with the eos token, and the tokenizer has none", format.name()))
        })?)
    } else {
        None
    };
    let not_progressive = |k: usize| {
        Error::Config(format!(
            "prompt format {:?}: rendering the conversation through message {k} does not extend the rendering before it, \
             so the assistant turns cannot be located (the template rewrites earlier turns); use a built-in format",
            format.name()
        ))
    };

    let mut out = Tokenized::default();
    let mut done = String::new(); // the rendered text tokenized so far
    for (k, message) in messages.iter().enumerate() {
        if message.role != Role::Assistant {
            continue;
        }
        let prompt = format.render(&messages[..k], true)?;
        let full = format.render(&messages[..=k], false)?;
        let context = prompt.strip_prefix(done.as_str()).ok_or_else(|| not_progressive(k))?;
        let reply = full.strip_prefix(prompt.as_str()).ok_or_else(|| not_progressive(k))?;
        let (target, after) = if eos.is_some() { (reply, "") } else { reply.split_at(reply.trim_end().len()) };

        // Each piece tokenized only as far as the room left (plus one, to
        // tell a cut example from one that fits exactly).
        let room = |out: &Tokenized| (max_len + 1).saturating_sub(out.ids.len());
        let context_ids =
            if out.ids.is_empty() { tokenizer.encode_prompt_prefix(context, room(&out))? } else { tokenizer.encode_raw_prefix(context, room(&out))? };
        out.push(context_ids, false);
        out.push(tokenizer.encode_raw_prefix(target, room(&out))?, true);
        out.push(eos, true);
        out.push(tokenizer.encode_raw_prefix(after, room(&out))?, false);
        done = full;
        if out.ids.len() > max_len {
            break;
        }
    }
    out.truncated = out.ids.len() > max_len;
    out.ids.truncate(max_len);
    out.loss_mask.truncate(max_len);
    if let Some(first) = out.loss_mask.first_mut() {
        *first = false;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Pre-training text

/// Reads a pre-training corpus: a `.jsonl` file with a `"text"` field on each
/// line, or plain text whose documents are separated by blank lines.
pub fn read_corpus(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    if path.extension().is_some_and(|e| e == "jsonl") {
        return read_jsonl(path, |obj| match obj.get("text") {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("text: not a string ({})", kind(other))),
            None => Err("missing field \"text\"".into()),
        });
    }
    let text = std::fs::read_to_string(path).map_err(at(path))?;
    let mut documents = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if !current.is_empty() {
                documents.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    Ok(documents)
}

/// Packs documents for next-token pre-training into rows of at most
/// `seq_len + 1` tokens, each document followed by `eos`. A row is a model
/// input (`row[..len - 1]`) and its targets (`row[1..]`) at once.
///
/// Documents are kept whole: consecutive documents share a row while they
/// fit, and one that would cross the row's end starts the next row. Cutting
/// the concatenated stream at fixed offsets instead (the usual packing for
/// long web text) would split most short documents, a worked solution from
/// its question, and teach answers to questions the model never saw (Ding
/// et al. 2024, "Fewer Truncations Improve Language Modeling"). Only a
/// document longer than a row is cut, into rows that overlap by one token so
/// that each of its tokens but the first is a target once. Rows are shorter
/// than `seq_len + 1` where the next document did not fit (batches pad
/// them); `seq_len == 0` gives no rows.
pub fn pack(documents: &[Vec<u32>], eos: u32, seq_len: usize) -> Vec<Vec<u32>> {
    let mut rows = Vec::new();
    if seq_len == 0 {
        return rows;
    }
    let width = seq_len + 1;
    let mut row: Vec<u32> = Vec::with_capacity(width);
    let flush = |row: &mut Vec<u32>, rows: &mut Vec<Vec<u32>>| {
        if row.len() >= 2 {
            rows.push(std::mem::replace(row, Vec::with_capacity(width)));
        } else {
            row.clear();
        }
    };
    for doc in documents {
        let len = doc.len() + 1;
        if row.len() + len > width {
            flush(&mut row, &mut rows);
        }
        if len <= width {
            row.extend_from_slice(doc);
            row.push(eos);
            continue;
        }
        let mut stream = doc.clone();
        stream.push(eos);
        let mut at = 0;
        while stream.len() - at > 1 {
            let end = (at + width).min(stream.len());
            rows.push(stream[at..end].to_vec());
            at = end - 1;
        }
    }
    flush(&mut row, &mut rows);
    rows
}

// ---------------------------------------------------------------------------
// Batch order

/// Where a [`Batcher`] is: enough to continue a run with exactly the batches
/// it would have had. Saved with a checkpoint.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct DataPosition {
    /// Full passes over the rows completed.
    pub epoch: u64,
    /// Rows of this epoch's order already handed out.
    pub index_in_epoch: usize,
    pub seed: u64,
}

/// Hands out batches of row indices, epoch after epoch, each epoch in its own
/// shuffled order. The order of epoch `e` is a pure function of `(seed, e)`,
/// so [`DataPosition`] alone restores the stream. A batch that reaches the end
/// of an epoch continues into the next, so every batch is full and every row
/// is seen once per epoch.
#[derive(Clone, Debug)]
pub struct Batcher {
    n_rows: usize,
    batch_size: usize,
    position: DataPosition,
    /// The current epoch's order.
    order: Vec<usize>,
    /// Row lengths, when batches are grouped by length.
    lengths: Option<Vec<usize>>,
}

/// Batches per group when batching by length: each epoch's shuffled order is
/// cut into groups of this many batches, each sorted longest first, so a
/// batch holds rows of about one length while the groups stay random
/// (transformers' `group_by_length` uses the same 50).
pub const LENGTH_GROUP_BATCHES: usize = 50;

impl Batcher {
    pub fn new(n_rows: usize, batch_size: usize, seed: u64) -> Result<Batcher> {
        if n_rows == 0 {
            return Err(Error::Usage("no rows to batch: the dataset is empty".into()));
        }
        if batch_size == 0 {
            return Err(Error::Usage("batch_size must be at least 1".into()));
        }
        let position = DataPosition { epoch: 0, index_in_epoch: 0, seed };
        Ok(Batcher { n_rows, batch_size, order: epoch_order(n_rows, seed, 0), position, lengths: None })
    }

    /// A batcher whose batches hold rows of similar length (`lengths[i]` is
    /// row `i`'s), so a right-padded micro-batch pads little: the order
    /// is still a fresh shuffle each epoch, cut into groups of
    /// [`LENGTH_GROUP_BATCHES`] batches sorted longest first.
    pub fn by_length(lengths: Vec<usize>, batch_size: usize, seed: u64) -> Result<Batcher> {
        let mut b = Batcher::new(lengths.len(), batch_size, seed)?;
        b.lengths = Some(lengths);
        b.order = b.order_of(0);
        Ok(b)
    }

    /// Epoch `epoch`'s order.
    fn order_of(&self, epoch: u64) -> Vec<usize> {
        let mut order = epoch_order(self.n_rows, self.position.seed, epoch);
        if let Some(lengths) = &self.lengths {
            for group in order.chunks_mut(self.batch_size * LENGTH_GROUP_BATCHES) {
                group.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
            }
        }
        order
    }

    /// The next `batch_size` row indices.
    pub fn next_batch(&mut self) -> Vec<usize> {
        let mut batch = Vec::with_capacity(self.batch_size);
        while batch.len() < self.batch_size {
            if self.position.index_in_epoch == self.n_rows {
                self.position.epoch += 1;
                self.position.index_in_epoch = 0;
                self.order = self.order_of(self.position.epoch);
            }
            let take = (self.batch_size - batch.len()).min(self.n_rows - self.position.index_in_epoch);
            let start = self.position.index_in_epoch;
            batch.extend_from_slice(&self.order[start..start + take]);
            self.position.index_in_epoch += take;
        }
        batch
    }

    pub fn position(&self) -> DataPosition {
        self.position.clone()
    }

    /// Continues from `position` (seed included), as saved by [`Self::position`].
    pub fn restore(&mut self, position: DataPosition) -> Result<()> {
        if position.index_in_epoch > self.n_rows {
            return Err(Error::Usage(format!(
                "saved data position {} is past the end of an epoch of {} rows: the dataset changed since the checkpoint",
                position.index_in_epoch, self.n_rows
            )));
        }
        self.position = position;
        self.order = self.order_of(self.position.epoch);
        Ok(())
    }
}

/// The permutation of `0..n` for epoch `epoch`: Fisher–Yates driven by a PCG
/// stream seeded from `(seed, epoch)`.
fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = Rng::new(splitmix64(seed ^ splitmix64(epoch)));
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = below(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// Uniform in `0..bound` (bound > 0), without modulo bias (PCG's
/// `pcg32_boundedrand`, widened to 64 bits).
fn below(rng: &mut Rng, bound: u64) -> u64 {
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let r = (u64::from(rng.next_u32()) << 32) | u64::from(rng.next_u32());
        if r >= threshold {
            return r % bound;
        }
    }
}

/// SplitMix64's finaliser (Steele et al. 2014): spreads nearby seeds apart.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QWEN2_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/qwen2-tokenizer");

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn line_error(err: Error) -> (usize, String) {
        match err {
            Error::Line { line, message, .. } => (line, message),
            other => panic!("expected a line error, got {other}"),
        }
    }

    fn small_tokenizer() -> TextTokenizer {
        let texts = ["User: Compute 2 + 3. Assistant: <think> 2 + 3 = 5. </think> <answer> 5 </answer>"; 4];
        TextTokenizer::train_bpe(texts, 300).unwrap()
    }

    #[test]
    fn built_in_formats_render_a_question_as_the_runtime_does() {
        for format in [PromptFormat::Raw, PromptFormat::R1Zero, PromptFormat::ChatMl, PromptFormat::R1Distill] {
            let mut want = String::new();
            format.template().unwrap().render("What is 2+2?", &mut want).unwrap();
            assert_eq!(format.render_question("What is 2+2?").unwrap(), want, "{}", format.name());
        }
    }

    #[test]
    fn formats_from_names() {
        let qwen = TextTokenizer::from_dir(QWEN2_DIR).unwrap();
        assert_eq!(PromptFormat::from_name("r1-zero", &qwen).unwrap(), PromptFormat::R1Zero);
        let PromptFormat::Chat(t) = PromptFormat::from_name("auto", &qwen).unwrap() else { panic!("auto should pick the chat template") };
        assert_eq!(t.eos_token.as_deref(), Some("<|im_end|>"));
        let err = PromptFormat::from_name("alpaca", &qwen).unwrap_err().to_string();
        assert!(err.contains("alpaca") && err.contains("r1-zero"), "{err}");

        let plain = TextTokenizer::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/hf/bpe-tokenizer/tokenizer.json"))
            .unwrap();
        assert_eq!(PromptFormat::from_name("auto", &plain).unwrap(), PromptFormat::R1Zero);
        assert!(PromptFormat::from_name("chat", &plain).unwrap_err().to_string().contains("no chat_template"));
    }

    #[test]
    fn jinja_chat_template_renders_like_transformers() {
        let qwen = TextTokenizer::from_dir(QWEN2_DIR).unwrap();
        let format = PromptFormat::from_name("chat", &qwen).unwrap();
        let text = format.render_prompt(&[Message::user("hi")]).unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        // Our ChatML template and the built-in ChatML agree.
        let chatml =
            PromptFormat::Chat(ChatTemplate { source: crate::tokenizer::CHATML_TEMPLATE.into(), bos_token: None, eos_token: None });
        let conv = [Message::system("s"), Message::user("q"), Message::assistant("a"), Message::user("q2")];
        assert_eq!(chatml.render_prompt(&conv).unwrap(), PromptFormat::ChatMl.render_prompt(&conv).unwrap());
        assert_eq!(chatml.render_conversation(&conv[..3]).unwrap(), PromptFormat::ChatMl.render_conversation(&conv[..3]).unwrap());
        // Python string methods, bos_token and raise_exception work.
        let t = ChatTemplate {
            source: "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system: ' + m.content) }}{% endif %}{{ m.content.strip().upper() }}{% endfor %}".into(),
            bos_token: Some("<s>".into()),
            eos_token: None,
        };
        assert_eq!(t.render(&[Message::user("  hey ")], true).unwrap(), "<s>HEY");
        let err = t.render(&[Message::system("x")], true).unwrap_err().to_string();
        assert!(err.contains("chat template") && err.contains("no system: x"), "{err}");
        let broken = ChatTemplate { source: "{% for %}".into(), bos_token: None, eos_token: None };
        assert!(matches!(broken.render(&[], true), Err(Error::Config(_))));
    }

    #[test]
    fn reads_sft_records_in_trl_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "sft.jsonl",
            concat!(
                "{\"prompt\": \"2+3?\", \"response\": \"5\"}\n",
                "\n",
                "{\"prompt\": \"4+4?\", \"completion\": \"8\"}\n",
                "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}\n",
                "{\"prompt\": [{\"role\": \"user\", \"content\": \"u\"}], \"completion\": [{\"role\": \"assistant\", \"content\": \"a\"}]}\n",
            ),
        );
        let records = read_sft_jsonl(&path).unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(records[0], SftRecord::PromptResponse { prompt: "2+3?".into(), response: "5".into() });
        assert_eq!(records[1], SftRecord::PromptResponse { prompt: "4+4?".into(), response: "8".into() });
        assert_eq!(records[2], SftRecord::Messages(vec![Message::system("s"), Message::user("u"), Message::assistant("a")]));
        assert_eq!(records[3], SftRecord::Messages(vec![Message::user("u"), Message::assistant("a")]));
    }

    #[test]
    fn malformed_sft_lines_name_line_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("{\"prompt\": \"x\"", "not JSON"),
            ("[1, 2]", "expected a JSON object"),
            ("{\"prompt\": \"x\"}", "\"prompt\" with \"completion\" (or \"response\")"),
            ("{\"response\": \"x\"}", "no example: expected \"messages\", or \"prompt\""),
            ("{\"prompt\": 3, \"response\": \"x\"}", "prompt: expected text or a list of messages"),
            ("{\"messages\": [{\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"a\"}, {\"role\": 7, \"content\": \"c\"}]}", "messages[2].role: not a string"),
            ("{\"messages\": [{\"role\": \"tool\", \"content\": \"u\"}]}", "messages[0].role: \"tool\" is not one of"),
            ("{\"messages\": [{\"role\": \"user\"}]}", "messages[0].content: missing"),
            ("{\"messages\": [{\"role\": \"user\", \"content\": \"u\"}]}", "last message is from the user"),
            ("{\"messages\": []}", "messages: empty"),
        ];
        for (text, want) in cases {
            let path = write(&dir, "bad.jsonl", &format!("{{\"prompt\": \"ok\", \"response\": \"ok\"}}\n\n{text}\n"));
            let (line, message) = line_error(read_sft_jsonl(&path).unwrap_err());
            assert_eq!(line, 3, "{text}");
            assert!(message.contains(want), "{text}: {message}");
        }
        assert!(matches!(read_sft_jsonl(dir.path().join("missing.jsonl")), Err(Error::File { .. })));
    }

    #[test]
    fn reads_prompts_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "p.jsonl",
            concat!(
                "{\"question\": \"Tom has 3 apples...\", \"answer\": \"He has 3 + 4 = 7.\\n#### 7\"}\n",
                "{\"prompt\": \"2+2?\", \"answer\": 4}\n",
                "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u\"}]}\n",
            ),
        );
        let records = read_prompts_jsonl(&path).unwrap();
        assert_eq!(records[0].question(), "Tom has 3 apples...");
        assert_eq!(final_answer(records[0].reference.answer.as_deref().unwrap()), "7");
        assert_eq!(records[1].reference.answer.as_deref(), Some("4"));
        assert_eq!(records[2].question(), "u");
        assert_eq!(records[2].reference.answer, None);

        let path = write(&dir, "bad.jsonl", "{\"prompt\": \"x\", \"answer\": [1]}\n");
        let (line, message) = line_error(read_prompts_jsonl(&path).unwrap_err());
        assert_eq!(line, 1);
        assert!(message.contains("column \"answer\": expected text or a number"), "{message}");
        let path = write(&dir, "bad.jsonl", "\n{\"answer\": \"1\"}\n");
        let (line, message) = line_error(read_prompts_jsonl(&path).unwrap_err());
        assert_eq!(line, 2);
        assert!(message.contains("no prompt: expected a column \"prompt\""), "{message}");
    }

    #[test]
    fn final_answer_takes_what_follows_the_marker() {
        assert_eq!(final_answer("so 3 * 4 = 12\n#### 12 "), "12");
        assert_eq!(final_answer(" 42 "), "42");
        assert_eq!(final_answer("#### a #### -5"), "-5");
    }

    #[test]
    fn sft_mask_covers_the_reply_and_its_end() {
        let tok = small_tokenizer();
        let record = SftRecord::PromptResponse {
            prompt: "Compute 2 + 3".into(),
            response: "<think> 2 + 3 = 5. </think> <answer> 5 </answer>".into(),
        };
        let t = tokenize_sft(&record, &tok, &PromptFormat::R1Zero, 4096).unwrap();
        let prompt_ids = tok.encode_prompt(&PromptFormat::R1Zero.render_question("Compute 2 + 3").unwrap()).unwrap();
        assert_eq!(&t.ids[..prompt_ids.len()], &prompt_ids[..]);
        assert!(t.loss_mask[..prompt_ids.len()].iter().all(|&m| !m));
        assert!(t.loss_mask[prompt_ids.len()..].iter().all(|&m| m));
        assert_eq!(t.ids.last(), tok.eos_id().as_ref());
        assert_eq!(tok.decode(&t.ids[prompt_ids.len()..], true).unwrap(), " <think> 2 + 3 = 5. </think> <answer> 5 </answer>");

        let short = tokenize_sft(&record, &tok, &PromptFormat::R1Zero, 10).unwrap();
        assert_eq!(short.ids, t.ids[..10]);
        assert_eq!(short.loss_mask.len(), 10);
    }

    #[test]
    fn sft_mask_covers_every_assistant_turn_of_a_chat() {
        let tok = small_tokenizer();
        let conv = SftRecord::Messages(vec![
            Message::system("Be brief."),
            Message::user("2 + 3"),
            Message::assistant("5"),
            Message::user("times 2"),
            Message::assistant("10"),
        ]);
        let t = tokenize_sft(&conv, &tok, &PromptFormat::ChatMl, 4096).unwrap();
        let text = tok.decode(&t.ids, false).unwrap();
        assert_eq!(text, PromptFormat::ChatMl.render_conversation(&conv.messages()).unwrap());
        // The targets, in order, are each reply and its <|im_end|>.
        let im_end = tok.token_id("<|im_end|>").unwrap();
        let targets: Vec<u32> = t.ids.iter().zip(&t.loss_mask).filter(|(_, &m)| m).map(|(&id, _)| id).collect();
        let mut want = tok.encode_raw("5").unwrap();
        want.push(im_end);
        want.extend(tok.encode_raw("10").unwrap());
        want.push(im_end);
        assert_eq!(targets, want);
        // The newline after the last <|im_end|> is context.
        assert_eq!(t.loss_mask.last(), Some(&false));

        // R1-distill: reasoning goes after the generation prompt's `<think>\n`.
        let r = SftRecord::PromptResponse { prompt: "q".into(), response: "<think>\nhmm\n</think>\n\n5".into() };
        let t = tokenize_sft(&r, &tok, &PromptFormat::R1Distill, 4096).unwrap();
        let targets: Vec<u32> = t.ids.iter().zip(&t.loss_mask).filter(|(_, &m)| m).map(|(&id, _)| id).collect();
        assert_eq!(tok.decode(&targets, false).unwrap(), "hmm\n</think>\n\n5<｜end▁of▁sentence｜>");
    }

    #[test]
    fn sft_errors() {
        let tok = small_tokenizer();
        let r = SftRecord::Messages(vec![Message::user("q")]);
        assert!(matches!(tokenize_sft(&r, &tok, &PromptFormat::ChatMl, 10), Err(Error::Usage(_))));
        let ok = SftRecord::PromptResponse { prompt: "q".into(), response: "a".into() };
        assert!(matches!(tokenize_sft(&ok, &tok, &PromptFormat::ChatMl, 0), Err(Error::Usage(_))));
        // A template that rewrites history (drops earlier replies) cannot be split.
        let rewriting = PromptFormat::Chat(ChatTemplate {
            source: "{% for m in messages %}{% if m.role != 'assistant' or loop.last %}{{ m.content }}|{% endif %}{% endfor %}".into(),
            bos_token: None,
            eos_token: None,
        });
        let conv = SftRecord::Messages(vec![Message::user("a"), Message::assistant("b"), Message::user("c"), Message::assistant("d")]);
        let err = tokenize_sft(&conv, &tok, &rewriting, 100).unwrap_err().to_string();
        assert!(err.contains("cannot be located"), "{err}");
    }

    #[test]
    fn reads_corpora() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "c.txt", "first doc\nline two\n\n\n  \nsecond doc\n\nthird");
        assert_eq!(read_corpus(&path).unwrap(), ["first doc\nline two", "second doc", "third"]);
        let path = write(&dir, "c.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \"b\"}\n");
        assert_eq!(read_corpus(&path).unwrap(), ["a", "b"]);
        let path = write(&dir, "c.jsonl", "{\"text\": \"a\"}\n{\"txt\": \"b\"}\n");
        let (line, message) = line_error(read_corpus(&path).unwrap_err());
        assert_eq!((line, message.as_str()), (2, "missing field \"text\""));
    }

    #[test]
    fn packs_whole_documents_and_cuts_only_those_longer_than_a_row() {
        let docs = vec![vec![1, 2, 3], vec![4, 5], vec![6, 7, 8, 9]];
        // Rows of at most 5 tokens (E = 0): 1 2 3 E fits, 4 5 E would not
        // (7 tokens), so it starts the next row, and 6 7 8 9 E fills a third.
        assert_eq!(pack(&docs, 0, 4), vec![vec![1, 2, 3, 0], vec![4, 5, 0], vec![6, 7, 8, 9, 0]]);
        // Two documents share a row when they fit together.
        assert_eq!(pack(&docs, 0, 6), vec![vec![1, 2, 3, 0, 4, 5, 0], vec![6, 7, 8, 9, 0]]);
        assert_eq!(pack(&docs, 0, 11), vec![vec![1, 2, 3, 0, 4, 5, 0, 6, 7, 8, 9, 0]]);
        assert_eq!(pack(&docs, 0, 100), vec![vec![1, 2, 3, 0, 4, 5, 0, 6, 7, 8, 9, 0]]);
        assert!(pack(&docs, 0, 0).is_empty());
        // Longer than a row: cut into rows overlapping by one, each token
        // but the first a target once; the next document starts afresh.
        let long = vec![vec![1, 2, 3, 4, 5, 6, 7], vec![8]];
        assert_eq!(pack(&long, 0, 3), vec![vec![1, 2, 3, 4], vec![4, 5, 6, 7], vec![7, 0], vec![8, 0]]);
        // No row of a single token (nothing to predict).
        assert_eq!(pack(&[vec![1, 2, 3]], 0, 3), vec![vec![1, 2, 3, 0]]);
    }

    #[test]
    fn batcher_resumes_with_the_same_batches() {
        let mut a = Batcher::new(10, 3, 42).unwrap();
        for _ in 0..7 {
            a.next_batch();
        }
        let saved = a.position();
        let json = serde_json::to_string(&saved).unwrap();
        let next: Vec<Vec<usize>> = (0..5).map(|_| a.next_batch()).collect();

        let mut b = Batcher::new(10, 3, 0).unwrap();
        b.restore(serde_json::from_str(&json).unwrap()).unwrap();
        let again: Vec<Vec<usize>> = (0..5).map(|_| b.next_batch()).collect();
        assert_eq!(next, again);
        assert_eq!(a.position(), b.position());
    }

    #[test]
    fn batcher_visits_every_row_once_per_epoch_in_a_fresh_order() {
        let mut b = Batcher::new(8, 4, 7).unwrap();
        let epoch0: Vec<usize> = [b.next_batch(), b.next_batch()].concat();
        let epoch1: Vec<usize> = [b.next_batch(), b.next_batch()].concat();
        for e in [&epoch0, &epoch1] {
            let mut sorted = e.clone();
            sorted.sort();
            assert_eq!(sorted, (0..8).collect::<Vec<_>>());
        }
        assert_ne!(epoch0, epoch1);
        assert_eq!(b.position(), DataPosition { epoch: 1, index_in_epoch: 8, seed: 7 });
        // A different seed, a different order; the same seed, the same order.
        assert_ne!(epoch_order(8, 8, 0), epoch_order(8, 7, 0));
        assert_eq!(epoch_order(8, 7, 3), epoch_order(8, 7, 3));
        // Batches larger than the data wrap into the next epoch.
        let mut tiny = Batcher::new(3, 5, 1).unwrap();
        assert_eq!(tiny.next_batch().len(), 5);
        assert!(Batcher::new(0, 1, 0).is_err());
        assert!(Batcher::new(1, 0, 0).is_err());
        let bad = DataPosition { epoch: 0, index_in_epoch: 99, seed: 0 };
        assert!(tiny.restore(bad).is_err());
    }

    #[test]
    fn batching_by_length_pads_less_sees_every_row_and_resumes() {
        // 400 rows of lengths 10..110 in a scrambled order, batches of 4.
        let lengths: Vec<usize> = (0..400).map(|i| 10 + (i * 37) % 100).collect();
        let padded = |b: &mut Batcher| -> (usize, Vec<usize>) {
            let mut waste = 0;
            let mut seen = Vec::new();
            for _ in 0..100 {
                let batch = b.next_batch();
                let longest = batch.iter().map(|&i| lengths[i]).max().unwrap();
                waste += batch.iter().map(|&i| longest - lengths[i]).sum::<usize>();
                seen.extend(batch);
            }
            seen.sort();
            (waste, seen)
        };
        let (plain, seen_plain) = padded(&mut Batcher::new(400, 4, 3).unwrap());
        let mut grouped = Batcher::by_length(lengths.clone(), 4, 3).unwrap();
        let (less, seen) = padded(&mut grouped);
        assert_eq!(seen, (0..400).collect::<Vec<_>>());
        assert_eq!(seen, seen_plain);
        assert!(less * 10 < plain, "padding {less} grouped vs {plain} plain");
        // The next epoch is another order, and a restored batcher continues it.
        let mut a = Batcher::by_length(lengths.clone(), 4, 3).unwrap();
        let first: Vec<usize> = (0..100).flat_map(|_| a.next_batch()).collect();
        let _ = a.next_batch();
        let saved = a.position();
        let next: Vec<Vec<usize>> = (0..20).map(|_| a.next_batch()).collect();
        let mut b = Batcher::by_length(lengths, 4, 0).unwrap();
        b.restore(saved).unwrap();
        assert_eq!(next, (0..20).map(|_| b.next_batch()).collect::<Vec<_>>());
        assert_ne!(first[..4], next[0][..]);
    }
}
