//! How worked solutions are written in a pre-training corpus. RL amplifies
//! behaviours a base model already has (Gandhi et al. 2025, "Cognitive
//! Behaviors that Enable Self-Improving Reasoners"), so a base meant to show
//! R1's effects is pre-trained on solutions in several styles:
//!
//! - bare: the answer alone, `The answer is 17.` (short, and often wrong when
//!   the sum is not one step);
//! - steps: one operation per step, `3 + 5 = 8. 8 + 2 = 10. …`;
//! - checked: a quick guess at the answer, doubted and worked out step by
//!   step (`The answer is 16? Wait, let me check step by step. 3 + 5 = 8. …
//!   So the answer is 17.`): the guess is often off, as the model's own bare
//!   answers are, and the steps put it right. This is the behaviour behind
//!   the "aha moment" (doubt, then recompute), with the reflective words it
//!   is counted by, and the longest style;
//! - mixed: steps some of which are written in a second language (`8 加 2
//!   等于 10。`): the language mixing R1-Zero shows and the language reward
//!   removes.
//!
//! The styles apply to solutions whose steps read `a op b = c.` (the
//! arithmetic task's).

use aha_runtime::sampler::Rng;
use serde::{Deserialize, Serialize};

use super::Problem;

/// Shares of each style in a corpus (normalised when drawn).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StyleMix {
    pub bare: f32,
    pub steps: f32,
    pub checked: f32,
    pub mixed: f32,
}

impl Default for StyleMix {
    fn default() -> Self {
        StyleMix { bare: 0.45, steps: 0.25, checked: 0.15, mixed: 0.15 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Bare,
    Steps,
    Checked,
    Mixed,
}

impl StyleMix {
    /// A style drawn with these shares (steps when all are zero).
    pub fn draw(&self, rng: &mut Rng) -> Style {
        let weights = [self.bare, self.steps, self.checked, self.mixed].map(|w| w.max(0.0));
        let total: f32 = weights.iter().sum();
        if total <= 0.0 {
            return Style::Steps;
        }
        let mut x = rng.next_f32() * total;
        for (w, style) in weights.iter().zip([Style::Bare, Style::Steps, Style::Checked, Style::Mixed]) {
            if x < *w {
                return style;
            }
            x -= w;
        }
        Style::Mixed
    }
}

/// One step `a op b = c`, parsed from a solution.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Step {
    a: String,
    op: String,
    b: String,
    c: String,
}

impl Step {
    fn parse(text: &str) -> Option<Step> {
        let t = text.trim().trim_end_matches('.');
        let (lhs, c) = t.split_once(" = ")?;
        let mut parts = lhs.split(' ');
        let (a, op, b) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !["+", "-", "*"].contains(&op) {
            return None;
        }
        Some(Step { a: a.into(), op: op.into(), b: b.into(), c: c.trim().into() })
    }

    fn english(&self) -> String {
        format!("{} {} {} = {}.", self.a, self.op, self.b, self.c)
    }

