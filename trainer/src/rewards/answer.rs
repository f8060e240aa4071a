//! Reading answers (docs/method.md, rewards): the final answer is read from the
//! completion's last `<answer>…</answer>` (or, failing that, its last
//! `\boxed{…}`) and compared with the reference: numbers as numbers, exactly
//! where possible, the LaTeX forms math datasets use as values
//! ([`super::math`]), anything else as normalised text. The accuracy reward
//! ([`super::accuracy`]) and the other rewards read completions through
//! these functions.
//!
//! Everything here reads untrusted model output: no input panics, overflows,
//! or takes more than linear time. It needs only `std`, [`super::math`] and
//! the GSM8K marker rule ([`crate::data::final_answer`]), so the fuzz targets
//! (`fuzz/`) compile it without the rest of the trainer.

use super::math::{compare, Verdict};
use crate::data::final_answer;

pub const THINK_OPEN: &str = "<think>";
pub const THINK_CLOSE: &str = "</think>";
pub const ANSWER_OPEN: &str = "<answer>";
pub const ANSWER_CLOSE: &str = "</answer>";

// ---------------------------------------------------------------------------
// Reading the completion

/// The final answer of a completion, trimmed: the content of the last
/// complete `<answer>…</answer>` pair, else of the last complete `\boxed{…}`,
/// else `None`.
///
/// A "pair" is an opening tag followed by a closing tag with no other answer
/// tag between them, so stray, nested or unclosed tags never swallow text:
/// `<answer> 1 <answer> 2 </answer> </answer>` answers `2`, and
/// `<answer> 1 </answer> <answer> 2` answers `1`. Where the tags sit relative
/// to `<think>` does not matter.
pub fn extract_answer(completion: &str) -> Option<&str> {
    answer_tag(completion).or_else(|| last_boxed(completion)).map(str::trim)
}

/// The content of the first `<think>…</think>`, trimmed; `None` when there is
/// no opening tag or it is never closed (a truncated chain of thought).
pub fn think_text(completion: &str) -> Option<&str> {
    let start = completion.find(THINK_OPEN)? + THINK_OPEN.len();
    let len = completion[start..].find(THINK_CLOSE)?;
    Some(completion[start..start + len].trim())
}

/// The content of the last opening `<answer>` immediately followed (as far
/// as answer tags go) by a closing one, untrimmed: what every reward that
/// reads the answer tag reads (a trailing unclosed `<answer>` is a truncated
/// reply and is ignored). One pass over the `<`s.
pub fn answer_tag(text: &str) -> Option<&str> {
    let mut open: Option<usize> = None; // where the content of the latest unclosed `<answer>` starts
    let mut last = None;
    let mut at = 0;
    while let Some(i) = text[at..].find('<').map(|i| at + i) {
        let rest = &text[i..];
        if rest.starts_with(ANSWER_OPEN) {
            open = Some(i + ANSWER_OPEN.len());
            at = i + ANSWER_OPEN.len();
        } else if rest.starts_with(ANSWER_CLOSE) {
            if let Some(start) = open.take() {
                last = Some(&text[start..i]);
            }
            at = i + ANSWER_CLOSE.len();
        } else {
            at = i + 1;
        }
    }
    last
}

