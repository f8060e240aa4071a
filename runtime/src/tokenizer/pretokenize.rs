//! Pre-tokenization: the split regexes of Qwen2, Llama 3 and GPT-2, written
//! out as scanners instead of run by a regex engine.
//!
//! Each pattern is an alternation that some branch of matches at every
//! position, so splitting is "take the first branch that matches here, as the
//! regex engine would" (leftmost-first, greedy, backtracking only where a
//! branch's later part fails). Classes: `\p{L}` is general category Letter and
//! `\p{N}` Number (tables generated from the UCD, see
//! `scripts/make_unicode_tables.py`); `\s` is White_Space
//! (`char::is_whitespace`). Rust's `char::is_alphabetic` is not `\p{L}`: it
//! takes in letter numbers and combining marks.
//!
//! The scanners read any `Iterator<Item = char> + Clone` (a `str`'s chars, or
//! normalized code points) and return piece lengths in characters.

use super::unicode_tables::CLASS_RUNS;
use serde::{Deserialize, Serialize};

/// The split regex the tokenizer was trained with. Variant order is part of
/// the blob format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PreTokenizer {
    /// Qwen2 (and GPT-4's cl100k with single digits):
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    #[default]
    Qwen2,
    /// Llama 3: Qwen2's pattern with `\p{N}{1,3}` (up to three digits a piece).
    Llama3,
    /// GPT-2's byte-level pattern:
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    Gpt2,
}

impl PreTokenizer {
    /// The regex this scanner reproduces, as it appears in `tokenizer.json`.
    pub const fn pattern(self) -> &'static str {
        match self {
            PreTokenizer::Qwen2 => QWEN2_PATTERN,
            PreTokenizer::Llama3 => LLAMA3_PATTERN,
            PreTokenizer::Gpt2 => GPT2_PATTERN,
        }
    }
}

pub const QWEN2_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
pub const LLAMA3_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
pub const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

const OTHER: u32 = 0;
const LETTER: u32 = 1;
const NUMBER: u32 = 2;

#[inline]
fn class(c: char) -> u32 {
    if c.is_ascii() {
        return if c.is_ascii_alphabetic() {
            LETTER
        } else if c.is_ascii_digit() {
            NUMBER
        } else {
            OTHER
        };
    }
    let cp = c as u32;
    let i = CLASS_RUNS.partition_point(|&e| e >> 2 <= cp);
    i.checked_sub(1).map_or(OTHER, |i| CLASS_RUNS[i] & 3)
}

/// `\p{L}`: general category Letter (Lu, Ll, Lt, Lm, Lo).
#[inline]
pub fn is_letter(c: char) -> bool {
    class(c) == LETTER
}

/// `\p{N}`: general category Number (Nd, Nl, No).
#[inline]
pub fn is_number(c: char) -> bool {
    class(c) == NUMBER
}

/// `\s`: White_Space.
#[inline]
fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// `[^\s\p{L}\p{N}]`.
#[inline]
fn is_other(c: char) -> bool {
    !is_space(c) && class(c) == OTHER
}

#[inline]
fn is_newline(c: char) -> bool {
    c == '\r' || c == '\n'
}

/// Advances `it` over at most `max` characters that satisfy `pred`; returns
/// how many it passed.
#[inline]
fn skip_while<I: Iterator<Item = char> + Clone>(it: &mut I, max: usize, pred: impl Fn(char) -> bool) -> usize {
    let mut n = 0;
    while n < max {
        let mut ahead = it.clone();
        match ahead.next() {
            Some(c) if pred(c) => {
                *it = ahead;
                n += 1;
            }
            _ => break,
        }
    }
    n
}

/// `'s|'t|'re|'ve|'m|'ll|'d` after the apostrophe: how many more characters
/// it takes. Case-insensitive matching follows Unicode simple case folding,
/// under which U+017F (long s) is an `s`.
#[inline]
fn contraction<I: Iterator<Item = char> + Clone>(after_quote: &I, case_insensitive: bool) -> Option<usize> {
    let fold = |c: char| match c {
        'A'..='Z' if case_insensitive => c.to_ascii_lowercase(),
        '\u{17F}' if case_insensitive => 's',
        _ => c,
    };
    let mut it = after_quote.clone();
    match fold(it.next()?) {
        's' | 't' | 'm' | 'd' => Some(1),
        'r' | 'v' => (fold(it.next()?) == 'e').then_some(2),
        'l' => (fold(it.next()?) == 'l').then_some(2),
        _ => None,
    }
}

/// The whitespace branches at a whitespace character `first` (`rest` follows
/// it): `\s*[\r\n]+` when `newline_branch`, then `\s+(?!\S)`, then `\s+`.
#[inline]
fn whitespace<I: Iterator<Item = char> + Clone>(first: char, mut rest: I, newline_branch: bool) -> usize {
    let mut run = 1usize;
    let mut through_last_newline = if is_newline(first) { Some(1) } else { None };
    let mut followed = false;
    loop {
        let mut ahead = rest.clone();
        match ahead.next() {
            Some(c) if is_space(c) => {
                run += 1;
                if is_newline(c) {
                    through_last_newline = Some(run);
                }
                rest = ahead;
            }
            Some(_) => {
                followed = true;
                break;
            }
            None => break,
        }
    }
    // `\s*[\r\n]+`: \s* gives back characters until a newline follows, so the
    // piece ends after the run's last CR or LF.
    if newline_branch {
        if let Some(n) = through_last_newline {
            return n;
        }
    }
    // `\s+(?!\S)`: before a non-space, give one character back, so that
    // (say) " word" keeps its space; a single space falls through to `\s+`.
    if followed && run >= 2 {
        run - 1
    } else {
        run
    }
}

