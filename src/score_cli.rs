//! `aha score`: completions scored with a run's rewards, each and in total.

use std::io::Write;
use std::path::PathBuf;

use aha_trainer::score::{self, ScoreJob};
use anyhow::Result;
use clap::Args;

use crate::dataset_cli::{CodeArgs, DatasetArgs};

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// The dataset the completions answer (JSONL, JSON or Parquet, or a folder of shards).
    #[arg(long)]
    pub task: PathBuf,
    /// JSONL of {"completion", and "row" (or "prompt_index"), "id" or "prompt"}.
    #[arg(long)]
    pub completions: PathBuf,
    /// A reward, `name` or `name:weight` (repeatable): accuracy, format,
    /// language, code, countdown, rm:<checkpoint>. Default: the dataset's
    /// verifier and format, as `aha grpo` uses.
    #[arg(long = "reward")]
    pub rewards: Vec<String>,
    /// One JSON object per completion on standard output (the totals go to standard error).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DatasetArgs,
    #[command(flatten)]
    pub code: CodeArgs,
}

pub fn score(a: &ScoreArgs) -> Result<()> {
    a.code.configure()?;
    let job = ScoreJob { task: a.task.clone(), data: a.data.options(), completions: a.completions.clone(), rewards: a.rewards.clone() };
    let report = score::score(&job)?;
    // A reader that goes away (`| head`) ends the listing quietly.
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let mut out = |text: &str| -> bool { writeln!(lock, "{text}").is_ok() };
    for l in &report.lines {
        let line = if a.json {
            let rewards: serde_json::Map<String, serde_json::Value> =
                l.rewards.iter().map(|(n, v)| (n.clone(), serde_json::json!(v))).collect();
            serde_json::json!({
                "line": l.line, "row": l.row, "id": l.id, "total": l.total, "rewards": rewards,
                "uncomparable": l.uncomparable, "tests": l.tests,
            })
            .to_string()
        } else {
            let each: Vec<String> = l.rewards.iter().map(|(n, v)| format!("{n} {v:.3}")).collect();
            let id = l.id.as_deref().map(|id| format!(" ({id})")).unwrap_or_default();
            let mut text = format!("line {}: row {}{id}: total {:.3}  {}", l.line, l.row, l.total, each.join("  "));
            if l.uncomparable {
                text.push_str("  [answer and reference not comparable]");
            }
            if let Some(t) = &l.tests {
                text.push_str(&format!("  [tests {}/{} passed, {}, {:.2} s]", t.passed, t.total, t.end, t.seconds));
            }
            text
        };
        if !out(&line) {
            return Ok(());
        }
    }
    let (total, each, uncomparable) = report.means();
    let each: Vec<String> = each.iter().map(|(n, v)| format!("{n} {v:.3}")).collect();
    let weights: Vec<String> = report.rewards.iter().map(|(n, w)| format!("{n}:{w}")).collect();
    let summary = format!(
        "{} completions of {}: mean total {total:.3}; means {}; uncomparable {:.1}% (rewards {})",
        report.lines.len(),
        report.data.summary(),
        each.join(", "),
        100.0 * uncomparable,
        weights.join(" ")
    );
    if a.json {
        eprintln!("{summary}");
    } else if !out(&summary) {
        return Ok(());
    }
    Ok(())
}
