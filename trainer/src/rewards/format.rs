//! The format reward (docs/method.md, rewards, DeepSeek-R1-Zero): the completion is
//! one `<think>…</think>` followed by one `<answer>…</answer>` and nothing
//! else. Also the count of reflective phrases ("wait", "let me check"), the
//! "aha moment" metric of docs/method.md, what to watch.

use super::answer::{ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN};
use super::{Reward, Sample};
use crate::error::Result;

/// 1 when the completion is well formed ([`is_well_formed`]), else 0.
#[derive(Clone, Debug, Default)]
pub struct Format;

impl Reward for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
        Ok(samples.iter().map(|s| if is_well_formed(s.completion) { 1.0 } else { 0.0 }).collect())
    }
}

const TAGS: [&str; 4] = [THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE];

/// Whether `completion`, trimmed, is exactly `<think>T</think>`, optional
/// whitespace, `<answer>A</answer>`, where neither T nor A holds any of the
/// four tags (no nesting, no second block) and A is not blank: an answer
/// tag with nothing in it has no answer to grade. T may be empty, as in the
/// reference regex `^<think>.*?</think>\s*<answer>.*?</answer>$` (TRL), which
/// this otherwise tightens only by refusing extra tags inside the blocks.
pub fn is_well_formed(completion: &str) -> bool {
    let Some(rest) = completion.trim().strip_prefix(THINK_OPEN) else {
        return false;
    };
    let Some((think, rest)) = rest.split_once(THINK_CLOSE) else {
        return false;
    };
    let Some(answer) = rest.trim_start().strip_prefix(ANSWER_OPEN).and_then(|r| r.strip_suffix(ANSWER_CLOSE)) else {
        return false;
    };
    let has_tag = |text: &str| TAGS.iter().any(|tag| text.contains(tag));
    !has_tag(think) && !has_tag(answer) && !answer.trim().is_empty()
}

/// The reflective phrases [`reflection_words`] counts, as word sequences.
/// Hyphens and apostrophes split words, so `double-check` is
/// `double check`, `re-evaluate` is `re evaluate` and `let's` is `let s`.
/// Words match whole and case-insensitively; `hmm` also matches `hmmm`,
/// `hmmmm`, ….
pub const REFLECTIVE_PHRASES: &[&[&str]] = &[
    &["wait"],
    &["hmm"],
    &["let", "me", "check"],
    &["let", "me", "verify"],
    &["let", "s", "check"],
    &["let", "s", "verify"],
    &["double", "check"],
    &["recheck"],
    &["re", "check"],
    &["reevaluate"],
    &["re", "evaluate"],
    &["reexamine"],
    &["re", "examine"],
    &["rethink"],
    &["verify"],
    &["on", "second", "thought"],
];

/// How many reflective phrases ([`REFLECTIVE_PHRASES`]) `text` contains,
/// counted left to right without overlap (the longest phrase at a word wins,
/// so `let me verify` is one, not two). `Wait, let me check` is 2;
/// `awaiting` and `verified` are 0.
pub fn reflection_words(text: &str) -> usize {
    let mut words = Words(text);
    let mut count = 0;
    while let Some(word) = words.next() {
        // Lookahead by cloning the cursor (`words` is past `word`): no
        // allocation, and at most a phrase's length of words per word.
        let longest = REFLECTIVE_PHRASES
            .iter()
            .filter(|phrase| same_word(word, phrase[0]) && follows(words.clone(), &phrase[1..]))
            .map(|phrase| phrase.len())
            .max();
        if let Some(len) = longest {
            count += 1;
            for _ in 1..len {
                words.next();
            }
        }
    }
    count
}

/// Whether the next words are `phrase`.
fn follows(mut words: Words, phrase: &[&str]) -> bool {
    phrase.iter().all(|want| words.next().is_some_and(|word| same_word(word, want)))
}

