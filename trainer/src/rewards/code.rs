//! The code reward (docs/method.md, rewards): the program in a completion is run
//! against the prompt's unit tests, and the score is the share of tests it
//! passes (or, with [`CodeScore::All`], 1 only when it passes them all).
//!
//! Two kinds of tests, two sandboxes: `{"input", "expected"}` pairs in the
//! list language ([`crate::sandbox::list`], the built-in `listprog` task),
//! and Python asserts (MBPP, HumanEval, a JSONL's `"tests": ["assert …"]`),
//! run by the system's `python3` in [`crate::sandbox::python`].
//!
//! Python runs go through the process's [`CodeRunner`]: the sandbox, a pool
//! of `workers` running programs at once (a GRPO step scores G × prompts of
//! them), and a memo of recent outcomes, so the accuracy check of a
//! completion that the code reward already ran does not run it again.
//! A command sets it up once ([`configure`]) from its flags.
//!
//! All-or-nothing is also the accuracy reward's: [`crate::rewards::Accuracy`]
//! counts a code completion correct when it passes every test, so a run can
//! weight partial credit and full correctness separately.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use super::{Reward, Sample};
use crate::data::{CodeTest, PythonTests};
use crate::error::{Error, Result};
use crate::sandbox::python::{Outcome, PythonJob, PythonLimits, PythonSandbox};
use crate::sandbox::{parse_value, Limits, Program};

/// How a completion's test results become its `code` score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeScore {
    /// The share of tests passed.
    #[default]
    PassRate,
    /// 1 when every test passes, else 0.
    All,
}

impl std::str::FromStr for CodeScore {
    type Err = Error;
    fn from_str(s: &str) -> Result<CodeScore> {
        match s {
            "pass_rate" | "pass-rate" => Ok(CodeScore::PassRate),
            "all" => Ok(CodeScore::All),
            other => Err(Error::Config(format!("code score `{other}`: expected pass-rate or all"))),
        }
    }
}

/// How this process runs Python code.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodeSettings {
    /// Programs run at once; 0: one per CPU core.
    pub workers: usize,
    pub limits: PythonLimits,
    /// The interpreter; default `/usr/bin/python3`, else `python3` on `PATH`.
    pub python: Option<PathBuf>,
    pub score: CodeScore,
}

/// Runs Python tests: the sandbox (made when first needed, so data without
/// Python tests never needs one), a worker pool and a memo.
pub struct CodeRunner {
    settings: CodeSettings,
    sandbox: OnceLock<std::result::Result<PythonSandbox, String>>,
    memo: Mutex<Memo>,
}

/// Recent outcomes by program and tests.
#[derive(Default)]
struct Memo {
    outcomes: HashMap<(String, u64), Outcome>,
    bytes: usize,
}

/// What the memo holds at most (program text), then it starts over.
const MEMO_BYTES: usize = 64 << 20;

fn tests_key(tests: &PythonTests) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tests.hash(&mut h);
    h.finish()
}

impl CodeRunner {
    pub fn new(settings: CodeSettings) -> Result<CodeRunner> {
        settings.limits.validate()?;
        Ok(CodeRunner { settings, sandbox: OnceLock::new(), memo: Mutex::new(Memo::default()) })
    }

    pub fn settings(&self) -> &CodeSettings {
        &self.settings
    }

