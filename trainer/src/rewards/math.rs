//! Math answers as values: the LaTeX that MATH, NuminaMath and OpenR1-Math
//! write in `\boxed{}` (`\frac{\sqrt{3}}{2}`, `3\pi`, `50\%`,
//! `12\text{ cm}`, `(-\infty, 2] \cup (3, \infty)`, `(1, -2)`, `2 \pm
//! \sqrt{5}`), read into exact rationals where they are rational and into
//! `f64` where they are not (`\sqrt{2}`, `\pi`), and compared as values.
//!
//! [`compare`] has three verdicts. `Match` and `Mismatch` are decided: two
//! values, two plain-text answers (`Monday`, `(C)`), or a value against
//! words. `Uncomparable` is everything else: an expression with variables
//! or commands this reader does not evaluate (`\frac{x+1}{2}`, a matrix)
//! whose text differs from the other side's. The accuracy reward scores it
//! 0 and counts it (`rewards/accuracy_uncomparable`), so a dataset whose
//! answers cannot be checked shows up in the metrics instead of passing as
//! wrong answers.
//!
//! Everything here reads untrusted model output: bounded recursion, no
//! panics, time linear in the input.

use super::answer::{normalize_text, parse_number, strip_wrappers, Number};

/// How a comparison came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Match,
    Mismatch,
    /// Neither side's value could be read, and their texts differ.
    Uncomparable,
}

/// An answer read as a value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Number(Number),
    /// `\infty` (`true`: `-\infty`).
    Infinity {
        negative: bool,
    },
    /// `(a, b)`, `[a, b)`, …: points, tuples, intervals; the brackets count.
    Tuple {
        open: u8,
        close: u8,
        items: Vec<Value>,
    },
    /// Order does not count: `1, 2` (solutions), `a \pm b`, `A \cup B`, `\{1, 2\}`.
    Set(Vec<Value>),
}

/// What an answer is, for comparing.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    Value(Value),
    /// Words only (`Monday`, `(C)`, `no solution`).
    Text(String),
    /// Math that is not a value here; kept as normalised LaTeX.
    Symbolic(String),
}

/// Compares an extracted answer with a reference answer.
pub fn compare(got: &str, reference: &str) -> Verdict {
    if strip_wrappers(got).is_empty() || strip_wrappers(reference).is_empty() {
        return Verdict::Mismatch;
    }
    match (read(got), read(reference)) {
        (Reading::Text(a), _) | (_, Reading::Text(a)) if a.is_empty() => Verdict::Mismatch,
        (Reading::Value(a), Reading::Value(b)) => verdict(values_match(&a, &b)),
        (Reading::Text(a), Reading::Text(b)) => verdict(a == b),
        (Reading::Value(_), Reading::Text(_)) | (Reading::Text(_), Reading::Value(_)) => Verdict::Mismatch,
        (a, b) => {
            if latex_key(got).is_some_and(|k| Some(k) == latex_key(reference)) {
                Verdict::Match
            } else {
                // One side (at least) is math we cannot evaluate.
                let _ = (a, b);
                Verdict::Uncomparable
            }
        }
    }
}

fn verdict(same: bool) -> Verdict {
    if same {
        Verdict::Match
    } else {
        Verdict::Mismatch
    }
}

/// The LaTeX with spacing and equivalent spellings removed, for comparing
/// symbolic answers as text; `None` when nothing is left.
fn latex_key(text: &str) -> Option<String> {
    let mut s = strip_wrappers(text).to_string();
    for (from, to) in [
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\left", ""),
        ("\\right", ""),
        ("\\displaystyle", ""),
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("\\:", ""),
        ("\\ ", ""),
        ("^{\\circ}", ""),
        ("^\\circ", ""),
        ("\\cdot", "*"),
        ("\\times", "*"),
    ] {
        s = s.replace(from, to);
    }
    let key: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let key = key.strip_suffix('.').unwrap_or(&key).to_string();
    (!key.is_empty()).then_some(key)
}

/// Reads an answer: a value if it is one, else words, else symbolic math.
pub fn read(text: &str) -> Reading {
    let inner = strip_wrappers(text);
    if let Some(n) = parse_number(inner) {
        return Reading::Value(Value::Number(n));
    }
    if let Some(v) = Parser::new(inner).answer() {
        return Reading::Value(v);
    }
    if is_words(inner) {
        return Reading::Text(words_key(inner));
    }
    Reading::Symbolic(latex_key(inner).unwrap_or_default())
}

