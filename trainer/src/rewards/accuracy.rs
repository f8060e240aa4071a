//! The accuracy reward (docs/method.md, rewards): the completion's final answer
//! ([`super::answer::extract_answer`]) against the reference, compared as
//! values where they are values ([`super::math::compare`]). Python unit tests
//! run in the sandbox ([`super::code`]), list-language ones in the
//! interpreter, Countdown references by their equation checker
//! ([`super::countdown`]).

use super::answer::extract_answer;
use super::math::{compare, Verdict};
use super::{Reward, Sample};
use crate::data::final_answer;
use crate::error::Result;

/// 1 when the sample's answer is right, else 0.
#[derive(Clone, Debug, Default)]
pub struct Accuracy;

impl Reward for Accuracy {
    fn name(&self) -> &str {
        "accuracy"
    }

    fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
        Ok(verdicts(samples)?.into_iter().map(|v| if v == Verdict::Match { 1.0 } else { 0.0 }).collect())
    }
}

/// Each sample's verdict: Python tests run in the sandbox (all must pass;
/// all samples' programs at once, on the code runner's workers), then as
/// [`verdict`] says.
pub fn verdicts(samples: &[Sample]) -> Result<Vec<Verdict>> {
    let python = super::code::python_outcomes(samples)?;
    Ok(samples
        .iter()
        .zip(python)
        .map(|(s, outcome)| match (&s.reference.python, outcome) {
            (Some(_), Some(o)) => verdict_of(o.all_passed()),
            (Some(_), None) => Verdict::Mismatch,
            (None, _) => verdict(s),
        })
        .collect())
}

fn verdict_of(right: bool) -> Verdict {
    if right {
        Verdict::Match
    } else {
        Verdict::Mismatch
    }
}

/// For each sample, whether its answer and reference could not be compared
/// (math that is not a value here): scored 0 and counted as
/// `rewards/accuracy_uncomparable`. Code and Countdown references are
/// always comparable.
pub fn uncomparable(samples: &[Sample]) -> Vec<bool> {
    samples.iter().map(|s| s.reference.python.is_none() && verdict(s) == Verdict::Uncomparable).collect()
}

/// Whether a sample is right ([`verdict`] is [`Verdict::Match`]).
pub fn is_correct(sample: &Sample) -> bool {
    verdict(sample) == Verdict::Match
}

/// A sample's verdict, by the kind of reference it has: unit tests (all
/// must pass; Python ones in the sandbox, one run), Countdown numbers (the
/// equation must reach the target), else the extracted answer against the
/// reference answer ([`compare`]). A sample with no answer to read, or a
/// reference with nothing to check, is wrong (not uncomparable).
pub fn verdict(sample: &Sample) -> Verdict {
    let reference = sample.reference;
    if let Some(tests) = &reference.python {
        return match super::code::runner().and_then(|r| r.outcomes(&[(sample.completion, tests)])) {
            Ok(o) => verdict_of(o.first().and_then(Option::as_ref).is_some_and(|o| o.all_passed())),
            Err(_) => Verdict::Mismatch,
        };
    }
    if !reference.tests.is_empty() {
        return verdict_of(super::code::pass_rate(sample.completion, &reference.tests) >= 1.0);
    }
    if !reference.numbers.is_empty() {
        return verdict_of(
            reference
                .answer
                .as_deref()
                .is_some_and(|target| super::countdown::solves(sample.completion, &reference.numbers, final_answer(target))),
        );
    }
    match (extract_answer(sample.completion), reference.answer.as_deref()) {
        (Some(got), Some(want)) => compare(got, final_answer(want)),
        _ => Verdict::Mismatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Reference;

    #[test]
    fn accuracy_scores_answers_against_references() {
        let plain = Reference::answer("26");
        let gsm = Reference::answer("4 + 3 = 7\n#### 7");
        let none = Reference::default();
        let sample = |completion, reference| Sample { prompt: "q", completion, reference };
        let samples = [
            sample(" <think> 21 + 5 = 26. </think> <answer> 26 </answer>", &plain),
            sample(" <think> 21 + 5 = 25. </think> <answer> 25 </answer>", &plain),
            sample(" <think> so </think> <answer> 7.0 </answer>", &gsm),
            sample(" <think> 26 </think>", &plain),
            sample("<answer>26</answer>", &none),
            sample(r"it is \boxed{26}", &plain),
        ];
        let scores = Accuracy.score(&samples).unwrap();
        assert_eq!(scores, vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
        assert_eq!(Accuracy.name(), "accuracy");
    }
}
