//! The language-consistency reward of DeepSeek-R1 (docs/method.md, rewards): the
//! share of the chain of thought's words that are in the prompt's language,
//! which discourages the language mixing R1-Zero showed.
//!
//! Languages are told apart by script, which is all a rule can do cheaply:
//! Latin letters are English, Han characters Chinese (or Japanese), kana
//! Japanese, Hangul Korean. Words are maximal runs of Latin letters (or of
//! letters of another alphabetic script), and every CJK character is a word
//! of its own, since CJK text has no spaces to split on. Digits, punctuation,
//! symbols, Greek letters and lone Latin letters (which reasoning uses as
//! math symbols: π, θ, x, n) are not words.

use super::answer::{think_text, ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN};
use super::{Reward, Sample};
use crate::error::Result;

/// The share of the chain of thought's words in the prompt's language.
///
/// The chain of thought is [`think_text`]; without a closed think block
/// (e.g. a truncated one) it is the whole completion, minus the tags.
/// The prompt's language is [`Lang::detect`]ed, English when undetectable
/// (a prompt of only numbers and symbols). A chain of thought with no words
/// at all scores 1 when it has other content (`7 * 3 = 21.`: pure
/// arithmetic mixes no languages) and 0 when it is blank (nothing to read).
#[derive(Clone, Debug, Default)]
pub struct LanguageConsistency;

impl Reward for LanguageConsistency {
    fn name(&self) -> &str {
        "language"
    }

    fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
        Ok(samples.iter().map(|s| consistency(s.prompt, s.completion)).collect())
    }
}

/// One sample's [`LanguageConsistency`] score.
pub fn consistency(prompt: &str, completion: &str) -> f32 {
    let lang = Lang::detect(prompt).unwrap_or(Lang::English);
    let score = |thought: &str| match language_share(thought, lang) {
        Some(share) => share,
        None if thought.trim().is_empty() => 0.0,
        None => 1.0,
    };
    match think_text(completion) {
        Some(thought) => score(thought),
        None => score(&strip_tags(completion)),
    }
}

fn strip_tags(text: &str) -> String {
    [THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE].iter().fold(text.to_string(), |t, tag| t.replace(tag, " "))
}

/// The share of `text`'s words ([`words`]) that are in `lang`; `None` when it
/// has no words.
pub fn language_share(text: &str, lang: Lang) -> Option<f32> {
    let (mut total, mut in_lang) = (0usize, 0usize);
    for (_, script) in words(text) {
        total += 1;
        in_lang += usize::from(lang.writes(script));
    }
    (total > 0).then(|| in_lang as f32 / total as f32)
}

/// The writing system of a letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Script {
    Latin,
    /// Chinese characters (hanzi, kanji, hanja).
    Han,
    /// Japanese hiragana and katakana.
    Kana,
    Hangul,
    /// Letters of any other alphabet (Cyrillic, Arabic, …): words in none of
    /// the [`Lang`]s.
    Other,
}

impl Script {
    /// The script of `c`, or `None` when it is not a letter (or is Greek).
    pub fn of(c: char) -> Option<Script> {
        let script = match c {
            'a'..='z' | 'A'..='Z' => Script::Latin,
            '\u{0370}'..='\u{03FF}' | '\u{1F00}'..='\u{1FFF}' => return None, // Greek: math symbols
            '\u{00C0}'..='\u{024F}'
            | '\u{1E00}'..='\u{1EFF}'
            | '\u{FF21}'..='\u{FF3A}' // fullwidth A-Z
            | '\u{FF41}'..='\u{FF5A}' => Script::Latin, // fullwidth a-z
            '\u{3005}'
            | '\u{3400}'..='\u{4DBF}'
            | '\u{4E00}'..='\u{9FFF}'
            | '\u{F900}'..='\u{FAFF}'
            | '\u{20000}'..='\u{3134F}' => Script::Han,
            '\u{3040}'..='\u{309F}' | '\u{30A0}'..='\u{30FF}' | '\u{31F0}'..='\u{31FF}' | '\u{FF66}'..='\u{FF9F}' => {
                Script::Kana
            }
            '\u{1100}'..='\u{11FF}'
            | '\u{3130}'..='\u{318F}'
            | '\u{A960}'..='\u{A97F}'
            | '\u{AC00}'..='\u{D7FF}'
            | '\u{FFA0}'..='\u{FFDC}' => Script::Hangul,
            _ => Script::Other,
        };
        // The ranges above hold a few non-letters (× and ÷ among the Latin,
        // the katakana middle dot ・): only letters make words. The
        // prolonged-sound mark ー is a (modifier) letter, so it stays.
        c.is_alphabetic().then_some(script)
    }