/// Plain words: letters, spaces and light punctuation, `\text{}` allowed.
fn is_words(text: &str) -> bool {
    let t = unwrap_text(text);
    !t.trim().is_empty()
        && t.chars().any(char::is_alphabetic)
        && t.chars().all(|c| c.is_alphabetic() || c.is_whitespace() || "().,'-:".contains(c))
}

/// `\text{…}` groups replaced by their content.
fn unwrap_text(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\\text{").or_else(|| rest.find("\\textbf{")).or_else(|| rest.find("\\mathrm{")) {
        out.push_str(&rest[..at]);
        let open = at + rest[at..].find('{').unwrap_or(0) + 1;
        match rest[open..].find('}') {
            Some(close) => {
                out.push_str(&rest[open..open + close]);
                rest = &rest[open + close + 1..];
            }
            None => {
                rest = &rest[open..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// How words compare: normalised, and a multiple-choice letter without its
/// parentheses (`(C)` = `C`).
fn words_key(text: &str) -> String {
    let t = normalize_text(&unwrap_text(text));
    let bare = t.strip_prefix('(').and_then(|r| r.strip_suffix(')')).unwrap_or(&t);
    if bare.chars().count() == 1 {
        bare.to_string()
    } else {
        t
    }
}

/// Whether two values are equal as answers.
pub fn values_match(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.matches(*y),
        (Value::Infinity { negative: x }, Value::Infinity { negative: y }) => x == y,
        (Value::Tuple { open: o1, close: c1, items: i1 }, Value::Tuple { open: o2, close: c2, items: i2 }) => {
            o1 == o2 && c1 == c2 && i1.len() == i2.len() && i1.iter().zip(i2).all(|(x, y)| values_match(x, y))
        }
        (Value::Set(s1), Value::Set(s2)) => {
            if s1.len() != s2.len() {
                return false;
            }
            let mut used = vec![false; s2.len()];
            s1.iter().all(|x| match s2.iter().enumerate().find(|(j, y)| !used[*j] && values_match(x, y)) {
                Some((j, _)) => {
                    used[j] = true;
                    true
                }
                None => false,
            })
        }
        // A one-element set is its element (`x = 2` against `2`).
        (Value::Set(s), other) | (other, Value::Set(s)) if s.len() == 1 => values_match(&s[0], other),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Arithmetic on numbers: exact while it fits, else f64.

fn approx(x: f64) -> Option<Number> {
    x.is_finite().then_some(Number::Approx(x))
}

fn add(a: Number, b: Number) -> Option<Number> {
    if let (Number::Exact { num: n1, den: d1 }, Number::Exact { num: n2, den: d2 }) = (a, b) {
        let exact = (|| Number::ratio(n1.checked_mul(d2)?.checked_add(n2.checked_mul(d1)?)?, d1.checked_mul(d2)?))();
        if exact.is_some() {
            return exact;
        }
    }
    approx(a.to_f64() + b.to_f64())
}

fn mul(a: Number, b: Number) -> Option<Number> {
    if let (Number::Exact { num: n1, den: d1 }, Number::Exact { num: n2, den: d2 }) = (a, b) {
        let exact = (|| Number::ratio(n1.checked_mul(n2)?, d1.checked_mul(d2)?))();
        if exact.is_some() {
            return exact;
        }
    }
    approx(a.to_f64() * b.to_f64())
}

fn neg(a: Number) -> Option<Number> {
    mul(a, Number::integer(-1))
}

fn div(a: Number, b: Number) -> Option<Number> {
    match b {
        Number::Exact { num: 0, .. } => None,
        Number::Exact { num, den } => mul(a, Number::ratio(den, num)?),
        Number::Approx(y) if y == 0.0 => None,
        Number::Approx(y) => approx(a.to_f64() / y),
    }
}

/// Integer square root, exact.
fn isqrt(n: i128) -> Option<i128> {
    if n < 0 {
        return None;
    }
    let mut r = (n as f64).sqrt() as i128;
    while r > 0 && r.checked_mul(r)? > n {
        r -= 1;
    }
    while (r + 1).checked_mul(r + 1).is_some_and(|s| s <= n) {
        r += 1;
    }
    Some(r)
}

/// The `k`-th root, exact when the rational is a perfect power.
fn root(a: Number, k: u32) -> Option<Number> {
    if k == 0 {
        return None;
    }
    if let Number::Exact { num, den } = a {
        if k == 2 {
            if let (Some(rn), Some(rd)) = (isqrt(num), isqrt(den)) {
                if rn * rn == num && rd * rd == den {
                    return Number::ratio(rn, rd);
                }
            }
        }
        let x = a.to_f64();
        let r = if x < 0.0 && k % 2 == 1 { -(-x).powf(1.0 / f64::from(k)) } else { x.powf(1.0 / f64::from(k)) };
        // An exact integer root (`\sqrt[3]{8}`)?
        let (rn, rd) = (r.round() as i128, 1i128);
        if den == 1 && rn.checked_pow(k).is_some_and(|p| p == num) {
            return Number::ratio(rn, rd);
        }
        return approx(r);
    }
    let x = a.to_f64();
    if x < 0.0 && k % 2 == 0 {
        return None;
    }
    approx(if x < 0.0 { -(-x).powf(1.0 / f64::from(k)) } else { x.powf(1.0 / f64::from(k)) })
}

/// Most values a `\pm` spreads into (each `\pm` doubles them).
const MAX_SPREAD: usize = 16;

/// `f` on two values that are numbers or sets of numbers (what `\pm` makes):
/// on every pair.
fn lift(a: Value, b: Value, f: impl Fn(Number, Number) -> Option<Number>) -> Option<Value> {
    let numbers = |v: Value| -> Option<(Vec<Number>, bool)> {
        match v {
            Value::Number(n) => Some((vec![n], false)),
            Value::Set(items) => {
                let ns: Option<Vec<Number>> = items.into_iter().map(|i| if let Value::Number(n) = i { Some(n) } else { None }).collect();
                Some((ns?, true))
            }
            _ => None,
        }
    };
    let ((xs, sa), (ys, sb)) = (numbers(a)?, numbers(b)?);
    if xs.len() * ys.len() > MAX_SPREAD {
        return None;
    }
    let out: Option<Vec<Number>> = xs.iter().flat_map(|&x| ys.iter().map(move |&y| (x, y))).map(|(x, y)| f(x, y)).collect();
    let out = out?;
    Some(if sa || sb { Value::Set(out.into_iter().map(Value::Number).collect()) } else { Value::Number(out[0]) })
}

fn pow(a: Number, e: Number) -> Option<Number> {
    if let Number::Exact { num: p, den: 1 } = e {
        if p.unsigned_abs() <= 256 {
            let mut out = Number::integer(1);
            for _ in 0..p.unsigned_abs() {
                out = mul(out, a)?;
            }
            return if p < 0 { div(Number::integer(1), out) } else { Some(out) };
        }
    }
    if let Number::Exact { num: 1, den: k } = e {
        if let Ok(k) = u32::try_from(k) {
            return root(a, k);
        }
    }
    let x = a.to_f64();
    if x < 0.0 {
        return None;
    }
    approx(x.powf(e.to_f64()))
}

// ---------------------------------------------------------------------------
// The reader

/// Nesting of groups, fractions and roots at most.
const MAX_DEPTH: usize = 24;

/// A recursive-descent reader over the LaTeX bytes:
///
/// ```text
/// answer  = item {"," item}            (several: a set)
/// item    = [NAME "="] union
/// union   = pm {"\cup" pm}             (several: a set)
/// pm      = sum ["\pm" sum]            (a set of two)
/// sum     = term {("+" | "-") term}
/// term    = unary {("*" | "\cdot" | "\times" | "/" | implied) unary}
/// unary   = ["-" | "+"] power
/// power   = atom ["^" (atom | "{" sum "}")]
/// atom    = NUMBER | "\pi" | "\infty" | "\frac" G G | "\sqrt" ["[" n "]"] G
///         | "(" … ")" | "[" … ")" | "\{" … "\}" | "{" sum "}"
/// ```
///
/// Implied products only before `\pi`, `\sqrt` and brackets (`2\sqrt{3}`,
/// `3\pi`, `2(1+x)`), never between two numbers or before `\frac` (`1
/// \frac{1}{2}` may be a mixed number: not guessed). A trailing unit
/// (`\text{ cm}`, `^\circ`, `\%`, `\$` in front) leaves the value as is.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser { s: text.as_bytes(), i: 0, depth: 0 }
    }

    fn skip(&mut self) {
        loop {
            let before = self.i;
            while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
                self.i += 1;
            }
            for filler in ["\\left", "\\right", "\\displaystyle", "\\!", "\\,", "\\;", "\\:", "\\ ", "\\big", "\\Big"] {
                if self.s[self.i..].starts_with(filler.as_bytes()) {
                    // `\left(`: the bracket follows; `\leq` is not `\left`.
                    let next = self.s.get(self.i + filler.len());
                    if filler.ends_with(|c: char| c.is_ascii_alphabetic()) && next.is_some_and(|b| b.is_ascii_alphabetic()) {
                        continue;
                    }
                    self.i += filler.len();
                }
            }
            if self.i == before {
                return;
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip();
        self.s.get(self.i).copied()
    }

    fn at(&mut self, token: &str) -> bool {
        self.skip();
        let found = self.s[self.i..].starts_with(token.as_bytes());
        // A command ends where its letters end (`\pi` is not `\pix`).
        found
            && !(token.starts_with('\\')
                && token.ends_with(|c: char| c.is_ascii_alphabetic())
                && self.s.get(self.i + token.len()).is_some_and(|b| b.is_ascii_alphabetic()))
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.at(token);
        if found {
            self.i += token.len();
        }
        found
    }

    fn done(&mut self) -> bool {
        self.skip();
        self.i == self.s.len()
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// The whole text as a value, or `None`.
    fn answer(&mut self) -> Option<Value> {
        let _ = self.eat("\\$") || self.eat("$");
        let mut items = vec![self.item()?];
        while self.eat(",") {
            items.push(self.item()?);
        }
        self.units();
        if !self.done() {
            return None;
        }
        Some(if items.len() == 1 { items.pop()? } else { Value::Set(items) })
    }

    /// `x = v`: the value.
    fn item(&mut self) -> Option<Value> {
        let save = self.i;
        self.skip();
        let start = self.i;
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_alphabetic()) {
            self.i += 1;
        }
        let name = self.i - start;
        if !(1..=2).contains(&name) || !self.eat("=") {
            self.i = save;
        }
        self.union()
    }

    fn union(&mut self) -> Option<Value> {
        let first = self.pm()?;
        if !self.at("\\cup") {
            return Some(first);
        }
        let mut parts = vec![first];
        while self.eat("\\cup") {
            parts.push(self.pm()?);
        }
        Some(Value::Set(parts))
    }

    fn pm(&mut self) -> Option<Value> {
        let first = self.sum()?;
        if !(self.eat("\\pm") || self.eat("±")) {
            return Some(first);
        }
        let spread = self.sum()?;
        let plus = lift(first.clone(), spread.clone(), add)?;
        let minus = lift(first, spread, |a, b| add(a, neg(b)?))?;
        let mut items = Vec::new();
        for v in [plus, minus] {
            match v {
                Value::Set(s) => items.extend(s),
                n => items.push(n),
            }
        }
        (items.len() <= MAX_SPREAD).then_some(Value::Set(items))
    }

    fn sum(&mut self) -> Option<Value> {
        self.enter()?;
        let mut acc = self.term()?;
        loop {
            let sign = if self.eat("+") {
                1
            } else if self.eat("-") || self.eat("−") {
                -1
            } else {
                break;
            };
            let rhs = self.term()?;
            acc = lift(acc, rhs, |a, b| add(a, if sign < 0 { neg(b)? } else { b }))?;
        }
        self.depth -= 1;
        Some(acc)
    }

    fn term(&mut self) -> Option<Value> {
        let mut acc = self.unary()?;
        loop {
            let op = if self.eat("*") || self.eat("\\cdot") || self.eat("\\times") {
                b'*'
            } else if self.eat("/") || self.eat("\\div") {
                b'/'
            } else if self.implied_product() {
                b'*'
            } else {
                break;
            };
            let rhs = self.unary()?;
            acc = lift(acc, rhs, |a, b| if op == b'*' { mul(a, b) } else { div(a, b) })?;
        }
        Some(acc)
    }

    /// Whether what follows multiplies the term before without a sign.
    fn implied_product(&mut self) -> bool {
        self.at("\\pi") || self.at("\\sqrt") || self.at("(")
    }

    fn unary(&mut self) -> Option<Value> {
        if self.eat("-") || self.eat("−") {
            return match self.unary()? {
                Value::Infinity { negative } => Some(Value::Infinity { negative: !negative }),
                v => lift(v, Value::Number(Number::integer(-1)), mul),
            };
        }
        self.eat("+");
        self.power()
    }

    fn power(&mut self) -> Option<Value> {
        let base = self.atom()?;
        // Degrees are a unit: `30^\circ` is 30.
        if self.eat("^\\circ") || self.eat("^{\\circ}") {
            return Some(base);
        }
        if !self.eat("^") {
            return Some(base);
        }
        let exponent = if self.peek() == Some(b'{') { self.group()? } else { self.atom()? };
        lift(base, exponent, pow)
    }

    /// `{ pm }`.
    fn group(&mut self) -> Option<Value> {
        if !self.eat("{") {
            return None;
        }
        let v = self.pm()?;
        self.eat("}").then_some(v)
    }

    fn atom(&mut self) -> Option<Value> {
        self.enter()?;
        let v = self.atom_inner();
        self.depth -= 1;
        v
    }

    fn atom_inner(&mut self) -> Option<Value> {
        let _ = self.eat("\\$");
        if self.eat("\\infty") || self.eat("∞") {
            return Some(Value::Infinity { negative: false });
        }
        if self.eat("\\pi") || self.eat("π") {
            return Some(Value::Number(Number::Approx(std::f64::consts::PI)));
        }
        if self.eat("\\frac") || self.eat("\\dfrac") || self.eat("\\tfrac") {
            let (a, b) = if self.peek() == Some(b'{') { (self.group()?, self.group()?) } else { (self.digit()?, self.digit()?) };
            return lift(a, b, div);
        }
        if self.eat("\\sqrt") {
            let mut k = 2u32;
            if self.eat("[") {
                let Value::Number(Number::Exact { num, den: 1 }) = self.sum()? else { return None };
                k = u32::try_from(num).ok()?;
                if !self.eat("]") {
                    return None;
                }
            }
            let radicand = if self.peek() == Some(b'{') { self.group()? } else { self.digit()? };
            let Value::Number(r) = radicand else { return None };
            if r.to_f64() < 0.0 && k % 2 == 0 {
                return None;
            }
            return Some(Value::Number(root(r, k)?));
        }
        if self.peek() == Some(b'{') {
            return self.group();
        }
        if self.eat("\\{") {
            let items = self.items("\\}")?;
            return Some(Value::Set(items));
        }
        if let Some(open @ (b'(' | b'[')) = self.peek() {
            self.i += 1;
            let mut items = vec![self.union()?];
            while self.eat(",") {
                items.push(self.union()?);
            }
            let close = match self.peek() {
                Some(c @ (b')' | b']')) => c,
                _ => return None,
            };
            self.i += 1;
            // `(x)` is x; `(a, b)` and `[a, b)` are tuples or intervals.
            if items.len() == 1 && open == b'(' && close == b')' {
                return items.pop();
            }
            return Some(Value::Tuple { open, close, items });
        }
        self.number()
    }

    fn items(&mut self, close: &str) -> Option<Vec<Value>> {
        let mut items = vec![self.union()?];
        while self.eat(",") {
            items.push(self.union()?);
        }
        self.eat(close).then_some(items)
    }

    /// One digit (`\frac12`, `\sqrt2`).
    fn digit(&mut self) -> Option<Value> {
        let d = self.peek().filter(u8::is_ascii_digit)?;
        self.i += 1;
        Some(Value::Number(Number::integer(i128::from(d - b'0'))))
    }

    /// A decimal number (no sign, no thousands separators: a comma here
    /// separates items), `%` after it dropped.
    fn number(&mut self) -> Option<Value> {
        self.skip();
        let start = self.i;
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_digit() || *b == b'.') {
            self.i += 1;
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E'))
            && self.s.get(self.i + 1).is_some_and(|b| b.is_ascii_digit() || *b == b'-' || *b == b'+')
        {
            self.i += 2;
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
        }
        let token = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        if token.is_empty() || !token.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
        let n = parse_number(token)?;
        let _ = self.eat("\\%") || self.eat("%");
        // A number right after a number is not a product.
        if self.peek().is_some_and(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Value::Number(n))
    }

    /// Units after the value: `\text{…}`, `\mbox{…}`, `\mathrm{…}` groups of
    /// letters, and ASCII words.
    fn units(&mut self) {
        loop {
            let save = self.i;
            if self.eat("\\text{") || self.eat("\\mbox{") || self.eat("\\mathrm{") || self.eat("\\textrm{") {
                let start = self.i;
                while self.s.get(self.i).is_some_and(|b| b.is_ascii_alphabetic() || *b == b' ' || *b == b'^' || b.is_ascii_digit()) {
                    self.i += 1;
                }
                let content = &self.s[start..self.i];
                if content.iter().any(u8::is_ascii_alphabetic) && self.eat("}") {
                    continue;
                }
            }
            self.i = save;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) {
        assert_eq!(compare(a, b), Verdict::Match, "{a} vs {b}");
        assert_eq!(compare(b, a), Verdict::Match, "{b} vs {a}");
    }

    fn differ(a: &str, b: &str) {
        assert_eq!(compare(a, b), Verdict::Mismatch, "{a} vs {b}");
        assert_eq!(compare(b, a), Verdict::Mismatch, "{b} vs {a}");
    }

    #[test]
    fn fractions_roots_and_pi_are_values() {
        same(r"\frac{1}{2}", "0.5");
        same(r"\dfrac{3}{4}", r"\frac{6}{8}");
        same(r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}");
        same(r"2\sqrt{3}", r"\sqrt{12}");
        same(r"\sqrt{\frac{9}{4}}", "1.5");
        same(r"\sqrt[3]{8}", "2");
        same(r"\sqrt2", r"\sqrt{2}");
        same(r"3\pi", r"\pi \cdot 3");
        same(r"\frac{\pi}{4}", r"0.25\pi");
        same(r"2^{10}", "1024");
        same(r"10^{-2}", "0.01");
        same(r"\left( \frac{1}{3} \right)", r"\frac13");
        same("1+2*3", "7");
        differ(r"\sqrt{2}", "1.414");
        differ(r"2\sqrt{3}", r"3\sqrt{2}");
        differ(r"\frac{1}{2}", r"\frac{1}{3}");
        differ(r"\pi", "3.14");
    }

    #[test]
    fn units_percent_degrees_and_dollars_leave_the_value() {
        same(r"12\text{ cm}", "12");
        same(r"12 \text{ square units}", "12");
        same(r"\$5.50", "5.5");
        same(r"30^\circ", "30");
        same(r"30^{\circ}", r"30");
        same(r"50\%", "50");
        same(r"x = 5", "5");
        differ(r"12\text{ cm}", "13");
    }

    #[test]
    fn tuples_intervals_sets_and_plus_minus() {
        same("(1, -2)", r"\left(1,-2\right)");
        differ("(1, 2)", "(2, 1)");
        same(r"(-\infty, 2]", r"\left(-\infty,2\right]");
        differ(r"(-\infty, 2]", r"(-\infty, 2)");
        same(r"(-\infty, 1) \cup (2, \infty)", r"(2, \infty) \cup (-\infty, 1)");
        same("1, 2, 3", "3,2,1");
        same(r"\{1, 2\}", "2, 1");
        same(r"2 \pm \sqrt{5}", r"2 + \sqrt{5}, 2 - \sqrt{5}");
        same(r"\frac{1 \pm \sqrt{5}}{2}", r"\frac{1+\sqrt5}{2}, \frac{1-\sqrt5}{2}");
        differ("1, 2", "1, 2, 3");
        differ("(1, 2)", "1, 2");
    }

    #[test]
    fn words_compare_as_words() {
        same(r"\text{Monday}", "monday");
        same(r"\text{(C)}", "C");
        differ("(C)", "(D)");
        differ("Monday", "5");
    }

    #[test]
    fn what_cannot_be_read_is_uncomparable_unless_the_texts_agree() {
        same(r"\frac{x+1}{2}", r"\dfrac{x + 1}{2}");
        assert_eq!(compare(r"\frac{x+1}{2}", r"\frac{1}{2}x+\frac{1}{2}"), Verdict::Uncomparable);
        assert_eq!(compare(r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", "(1, 2)"), Verdict::Uncomparable);
        assert_eq!(compare("2x", "4"), Verdict::Uncomparable);
        // A mixed number is not guessed.
        assert_eq!(compare(r"1\frac{1}{2}", "1.5"), Verdict::Uncomparable);
        assert_eq!(compare("", "4"), Verdict::Mismatch);
    }

    #[test]
    fn hostile_inputs_are_bounded() {
        let deep = format!("{}1{}", r"\sqrt{".repeat(10_000), "}".repeat(10_000));
        assert_ne!(compare(&deep, "1"), Verdict::Match);
        let wide = "1+".repeat(100_000) + "1";
        assert_eq!(compare(&wide, "100001"), Verdict::Match);
        let parens = format!("{}1{}", "(".repeat(50_000), ")".repeat(50_000));
        assert_ne!(compare(&parens, "1"), Verdict::Match);
        assert_ne!(compare("2^{100000}", "1"), Verdict::Match);
        assert_eq!(compare(r"\frac{1}{0}", "1"), Verdict::Uncomparable);
    }
}