    /// The sandbox, made on first use; the host's refusal is an error every time.
    pub fn sandbox(&self) -> Result<&PythonSandbox> {
        self.sandbox
            .get_or_init(|| PythonSandbox::new(self.settings.limits.clone(), self.settings.python.as_deref()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Sandbox(e.trim_start_matches("sandbox: ").to_string()))
    }

    fn workers(&self) -> usize {
        match self.settings.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The outcome of each completion's program on its tests, in order: run
    /// `workers` at a time, or taken from the memo. `None` where the
    /// completion holds no program.
    pub fn outcomes(&self, items: &[(&str, &PythonTests)]) -> Result<Vec<Option<Outcome>>> {
        let programs: Vec<Option<String>> = items.iter().map(|(completion, tests)| python_program(completion, tests)).collect();
        let keys: Vec<Option<(String, u64)>> =
            programs.iter().zip(items).map(|(p, (_, tests))| p.as_ref().map(|p| (p.clone(), tests_key(tests)))).collect();
        let mut out: Vec<Option<Outcome>> = vec![None; items.len()];
        // Programs to run, each once (a group's identical completions too).
        let mut todo: Vec<usize> = Vec::new();
        let mut first_of: HashMap<&(String, u64), usize> = HashMap::new();
        let mut copies: Vec<(usize, usize)> = Vec::new(); // (item, the item whose run it shares)
        {
            let memo = self.memo.lock().map_err(|_| Error::Sandbox("the code memo was poisoned".into()))?;
            for (i, key) in keys.iter().enumerate() {
                if let Some(key) = key {
                    if let Some(o) = memo.outcomes.get(key) {
                        out[i] = Some(o.clone());
                    } else if let Some(&j) = first_of.get(key) {
                        copies.push((i, j));
                    } else {
                        first_of.insert(key, i);
                        todo.push(i);
                    }
                }
            }
        }
        if todo.is_empty() {
            return Ok(out);
        }
        let sandbox = self.sandbox()?;
        let jobs: Vec<PythonJob> = todo
            .iter()
            .map(|&i| {
                let tests = items[i].1;
                PythonJob { program: programs[i].as_deref().unwrap_or(""), setup: &tests.setup, tests: &tests.tests }
            })
            .collect();
        let results = sandbox.run_all(&jobs, self.workers());
        let mut memo = self.memo.lock().map_err(|_| Error::Sandbox("the code memo was poisoned".into()))?;
        for (&i, result) in todo.iter().zip(results) {
            let outcome = result?;
            if let Some(key) = keys[i].clone() {
                memo.bytes += key.0.len();
                if memo.bytes > MEMO_BYTES {
                    memo.outcomes.clear();
                    memo.bytes = key.0.len();
                }
                memo.outcomes.insert(key, outcome.clone());
            }
            out[i] = Some(outcome);
        }
        for (i, j) in copies {
            out[i] = out[j].clone();
        }
        Ok(out)
    }
}

/// The process's runner, set by [`configure`] (default settings otherwise).
fn global() -> &'static Mutex<Option<Arc<CodeRunner>>> {
    static RUNNER: OnceLock<Mutex<Option<Arc<CodeRunner>>>> = OnceLock::new();
    RUNNER.get_or_init(|| Mutex::new(None))
}

/// Sets how this process runs Python code (a command calls it once, from its
/// flags, before scoring anything).
pub fn configure(settings: CodeSettings) -> Result<()> {
    let runner = Arc::new(CodeRunner::new(settings)?);
    *global().lock().map_err(|_| Error::Sandbox("the code runner was poisoned".into()))? = Some(runner);
    Ok(())
}

/// The process's runner.
pub fn runner() -> Result<Arc<CodeRunner>> {
    let mut slot = global().lock().map_err(|_| Error::Sandbox("the code runner was poisoned".into()))?;
    if slot.is_none() {
        *slot = Some(Arc::new(CodeRunner::new(CodeSettings::default())?));
    }
    slot.clone().ok_or_else(|| Error::Sandbox("no code runner".into()))
}

/// The program to run for a completion on `tests`: the extracted program,
/// after the stub's imports (HumanEval's `from typing import List`), or
/// after the whole stub when it is only the function's body.
pub fn python_program(completion: &str, tests: &PythonTests) -> Option<String> {
    let program = extract_python(completion)?;
    let Some(stub) = tests.stub.as_deref() else { return Some(program.to_string()) };
    let defines =
        tests.entry_point.as_deref().is_some_and(|f| program.contains(&format!("def {f}(")) || program.contains(&format!("def {f} (")));
    if defines {
        let imports: Vec<&str> = stub.lines().filter(|l| l.starts_with("import ") || l.starts_with("from ")).collect();
        Some(if imports.is_empty() { program.to_string() } else { format!("{}\n{program}", imports.join("\n")) })
    } else {
        Some(format!("{stub}{program}\n"))
    }
}

/// Pass rate (or all-or-nothing, per the settings) of each completion on its
/// reference's unit tests: Python tests in the sandbox, list-language tests
/// in the interpreter; 0 without tests or a program.
#[derive(Clone, Debug, Default)]
pub struct CodeTests {
    /// What one list-language test run may consume.
    pub limits: Limits,
}

impl Reward for CodeTests {
    fn name(&self) -> &str {
        "code"
    }

    fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
        let python = python_outcomes(samples)?;
        let runner = if python.iter().any(Option::is_some) { Some(runner()?) } else { None };
        let all = runner.as_ref().is_some_and(|r| r.settings().score == CodeScore::All);
        Ok(samples
            .iter()
            .zip(python)
            .map(|(s, outcome)| match (&s.reference.python, outcome) {
                (Some(_), Some(o)) if all => f32::from(u8::from(o.all_passed())),
                (Some(_), Some(o)) => o.pass_rate(),
                (Some(_), None) => 0.0,
                (None, _) => pass_rate_with(s.completion, &s.reference.tests, &self.limits),
            })
            .collect())
    }
}

/// The sandbox outcome of each sample whose reference has Python tests.
pub fn python_outcomes(samples: &[Sample]) -> Result<Vec<Option<Outcome>>> {
    let items: Vec<(usize, (&str, &PythonTests))> =
        samples.iter().enumerate().filter_map(|(i, s)| s.reference.python.as_ref().map(|t| (i, (s.completion, t)))).collect();
    let mut out = vec![None; samples.len()];
    if items.is_empty() {
        return Ok(out);
    }
    let flat: Vec<(&str, &PythonTests)> = items.iter().map(|(_, item)| *item).collect();
    for ((i, _), outcome) in items.iter().zip(runner()?.outcomes(&flat)?) {
        out[*i] = outcome;
    }
    Ok(out)
}

/// Share of `tests` the list-language program in `completion` passes, with
/// the default [`Limits`]: 0 when there is no program or no test.
pub fn pass_rate(completion: &str, tests: &[CodeTest]) -> f32 {
    pass_rate_with(completion, tests, &Limits::default())
}

/// [`pass_rate`] with explicit limits. The program is parsed once; a test
/// passes when the program's result on its input equals its expected value.
/// A test whose input or expected value is not a value literal fails (it is
/// the data's fault, but no sample can pass it).
pub fn pass_rate_with(completion: &str, tests: &[CodeTest], limits: &Limits) -> f32 {
    if tests.is_empty() {
        return 0.0;
    }
    let Some(source) = extract_program(completion) else {
        return 0.0;
    };
    // The interpreter returns errors rather than panicking; this is the last
    // line of defence, so that a bug in it costs one sample's score, not the run.
    let passed = catch_unwind(AssertUnwindSafe(|| passed_tests(source, tests, limits))).unwrap_or(0);
    passed as f32 / tests.len() as f32
}

fn passed_tests(source: &str, tests: &[CodeTest], limits: &Limits) -> usize {
    let Ok(program) = Program::parse(source, limits) else {
        return 0;
    };
    tests
        .iter()
        .filter(|test| match (parse_value(&test.input), parse_value(&test.expected)) {
            (Ok(input), Ok(expected)) => program.run(&input, limits).is_ok_and(|out| out == expected),
            _ => false,
        })
        .count()
}

