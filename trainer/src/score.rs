//! `aha score`: given completions scored with the rewards a run would use,
//! so a user can check a reward on their own data (and their sandbox on
//! their code tests) before spending a training run on it.
//!
//! Completions are JSONL lines `{"completion": …}` with the prompt they
//! answer: `"row"` (or `"prompt_index"`, as `aha generate` writes it, the
//! 0-based position among the dataset's prompts), `"id"` (the dataset's id
//! column: `task_id`, `unique_id`, …) or `"prompt"` (the question's text).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::data::{read_prompts, DataOptions, PromptRecord, ReadStats};
use crate::device::DeviceChoice;
use crate::error::{at, Error, Result};
use crate::grpo::{default_rewards, reward_set};
use crate::recipes::Source;
use crate::rewards::code::python_outcomes;
use crate::rewards::Sample;

/// What to score.
#[derive(Clone, Debug)]
pub struct ScoreJob {
    /// The dataset the completions answer.
    pub task: PathBuf,
    pub data: DataOptions,
    /// The completions (JSONL).
    pub completions: PathBuf,
    /// `name` or `name:weight`; empty: the dataset's default (its verifier and `format`).
    pub rewards: Vec<String>,
}

/// One completion's scores.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScoreLine {
    /// Its line in the completions file (1-based).
    pub line: usize,
    /// The prompt's position in the dataset (0-based) and its id.
    pub row: usize,
    pub id: Option<String>,
    /// Σ weight × reward.
    pub total: f32,
    /// Each reward, unweighted, in the order given.
    pub rewards: Vec<(String, f32)>,
    /// The answer and the reference could not be compared (scored 0).
    pub uncomparable: bool,
    /// Python tests: passed, total, and how the run ended.
    pub tests: Option<TestsRun>,
}

/// A Python run, summarised.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TestsRun {
    pub passed: usize,
    pub total: usize,
    pub end: String,
    pub seconds: f64,
}

/// All completions' scores, and the means.
#[derive(Clone, Debug)]
pub struct ScoreReport {
    pub lines: Vec<ScoreLine>,
    /// The rewards with their weights, in order.
    pub rewards: Vec<(String, f32)>,
    pub data: ReadStats,
}

impl ScoreReport {
    /// Mean total, then each reward's mean, then the share uncomparable.
    pub fn means(&self) -> (f64, Vec<(String, f64)>, f64) {
        let n = self.lines.len().max(1) as f64;
        let total = self.lines.iter().map(|l| f64::from(l.total)).sum::<f64>() / n;
        let each = self
            .rewards
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), self.lines.iter().map(|l| f64::from(l.rewards[i].1)).sum::<f64>() / n))
            .collect();
        let uncomparable = self.lines.iter().filter(|l| l.uncomparable).count() as f64 / n;
        (total, each, uncomparable)
    }
}

/// Reads the dataset and the completions, and scores every completion.
pub fn score(job: &ScoreJob) -> Result<ScoreReport> {
    let set = read_prompts(&job.task, &job.data)?;
    let records = &set.records;
    let specs = if job.rewards.is_empty() { default_rewards(&Source::File(job.task.clone()), records) } else { job.rewards.clone() };
    let rewards = reward_set(&specs, &[], &DeviceChoice::Flex.device())?;
    let weights: Vec<(String, f32)> = rewards.rewards.iter().map(|w| (w.reward.name().to_string(), w.weight)).collect();

    let by_question: HashMap<&str, Vec<usize>> = records.iter().enumerate().fold(HashMap::new(), |mut m, (i, r)| {
        m.entry(r.question()).or_default().push(i);
        m
    });
    let by_id: HashMap<&str, usize> = records.iter().enumerate().filter_map(|(i, r)| r.id.as_deref().map(|id| (id, i))).collect();
    let path = &job.completions;
    let file = std::fs::File::open(path).map_err(at(path))?;
    let mut wanted: Vec<(usize, usize, String)> = Vec::new(); // (line, row, completion)
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let bad = |message: String| Error::Line { path: path.clone(), line: i + 1, message };
        let line = line.map_err(|e| bad(format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let completion = match value.get("completion") {
            Some(Value::String(c)) => c.clone(),
            Some(other) => return Err(bad(format!("\"completion\": expected text, found {other}"))),
            None => return Err(bad("missing \"completion\"".into())),
        };
        let row = match (value.get("row").or_else(|| value.get("prompt_index")), value.get("id"), value.get("prompt")) {
            (Some(r), _, _) => {
                let r = r.as_u64().ok_or_else(|| bad(format!("\"row\": expected a row number, found {r}")))? as usize;
                if r >= records.len() {
                    return Err(bad(format!("row {r}: the dataset has {} prompts (rows count from 0)", records.len())));
                }
                r
            }
            (None, Some(id), _) => {
                let id = match id {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                *by_id.get(id.as_str()).ok_or_else(|| bad(format!("id {id:?}: no row of {} has it", job.task.display())))?
            }
            (None, None, Some(Value::String(prompt))) => match by_question.get(prompt.as_str()).map(Vec::as_slice) {
                Some([one]) => *one,
                Some(many) => return Err(bad(format!("the prompt is the question of {} rows; give \"row\" or \"id\"", many.len()))),
                None => {
                    return Err(bad(format!("no row of {} asks this prompt (matched against each row's question)", job.task.display())))
                }
            },
            _ => return Err(bad("give the prompt it answers: \"row\" (or \"prompt_index\"), \"id\" or \"prompt\"".into())),
        };
        wanted.push((i + 1, row, completion));
    }
    if wanted.is_empty() {
        return Err(Error::file(path, "no completions"));
    }
    let samples: Vec<Sample> = wanted
        .iter()
        .map(|(_, row, completion)| {
            let r: &PromptRecord = &records[*row];
            Sample { prompt: r.question(), completion, reference: &r.reference }
        })
        .collect();
    let scores = rewards.score(&samples)?;
    let uncomparable = crate::rewards::accuracy::uncomparable(&samples);
    // The code runner's memo has these from the `code` or `accuracy` reward.
    let ran_code = weights.iter().any(|(name, _)| name == "code" || name == "accuracy");
    let runs = if ran_code { python_outcomes(&samples)? } else { vec![None; samples.len()] };
    let lines = wanted
        .iter()
        .enumerate()
        .map(|(k, (line, row, _))| ScoreLine {
            line: *line,
            row: *row,
            id: records[*row].id.clone(),
            total: scores.total[k],
            rewards: scores.by_reward.iter().map(|(name, s)| (name.clone(), s[k])).collect(),
            uncomparable: uncomparable[k],
            tests: runs[k].as_ref().map(|o| TestsRun { passed: o.passed, total: o.total, end: format!("{:?}", o.end), seconds: o.seconds }),
        })
        .collect();
    Ok(ScoreReport { lines, rewards: weights, data: set.stats })
}
