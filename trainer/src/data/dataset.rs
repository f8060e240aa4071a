//! Datasets as users download them: JSONL (or JSON) and Parquet files, or a
//! folder of shards as the Hugging Face hub exports them; the layouts of the
//! datasets R1 users train on recognised from their columns; other column
//! names mapped by [`Columns`]; rows a task cannot use refused with the file,
//! row and column named (or, with [`BadRows::Skip`], skipped and counted).
//!
//! Two entry points, for every command that reads data:
//! - [`read_prompts`] (and [`read_prompts_for_sampling`]): questions with
//!   what their answers are checked against, for `grpo`, `eval`, `score`
//!   (and, without references, `generate`, `sample`, `distill`);
//! - [`read_examples`]: supervised examples (prompt and reply, or a
//!   conversation), streamed one at a time to the caller, for `sft` and
//!   distillation on a teacher's traces.
//!
//! Layouts recognised without flags (a column named by a flag wins):
//!
//! | dataset | columns | prompt | reference |
//! | --- | --- | --- | --- |
//! | TRL | `prompt` (text or messages) | it | `answer` |
//! | GSM8K | `question`, `answer` (`… #### 42`) | question | the number after `####` |
//! | MATH, MATH-500 | `problem`, `solution` (`\boxed{…}`), MATH-500 also `answer` | problem | `answer`, else the last `\boxed{}` of `solution` |
//! | NuminaMath, OpenR1-Math | `problem`, `solution`, `answer`, `messages` | problem | `answer` (`proof`, `notfound`: none) |
//! | TinyZero Countdown | `nums`, `target` | written from them | the numbers and the target |
//! | MBPP (full, sanitized) | `text` or `prompt`, `code`, `test_list`, `test_setup_code` / `test_imports` | the text and its tests | the asserts |
//! | HumanEval | `prompt`, `canonical_solution`, `test`, `entry_point` | "complete this function" + the stub | `check(entry_point)` |
//! | conversations (Mixture-of-Thoughts) | `messages` | the turns before the last reply | — |
//!
//! For supervised examples: `messages`; TRL's `prompt` + `completion` (or
//! `response`); else the prompt above with the dataset's worked solution
//! (`solution`, GSM8K's `answer`, MBPP's `code`, HumanEval's
//! `canonical_solution`).
//!
//! Files are read a row at a time (JSONL a line at a time, Parquet a page at
//! a time through the `parquet` crate's record reader), so a file's size
//! costs no memory beyond the rows a command keeps.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    ends_with_assistant, kind, parse_messages, text_or_messages, CodeTest, Message, PromptRecord, PythonTests, Reference, Role, SftRecord,
};
use crate::error::{at, Error, Result};

/// Which column holds what. `None`: recognised from the row (TRL's names
/// first, then the layouts in the module documentation). A column named
/// here must be present in every row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Columns {
    /// The question: text, or a list of `{role, content}` messages.
    pub prompt: Option<String>,
    /// The reference answer.
    pub answer: Option<String>,
    /// A conversation (`[{role, content}, …]`).
    pub messages: Option<String>,
    /// The reply to learn (SFT).
    pub completion: Option<String>,
    /// Unit tests: Python asserts (a list of strings) or the list language's
    /// `{input, expected}` pairs.
    pub tests: Option<String>,
    /// The row's id (`aha score` matches completions by it).
    pub id: Option<String>,
}

/// What to do with a row the command cannot use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRows {
    /// Stop with an error naming the file, row and column.
    #[default]
    Refuse,
    /// Leave it out, and count it in [`ReadStats`].
    Skip,
}

/// How to read a dataset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataOptions {
    pub columns: Columns,
    /// In a folder holding several splits (`train-*.parquet`,
    /// `test-*.parquet`, or `train/`, `test/`), the one to read.
    pub split: Option<String>,
    pub bad_rows: BadRows,
}

/// What reading a dataset found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// Rows seen (blank JSONL lines are not rows).
    pub rows: usize,
    /// Rows left out ([`BadRows::Skip`]).
    pub skipped: usize,
    /// The first few left-out rows' errors (file, row, what is wrong).
    pub skipped_examples: Vec<String>,
    /// Rows by recognised layout (`gsm8k`, `math`, `mbpp`, …).
    pub layouts: BTreeMap<String, usize>,
}

/// How many skipped rows' errors [`ReadStats`] keeps.
const SKIPPED_KEPT: usize = 3;

impl ReadStats {
    /// One line for a person: rows, files, layouts, and what was skipped.
    pub fn summary(&self) -> String {
        let layouts: Vec<String> = self.layouts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let files = match self.files.as_slice() {
            [one] => one.display().to_string(),
            many => format!("{} files", many.len()),
        };
        let mut line = format!("{} rows from {files} ({})", self.rows - self.skipped, layouts.join(", "));
        if self.skipped > 0 {
            line.push_str(&format!("; skipped {} bad rows, the first: {}", self.skipped, self.skipped_examples.join("; ")));
        }
        line
    }

    fn skip(&mut self, error: Error) {
        self.skipped += 1;
        if self.skipped_examples.len() < SKIPPED_KEPT {
            self.skipped_examples.push(error.to_string());
        }
    }
}

/// Prompts read from a dataset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptSet {
    pub records: Vec<PromptRecord>,
    pub stats: ReadStats,
}

