//! The code reward (R1-METHOD.md §4): the program in a completion is run
//! against the prompt's unit tests in the [`crate::sandbox`], and the score is
//! the share of tests it passes.
//!
//! This is the graded signal. All-or-nothing is the accuracy reward's job:
//! [`crate::rewards::Accuracy`] calls [`pass_rate`] and counts a completion
//! correct when it is 1.0, so a run can weight partial credit and full
//! correctness separately.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{Reward, Sample};
use crate::data::CodeTest;
use crate::error::Result;
use crate::sandbox::{parse_value, Limits, Program};

/// Pass rate of the completion's program on the reference's unit tests.
#[derive(Clone, Debug, Default)]
pub struct CodeTests {
    /// What one test run may consume.
    pub limits: Limits,
}

impl Reward for CodeTests {
    fn name(&self) -> &str {
        "code"
    }

    fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
        Ok(samples.iter().map(|s| pass_rate_with(s.completion, &s.reference.tests, &self.limits)).collect())
    }
}

/// Share of `tests` the program in `completion` passes, with the default
/// [`Limits`]: 0 when there is no program or no test.
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
    let answer = super::answer::answer_tag(completion).map(|inner| {
        let inner = inner.trim();
        last_fenced_block(inner).unwrap_or(inner)
    });
    let program = answer.or_else(|| last_fenced_block(completion))?.trim();
    (!program.is_empty()).then_some(program)
}

/// The content of the last closed ```` ``` ```` block, without its language
/// tag (```` ```text ```` on a line of its own).
fn last_fenced_block(text: &str) -> Option<&str> {
    const FENCE: &str = "```";
    let parts: Vec<&str> = text.split(FENCE).collect();
    // Fenced contents are the odd parts; the last part is outside any fence,
    // so a block is closed when an even part follows it.
    let last = (1..parts.len().saturating_sub(1)).rev().find(|i| i % 2 == 1)?;
    let block = parts[last];
    let block = match block.split_once('\n') {
        Some((tag, rest)) if tag.chars().all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c)) => rest,
        _ => block,
    };
    Some(block.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Reference;

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