/// The program a completion gives: the content of its last complete
/// `<answer>…</answer>` (itself unwrapped if it is a fenced block), else its
/// last complete fenced ```` ``` ```` block; trimmed, `None` if empty.
pub fn extract_program(completion: &str) -> Option<&str> {
    let program = program_block(completion)?.trim();
    (!program.is_empty()).then_some(program)
}

/// [`extract_program`] for Python, where indentation is syntax: only blank
/// lines and trailing space are trimmed, so a function body written alone
/// keeps its indent.
pub fn extract_python(completion: &str) -> Option<&str> {
    let block = program_block(completion)?.trim_end();
    let start = block.len() - block.trim_start().len();
    // Back to the start of the first non-blank line.
    let line_start = block[..start].rfind('\n').map_or(0, |i| i + 1);
    let program = &block[line_start..];
    (!program.trim().is_empty()).then_some(program)
}

fn program_block(completion: &str) -> Option<&str> {
    let answer = super::answer::answer_tag(completion).map(|inner| last_fenced_block(inner.trim()).unwrap_or(inner));
    answer.or_else(|| last_fenced_block(completion))
}

/// The content of the last closed ```` ``` ```` block, without its language
/// tag (```` ```text ```` on a line of its own); untrimmed.
fn last_fenced_block(text: &str) -> Option<&str> {
    const FENCE: &str = "```";
    let parts: Vec<&str> = text.split(FENCE).collect();
    // Fenced contents are the odd parts; the last part is outside any fence,
    // so a block is closed when an even part follows it.
    let last = (1..parts.len().saturating_sub(1)).rev().find(|i| i % 2 == 1)?;
    let block = parts[last];
    Some(match block.split_once('\n') {
        Some((tag, rest)) if tag.chars().all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c)) => rest,
        _ => block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Reference;

    /// The seed deck's task as an MBPP row would give it.
    fn deck_python() -> Reference {
        let tests = [
            "assert sort_with_42([3, 1, 2]) == [42, 1, 2, 3]",
            "assert sort_with_42([]) == [42]",
            "assert sort_with_42([5, -1, 5]) == [42, -1, 5, 5]",
        ];
        Reference {
            python: Some(PythonTests { tests: tests.map(String::from).to_vec(), ..PythonTests::default() }),
            ..Reference::default()
        }
    }

    #[test]
    fn python_deck_example_correct_frogs_and_forgotten_42() {
        if crate::sandbox::python::test_sandbox(PythonLimits::default()).is_none() {
            return;
        }
        let reference = deck_python();
        let prompt = "Write python code that takes a list of numbers, returns them in a sorted order, but also adds 42 at the start";
        let completions = [
            "<think> Sort, then put 42 first. </think> <answer>\n```python\ndef sort_with_42(xs):\n    return [42] + sorted(xs)\n```\n</answer>",
            "<think> Frogs. </think> <answer> Why are frogs so happy? They eat whatever bugs them. </answer>",
            "<answer>\n```python\ndef sort_with_42(xs):\n    return sorted(xs)\n```\n</answer>",
            "Here it is:\n```python\ndef sort_with_42(xs):\n    return [42] + xs\n```",
            "no program at all",
        ];
        let samples: Vec<Sample> = completions.iter().map(|c| Sample { prompt, completion: c, reference: &reference }).collect();
        assert_eq!(CodeTests::default().score(&samples).unwrap(), [1.0, 0.0, 0.0, 1.0 / 3.0, 0.0]);
        assert_eq!(crate::rewards::Accuracy.score(&samples).unwrap(), [1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn humaneval_bodies_and_whole_functions_both_run() {
        let tests = PythonTests {
            tests: vec!["def check(candidate):\n    assert candidate([2, 1]) == [42, 1, 2]\n\ncheck(sort_with_42)\n".into()],
            entry_point: Some("sort_with_42".into()),
            stub: Some(
                "from typing import List\n\n\ndef sort_with_42(numbers: List[int]) -> List[int]:\n    \"\"\" Sorted, 42 first. \"\"\"\n"
                    .into(),
            ),
            ..PythonTests::default()
        };
        // A body continues the stub, indentation kept.
        let body = python_program("```python\n    return [42] + sorted(numbers)\n```", &tests).unwrap();
        assert!(body.starts_with("from typing import List") && body.ends_with("    return [42] + sorted(numbers)\n"), "{body}");
        // A whole function gets the stub's imports (its `List` annotation needs them).
        let whole = python_program(
            "<answer>\ndef sort_with_42(numbers: List[int]) -> List[int]:\n    return [42] + sorted(numbers)\n</answer>",
            &tests,
        )
        .unwrap();
        assert!(whole.starts_with("from typing import List\ndef sort_with_42"), "{whole}");
        if crate::sandbox::python::test_sandbox(PythonLimits::default()).is_none() {
            return;
        }
        let reference = Reference { python: Some(tests), ..Reference::default() };
        let samples = [
            Sample { prompt: "", completion: "```python\n    return [42] + sorted(numbers)\n```", reference: &reference },
            Sample {
                prompt: "",
                completion: "<answer>\ndef sort_with_42(numbers: List[int]) -> List[int]:\n    return [42] + sorted(numbers)\n</answer>",
                reference: &reference,
            },
            Sample { prompt: "", completion: "```python\n    return numbers\n```", reference: &reference },
        ];
        assert_eq!(CodeTests::default().score(&samples).unwrap(), [1.0, 1.0, 0.0]);
    }

    #[test]
    fn the_runner_reuses_outcomes_and_scores_all_or_nothing_when_asked() {
        if crate::sandbox::python::test_sandbox(PythonLimits::default()).is_none() {
            return;
        }
        let reference = deck_python();
        let tests = reference.python.as_ref().unwrap();
        let runner = CodeRunner::new(CodeSettings { score: CodeScore::All, workers: 2, ..CodeSettings::default() }).unwrap();
        let half = "```python\ndef sort_with_42(xs):\n    return [42] + xs\n```";
        let first = runner.outcomes(&[(half, tests), (half, tests)]).unwrap();
        let again = runner.outcomes(&[(half, tests)]).unwrap();
        assert_eq!(first[0].as_ref().unwrap().passed, 1);
        assert_eq!(again[0].as_ref().unwrap().label, first[0].as_ref().unwrap().label, "the memo's outcome, not a new run");
        assert_eq!(runner.outcomes(&[("no code", tests)]).unwrap()[0], None);
        assert!("all".parse::<CodeScore>().unwrap() == CodeScore::All && "x".parse::<CodeScore>().is_err());
    }

    fn test(input: &str, expected: &str) -> CodeTest {
        CodeTest { input: input.to_string(), expected: expected.to_string() }
    }

    /// The deck's "sorted with 42 in front".
    fn front_42_tests() -> Vec<CodeTest> {
        vec![test("[3, 42, 1]", "[42, 1, 3]"), test("[]", "[]"), test("[5, 4]", "[4, 5]"), test("[42, 7, 42, 0]", "[42, 42, 0, 7]")]
    }

    #[test]
    fn the_deck_example_scores_one_end_to_end() {
        let completion = " <think> Keep the 42s, sort the rest, put the 42s first. </think> <answer> \
                          filter(xs, x => x == 42) ++ sort(filter(xs, x => x != 42)) </answer>";
        assert_eq!(pass_rate(completion, &front_42_tests()), 1.0);
        let reference = Reference { tests: front_42_tests(), ..Reference::default() };
        let samples = [
            Sample { prompt: "Write a program that returns xs sorted with 42 in front", completion, reference: &reference },
            Sample { prompt: "", completion: "<answer> sort(xs) </answer>", reference: &reference },
            Sample { prompt: "", completion: "no answer", reference: &reference },
        ];
        let reward = CodeTests::default();
        assert_eq!(reward.name(), "code");
        assert_eq!(reward.score(&samples).unwrap(), vec![1.0, 0.5, 0.0]);
    }

    #[test]
    fn partly_correct_garbage_and_missing_programs() {
        let tests = front_42_tests();
        // `sort` is right when there is no 42 (two of four tests).
        assert_eq!(pass_rate("<answer>sort(xs)</answer>", &tests), 0.5);
        // Right on the empty list only.
        assert_eq!(pass_rate("<answer>xs</answer>", &tests), 0.25);
        // Right on `[]` and, by luck, on `[5, 4]`.
        assert_eq!(pass_rate("<answer>reverse(xs)</answer>", &tests), 0.5);
        for bad in [
            "",
            "<answer></answer>",
            "<answer>   </answer>",
            "<answer> sort(xs </answer>",
            "<answer> The answer is [42, 1, 3]. </answer>",
            "<answer> def f(xs): return sorted(xs) </answer>",
            "<answer> sort(xs)",
            "sort(xs)",
            "<answer> x => x </answer>",
            "<answer> \u{0} ✓ ``` </answer>",
        ] {
            assert_eq!(pass_rate(bad, &tests), 0.0, "{bad:?}");
        }
        assert_eq!(pass_rate("<answer>sort(xs)</answer>", &[]), 0.0);
        // A test the data got wrong fails for everyone.
        let broken = [test("[1", "[1]"), test("[2, 1]", "[1, 2]")];
        assert_eq!(pass_rate("<answer>sort(xs)</answer>", &broken), 0.5);
    }

    #[test]
    fn loops_and_allocation_bombs_score_zero_quickly() {
        let tests = front_42_tests();
        let start = std::time::Instant::now();
        for bomb in [
            "while(xs, l => true, l => l)",
            "while([1], l => true, l => l ++ l)",
            "range(1000000000000)",
            "let w = f => f(f) in w(w)",
            "while(xs, l => true, l => [l])",
        ] {
            assert_eq!(pass_rate(&format!("<answer> {bomb} </answer>"), &tests), 0.0, "{bomb}");
        }
        let deep = format!("<answer> {}xs{} </answer>", "sort(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(pass_rate(&deep, &tests), 0.0);
        // Four tests each, all stopped by a budget: well under the clock limit on a loaded machine.
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{:?}", start.elapsed());
    }

    #[test]
    fn the_program_is_the_last_answer_or_a_fenced_block() {
        assert_eq!(extract_program(" <think> x </think> <answer> sort(xs) </answer>"), Some("sort(xs)"));
        assert_eq!(extract_program("<answer>a</answer> then <answer>b</answer>"), Some("b"));
        // A truncated last answer: the last complete one counts.
        assert_eq!(extract_program("<answer>a</answer> then <answer>b"), Some("a"));
        assert_eq!(extract_program("<answer>\n```\nsort(xs)\n```\n</answer>"), Some("sort(xs)"));
        assert_eq!(extract_program("Here:\n```text\nreverse(xs)\n```\nDone."), Some("reverse(xs)"));
        assert_eq!(extract_program("```a``` and ```b``` and ```c"), Some("b"));
        assert_eq!(extract_program("```len(xs)```"), Some("len(xs)"));
        assert_eq!(extract_program("```\nmap(xs, x => x + 1)\n```"), Some("map(xs, x => x + 1)"));
        assert_eq!(extract_program("</answer> <answer>"), None);
        assert_eq!(extract_program("``` unclosed"), None);
        assert_eq!(extract_program("nothing here"), None);
        assert_eq!(extract_program("<answer>  </answer>"), None);
        let completion = "<answer>\n# sort, then reverse\nreverse(sort(xs))\n</answer>";
        assert_eq!(pass_rate(completion, &[test("[1, 3, 2]", "[3, 2, 1]")]), 1.0);
    }
}