fn same_word(word: &str, want: &str) -> bool {
    if want == "hmm" {
        let bytes = word.as_bytes();
        return bytes.len() >= 3 && bytes[0].eq_ignore_ascii_case(&b'h') && bytes[1..].iter().all(|b| b.eq_ignore_ascii_case(&b'm'));
    }
    word.eq_ignore_ascii_case(want)
}

/// Words: maximal runs of alphanumeric characters.
#[derive(Clone)]
struct Words<'a>(&'a str);

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let start = self.0.find(char::is_alphanumeric)?;
        let rest = &self.0[start..];
        let len = rest.find(|c: char| !c.is_alphanumeric()).unwrap_or(rest.len());
        self.0 = &rest[len..];
        Some(&rest[..len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Reference;

    #[test]
    fn well_formed_completions() {
        for ok in [
            " <think> 7 * 3 = 21. 21 + 5 = 26. </think> <answer> 26 </answer>",
            "<think>a</think><answer>b</answer>",
            "\n<think>\nmulti\nline\n</think>\n\n<answer>\n26\n</answer>\n",
            "<think></think> <answer>26</answer>",
            "<think> 思考 </think> <answer> 答案 </answer>",
            "<think> a < b and c > d </think> <answer> <3 </answer>",
        ] {
            assert!(is_well_formed(ok), "{ok:?}");
        }
    }

    #[test]
    fn malformed_completions() {
        for bad in [
            "",
            "26",
            "<answer>26</answer>",
            "<think>no answer</think>",
            "<think>unclosed <answer>26</answer>",
            "<answer>26</answer><think>backwards</think>",
            "<think>a</think> <answer>  </answer>",
            "<think>a</think> text <answer>26</answer>",
            "preamble <think>a</think><answer>26</answer>",
            "<think>a</think><answer>26</answer> trailing",
            "<think>a</think><answer>26</answer><answer>27</answer>",
            "<think>a</think><think>b</think><answer>26</answer>",
            "<think>a <think> b</think><answer>26</answer>",
            "<think>a</think><answer><answer>26</answer>",
            "<think>a</think><answer>26</answer></answer>",
            "<think>a</think><answer>26 </think></answer>",
            "<think>a</think><answer>26",
            "<THINK>a</THINK><ANSWER>26</ANSWER>",
        ] {
            assert!(!is_well_formed(bad), "{bad:?}");
        }
    }

    #[test]
    fn format_reward_scores_each_sample() {
        let r = Reference::default();
        let samples = [
            Sample { prompt: "q", completion: "<think>a</think><answer>b</answer>", reference: &r },
            Sample { prompt: "q", completion: "<answer>b</answer>", reference: &r },
        ];
        assert_eq!(Format.score(&samples).unwrap(), vec![1.0, 0.0]);
        assert_eq!(Format.name(), "format");
    }

    #[test]
    fn reflective_phrases_are_counted_as_whole_words() {
        assert_eq!(reflection_words("Wait, let me check"), 2);
        assert_eq!(reflection_words("awaiting verified rewait checkmate"), 0);
        assert_eq!(reflection_words("let me verify"), 1, "one phrase, not also `verify`");
        assert_eq!(reflection_words("WAIT. Hmmm... Let's double-check: re-evaluate, recheck."), 5);
        assert_eq!(reflection_words("On second thought, hm, h, mmm"), 1);
        assert_eq!(reflection_words("wait wait wait"), 3);
        assert_eq!(reflection_words("let me"), 0);
        assert_eq!(reflection_words("let me think"), 0);
        assert_eq!(reflection_words("等等 wait，让我检查"), 1);
        assert_eq!(reflection_words(""), 0);
        assert_eq!(reflection_words("wait2 wait_"), 1, "digits join a word; `_` does not");
    }

    #[test]
    fn reflection_counting_is_linear() {
        let text = "let me ".repeat(100_000) + "check";
        assert_eq!(reflection_words(&text), 1);
    }
}
