//! Rewards for RL (docs/method.md, rewards): each a type behind [`Reward`], scored on
//! a batch of samples, combined per sample with a weight by [`RewardSet`],
//! and logged one by one.
//!
//! Rule-based rewards read the completion and the prompt's [`Reference`]
//! (answer, unit tests, Countdown numbers); a learned reward model
//! ([`crate::reward_model`]) implements the same trait.

use crate::error::{Error, Result};

pub mod accuracy;
pub mod answer;
pub mod code;
pub mod countdown;
pub mod format;
pub mod language;
pub mod math;

pub use accuracy::Accuracy;
pub use code::CodeTests;
pub use countdown::CountdownReward;
pub use format::Format;
pub use language::LanguageConsistency;

pub use crate::data::{CodeTest, Reference};

/// One sample as a reward sees it.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    /// The question as the user asked it (not the rendered template).
    pub prompt: &'a str,
    /// The generated text, without the prompt.
    pub completion: &'a str,
    pub reference: &'a Reference,
}

/// A reward function. Scores are typically in [0, 1]; one per sample, in order.
pub trait Reward: Send + Sync {
    /// The name it is logged under (`accuracy`, `format`, ...).
    fn name(&self) -> &str;
    /// One score per sample.
    fn score(&self, samples: &[Sample]) -> Result<Vec<f32>>;
}

/// A reward with its weight in the sum, and which prompts it judges.
pub struct Weighted {
    pub reward: Box<dyn Reward>,
    pub weight: f32,
    /// Judges general prompts ([`Reference::general`]) and only those;
    /// otherwise reasoning prompts only.
    pub general: bool,
}

/// Every reward's scores for a batch, and their weighted sum per sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scores {
    /// `(name, scores)` in the set's order, unweighted.
    pub by_reward: Vec<(String, Vec<f32>)>,
    /// Σ weight × score, per sample.
    pub total: Vec<f32>,
}

/// The rewards of a run.
#[derive(Default)]
pub struct RewardSet {
    pub rewards: Vec<Weighted>,
}

impl RewardSet {
    pub fn new() -> RewardSet {
        RewardSet::default()
    }

    pub fn with(mut self, reward: impl Reward + 'static, weight: f32) -> RewardSet {
        self.push(Box::new(reward), weight);
        self
    }

    /// A reward for the reasoning prompts.
    pub fn push(&mut self, reward: Box<dyn Reward>, weight: f32) {
        self.rewards.push(Weighted { reward, weight, general: false });
    }

    /// A reward for the general prompts (R1's "RL for all scenarios": a
    /// reward model judges what no rule can).
    pub fn push_general(&mut self, reward: Box<dyn Reward>, weight: f32) {
        self.rewards.push(Weighted { reward, weight, general: true });
    }

    /// Whether some reward judges general prompts.
    pub fn has_general(&self) -> bool {
        self.rewards.iter().any(|w| w.general)
    }

    pub fn names(&self) -> Vec<String> {
        self.rewards.iter().map(|w| w.reward.name().to_string()).collect()
    }

    /// Scores every sample with every reward that judges its kind of
    /// prompt (the others score it 0). A reward that returns the wrong
    /// number of scores, or a non-finite score, is an error naming it.
    pub fn score(&self, samples: &[Sample]) -> Result<Scores> {
        let mut scores = Scores { by_reward: Vec::new(), total: vec![0.0; samples.len()] };
        for w in &self.rewards {
            let name = w.reward.name().to_string();
            let judged: Vec<usize> = (0..samples.len()).filter(|&i| samples[i].reference.general == w.general).collect();
            let subset: Vec<Sample> = judged.iter().map(|&i| samples[i]).collect();
            let got = if subset.is_empty() { Vec::new() } else { w.reward.score(&subset)? };
            if got.len() != subset.len() {
                return Err(Error::Usage(format!("reward {name} gave {} scores for {} samples", got.len(), subset.len())));
            }
            let mut s = vec![0.0; samples.len()];
            for (&i, v) in judged.iter().zip(got) {
                s[i] = v;
            }
            if let Some(bad) = s.iter().find(|v| !v.is_finite()) {
                return Err(Error::Usage(format!("reward {name} gave a non-finite score ({bad})")));
            }
            for (t, v) in scores.total.iter_mut().zip(&s) {
                *t += w.weight * v;
            }
            scores.by_reward.push((name, s));
        }
        Ok(scores)
    }
}