/// Prompts with what their answers are checked against (an answer, unit
/// tests or Countdown numbers): a row with none of these is a bad row.
pub fn read_prompts(path: &Path, options: &DataOptions) -> Result<PromptSet> {
    read_prompt_rows(path, options, true)
}

/// Prompts whose references are optional (sampling, distillation).
pub fn read_prompts_for_sampling(path: &Path, options: &DataOptions) -> Result<PromptSet> {
    read_prompt_rows(path, options, false)
}

fn read_prompt_rows(path: &Path, options: &DataOptions, need_reference: bool) -> Result<PromptSet> {
    let mut records = Vec::new();
    let stats = read_rows(path, options, |obj| {
        let (record, layout) = prompt_row(obj, &options.columns, need_reference)?;
        records.push(record);
        Ok(layout)
    })?;
    if records.is_empty() {
        return Err(empty(path, &stats, "prompts"));
    }
    Ok(PromptSet { records, stats })
}

/// Supervised examples, handed to `each` one at a time as they are read
/// (nothing of the file is kept here). An error from `each` stops the read.
/// An error from `each` (the example cannot be tokenized) stops the read,
/// with the row named.
pub fn read_examples(path: &Path, options: &DataOptions, mut each: impl FnMut(SftRecord) -> Result<()>) -> Result<ReadStats> {
    let mut handed = 0usize;
    let stats = read_rows(path, options, |obj| {
        let (record, layout) = sft_row(obj, &options.columns)?;
        each(record).map_err(|e| RowError::Fatal(e.to_string()))?;
        handed += 1;
        Ok(layout)
    })?;
    if handed == 0 {
        return Err(empty(path, &stats, "examples"));
    }
    Ok(stats)
}

fn empty(path: &Path, stats: &ReadStats, what: &str) -> Error {
    let mut message = format!("no {what}");
    if stats.rows == 0 {
        message.push_str(": the dataset has no rows");
    } else if stats.skipped > 0 {
        message.push_str(&format!(": all {} rows were bad, the first: {}", stats.rows, stats.skipped_examples.join("; ")));
    }
    Error::file(path, message)
}

// ---------------------------------------------------------------------------
// Files and rows

/// Why a row was not used.
enum RowError {
    /// The row is bad: a message naming the column.
    Bad(String),
    /// The row could not be used for a reason that skipping would hide
    /// (its consumer failed): always an error.
    Fatal(String),
}

impl From<String> for RowError {
    fn from(message: String) -> Self {
        RowError::Bad(message)
    }
}

impl From<&str> for RowError {
    fn from(message: &str) -> Self {
        RowError::Bad(message.to_string())
    }
}

/// Where a row is: a JSONL line or a Parquet row (both 1-based).
struct RowAt<'a> {
    path: &'a Path,
    index: usize,
    line: bool,
}

impl RowAt<'_> {
    fn error(&self, message: String) -> Error {
        if self.line {
            Error::Line { path: self.path.to_path_buf(), line: self.index, message }
        } else {
            Error::Row { path: self.path.to_path_buf(), row: self.index, message }
        }
    }
}

/// Every row of the dataset at `path`, in order, through `use_row`, which
/// returns the row's layout; bad rows are refused or skipped per `options`.
fn read_rows(
    path: &Path,
    options: &DataOptions,
    mut use_row: impl FnMut(&Map<String, Value>) -> std::result::Result<&'static str, RowError>,
) -> Result<ReadStats> {
    let files = data_files(path, options.split.as_deref())?;
    let mut stats = ReadStats { files: files.clone(), ..ReadStats::default() };
    for file in &files {
        for_each_row(file, |at, row| {
            stats.rows += 1;
            let result = match row {
                Ok(obj) => use_row(&obj),
                Err(message) => Err(RowError::Bad(message)),
            };
            match result {
                Ok(layout) => {
                    *stats.layouts.entry(layout.to_string()).or_default() += 1;
                    Ok(true)
                }
                Err(RowError::Fatal(message)) => Err(at.error(message)),
                Err(RowError::Bad(message)) => {
                    let error = at.error(message);
                    match options.bad_rows {
                        BadRows::Refuse => Err(error),
                        BadRows::Skip => {
                            stats.skip(error);
                            Ok(true)
                        }
                    }
                }
            }
        })?;
    }
    Ok(stats)
}

/// The kinds of file read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileKind {
    JsonLines,
    Parquet,
}

/// `PAR1`, the first and last four bytes of every Parquet file.
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

fn file_kind(path: &Path) -> Result<FileKind> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => return Ok(FileKind::Parquet),
        Some("jsonl" | "json" | "ndjson") => return Ok(FileKind::JsonLines),
        _ => {}
    }
    let mut head = [0u8; 4];
    let n = File::open(path).and_then(|mut f| f.read(&mut head)).map_err(at(path))?;
    Ok(if n == 4 && &head == PARQUET_MAGIC { FileKind::Parquet } else { FileKind::JsonLines })
}