/// The length in characters of the piece at the front of `text` (0 when
/// `text` is empty).
pub fn next_piece<I: Iterator<Item = char> + Clone>(kind: PreTokenizer, text: &I) -> usize {
    match kind {
        PreTokenizer::Qwen2 => next_piece_cl100k(text, 1),
        PreTokenizer::Llama3 => next_piece_cl100k(text, 3),
        PreTokenizer::Gpt2 => next_piece_gpt2(text),
    }
}

/// Qwen2 / Llama 3 (`max_digits` 1 / 3).
fn next_piece_cl100k<I: Iterator<Item = char> + Clone>(text: &I, max_digits: usize) -> usize {
    let mut it = text.clone();
    let Some(c0) = it.next() else { return 0 };
    let c1 = it.clone().next();
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if c0 == '\'' {
        if let Some(n) = contraction(&it, true) {
            return 1 + n;
        }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    let class0 = class(c0);
    if class0 == LETTER {
        return 1 + skip_while(&mut it, usize::MAX, is_letter);
    }
    if !is_newline(c0) && class0 != NUMBER && c1.is_some_and(is_letter) {
        return 1 + skip_while(&mut it, usize::MAX, is_letter);
    }
    // \p{N} or \p{N}{1,3}
    if class0 == NUMBER {
        return 1 + skip_while(&mut it, max_digits - 1, is_number);
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    // (The optional space and the first character are both one character.)
    if is_other(c0) || (c0 == ' ' && c1.is_some_and(is_other)) {
        let n = 1 + skip_while(&mut it, usize::MAX, is_other);
        return n + skip_while(&mut it, usize::MAX, is_newline);
    }
    // Only whitespace is left; \s*[\r\n]+ | \s+(?!\S) | \s+
    whitespace(c0, it, true)
}

/// GPT-2 (case-sensitive contractions, optional space before each class run).
fn next_piece_gpt2<I: Iterator<Item = char> + Clone>(text: &I) -> usize {
    let mut it = text.clone();
    let Some(c0) = it.next() else { return 0 };
    let c1 = it.clone().next();
    if c0 == '\'' {
        if let Some(n) = contraction(&it, false) {
            return 1 + n;
        }
    }
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+' in that order: the optional
    // space binds to the class of the character after it.
    for pred in [is_letter as fn(char) -> bool, is_number, is_other] {
        if pred(c0) {
            return 1 + skip_while(&mut it, usize::MAX, pred);
        }
        if c0 == ' ' && c1.is_some_and(pred) {
            return 1 + skip_while(&mut it, usize::MAX, pred);
        }
    }
    whitespace(c0, it, false)
}

/// Splits already-normalized text into pre-tokens, as `str` slices.
pub fn split(kind: PreTokenizer, text: &str) -> Pieces<'_> {
    Pieces { kind, rest: text }
}

/// Iterator returned by [`split`].
#[derive(Clone, Debug)]
pub struct Pieces<'t> {
    kind: PreTokenizer,
    rest: &'t str,
}

impl<'t> Iterator for Pieces<'t> {
    type Item = &'t str;
    fn next(&mut self) -> Option<&'t str> {
        let chars = next_piece(self.kind, &self.rest.chars());
        if chars == 0 {
            return None;
        }
        let bytes = self.rest.char_indices().nth(chars).map_or(self.rest.len(), |(i, _)| i);
        let (piece, rest) = self.rest.split_at(bytes);
        self.rest = rest;
        Some(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn pieces(kind: PreTokenizer, s: &str) -> Vec<&str> {
        split(kind, s).collect()
    }

    #[test]
    fn classes() {
        assert!(is_letter('a') && is_letter('É') && is_letter('中') && is_letter('ſ'));
        assert!(!is_letter('\u{301}') && !is_letter('Ⅻ') && !is_letter('1'));
        assert!(is_number('1') && is_number('Ⅻ') && is_number('½') && is_number('١'));
        assert!(!is_number('a') && !is_number(' '));
        // char::is_alphabetic is not \p{L}: it also takes letter numbers.
        assert!('Ⅻ'.is_alphabetic() && !is_letter('Ⅻ'));
    }

    #[test]
    fn qwen2_examples() {
        let q = PreTokenizer::Qwen2;
        assert_eq!(pieces(q, "Hello world"), ["Hello", " world"]);
        assert_eq!(pieces(q, "x \n\n y  \n z   "), ["x", " \n\n", " y", "  \n", " z", "   "]);
        assert_eq!(pieces(q, " \t\n \t x"), [" \t\n", " \t", " x"]);
        assert_eq!(pieces(q, "a\u{a0}\u{a0}b"), ["a", "\u{a0}", "\u{a0}b"]);
        assert_eq!(pieces(q, "a'ſb I'M"), ["a", "'ſ", "b", " I", "'M"]);
        assert_eq!(pieces(q, "3141 ½"), ["3", "1", "4", "1", " ", "½"]);
        assert_eq!(pieces(q, "(a):\n\n"), ["(a", "):\n\n"]);
        assert_eq!(pieces(PreTokenizer::Llama3, "31415 x"), ["314", "15", " x"]);
        assert_eq!(pieces(q, ""), [] as [&str; 0]);
    }

    #[test]
    fn gpt2_examples() {
        let g = PreTokenizer::Gpt2;
        assert_eq!(pieces(g, "Hello  world's 123 !!x"), ["Hello", " ", " world", "'s", " 123", " !!", "x"]);
        assert_eq!(pieces(g, "I'M\n\nok  "), ["I", "'", "M", "\n", "\n", "ok", "  "]);
    }
}