/// The reward names `--reward` accepts (`name` or `name:weight`).
pub const REWARD_NAMES: &[&str] = &["accuracy", "format", "language", "code", "countdown"];

/// A rule-based reward by name.
pub fn reward_by_name(name: &str) -> Result<Box<dyn Reward>> {
    Ok(match name {
        "accuracy" => Box::new(Accuracy),
        "format" => Box::new(Format),
        "language" => Box::new(LanguageConsistency),
        "code" => Box::new(CodeTests::default()),
        "countdown" => Box::new(CountdownReward::default()),
        _ => {
            return Err(Error::Usage(format!(
                "unknown reward `{name}` (built-in: {}; a reward model is `rm:<checkpoint>`)",
                REWARD_NAMES.join(", ")
            )))
        }
    })
}

/// Parses `name` or `name:weight` (weight defaults to 1).
pub fn parse_weighted(spec: &str) -> Result<(String, f32)> {
    match spec.rsplit_once(':') {
        Some((name, w)) if w.parse::<f32>().is_ok() => {
            let weight: f32 = w.parse().unwrap_or(1.0);
            if !weight.is_finite() {
                return Err(Error::Usage(format!("reward `{spec}`: the weight must be finite")));
            }
            Ok((name.to_string(), weight))
        }
        _ => Ok((spec.to_string(), 1.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Constant(&'static str, f32);
    impl Reward for Constant {
        fn name(&self) -> &str {
            self.0
        }
        fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
            Ok(vec![self.1; samples.len()])
        }
    }

    #[test]
    fn rewards_combine_with_weights_and_are_kept_apart() {
        let set = RewardSet::new().with(Constant("a", 1.0), 0.5).with(Constant("b", 2.0), 2.0);
        let r = Reference::default();
        let samples = [Sample { prompt: "q", completion: "c", reference: &r }; 3];
        let s = set.score(&samples).unwrap();
        assert_eq!(s.total, vec![4.5; 3]);
        assert_eq!(s.by_reward[0], ("a".to_string(), vec![1.0; 3]));
        assert_eq!(s.by_reward[1], ("b".to_string(), vec![2.0; 3]));
    }

    #[test]
    fn non_finite_scores_are_errors_naming_the_reward() {
        let set = RewardSet::new().with(Constant("nan", f32::NAN), 1.0);
        let r = Reference::default();
        let err = set.score(&[Sample { prompt: "", completion: "", reference: &r }]).unwrap_err();
        assert!(err.to_string().contains("nan"), "{err}");
    }

    #[test]
    fn general_rewards_judge_general_prompts_only() {
        let mut set = RewardSet::new().with(Constant("rule", 1.0), 1.0);
        set.push_general(Box::new(Constant("rm", 3.0)), 0.5);
        let reasoning = Reference::answer("4");
        let general = Reference { general: true, ..Reference::default() };
        let samples = [
            Sample { prompt: "q", completion: "c", reference: &reasoning },
            Sample { prompt: "q", completion: "c", reference: &general },
        ];
        let s = set.score(&samples).unwrap();
        assert_eq!(s.total, vec![1.0, 1.5]);
        assert_eq!(s.by_reward[0].1, vec![1.0, 0.0]);
        assert_eq!(s.by_reward[1].1, vec![0.0, 3.0]);
        assert!(set.has_general());
    }

    #[test]
    fn weights_parse() {
        assert_eq!(parse_weighted("format:0.5").unwrap(), ("format".into(), 0.5));
        assert_eq!(parse_weighted("accuracy").unwrap(), ("accuracy".into(), 1.0));
        assert_eq!(parse_weighted("rm:runs/rm").unwrap(), ("rm:runs/rm".into(), 1.0));
        assert!(reward_by_name("nope").is_err());
    }
}