/// Calls `f` with each row of one file, as a JSON object or the reason it
/// is not one; `f` returns whether to go on.
fn for_each_row(path: &Path, mut f: impl FnMut(&RowAt, std::result::Result<Map<String, Value>, String>) -> Result<bool>) -> Result<()> {
    match file_kind(path)? {
        FileKind::JsonLines => {
            let file = File::open(path).map_err(at(path))?;
            let mut reader = BufReader::new(file);
            // A `.json` file may also be one JSON array of objects.
            if reader.fill_buf().map_err(at(path))?.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
                let rows: Vec<Value> =
                    serde_json::from_reader(reader).map_err(|e| Error::file(path, format!("not a JSON array of objects: {e}")))?;
                for (i, row) in rows.into_iter().enumerate() {
                    let at = RowAt { path, index: i + 1, line: false };
                    if !f(&at, into_object(row))? {
                        break;
                    }
                }
                return Ok(());
            }
            let mut line = String::new();
            let mut number = 0;
            loop {
                line.clear();
                number += 1;
                let at = RowAt { path, index: number, line: true };
                match reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Err(at.error(format!("cannot read: {e}"))),
                }
                if line.trim().is_empty() {
                    continue;
                }
                let row = serde_json::from_str::<Value>(&line).map_err(|e| format!("not JSON: {e}")).and_then(into_object);
                if !f(&at, row)? {
                    break;
                }
            }
        }
        FileKind::Parquet => {
            for (i, row) in super::parquet::rows(path)?.enumerate() {
                let at = RowAt { path, index: i + 1, line: false };
                // A codec or page error is the file's, not the row's: stop.
                let row = row.map_err(|e| at.error(e))?;
                if !f(&at, into_object(row))? {
                    break;
                }
            }
        }
    }
    Ok(())
}

fn into_object(value: Value) -> std::result::Result<Map<String, Value>, String> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(format!("expected a JSON object, found {}", kind(&other))),
    }
}

/// Split names recognised in shard names and folders.
const SPLITS: &[&str] = &["train", "test", "validation", "valid", "dev", "eval", "evaluation"];

/// The data files at `path`: the file itself, or every `.parquet`,
/// `.jsonl` (and, if there are none of those, `.json`) file below the
/// folder, sorted by path, hidden folders left out; of `split` only, or
/// refused when the folder holds several splits and none is chosen.
pub fn data_files(path: &Path, split: Option<&str>) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(at(path))?;
    if !meta.is_dir() {
        if let Some(s) = split {
            if split_of(path, path.parent().unwrap_or(path)).as_deref().is_some_and(|found| found != s) {
                return Err(Error::file(path, format!("is not of the split `{s}` asked for")));
            }
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = Vec::new();
    collect(path, &mut found).map_err(at(path))?;
    let data: Vec<PathBuf> =
        found.iter().filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("parquet" | "jsonl" | "ndjson"))).cloned().collect();
    let mut files = if data.is_empty() { found.into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")).collect() } else { data };
    files.sort();
    if files.is_empty() {
        return Err(Error::file(path, "the folder has no .parquet, .jsonl or .json files"));
    }
    let splits: BTreeMap<String, usize> = files.iter().filter_map(|f| split_of(f, path)).fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s).or_default() += 1;
        m
    });
    match split {
        Some(s) => {
            files.retain(|f| split_of(f, path).as_deref() == Some(s));
            if files.is_empty() {
                let have: Vec<&str> = splits.keys().map(String::as_str).collect();
                return Err(Error::file(
                    path,
                    format!("no files of split `{s}` (splits found: {})", if have.is_empty() { "none".into() } else { have.join(", ") }),
                ));
            }
        }
        None if splits.len() > 1 => {
            let have: Vec<String> = splits.iter().map(|(s, n)| format!("{s} ({n} files)")).collect();
            return Err(Error::file(path, format!("the folder holds several splits: {}; choose one with --split", have.join(", "))));
        }
        None => {}
    }
    Ok(files)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The split a file belongs to: the first word of its name
/// (`train-00000-of-00002.parquet`, `test.jsonl`) or a folder between it and
/// `root` named like a split.
fn split_of(file: &Path, root: &Path) -> Option<String> {
    let stem = file.file_name()?.to_str()?;
    let first = stem.split(['-', '_', '.']).next().unwrap_or("");
    if SPLITS.contains(&first) {
        return Some(first.to_string());
    }
    let rel = file.strip_prefix(root).ok()?;
    rel.parent()?.components().filter_map(|c| c.as_os_str().to_str()).find(|c| SPLITS.contains(c)).map(str::to_string)
}

// ---------------------------------------------------------------------------
// Rows as prompts

/// The column `wanted` if named, else the first of `defaults` present (and
/// not null): its name and value.
fn pick<'a>(
    obj: &'a Map<String, Value>,
    wanted: Option<&'a str>,
    defaults: &[&'a str],
) -> std::result::Result<Option<(&'a str, &'a Value)>, String> {
    match wanted {
        Some(name) => match obj.get(name) {
            None => Err(format!("column \"{name}\": missing (columns here: {})", column_names(obj))),
            Some(Value::Null) => Err(format!("column \"{name}\": null")),
            Some(v) => Ok(Some((name, v))),
        },
        None => Ok(defaults.iter().find_map(|&k| obj.get_key_value(k).filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.as_str(), v)))),
    }
}

fn column_names(obj: &Map<String, Value>) -> String {
    let names: Vec<&str> = obj.keys().map(String::as_str).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn text<'a>(v: &'a Value, column: &str) -> std::result::Result<&'a str, String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(format!("column \"{column}\": expected text, found {}", kind(other))),
    }
}

fn strings(v: &Value, column: &str) -> std::result::Result<Vec<String>, String> {
    match v {
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.as_str().map(str::to_string).ok_or_else(|| format!("column \"{column}\"[{i}]: expected text, found {}", kind(t)))
            })
            .collect(),
        other => Err(format!("column \"{column}\": expected a list of text, found {}", kind(other))),
    }
}