/// The content of the complete `\boxed{…}` that opens last (braces balanced,
/// nested braces allowed; `\{` and `\}` are literal braces and do not
/// count). One pass over the bytes, keeping only the open boxes on a stack.
pub fn last_boxed(text: &str) -> Option<&str> {
    const BOXED: &[u8] = b"\\boxed{";
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut boxes: Vec<(usize, usize)> = Vec::new(); // (brace depth inside the box, content start)
    let mut best: Option<(usize, usize)> = None; // (content start, content end)
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes[i..].starts_with(BOXED) => {
                depth += 1;
                boxes.push((depth, i + BOXED.len()));
                i += BOXED.len();
                continue;
            }
            // An escaped brace or backslash is a literal character.
            b'\\' if matches!(bytes.get(i + 1), Some(b'{' | b'}' | b'\\')) => i += 1,
            b'{' => depth += 1,
            b'}' if depth > 0 => {
                if boxes.last().is_some_and(|&(d, _)| d == depth) {
                    if let Some((_, start)) = boxes.pop() {
                        if best.is_none_or(|(s, _)| start > s) {
                            best = Some((start, i));
                        }
                    }
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    // Both ends sit next to ASCII braces, so they are char boundaries.
    best.map(|(start, end)| &text[start..end])
}

// ---------------------------------------------------------------------------
// Comparing answers

/// Whether an extracted answer matches the reference answer. The reference
/// may be a GSM8K solution ending `#### 42`: only what follows the marker
/// counts. Values (numbers, and the LaTeX forms [`super::math`] reads) are
/// compared as values; words as normalised text ([`normalize_text`]); an
/// empty answer never matches, nor does math that cannot be evaluated unless
/// its text is the same ([`super::math::compare`] tells that case apart).
pub fn answers_match(got: &str, reference: &str) -> bool {
    compare(got, final_answer(reference)) == Verdict::Match
}

/// Text as compared when an answer is not a number: math and `\text{}`
/// wrappers removed (see [`strip_wrappers`]), one trailing `.` dropped, lower-cased,
/// whitespace runs collapsed to one space. Deliberately simple: `x+1` and
/// `x + 1` differ.
pub fn normalize_text(text: &str) -> String {
    let text = strip_wrappers(text);
    let text = text.strip_suffix('.').unwrap_or(text);
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// How many wrappers [`strip_wrappers`] removes at most: enough for any real answer,
/// and it keeps the work linear on adversarial nesting.
const MAX_WRAPPERS: usize = 8;

/// `text` trimmed, without wrappers that enclose all of it: math delimiters
/// `$…$`, `$$…$$`, `\(…\)`, `\[…\]` and the commands `\boxed{…}`,
/// `\text{…}`, `\textbf{…}`, `\mathrm{…}`, `\mathbf{…}`.
pub fn strip_wrappers(text: &str) -> &str {
    let mut text = text.trim();
    for _ in 0..MAX_WRAPPERS {
        let inner = strip_delimiters(text).or_else(|| strip_command(text));
        match inner {
            Some(inner) => text = inner.trim(),
            None => break,
        }
    }
    text
}

fn strip_delimiters(text: &str) -> Option<&str> {
    for (open, close) in [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")] {
        if text.len() >= open.len() + close.len() {
            if let Some(inner) = text.strip_prefix(open).and_then(|t| t.strip_suffix(close)) {
                // `$5 and $6` is not one math span: no delimiter inside.
                if !inner.contains(open) {
                    return Some(inner);
                }
            }
        }
    }
    None
}

fn strip_command(text: &str) -> Option<&str> {
    for command in ["\\boxed{", "\\text{", "\\textbf{", "\\mathrm{", "\\mathbf{"] {
        if let Some(rest) = text.strip_prefix(command) {
            // Only when the command's brace closes at the very end.
            return match closing_brace(rest) {
                Some(end) if end == rest.len() - 1 => Some(&rest[..end]),
                _ => None,
            };
        }
    }
    None
}

/// The index of the `}` closing a group whose `{` precedes `text`.
fn closing_brace(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// A number read from an answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// `num / den` in lowest terms, `den > 0`: compared exactly.
    Exact { num: i128, den: i128 },
    /// A value too large for `i128` or written with more than
    /// [`MAX_EXACT_DECIMALS`] decimal places (a rounding, e.g. of an
    /// irrational): compared with relative tolerance [`RELATIVE_TOLERANCE`].
    Approx(f64),
}

/// Decimal places beyond which a decimal is taken for a rounded value.
pub const MAX_EXACT_DECIMALS: i64 = 9;
/// How close an approximate number must be, relative to the larger size.
pub const RELATIVE_TOLERANCE: f64 = 1e-9;

impl Number {
    pub fn integer(n: i128) -> Number {
        Number::Exact { num: n, den: 1 }
    }

    /// `num / den` reduced; `None` when `den` is 0. Falls back to an
    /// approximation if a sign flip overflows.
    pub fn ratio(num: i128, den: i128) -> Option<Number> {
        if den == 0 {
            return None;
        }
        let g = gcd(num.unsigned_abs(), den.unsigned_abs());
        // g divides den, so it fits in i128 (g = 2^127 only if den = i128::MIN,
        // handled by the checked conversion).
        let exact = i128::try_from(g).ok().and_then(|g| {
            let (num, den) = (num.checked_div(g)?, den.checked_div(g)?);
            if den < 0 {
                Some(Number::Exact { num: num.checked_neg()?, den: den.checked_neg()? })
            } else {
                Some(Number::Exact { num, den })
            }
        });
        exact.or_else(|| finite(num as f64 / den as f64))
    }

    pub fn to_f64(self) -> f64 {
        match self {
            Number::Exact { num, den } => num as f64 / den as f64,
            Number::Approx(x) => x,
        }
    }

    /// Equality for grading: exact numbers compare exactly (`0.1 + 0.2`-style
    /// representation issues cannot arise), and if either side is
    /// approximate, within a relative [`RELATIVE_TOLERANCE`]. Not transitive,
    /// hence not `PartialEq`.
    pub fn matches(self, other: Number) -> bool {
        match (self, other) {
            (Number::Exact { num: a, den: b }, Number::Exact { num: c, den: d }) => a == c && b == d,
            _ => {
                let (a, b) = (self.to_f64(), other.to_f64());
                a == b || (a - b).abs() <= RELATIVE_TOLERANCE * a.abs().max(b.abs())
            }
        }
    }

    fn neg(self) -> Number {
        match self {
            Number::Exact { num, den } => match num.checked_neg() {
                Some(num) => Number::Exact { num, den },
                None => Number::Approx(-(num as f64) / den as f64),
            },
            Number::Approx(x) => Number::Approx(-x),
        }
    }

    fn div(self, other: Number) -> Option<Number> {
        if let (Number::Exact { num: a, den: b }, Number::Exact { num: c, den: d }) = (self, other) {
            if c == 0 {
                return None;
            }
            if let (Some(num), Some(den)) = (a.checked_mul(d), b.checked_mul(c)) {
                return Number::ratio(num, den);
            }
        }
        let d = other.to_f64();
        if d == 0.0 {
            return None;
        }
        finite(self.to_f64() / d)
    }
}

fn finite(x: f64) -> Option<Number> {
    x.is_finite().then_some(Number::Approx(x))
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Reads `text` as one number, or `None` if it is anything else. Accepted,
/// after [`strip_wrappers`]:
/// - a sign (`+`, `-`, `−`), then an optional currency `$` or `\$`;
/// - integers and decimals (`42`, `-0.5`, `.5`, `42.`), with `,` (or LaTeX
///   `{,}`) thousands separators only in valid groups (`1,234,567`; `1,2`
///   and `1,23` are not numbers);
/// - scientific notation (`4.2e1`, `1E-3`);
/// - fractions `a/b` of such numbers (`-3/4`, `84 / 2`) and LaTeX
///   `\frac{a}{b}`, `\dfrac`, `\tfrac` (also `\frac12`);
/// - then an optional `%` or `\%`, which is dropped (GSM8K writes
///   percentages without the sign, so `50%` reads as 50, not 0.5);
/// - then up to three unit words of ASCII letters (`42 apples`, `3 km per hour`),
///   except words that change the value or make it a list (`hundred`,
///   `million`, `pi`, `or`, `and`, …);
/// - then an optional sentence-ending `.`.
///
/// Not accepted: `x = 42`, mixed numbers `1 1/2`, `3,5` as a decimal comma,
/// expressions. Division by zero and values that are infinite in `f64` are
/// not numbers (they then compare as text).
pub fn parse_number(text: &str) -> Option<Number> {
    let text = strip_wrappers(text);
    if text.contains("{,}") {
        parse_complete(&text.replace("{,}", ","))
    } else {
        parse_complete(text)
    }
}

fn parse_complete(text: &str) -> Option<Number> {
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let n = p.signed(MAX_FRAC_NESTING)?;
    p.suffix()?;
    (p.i == p.s.len()).then_some(n)
}

/// How deeply `\frac` may nest inside `\frac` (bounds the recursion).
const MAX_FRAC_NESTING: usize = 4;

/// Words after a number that change its value or make the answer more than
/// one number, so they are not units.
const NOT_UNITS: &[&str] = &[
    "hundred", "thousand", "million", "billion", "trillion", "dozen", "pi", "e", "i", "or", "and", "to", "plus", "minus", "times", "over",
    "not", "x",
];
const MAX_UNIT_WORDS: usize = 3;

/// A cursor over the bytes of a candidate number.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.s[self.i..].starts_with(token.as_bytes());
        if found {
            self.i += token.len();
        }
        found
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn digits(&mut self) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    /// Sign, currency, then a `\frac` or a plain number (a fraction `a/b`).
    fn signed(&mut self, nesting: usize) -> Option<Number> {
        self.currency();
        let negative = if self.eat("-") || self.eat("−") {
            true
        } else {
            self.eat("+");
            false
        };
        self.skip_spaces();
        self.currency();
        let n = if self.eat("\\frac") || self.eat("\\dfrac") || self.eat("\\tfrac") {
            self.latex_fraction(nesting)?
        } else {
            let n = self.decimal()?;
            let save = self.i;
            self.skip_spaces();
            if self.eat("/") {
                self.skip_spaces();
                n.div(self.decimal()?)?
            } else {
                self.i = save;
                n
            }
        };
        Some(if negative { n.neg() } else { n })
    }

    fn currency(&mut self) {
        if self.eat("\\$") || self.eat("$") {
            self.skip_spaces();
        }
    }

    /// After `\frac`: `{a}{b}` with `a`, `b` numbers, or two digits (`\frac12`).
    fn latex_fraction(&mut self, nesting: usize) -> Option<Number> {
        let nesting = nesting.checked_sub(1)?;
        self.skip_spaces();
        if self.peek() != Some(b'{') {
            let (a, b) = (self.s.get(self.i)?, self.s.get(self.i + 1)?);
            if !a.is_ascii_digit() || !b.is_ascii_digit() {
                return None;
            }
            self.i += 2;
            return Number::ratio(i128::from(a - b'0'), i128::from(b - b'0'));
        }
        let num = self.braced(nesting)?;
        self.skip_spaces();
        let den = self.braced(nesting)?;
        num.div(den)
    }

    /// `{number}`.
    fn braced(&mut self, nesting: usize) -> Option<Number> {
        if !self.eat("{") {
            return None;
        }
        self.skip_spaces();
        let n = self.signed(nesting)?;
        self.skip_spaces();
        self.eat("}").then_some(n)
    }

    /// An unsigned decimal with optional thousands separators and exponent.
    fn decimal(&mut self) -> Option<Number> {
        let mut digits: Vec<u8> = Vec::new(); // integer and fraction digits, no separators
        let first = self.digits();
        digits.extend_from_slice(first);
        if !first.is_empty() && first.len() <= 3 && first[0] != b'0' {
            // Thousands groups: `,ddd` not followed by another digit.
            while self.s[self.i..].starts_with(b",") && self.s.get(self.i + 1..self.i + 4).is_some_and(|g| g.iter().all(u8::is_ascii_digit))
            {
                if self.s.get(self.i + 4).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
                digits.extend_from_slice(&self.s[self.i + 1..self.i + 4]);
                self.i += 4;
            }
        }
        // A comma left after digits is a bad grouping (`1,2`, `1,23`, `1234,567`).
        if !first.is_empty() && self.peek() == Some(b',') && self.s.get(self.i + 1).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let int_len = digits.len();
        if self.eat(".") {
            let frac = self.digits();
            digits.extend_from_slice(frac);
        }
        if digits.is_empty() {
            return None;
        }
        let mut decimals = (digits.len() - int_len) as i64;
        let mut exponent = 0i64;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let save = self.i;
            self.i += 1;
            let negative = self.eat("-") || {
                self.eat("+");
                false
            };
            let exp = self.digits();
            if exp.is_empty() {
                self.i = save; // `4e` is 4 with a unit word `e`, refused later
            } else {
                // Saturate: anything beyond 10^±1e6 is not finite in f64 anyway.
                let mut e = 0i64;
                for &d in exp {
                    e = (e * 10 + i64::from(d - b'0')).min(1_000_000);
                }
                exponent = if negative { -e } else { e };
            }
        }
        // Trailing fraction zeros do not make a value less exact.
        while decimals > 0 && digits.last() == Some(&b'0') {
            digits.pop();
            decimals -= 1;
        }
        decimal_value(&digits, decimals - exponent)
    }

    /// `%`, unit words and a final `.`; `None` if something else follows.
    fn suffix(&mut self) -> Option<()> {
        self.skip_spaces();
        let _ = self.eat("\\%") || self.eat("%");
        let mut words = 0;
        loop {
            self.skip_spaces();
            let start = self.i;
            while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
                self.i += 1;
            }
            if self.i == start {
                break;
            }
            let word = std::str::from_utf8(&self.s[start..self.i]).ok()?;
            words += 1;
            if words > MAX_UNIT_WORDS || NOT_UNITS.iter().any(|w| w.eq_ignore_ascii_case(word)) {
                return None;
            }
        }
        self.eat(".");
        self.skip_spaces();
        Some(())
    }
}

/// The value of the decimal digits `digits` divided by `10^scale`: exact if
/// it fits in i128 with at most [`MAX_EXACT_DECIMALS`] places, else the
/// nearest `f64` (`Approx`), or `None` when that is infinite.
fn decimal_value(digits: &[u8], scale: i64) -> Option<Number> {
    if digits.iter().all(|&d| d == b'0') {
        return Some(Number::integer(0));
    }
    let mantissa = digits.iter().try_fold(0i128, |acc, &d| acc.checked_mul(10)?.checked_add(i128::from(d - b'0')));
    if let Some(m) = mantissa {
        if scale <= MAX_EXACT_DECIMALS {
            let power = u32::try_from(scale.unsigned_abs()).ok().and_then(|p| 10i128.checked_pow(p));
            let exact = match power {
                Some(p) if scale >= 0 => Number::ratio(m, p),
                Some(p) => m.checked_mul(p).map(Number::integer),
                None => None,
            };
            if exact.is_some() {
                return exact;
            }
        }
    }
    // Too big or too fine: let the standard parser round `digits e -scale`.
    let text = format!("{}e{}", String::from_utf8_lossy(digits), -scale);
    finite(text.parse::<f64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(num: i128, den: i128) -> Option<Number> {
        Some(Number::Exact { num, den })
    }

    #[test]
    fn last_complete_answer_pair_wins() {
        assert_eq!(extract_answer(" <think> 7 * 3 = 21 </think> <answer> 26 </answer>"), Some("26"));
        assert_eq!(extract_answer("<answer>1</answer> then <answer>2</answer>"), Some("2"));
        assert_eq!(extract_answer("<answer>1</answer> then <answer>2"), Some("1"), "unclosed last tag");
        assert_eq!(extract_answer("<answer> 1 <answer> 2 </answer> </answer>"), Some("2"), "nested");
        assert_eq!(extract_answer("<answer>5</answer> </answer>"), Some("5"), "stray close");
        assert_eq!(extract_answer("</answer> 3 <answer>"), None, "close before open");
        assert_eq!(extract_answer("<answer>9</answer><think>hmm</think>"), Some("9"), "answer before think");
        assert_eq!(extract_answer("<answer></answer>"), Some(""));
        assert_eq!(extract_answer("<answer> 答案是 四十二 </answer>"), Some("答案是 四十二"));
        assert_eq!(extract_answer(""), None);
        assert_eq!(extract_answer("no tags at all: 42"), None);
        assert_eq!(extract_answer("<answer"), None);
    }

    #[test]
    fn boxed_is_the_fallback() {
        assert_eq!(extract_answer(r"so \boxed{\frac{1}{2}}."), Some(r"\frac{1}{2}"));
        assert_eq!(extract_answer(r"\boxed{1} and then \boxed{2}"), Some("2"));
        assert_eq!(extract_answer(r"\boxed{1} and \boxed{2"), Some("1"), "unclosed last box");
        assert_eq!(extract_answer(r"\boxed{\{1, 2\}}"), Some(r"\{1, 2\}"), "escaped braces are literal");
        assert_eq!(extract_answer(r"\boxed{ {a} \boxed{3} }"), Some("3"), "the box opened last");
        assert_eq!(extract_answer(r"<answer>7</answer> \boxed{8}"), Some("7"), "tags first");
        assert_eq!(extract_answer(r"}}} \boxed{"), None);
    }

    #[test]
    fn think_text_is_the_first_closed_block() {
        assert_eq!(think_text("<think> a </think><think> b </think>"), Some("a"));
        assert_eq!(think_text("<answer>1</answer><think>late</think>"), Some("late"));
        assert_eq!(think_text("<think> truncated"), None);
        assert_eq!(think_text("</think><think>"), None);
        assert_eq!(think_text(""), None);
    }

    #[test]
    fn huge_adversarial_inputs_are_fast_and_safe() {
        let n = 200_000;
        let opens = "<answer>".repeat(n);
        assert_eq!(extract_answer(&opens), None);
        let boxes = r"\boxed{".repeat(n);
        assert_eq!(extract_answer(&boxes), None);
        let nested = format!("{}{}", r"\boxed{".repeat(n), "}".repeat(n));
        assert_eq!(extract_answer(&nested), Some(""));
        let wrapped = format!("{}1{}", r"\text{".repeat(n), "}".repeat(n));
        assert!(!answers_match(&wrapped, "1"), "only a few wrappers are peeled");
        assert_eq!(parse_number(&"9".repeat(n)), None, "too big for f64");
        assert!(parse_number(&format!("0.{}", "3".repeat(n))).unwrap().matches(Number::ratio(1, 3).unwrap()));
        let fracs = format!("{}1{}", r"\frac{".repeat(n), "}".repeat(n));
        assert_eq!(parse_number(&fracs), None, "nesting is bounded");
    }

    #[test]
    fn the_same_number_written_many_ways() {
        for text in ["42", "42.0", "4.2e1", "4.2E+1", "42/1", "84/2", "84 / 2", "+42", "42.", "$42", "\\$42", "42%"] {
            assert_eq!(parse_number(text), exact(42, 1), "{text}");
        }
        for text in ["42 apples", "$42 dollars.", r"\boxed{42}", "$42$", r"\text{42}", "0.42e2", "420e-1"] {
            assert_eq!(parse_number(text), exact(42, 1), "{text}");
        }
        assert!(answers_match("42", "4.2e1"));
        assert!(answers_match("42/1", "42.0"));
    }

    #[test]
    fn thousands_separators_only_in_valid_groups() {
        assert_eq!(parse_number("1,234"), exact(1234, 1));
        assert_eq!(parse_number("1,234,567.5"), exact(2469135, 2));
        assert_eq!(parse_number("1{,}234"), exact(1234, 1));
        assert!(answers_match("1,234", "1234"));
        for bad in ["1,2", "1,23", "1,2345", "1234,567", "0,123", "1,234,56"] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
        assert!(!answers_match("1,2", "12"));
    }

    #[test]
    fn exact_rationals_have_no_float_error() {
        assert_eq!(parse_number("0.3"), exact(3, 10));
        assert!(answers_match("0.3", "3/10"));
        assert!(answers_match("0.1", "1/10"));
        assert!(!answers_match("0.3", "0.300000001"), "a 9th-place difference still counts");
        assert!(answers_match("0.3", "0.30000000000000004"), "but a 17th-place one is float noise");
        assert_eq!(parse_number("6/8"), exact(3, 4), "reduced");
        assert_eq!(parse_number("-3/4"), exact(-3, 4));
        assert_eq!(parse_number("3/-4"), None);
        assert_eq!(parse_number("−7"), exact(-7, 1));
        assert!(!answers_match("-42", "42"));
        assert!(answers_match("-0", "0"));
        assert_eq!(parse_number("1/0"), None);
        assert!(answers_match("1/0", "1/0"), "not a number, but the same text");
    }

    #[test]
    fn rounded_decimals_compare_with_tolerance() {
        assert!(answers_match("0.3333333333", "1/3"), "10 places: a rounding");
        assert!(!answers_match("0.333", "1/3"), "3 places: exact, and not 1/3");
        assert!(answers_match("3.14159265358979", "3.141592653589793"));
        assert!(!answers_match("1000000001", "1000000000"), "integers are never approximate");
        assert!(!answers_match("1e-12", "2e-12"));
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        let big = "123456789012345678901234567890123456789012345678901234567890";
        assert!(matches!(parse_number(big), Some(Number::Approx(_))));
        assert!(answers_match(big, big));
        assert!(!answers_match(big, "1"));
        assert!(answers_match("170141183460469231731687303715884105727", "1.70141183460469231731687303715884105727e38"));
        assert_eq!(parse_number("-170141183460469231731687303715884105728/1").map(|n| n.to_f64() < 0.0), Some(true));
        assert_eq!(parse_number("1e999999999999"), None, "infinite: compared as text");
        assert_eq!(parse_number("0e999999999999"), exact(0, 1));
        let tiny = parse_number("99999999999999999999/99999999999999999999999").unwrap();
        assert!(matches!(tiny, Number::Exact { .. }) && (tiny.to_f64() - 0.001).abs() < 1e-12);
        assert!(!tiny.matches(Number::ratio(1, 1000).unwrap()), "exact means exact");
        let i = i128::MAX.to_string();
        assert!(parse_number(&format!("{i}/{i}")).unwrap().matches(Number::integer(1)));
        assert!(parse_number(&format!("-{i}/7")).is_some());
    }

    #[test]
    fn latex_fractions() {
        assert!(answers_match(r"\frac{1}{2}", "0.5"));
        assert!(answers_match(r"\boxed{\frac{1}{2}}", "0.5"));
        assert!(answers_match(r"-\dfrac{3}{4}", "-0.75"));
        assert!(answers_match(r"\tfrac12", "1/2"));
        assert!(answers_match(r"\frac{-6}{8}", "-3/4"));
        assert!(answers_match(r"\frac{\frac{1}{2}}{2}", "0.25"));
        assert!(answers_match(r"$\frac{84}{2}$", "42"));
        assert_eq!(parse_number(r"\frac{1}{0}"), None);
        assert_eq!(parse_number(r"\frac{1}"), None);
        assert_eq!(parse_number(r"\frac{a}{b}"), None);
    }

    #[test]
    fn only_a_number_with_harmless_words_is_a_number() {
        for text in ["", "-", ".", "abc", "42 or 43", "42 and 43", "2 pi", "3 million", "42 43", "x = 42", "1 1/2"] {
            assert_eq!(parse_number(text), None, "{text:?}");
        }
        assert_eq!(parse_number("42 a b c d"), None, "too many unit words");
        assert_eq!(parse_number("42 km per hour"), exact(42, 1));
        assert!(!answers_match("2 pi", "2"));
    }

    #[test]
    fn gsm8k_references_use_the_final_answer() {
        let reference = "Janet has 3 + 4 = 7 eggs.\nShe sells 1,000 more.\n#### 1,234";
        assert!(answers_match("1234", reference));
        assert!(answers_match("$1,234", reference));
        assert!(!answers_match("7", reference));
    }

    #[test]
    fn text_answers_are_normalised() {
        assert!(answers_match("  Paris. ", "paris"));
        assert!(answers_match(r"\text{New   York}", "new york"));
        assert!(answers_match("ÉCOLE", "école"));
        assert!(answers_match(r"\sqrt{2}", r"$\sqrt{2}$"));
        assert!(!answers_match("", ""), "an empty answer never matches");
        // Math that is not a value matches only as the same LaTeX (spacing aside).
        assert!(answers_match("x+1", "x + 1"));
        assert!(!answers_match("x+1", "1+x"));
        assert!(!answers_match("$5$ and $6$", "5$ and $6"), "two math spans are not one");
    }
}
