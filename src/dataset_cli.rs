//! Flags shared by every command that reads a dataset (`#[command(flatten)]`
//! a [`DatasetArgs`]) or runs model-written code ([`CodeArgs`]).

use std::path::PathBuf;

use aha_trainer::data::{BadRows, Columns, DataOptions};
use aha_trainer::rewards::code::{CodeScore, CodeSettings};
use aha_trainer::sandbox::python::PythonLimits;
use anyhow::Result;
use clap::Args;

/// How to read a dataset: JSONL, JSON or Parquet, a file or a folder of
/// shards; the common layouts (GSM8K, MATH, NuminaMath, OpenR1-Math,
/// Countdown, MBPP, HumanEval, conversations) are recognised from their
/// columns; these flags name other columns.
#[derive(Args, Debug, Clone, Default)]
pub struct DatasetArgs {
    /// The question's column (text or a list of {role, content}); default:
    /// prompt, then problem, question, messages.
    #[arg(long, value_name = "NAME")]
    pub prompt_column: Option<String>,
    /// The reference answer's column; default: answer (GSM8K's `#### 42`
    /// read), else the last \boxed{} of solution.
    #[arg(long, value_name = "NAME")]
    pub answer_column: Option<String>,
    /// A conversation's column; default: messages.
    #[arg(long, value_name = "NAME")]
    pub messages_column: Option<String>,
    /// The reply to learn (SFT); default: completion, then response.
    #[arg(long, value_name = "NAME")]
    pub completion_column: Option<String>,
    /// Unit tests: Python asserts or {"input", "expected"} pairs; default: tests.
    #[arg(long, value_name = "NAME")]
    pub tests_column: Option<String>,
    /// The row's id; default: id, task_id, unique_id, uuid.
    #[arg(long, value_name = "NAME")]
    pub id_column: Option<String>,
    /// In a folder of several splits (train-*.parquet, test-*.parquet), the one to read.
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,
    /// Leave out rows that cannot be used (no answer, no tests, empty
    /// prompt, malformed), counting them, instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

impl DatasetArgs {
    pub fn options(&self) -> DataOptions {
        DataOptions {
            columns: Columns {
                prompt: self.prompt_column.clone(),
                answer: self.answer_column.clone(),
                messages: self.messages_column.clone(),
                completion: self.completion_column.clone(),
                tests: self.tests_column.clone(),
                id: self.id_column.clone(),
            },
            split: self.split.clone(),
            bad_rows: if self.skip_bad_rows { BadRows::Skip } else { BadRows::Refuse },
        }
    }
}

/// How Python code answers run (MBPP, HumanEval, Python asserts): in a
/// bubblewrap sandbox, many at once.
#[derive(Args, Debug, Clone, Default)]
pub struct CodeArgs {
    /// Programs run at once (default: one per CPU core).
    #[arg(long, value_name = "N")]
    pub code_workers: Option<usize>,
    /// Wall-clock seconds per program with its tests (default 10).
    #[arg(long, value_name = "SECONDS")]
    pub code_timeout: Option<f64>,
    /// Address space per program, MiB (default 1024).
    #[arg(long, value_name = "MIB")]
    pub code_memory: Option<u64>,
    /// Processes and threads a program may start (default 0).
    #[arg(long, value_name = "N")]
    pub code_processes: Option<u64>,
    /// The `code` reward: pass-rate (share of tests passed, default) or all (1 only when all pass).
    #[arg(long, value_name = "MODE")]
    pub code_score: Option<String>,
    /// The Python interpreter (default /usr/bin/python3, else python3 on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
}

impl CodeArgs {
    pub fn settings(&self) -> Result<CodeSettings> {
        let d = PythonLimits::default();
        let limits = PythonLimits {
            timeout_s: self.code_timeout.unwrap_or(d.timeout_s),
            // The CPU limit follows the wall clock unless that is shorter.
            cpu_s: self.code_timeout.map_or(d.cpu_s, |t| t.ceil().max(1.0) as u64),
            memory_mb: self.code_memory.unwrap_or(d.memory_mb),
            processes: self.code_processes.unwrap_or(d.processes),
            ..d
        };
        let score = match &self.code_score {
            Some(s) => s.parse()?,
            None => CodeScore::default(),
        };
        Ok(CodeSettings { workers: self.code_workers.unwrap_or(0), limits, python: self.python.clone(), score })
    }

    /// Sets this process's code runner from the flags.
    pub fn configure(&self) -> Result<()> {
        aha_trainer::rewards::code::configure(self.settings()?)?;
        Ok(())
    }
}