    fn chinese(&self) -> String {
        let op = match self.op.as_str() {
            "+" => "加",
            "-" => "减",
            _ => "乘",
        };
        format!("{} {op} {} 等于 {}。", self.a, self.b, self.c)
    }
}

/// The steps of a solution, or `None` when it is not a list of `a op b = c.`.
fn steps(solution: &str) -> Option<Vec<Step>> {
    let pieces: Vec<&str> = solution.split_inclusive('.').map(str::trim).filter(|p| !p.is_empty()).collect();
    pieces.iter().map(|p| Step::parse(p)).collect()
}

/// The reasoning (inside `<think>`) of `problem` in `style`. A solution that
/// is not a list of steps is written as it is for every style but bare.
pub fn styled_thought(problem: &Problem, style: Style, rng: &mut Rng) -> String {
    let bare = format!("The answer is {}.", problem.answer);
    let Some(steps) = steps(&problem.solution).filter(|s| !s.is_empty()) else {
        return if style == Style::Bare { bare } else { problem.solution.clone() };
    };
    match style {
        Style::Bare => bare,
        Style::Steps => steps.iter().map(Step::english).collect::<Vec<_>>().join(" "),
        Style::Checked => {
            // The guess is off by one to four three times in four, as a
            // one-shot sum often is, and the steps always end at the answer:
            // were the guess right as often as not, the steps would learn to
            // lean towards it.
            let guess = match problem.answer.parse::<i64>() {
                Ok(c) if rng.next_u32() % 4 != 0 => {
                    let off = 1 + (rng.next_u32() % 4) as i64;
                    if rng.next_u32() % 2 == 0 { c + off } else { c - off }.to_string()
                }
                _ => problem.answer.clone(),
            };
            let worked: Vec<String> = steps.iter().map(Step::english).collect();
            format!("The answer is {guess}? Wait, let me check step by step. {} So the answer is {}.", worked.join(" "), problem.answer)
        }
        Style::Mixed => {
            // At least one step in the second language, each other one by a coin.
            let forced = (rng.next_u32() as usize) % steps.len();
            let written: Vec<String> =
                steps.iter().enumerate().map(|(i, s)| if i == forced || rng.next_u32() % 2 == 0 { s.chinese() } else { s.english() }).collect();
            written.join(" ")
        }
    }
}

/// The R1 reply of `problem` in `style`: `<think> … </think> <answer> … </answer>`.
pub fn styled_completion(problem: &Problem, style: Style, rng: &mut Rng) -> String {
    format!("<think> {} </think> <answer> {} </answer>", styled_thought(problem, style, rng), problem.answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewards::format::reflection_words;
    use crate::rewards::language::consistency;
    use crate::tasks::{Arith, Task};

    fn sums() -> Arith {
        Arith { max_operand: 9, min_operands: 3, max_operands: 5, parentheses: 0.0, operations: "+".into() }
    }

    #[test]
    fn each_style_reads_as_described_and_keeps_the_answer() {
        let mut rng = Rng::new(4);
        for _ in 0..50 {
            let p = sums().problem(&mut rng);
            assert!(p.question.starts_with("Compute ") && !p.question.contains('*') && !p.question.contains('-'));
            let answer = |text: &str| crate::rewards::answer::extract_answer(text).map(str::to_string);
            for style in [Style::Bare, Style::Steps, Style::Checked, Style::Mixed] {
                let text = styled_completion(&p, style, &mut rng);
                assert_eq!(answer(&text), Some(p.answer.clone()), "{style:?}: {text}");
                assert!(crate::rewards::format::is_well_formed(&text), "{style:?}: {text}");
                let lang = consistency(&p.question, &text);
                let reflective = reflection_words(&text);
                match style {
                    Style::Bare => assert!(text.contains("The answer is") && lang == 1.0 && reflective == 0),
                    Style::Steps => assert!(lang == 1.0 && reflective == 0 && text.matches('=').count() >= 2, "{text}"),
                    Style::Checked => assert!(lang == 1.0 && reflective >= 1 && text.contains("Wait,") && text.contains(&format!("So the answer is {}.", p.answer)), "{text}"),
                    Style::Mixed => assert!(lang < 0.5 && text.contains("等于"), "{lang}: {text}"),
                }
            }
        }
    }

    #[test]
    fn the_mix_draws_each_style_in_proportion() {
        let mix = StyleMix { bare: 0.5, steps: 0.25, checked: 0.25, mixed: 0.0 };
        let mut rng = Rng::new(1);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[mix.draw(&mut rng) as usize] += 1;
        }
        assert!((1850..2150).contains(&counts[0]) && counts[3] == 0, "{counts:?}");
        assert_eq!(StyleMix { bare: 0.0, steps: 0.0, checked: 0.0, mixed: 0.0 }.draw(&mut rng), Style::Steps);
    }

    #[test]
    fn a_solution_without_steps_is_kept_as_written() {
        let p = Problem::new("Sort [2, 1]".into(), "[1, 2]".into(), "sorted(xs)".into());
        let mut rng = Rng::new(0);
        assert_eq!(styled_thought(&p, Style::Checked, &mut rng), "sorted(xs)");
        assert_eq!(styled_thought(&p, Style::Bare, &mut rng), "The answer is [1, 2].");
    }
}