    /// Whether each character is a word of its own.
    fn is_cjk(self) -> bool {
        matches!(self, Script::Han | Script::Kana | Script::Hangul)
    }
}

/// The words of `text`, in order, each with its script: every CJK character
/// is a word; other words are maximal runs of letters of one script, except
/// lone Latin letters, taken for math variables (`x`, `n`), which reasoning
/// in any language uses (English loses only "a" and "I" by it).
pub fn words(text: &str) -> Words<'_> {
    Words { rest: text }
}

/// The iterator [`words`] returns.
#[derive(Clone, Debug)]
pub struct Words<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Words<'a> {
    type Item = (&'a str, Script);

    fn next(&mut self) -> Option<(&'a str, Script)> {
        loop {
            let (start, script) = self.rest.char_indices().find_map(|(i, c)| Script::of(c).map(|s| (i, s)))?;
            let rest = &self.rest[start..];
            let first_len = rest.chars().next().map_or(0, char::len_utf8);
            let len = if script.is_cjk() {
                first_len
            } else {
                rest.char_indices().find(|&(_, c)| Script::of(c) != Some(script)).map_or(rest.len(), |(i, _)| i)
            };
            self.rest = &rest[len..];
            if script == Script::Latin && len == first_len {
                continue; // a lone letter: a variable
            }
            return Some((&rest[..len], script));
        }
    }
}