/// What HumanEval's stub becomes as a question.
fn humaneval_question(stub: &str) -> String {
    format!(
        "Complete the following Python function. Give the whole function in a ```python code block.\n\n```python\n{}\n```",
        stub.trim_end()
    )
}

/// MBPP's description with its tests, as the benchmark's own prompt shows
/// them (the tests name the function to write).
fn mbpp_question(description: &str, tests: &[String]) -> String {
    format!("{}\nYour code should pass these tests:\n\n{}", description.trim(), tests.join("\n"))
}

/// Answers NuminaMath writes where a problem has no checkable answer.
const NO_ANSWER_MARKS: &[&str] = &["proof", "notfound"];

/// A row as a prompt and its reference, and the layout it was read as.
fn prompt_row(
    obj: &Map<String, Value>,
    cols: &Columns,
    need_reference: bool,
) -> std::result::Result<(PromptRecord, &'static str), RowError> {
    let mut reference = Reference::default();
    let mut layout = "prompt";
    let mut question: Option<Vec<Message>> = None;

    // Code: HumanEval, MBPP, or tests in a `tests` column.
    let tests_column = cols.tests.as_deref();
    if tests_column.is_none() && obj.contains_key("entry_point") && obj.contains_key("test") {
        let entry = text(&obj["entry_point"], "entry_point")?.trim().to_string();
        let test = text(&obj["test"], "test")?;
        let (_, stub) = pick(obj, cols.prompt.as_deref(), &["prompt"])?.ok_or("column \"prompt\": missing (HumanEval's function stub)")?;
        let stub = text(stub, "prompt")?;
        if entry.is_empty() {
            return Err("column \"entry_point\": empty".into());
        }
        reference.python = Some(PythonTests {
            setup: String::new(),
            tests: vec![format!("{test}\n\ncheck({entry})\n")],
            entry_point: Some(entry),
            stub: Some(stub.to_string()),
        });
        question = Some(vec![Message::user(humaneval_question(stub))]);
        layout = "humaneval";
    } else if tests_column.is_none() && obj.get("test_list").is_some_and(|v| !v.is_null()) {
        let tests = strings(&obj["test_list"], "test_list")?;
        let mut setup = match obj.get("test_setup_code") {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        if let Some(imports) = obj.get("test_imports").filter(|v| !v.is_null()) {
            setup = format!("{}\n{setup}", strings(imports, "test_imports")?.join("\n"));
        }
        let (column, description) =
            pick(obj, cols.prompt.as_deref(), &["text", "prompt"])?.ok_or("column \"text\": missing (MBPP's task description)")?;
        question = Some(vec![Message::user(mbpp_question(text(description, column)?, &tests))]);
        reference.python = Some(PythonTests { setup: setup.trim().to_string(), tests, entry_point: None, stub: None });
        layout = "mbpp";
    } else if let Some((column, tests)) = pick(obj, tests_column, &["tests"])? {
        match tests {
            Value::Array(list) if list.iter().all(Value::is_string) => {
                reference.python = Some(PythonTests { tests: strings(tests, column)?, ..PythonTests::default() });
                layout = "python tests";
            }
            Value::Array(list) => {
                reference.tests = list_tests(list, column)?;
                layout = "list-language tests";
            }
            other => {
                return Err(format!(
                    "column \"{column}\": expected a list of Python asserts or of {{\"input\", \"expected\"}}, found {}",
                    kind(other)
                )
                .into())
            }
        }
    }

    // Countdown: the numbers and the target.
    if let Some((column, nums)) = pick(obj, None, &["nums", "numbers"])? {
        reference.numbers = match nums {
            Value::Array(list) => list
                .iter()
                .enumerate()
                .map(|(i, n)| n.as_i64().ok_or_else(|| format!("column \"{column}\"[{i}]: expected an integer, found {}", kind(n))))
                .collect::<std::result::Result<_, String>>()?,
            other => return Err(format!("column \"{column}\": expected a list of integers, found {}", kind(other)).into()),
        };
        layout = "countdown";
    }

    // The question.
    if question.is_none() {
        let explicit = cols.prompt.as_deref().or(cols.messages.as_deref());
        let found = pick(obj, explicit, &["prompt", "problem", "question", "messages"])?;
        question = match found {
            Some((column, v)) => {
                if layout == "prompt" {
                    layout = match column {
                        "question" => "gsm8k",
                        "problem" => "math",
                        "messages" => "conversation",
                        _ => "prompt",
                    };
                }
                let mut messages = text_or_messages(v, column, Role::User)?;
                // A conversation ending with the reply (OpenR1, Mixture-of-
                // Thoughts) is prompted with the turns before that reply.
                while messages.last().is_some_and(|m| m.role == Role::Assistant) {
                    messages.pop();
                }
                if messages.iter().all(|m| m.content.trim().is_empty()) {
                    return Err(format!("column \"{column}\": empty prompt").into());
                }
                Some(messages)
            }
            None if !reference.numbers.is_empty() => None,
            None => {
                return Err(format!(
                    "no prompt: expected a column \"prompt\", \"problem\", \"question\" or \"messages\" (columns here: {}); name it with --prompt-column",
                    column_names(obj)
                )
                .into())
            }
        };
    }

    // The answer.
    let answer_column = cols.answer.as_deref();
    let answer_defaults: &[&str] = if layout == "countdown" { &["target", "answer"] } else { &["answer"] };
    match pick(obj, answer_column, answer_defaults)? {
        Some((column, v)) => {
            let answer = match v {
                Value::String(s) => s.trim().to_string(),
                Value::Number(n) => n.to_string(),
                other => return Err(format!("column \"{column}\": expected text or a number, found {}", kind(other)).into()),
            };
            if answer.is_empty() {
                return Err(format!("column \"{column}\": empty answer").into());
            }
            if NO_ANSWER_MARKS.contains(&answer.as_str()) {
                if need_reference && reference.python.is_none() && reference.tests.is_empty() {
                    return Err(
                        format!("column \"{column}\": {answer:?}, NuminaMath's mark for a problem without a checkable answer").into()
                    );
                }
            } else {
                reference.answer = Some(answer);
            }
        }
        None if cols.answer.is_none() => {
            // MATH: the reference is the solution's last \boxed{}.
            if let Some(Value::String(solution)) = obj.get("solution") {
                match crate::rewards::answer::last_boxed(solution) {
                    Some(boxed) if !boxed.trim().is_empty() => reference.answer = Some(boxed.trim().to_string()),
                    _ if need_reference && reference.python.is_none() && reference.tests.is_empty() && reference.numbers.is_empty() => {
                        return Err("column \"solution\": no \\boxed{} answer in it (and no column \"answer\")".into())
                    }
                    _ => {}
                }
            }
        }
        None => {}
    }
    if layout == "countdown" {
        let target = reference.answer.as_deref().ok_or("column \"target\": missing (Countdown's target)")?;
        let target: i64 = target.parse().map_err(|_| format!("column \"target\": {target:?} is not an integer"))?;
        if question.is_none() {
            question = Some(vec![Message::user(crate::tasks::countdown::question(&reference.numbers, target))]);
        }
    }
    // R1's "all scenarios" mix: a general row has nothing to verify.
    reference.general = match obj.get("kind") {
        None | Some(Value::Null) => false,
        Some(Value::String(k)) if k == "reasoning" => false,
        Some(Value::String(k)) if k == "general" => true,
        Some(other) => return Err(format!("column \"kind\": expected \"reasoning\" or \"general\", found {other}").into()),
    };
    if need_reference && !reference.general && reference.answer.is_none() && reference.python.is_none() && reference.tests.is_empty() {
        let why = match obj.get(cols.answer.as_deref().unwrap_or("answer")) {
            Some(Value::Null) => "null",
            _ => "missing",
        };
        return Err(format!(
            "column \"{}\": {why}; a row needs an answer (or tests) to be scored (columns here: {}; name another with --answer-column)",
            cols.answer.as_deref().unwrap_or("answer"),
            column_names(obj)
        )
        .into());
    }
    let id = pick(obj, cols.id.as_deref(), &["id", "task_id", "unique_id", "uuid", "problem_id"])?.map(|(_, v)| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let messages = question.unwrap_or_default();
    Ok((PromptRecord { messages, reference, id }, layout))
}

fn list_tests(list: &[Value], column: &str) -> std::result::Result<Vec<CodeTest>, String> {
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let field = |name: &str| match t.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) if !other.is_null() && !other.is_object() => Ok(other.to_string()),
                Some(other) => Err(format!("{column}[{i}].{name}: expected a value literal, found {}", kind(other))),
                None => Err(format!("{column}[{i}].{name}: missing")),
            };
            Ok(CodeTest { input: field("input")?, expected: field("expected")? })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Rows as supervised examples

/// A row as an SFT example, and the layout it was read as.
fn sft_row(obj: &Map<String, Value>, cols: &Columns) -> std::result::Result<(SftRecord, &'static str), RowError> {
    let explicit_pair = cols.prompt.is_some() || cols.completion.is_some();
    if !explicit_pair {
        if let Some((column, v)) = pick(obj, cols.messages.as_deref(), &["messages"])? {
            let messages = parse_messages(v, column)?;
            ends_with_assistant(&messages, column)?;
            return Ok((SftRecord::Messages(messages), "conversation"));
        }
    }
    // TRL's prompt + completion (or response).
    let prompt = pick(obj, cols.prompt.as_deref(), &["prompt"])?;
    let reply = pick(obj, cols.completion.as_deref(), &["completion", "response"])?;
    if let (Some((pk, p)), Some((rk, r))) = (prompt, reply) {
        return Ok((pair(p, pk, r, rk)?, "prompt-completion"));
    }
    if explicit_pair {
        let missing =
            if prompt.is_none() { cols.prompt.as_deref().unwrap_or("prompt") } else { cols.completion.as_deref().unwrap_or("completion") };
        return Err(format!("column \"{missing}\": missing (columns here: {})", column_names(obj)).into());
    }
    // A dataset's question with its worked solution.
    if obj.contains_key("entry_point") {
        if let (Some(Value::String(stub)), Some(Value::String(body))) = (obj.get("prompt"), obj.get("canonical_solution")) {
            let reply = format!("```python\n{stub}{body}\n```");
            return Ok((SftRecord::PromptResponse { prompt: humaneval_question(stub), response: reply }, "humaneval"));
        }
    }
    if let (Some(tests), Some(Value::String(code))) = (obj.get("test_list"), obj.get("code")) {
        let tests = strings(tests, "test_list")?;
        let (column, description) = pick(obj, None, &["text", "prompt"])?.ok_or("column \"text\": missing (MBPP's task description)")?;
        let reply = format!("```python\n{}\n```", code.trim_end());
        return Ok((SftRecord::PromptResponse { prompt: mbpp_question(text(description, column)?, &tests), response: reply }, "mbpp"));
    }
    for (q, a, layout) in [("problem", "solution", "math"), ("question", "answer", "gsm8k")] {
        if let (Some(Value::String(p)), Some(Value::String(r))) = (obj.get(q), obj.get(a)) {
            if p.trim().is_empty() || r.trim().is_empty() {
                return Err(format!("column \"{}\": empty", if p.trim().is_empty() { q } else { a }).into());
            }
            return Ok((SftRecord::PromptResponse { prompt: p.clone(), response: r.clone() }, layout));
        }
    }
    Err(format!(
        "no example: expected \"messages\", or \"prompt\" with \"completion\" (or \"response\") (columns here: {}); name them with --messages-column, --prompt-column, --completion-column",
        column_names(obj)
    )
    .into())
}

fn pair(prompt: &Value, pk: &str, reply: &Value, rk: &str) -> std::result::Result<SftRecord, String> {
    match (prompt, reply) {
        (Value::String(p), Value::String(r)) => {
            if p.trim().is_empty() {
                return Err(format!("column \"{pk}\": empty"));
            }
            Ok(SftRecord::PromptResponse { prompt: p.clone(), response: r.clone() })
        }
        _ => {
            let mut messages = text_or_messages(prompt, pk, Role::User)?;
            messages.extend(text_or_messages(reply, rk, Role::Assistant)?);
            ends_with_assistant(&messages, rk)?;
            Ok(SftRecord::Messages(messages))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::final_answer;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/datasets").join(name)
    }

    /// The same rows from the JSONL and the Parquet file (pyarrow's).
    fn both(name: &str) -> PromptSet {
        let options = DataOptions::default();
        let a = read_prompts(&fixture(&format!("{name}.jsonl")), &options).unwrap();
        if cfg!(feature = "parquet") {
            let b = read_prompts(&fixture(&format!("{name}.parquet")), &options).unwrap();
            assert_eq!(a.records, b.records, "{name}: JSONL and Parquet disagree");
            assert_eq!(a.stats.layouts, b.stats.layouts, "{name}");
        }
        a
    }

    /// The dataset files a test reads: JSONL, and Parquet when built with it.
    fn files(name: &str) -> Vec<PathBuf> {
        let mut out = vec![fixture(&format!("{name}.jsonl"))];
        if cfg!(feature = "parquet") {
            out.push(fixture(&format!("{name}.parquet")));
        }
        out
    }

    fn layouts(set: &PromptSet) -> Vec<&str> {
        set.stats.layouts.keys().map(String::as_str).collect()
    }

    #[test]
    fn gsm8k_math_and_math500() {
        let gsm = both("gsm8k");
        assert_eq!(layouts(&gsm), ["gsm8k"]);
        assert!(gsm.records[0].question().starts_with("Mia picks 12 apples"));
        assert_eq!(final_answer(gsm.records[0].reference.answer.as_deref().unwrap()), "20");
        let math = both("math");
        assert_eq!(layouts(&math), ["math"]);
        let answers: Vec<&str> = math.records.iter().map(|r| r.reference.answer.as_deref().unwrap()).collect();
        assert_eq!(answers, [r"\frac{5}{6}", r"2\sqrt{3}", "(2, 3)"]);
        let m500 = both("math500");
        assert_eq!(m500.records[1].reference.answer.as_deref(), Some(r"2 \pm \sqrt{3}"));
        assert_eq!(m500.records[0].id.as_deref(), Some("test/geometry/1.json"));
    }

    #[test]
    fn numinamath_and_openr1_prompt_with_the_problem_not_the_conversation() {
        let numina = both("numinamath");
        assert_eq!(numina.records[0].messages, [Message::user(r"What is $15\%$ of $80$?")]);
        assert_eq!(numina.records[1].reference.answer.as_deref(), Some(r"5 \text{ cm}"));
        // OpenR1's second row is a proof: no answer to check.
        let err = read_prompts(&fixture("openr1_math.jsonl"), &DataOptions::default()).unwrap_err().to_string();
        assert!(err.contains("openr1_math.jsonl:2:") && err.contains("column \"answer\"") && err.contains("proof"), "{err}");
        if cfg!(feature = "parquet") {
            let err = read_prompts(&fixture("openr1_math.parquet"), &DataOptions::default()).unwrap_err().to_string();
            assert!(err.contains("openr1_math.parquet: row 2:") && err.contains("proof"), "{err}");
        }
        let skip = DataOptions { bad_rows: BadRows::Skip, ..DataOptions::default() };
        let path = files("openr1_math").pop().unwrap();
        let set = read_prompts(&path, &skip).unwrap();
        assert_eq!((set.records.len(), set.stats.rows, set.stats.skipped), (2, 3, 1));
        assert!(
            set.stats.summary().contains("skipped 1 bad rows")
                && (set.stats.summary().contains("row 2:") || set.stats.summary().contains(".jsonl:2:")),
            "{}",
            set.stats.summary()
        );
        assert_eq!(set.records[0].reference.answer.as_deref(), Some("-2, 4"));
        assert_eq!(set.records[0].id.as_deref(), Some("0b6a1a2e-0000-4000-8000-000000000001"));
        let jsonl = read_prompts(&fixture("openr1_math.jsonl"), &skip).unwrap();
        assert_eq!(jsonl.records, set.records);
    }

    #[test]
    fn countdown_rows_get_the_tasks_question() {
        let set = both("countdown");
        assert_eq!(layouts(&set), ["countdown"]);
        let r = &set.records[0];
        assert_eq!((r.reference.numbers.as_slice(), r.reference.answer.as_deref()), (&[44, 19, 35][..], Some("98")));
        assert_eq!(r.question(), crate::tasks::countdown::question(&[44, 19, 35], 98));
    }

    #[test]
    fn mbpp_and_humaneval_carry_python_tests() {
        let mbpp = both("mbpp");
        assert_eq!(layouts(&mbpp), ["mbpp"]);
        let py = mbpp.records[0].reference.python.as_ref().unwrap();
        assert_eq!(py.tests.len(), 3);
        assert!(mbpp.records[0].question().contains("Your code should pass these tests:\n\nassert sort_with_42([3, 1, 2])"));
        assert_eq!(mbpp.records[1].reference.python.as_ref().unwrap().setup, "import math");
        assert_eq!(mbpp.records[0].id.as_deref(), Some("901"));
        let sanitized = both("mbpp_sanitized");
        assert_eq!(sanitized.records[0].reference.python.as_ref().unwrap().setup, "import math");
        let he = both("humaneval");
        assert_eq!(layouts(&he), ["humaneval"]);
        let py = he.records[0].reference.python.as_ref().unwrap();
        assert!(py.tests[0].trim_end().ends_with("check(sort_with_42)"));
        assert_eq!(py.entry_point.as_deref(), Some("sort_with_42"));
        assert!(py.stub.as_deref().unwrap().starts_with("from typing import List"));
        assert!(he.records[0].question().contains("```python\nfrom typing import List"));
    }

    #[test]
    fn conversations_are_examples_and_prompts_without_their_reply() {
        let path = files("mixture_of_thoughts").pop().unwrap();
        let err = read_prompts(&path, &DataOptions::default()).unwrap_err().to_string();
        assert!((err.contains("row 1:") || err.contains(".jsonl:1:")) && err.contains("answer"), "{err}");
        let prompts = read_prompts_for_sampling(&path, &DataOptions::default()).unwrap();
        assert_eq!(prompts.records[0].messages, [Message::user("Compute 7 * 3 + 5.")]);
        assert_eq!(prompts.records[1].messages.len(), 2, "system and user");
        for file in files("mixture_of_thoughts") {
            let mut got = Vec::new();
            let stats = read_examples(&file, &DataOptions::default(), |r| {
                got.push(r);
                Ok(())
            })
            .unwrap();
            assert_eq!(stats.layouts.keys().collect::<Vec<_>>(), ["conversation"]);
            let SftRecord::Messages(m) = &got[1] else { panic!("{got:?}") };
            assert_eq!((m.len(), m[2].role), (3, Role::Assistant));
        }
    }

    #[test]
    fn every_layout_is_also_an_sft_example() {
        for (name, layout) in [
            ("gsm8k", "gsm8k"),
            ("math", "math"),
            ("numinamath", "conversation"),
            ("openr1_math", "conversation"),
            ("mbpp", "mbpp"),
            ("humaneval", "humaneval"),
        ] {
            for file in files(name) {
                let mut first = None;
                let stats = read_examples(&file, &DataOptions::default(), |r| {
                    first.get_or_insert(r);
                    Ok(())
                })
                .unwrap();
                assert_eq!(stats.layouts.keys().collect::<Vec<_>>(), [layout], "{name}");
                let m = first.unwrap().messages();
                assert_eq!(m.last().map(|m| m.role), Some(Role::Assistant), "{name}");
            }
        }
        let mut first = None;
        read_examples(&fixture("humaneval.jsonl"), &DataOptions::default(), |r| {
            first.get_or_insert(r);
            Ok(())
        })
        .unwrap();
        let m = first.unwrap().messages();
        assert!(m[1].content.contains("return [42] + sorted(numbers)"), "{}", m[1].content);
    }

    #[test]
    #[cfg(feature = "parquet")]
    fn folders_of_shards_and_their_splits() {
        let dir = fixture("gsm8k_hub");
        let err = read_prompts(&dir, &DataOptions::default()).unwrap_err().to_string();
        assert!(err.contains("several splits") && err.contains("test (1 files)") && err.contains("train (2 files)"), "{err}");
        let train = read_prompts(&dir, &DataOptions { split: Some("train".into()), ..DataOptions::default() }).unwrap();
        assert_eq!((train.records.len(), train.stats.files.len()), (2, 2));
        assert_eq!(train.records, both("gsm8k").records, "shards in order");
        let test = read_prompts(&dir, &DataOptions { split: Some("test".into()), ..DataOptions::default() }).unwrap();
        assert_eq!(test.records.len(), 1);
        let err = read_prompts(&dir, &DataOptions { split: Some("validation".into()), ..DataOptions::default() }).unwrap_err().to_string();
        assert!(err.contains("no files of split `validation`") && err.contains("test, train"), "{err}");
        for codec in ["zstd", "gzip"] {
            let set = read_prompts(&fixture(&format!("gsm8k.{codec}.parquet")), &DataOptions::default()).unwrap();
            assert_eq!(set.records, both("gsm8k").records, "{codec}");
        }
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn rows_without_an_answer_are_refused_or_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "p.jsonl",
            "{\"prompt\": \"1+1?\", \"answer\": \"2\"}\n{\"prompt\": \"2+2?\"}\n\n{\"prompt\": \"3+3?\", \"answer\": null}\n{\"prompt\": \"  \", \"answer\": \"1\"}\n{\"prompt\": \"4+4?\", \"answer\": 8}\n",
        );
        let err = read_prompts(&path, &DataOptions::default()).unwrap_err().to_string();
        assert!(err.contains("p.jsonl:2:") && err.contains("column \"answer\": missing"), "{err}");
        let skip = DataOptions { bad_rows: BadRows::Skip, ..DataOptions::default() };
        let set = read_prompts(&path, &skip).unwrap();
        assert_eq!(set.records.iter().map(|r| r.reference.answer.clone().unwrap()).collect::<Vec<_>>(), ["2", "8"]);
        assert_eq!((set.stats.rows, set.stats.skipped), (5, 3));
        assert!(set.stats.skipped_examples[1].contains("p.jsonl:4:") && set.stats.skipped_examples[1].contains("null"), "{:?}", set.stats);
        assert!(set.stats.skipped_examples[2].contains("p.jsonl:5:") && set.stats.skipped_examples[2].contains("empty prompt"));
        // Without the reference requirement (sampling) the answer-less rows are fine.
        assert_eq!(read_prompts_for_sampling(&path, &skip).unwrap().records.len(), 4);
        // All bad, or nothing: an error naming the file.
        let bad = write(&dir, "bad.jsonl", "{\"prompt\": \"x\"}\n");
        let err = read_prompts(&bad, &skip).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl: no prompts: all 1 rows were bad"), "{err}");
        let empty = write(&dir, "empty.jsonl", "\n\n");
        let err = read_prompts(&empty, &DataOptions::default()).unwrap_err().to_string();
        assert!(err.contains("empty.jsonl: no prompts: the dataset has no rows"), "{err}");
        let err = read_examples(&empty, &DataOptions::default(), |_| Ok(())).unwrap_err().to_string();
        assert!(err.contains("empty.jsonl: no examples"), "{err}");
    }

    #[test]
    fn columns_named_by_flags_win_and_must_be_there() {
        let dir = tempfile::tempdir().unwrap();
        let path =
            write(&dir, "q.jsonl", "{\"q\": \"What is 6 * 7?\", \"gold\": \"42\", \"answer\": \"wrong\"}\n{\"q\": \"And 2 + 2?\"}\n");
        let columns = Columns { prompt: Some("q".into()), answer: Some("gold".into()), ..Columns::default() };
        let options = DataOptions { columns, ..DataOptions::default() };
        let err = read_prompts(&path, &options).unwrap_err().to_string();
        assert!(err.contains("q.jsonl:2:") && err.contains("column \"gold\": missing") && err.contains("columns here: q"), "{err}");
        let options = DataOptions { bad_rows: BadRows::Skip, ..options };
        let set = read_prompts(&path, &options).unwrap();
        assert_eq!(set.records[0].question(), "What is 6 * 7?");
        assert_eq!(set.records[0].reference.answer.as_deref(), Some("42"));
        // SFT with a named reply column.
        let path = write(&dir, "s.jsonl", "{\"instruction\": \"Say hi\", \"output\": \"hi\"}\n");
        let columns = Columns { prompt: Some("instruction".into()), completion: Some("output".into()), ..Columns::default() };
        let mut got = Vec::new();
        read_examples(&path, &DataOptions { columns, ..DataOptions::default() }, |r| {
            got.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, [SftRecord::PromptResponse { prompt: "Say hi".into(), response: "hi".into() }]);
        let err = read_examples(&path, &DataOptions::default(), |_| Ok(())).unwrap_err().to_string();
        assert!(
            err.contains("s.jsonl:1:") && err.contains("columns here: instruction, output") && err.contains("--prompt-column"),
            "{err}"
        );
    }

    #[test]
    fn python_and_list_language_tests_from_a_tests_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "t.jsonl",
            "{\"prompt\": \"p\", \"tests\": [\"assert f(1) == 2\"]}\n{\"prompt\": \"q\", \"tests\": [{\"input\": \"[1]\", \"expected\": \"[1]\"}]}\n",
        );
        let set = read_prompts(&path, &DataOptions::default()).unwrap();
        assert_eq!(set.records[0].reference.python.as_ref().unwrap().tests, ["assert f(1) == 2"]);
        assert_eq!(set.records[1].reference.tests.len(), 1);
        assert_eq!(set.stats.layouts.len(), 2);
    }

    #[test]
    fn unreadable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let fake = write(&dir, "fake.parquet", "PAR1 not really");
        let err = read_prompts(&fake, &DataOptions::default()).unwrap_err().to_string();
        assert!(err.contains("fake.parquet") && err.contains("Parquet"), "{err}");
        let err = read_prompts(&dir.path().join("nothing.jsonl"), &DataOptions::default()).unwrap_err().to_string();
        assert!(err.contains("nothing.jsonl"), "{err}");
        let array = write(&dir, "rows.json", "[{\"prompt\": \"a\", \"answer\": \"1\"}, 7]");
        let err = read_prompts(&array, &DataOptions::default()).unwrap_err().to_string();
        assert!(err.contains("rows.json: row 2: expected a JSON object"), "{err}");
        let empty_dir = tempfile::tempdir().unwrap();
        let err = read_prompts(empty_dir.path(), &DataOptions::default()).unwrap_err().to_string();
        assert!(err.contains("no .parquet, .jsonl or .json files"), "{err}");
    }
}