/// A language, as far as its script tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Latin script (any Latin-script language counts as English).
    English,
    /// Han characters without (many) kana.
    Chinese,
    /// Han characters with kana.
    Japanese,
    /// Hangul.
    Korean,
}

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::English => "English",
            Lang::Chinese => "Chinese",
            Lang::Japanese => "Japanese",
            Lang::Korean => "Korean",
        }
    }

    /// Whether a word in `script` belongs to this language. Han characters
    /// belong to Japanese as well as Chinese (kanji); Korean is Hangul only.
    pub fn writes(self, script: Script) -> bool {
        match self {
            Lang::English => script == Script::Latin,
            Lang::Chinese => script == Script::Han,
            Lang::Japanese => matches!(script, Script::Han | Script::Kana),
            Lang::Korean => script == Script::Hangul,
        }
    }

    /// The language most of `text`'s letters are written in, counting
    /// characters (not words: one Chinese word is one character, one English
    /// word about five, and a prompt's language is what most of it is
    /// written in). Han with kana making up at least a tenth of the Han and
    /// kana is Japanese (Japanese prose is largely kana, Chinese has none).
    /// Letters of other scripts are ignored; `None` when no letter is
    /// left. Ties go to English, then Chinese/Japanese, then Korean.
    pub fn detect(text: &str) -> Option<Lang> {
        let (mut latin, mut han, mut kana, mut hangul) = (0usize, 0usize, 0usize, 0usize);
        for c in text.chars() {
            match Script::of(c) {
                Some(Script::Latin) => latin += 1,
                Some(Script::Han) => han += 1,
                Some(Script::Kana) => kana += 1,
                Some(Script::Hangul) => hangul += 1,
                Some(Script::Other) | None => {}
            }
        }
        let cjk = han + kana;
        if latin == 0 && cjk == 0 && hangul == 0 {
            None
        } else if latin >= cjk && latin >= hangul {
            Some(Lang::English)
        } else if cjk >= hangul {
            Some(if kana * 10 >= cjk { Lang::Japanese } else { Lang::Chinese })
        } else {
            Some(Lang::Korean)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Reference;

    fn word_list(text: &str) -> Vec<(&str, Script)> {
        words(text).collect()
    }

    #[test]
    fn words_are_letter_runs_and_single_cjk_characters() {
        use Script::*;
        assert_eq!(word_list("Let x2 be café's"), vec![("Let", Latin), ("be", Latin), ("café", Latin)]);
        assert_eq!(word_list("所以x=42, ok"), vec![("所", Han), ("以", Han), ("ok", Latin)]);
        assert_eq!(
            word_list("答えはです한국어"),
            vec![("答", Han), ("え", Kana), ("は", Kana), ("で", Kana), ("す", Kana), ("한", Hangul), ("국", Hangul), ("어", Hangul)]
        );
        assert_eq!(word_list("Привет world"), vec![("Привет", Other), ("world", Latin)]);
        assert_eq!(word_list("7 × 3 = 21, π·r² ≈ 3.14 ÷ 2 !?"), vec![]);
        assert_eq!(word_list(""), vec![]);
    }

    #[test]
    fn prompt_language_is_the_majority_script() {
        assert_eq!(Lang::detect("Compute 7 * 3 + 5"), Some(Lang::English));
        assert_eq!(Lang::detect("计算 7 * 3 + 5"), Some(Lang::Chinese));
        assert_eq!(Lang::detect("東京都の人口は？"), Some(Lang::Japanese));
        assert_eq!(Lang::detect("7 곱하기 3은?"), Some(Lang::Korean));
        assert_eq!(Lang::detect("What does 你好 mean?"), Some(Lang::English), "letters, not words");
        assert_eq!(Lang::detect("你好你好你好 means hi"), Some(Lang::English), "7 letters beat 6 characters");
        assert_eq!(Lang::detect("7 * 3 + 5 = ?"), None);
        assert_eq!(Lang::detect("Привет"), None);
        assert_eq!(Lang::detect(""), None);
    }

    #[test]
    fn english_prompt_with_mixed_thought_scores_the_english_share() {
        // 4 English words, 4 Chinese characters.
        let completion = "<think> First add 所以 these 两个 numbers </think> <answer> 5 </answer>";
        assert_eq!(consistency("What is 2 + 3?", completion), 0.5);
        assert_eq!(consistency("What is 2 + 3?", "<think> add them: 2 + 3 = 5 </think><answer>5</answer>"), 1.0);
        assert_eq!(consistency("What is 2 + 3?", "<think> 二加三等于五 </think><answer>5</answer>"), 0.0);
    }

    #[test]
    fn chinese_prompt_counts_han_characters() {
        let prompt = "计算 2 + 3";
        assert_eq!(consistency(prompt, "<think> 二加三 is five </think><answer>5</answer>"), 0.6);
        assert_eq!(consistency(prompt, "<think> 二加三等于五 </think><answer>5</answer>"), 1.0);
        assert_eq!(consistency("東京の人口は？", "<think> 東京の人 population </think>"), 0.8);
    }

    #[test]
    fn thought_without_words_or_without_a_think_block() {
        let prompt = "Compute 7 * 3 + 5";
        assert_eq!(consistency(prompt, " <think> 7 * 3 = 21. 21 + 5 = 26. </think> <answer> 26 </answer>"), 1.0);
        assert_eq!(consistency(prompt, "<think> </think><answer>26</answer>"), 0.0, "blank thought");
        assert_eq!(consistency(prompt, ""), 0.0);
        // No closed think block: the whole completion, tags aside.
        assert_eq!(consistency(prompt, "<think> so then 所以 <answer>26</answer>"), 0.5);
        assert_eq!(consistency(prompt, "<answer>26</answer>"), 1.0, "the tag names are not words");
        // Undetectable prompt language: English.
        assert_eq!(consistency("2 + 3", "<think> 加 add </think>"), 0.5);
    }

    #[test]
    fn reward_scores_each_sample() {
        let r = Reference::default();
        let samples = [
            Sample { prompt: "Add 2 and 3", completion: "<think> two plus three </think>", reference: &r },
            Sample { prompt: "Add 2 and 3", completion: "<think> 二加三 </think>", reference: &r },
        ];
        assert_eq!(LanguageConsistency.score(&samples).unwrap(), vec![1.0, 0.0]);
        assert_eq!(LanguageConsistency.name(), "language");
    }

    #[test]
    fn long_text_is_linear() {
        let text = "所以 because ".repeat(100_000);
        assert_eq!(language_share(&text, Lang::English), Some(1.0 / 3.0));
    }
}
