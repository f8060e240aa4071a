//! The Countdown reward (TinyZero's task): the completion's last
//! `<answer>…</answer>` must hold an arithmetic equation that uses each of the
//! prompt's numbers exactly once and equals the target.
//!
//! What an answer may contain, and why:
//! - non-negative integer literals (ASCII digits; leading zeros are read as
//!   the number they spell, `07` is 7), the binary operators `+ - * /` with
//!   the usual precedence and left-to-right grouping, parentheses and
//!   whitespace. `×`, `÷` and `−` (U+2212) are read as `*`, `/` and `-`: they
//!   are unambiguous spellings of the same operators. The letter `x` is not a
//!   multiplication sign: letters mean the answer is prose, not an equation.
//! - optionally a trailing `= <integer>`, which must then equal the target
//!   (a wrong claim is a wrong answer even if the left side is right).
//! - no unary minus or plus: `-3 + 5` is rejected. With it a model could
//!   negate a given number, which is not one of the four allowed operations,
//!   and the task's targets and intermediates are positive anyway.
//! - no implicit multiplication (`2(3 + 4)`), decimals, exponents, or
//!   anything else.
//!
//! The value is computed with exact rationals, so `(7 / 2) * 2` equals 7:
//! a true equation is a true equation, as in TinyZero (which evaluates with
//! Python floats). The task's own solutions keep every intermediate a
//! positive integer, so demonstrations never rely on fractions.
//!
//! The literals used must be the given numbers as a multiset: each number
//! once, none missing, none extra (TinyZero's rule). A negative given number
//! can therefore never be matched (there is no unary minus).
//!
//! Untrusted text never panics, overflows or takes more than linear time:
//! arithmetic is checked `i128` (an overflow is a wrong answer), division by
//! zero is a wrong answer, and parentheses nested deeper than [`MAX_DEPTH`]
//! are rejected; evaluation uses explicit stacks, never recursion.

use super::{Reward, Sample};
use crate::error::Result;

/// Deepest parenthesis nesting accepted. An equation over six numbers needs
/// at most five levels; the rest is room for redundant parentheses.
pub const MAX_DEPTH: usize = 64;

/// 1 for a completion whose answer solves the Countdown problem, else 0
/// (or [`CountdownReward::well_formed`] for a parseable equation that does
/// not solve it).
///
/// The default gives no partial credit, unlike TinyZero's 0.1 "format score":
/// the separate `format` reward already pays for the tag structure, and R1's
/// accuracy reward is all-or-nothing, so a bonus for any equation would pay
/// the policy for well-formed wrong answers twice. Set `well_formed` (e.g. to
/// 0.1) to reproduce TinyZero.
///
/// The target is the reference's `answer`, the numbers its `numbers`; a
/// sample without an answer scores 0.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CountdownReward {
    /// Score for an answer that parses and evaluates as an equation but does
    /// not solve the problem (wrong numbers or wrong value).
    pub well_formed: f32,
}

impl Reward for CountdownReward {
    fn name(&self) -> &str {
        "countdown"
    }

    fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
        Ok(samples
            .iter()
            .map(|s| {
                let Some(target) = s.reference.answer.as_deref() else { return 0.0 };
                match check(s.completion, &s.reference.numbers, target) {
                    Verdict::Solved => 1.0,
                    Verdict::Wrong => self.well_formed,
                    Verdict::Malformed => 0.0,
                }
            })
            .collect())
    }
}

/// Whether the equation in `completion` uses each of `numbers` once and
/// equals `target` (an integer, surrounding whitespace ignored).
pub fn solves(completion: &str, numbers: &[i64], target: &str) -> bool {
    check(completion, numbers, target) == Verdict::Solved
}

/// How a completion's answer fares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No `<answer>…</answer>`, or its content is not an equation that
    /// evaluates (syntax error, division by zero, overflow, too deep).
    Malformed,
    /// An equation that evaluates, but with the wrong numbers, the wrong
    /// value, or a wrong `= …` claim (or the target is not an integer).
    Wrong,
    Solved,
}

/// Judges the last `<answer>…</answer>` of `completion` against `numbers`
/// and `target`; see the module documentation for the rules.
pub fn check(completion: &str, numbers: &[i64], target: &str) -> Verdict {
    let Some(answer) = super::answer::answer_tag(completion) else { return Verdict::Malformed };
    // An optional `= <integer>` suffix; more than one `=` is not an equation.
    let (expression, claimed) = match answer.split_once('=') {
        None => (answer, None),
        Some((lhs, rhs)) => match rhs.trim().parse::<i128>() {
            Ok(v) => (lhs, Some(v)),
            Err(_) => return Verdict::Malformed,
        },
    };
    let Ok(Evaluated { value, mut literals }) = evaluate(expression) else { return Verdict::Malformed };
    let Ok(target) = target.trim().parse::<i128>() else { return Verdict::Wrong };
    let mut wanted: Vec<i128> = numbers.iter().map(|&n| n as i128).collect();
    wanted.sort_unstable();
    literals.sort_unstable();
    let right_value = value == Ratio::integer(target) && claimed.is_none_or(|c| c == target);
    if right_value && literals == wanted {
        Verdict::Solved
    } else {
        Verdict::Wrong
    }
}

/// An exact rational `num / den`, `den > 0`, in lowest terms, and never
/// `i128::MIN` in either part (so absolute values and negations are safe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ratio {
    num: i128,
    den: i128,
}

/// Why an expression has no value. The reward only needs to know that it
/// has none; the kinds make the tests say what they test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EvalError {
    Syntax,
    DivisionByZero,
    Overflow,
    TooDeep,
}

/// A result of evaluation (the crate's `Result` is for I/O and usage errors).
type Eval<T> = std::result::Result<T, EvalError>;

fn gcd(mut a: i128, mut b: i128) -> i128 {
    // Callers pass values other than i128::MIN, so abs() cannot overflow.
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Ratio {
    fn integer(v: i128) -> Ratio {
        Ratio { num: v, den: 1 }
    }

    /// `num / den` reduced, or an overflow if a part is `i128::MIN`.
    fn new(num: i128, den: i128) -> Eval<Ratio> {
        if num == i128::MIN || den == i128::MIN {
            return Err(EvalError::Overflow);
        }
        if den == 0 {
            return Err(EvalError::DivisionByZero);
        }
        let g = gcd(num, den);
        let (num, den) = (num / g, den / g);
        Ok(if den < 0 { Ratio { num: -num, den: -den } } else { Ratio { num, den } })
    }

    fn apply(self, op: Op, rhs: Ratio) -> Eval<Ratio> {
        let of = EvalError::Overflow;
        let (a, b, c, d) = (self.num, self.den, rhs.num, rhs.den);
        match op {
            Op::Add | Op::Sub => {
                // a/b ± c/d over the least common denominator.
                let g = gcd(b, d);
                let left = a.checked_mul(d / g).ok_or(of)?;
                let right = c.checked_mul(b / g).ok_or(of)?;
                let num = if op == Op::Add { left.checked_add(right) } else { left.checked_sub(right) };
                Ratio::new(num.ok_or(of)?, b.checked_mul(d / g).ok_or(of)?)
            }
            Op::Mul => Ratio::mul(a, b, c, d),
            Op::Div if c == 0 => Err(EvalError::DivisionByZero),
            // a/b ÷ c/d = a/b × d/c (the sign moves to the numerator in `new`).
            Op::Div => Ratio::mul(a, b, d, c),
        }
    }

    /// (a/b) × (c/d), cancelling crosswise first so that results that fit
    /// are not lost to an intermediate overflow.
    fn mul(a: i128, b: i128, c: i128, d: i128) -> Eval<Ratio> {
        let of = EvalError::Overflow;
        let (g1, g2) = (gcd(a, d).max(1), gcd(c, b).max(1));
        let num = (a / g1).checked_mul(c / g2).ok_or(of)?;
        let den = (b / g2).checked_mul(d / g1).ok_or(of)?;
        Ratio::new(num, den)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

impl Op {
    fn precedence(self) -> u8 {
        match self {
            Op::Add | Op::Sub => 1,
            Op::Mul | Op::Div => 2,
        }
    }
}

/// What waits on the operator stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    Op(Op),
    Open,
}

/// An expression's value and the integer literals it used, in order.
#[derive(Debug)]
struct Evaluated {
    value: Ratio,
    literals: Vec<i128>,
}

/// Evaluates `text` with Dijkstra's shunting-yard algorithm: one pass, an
/// explicit operator stack, no recursion. Operators wait on the stack while
/// their right operand is read; a new operator first applies the waiting
/// ones of higher or equal precedence (left-to-right grouping). The stacks
/// stay O(depth): within one parenthesis level at most two operators wait.
fn evaluate(text: &str) -> Eval<Evaluated> {
    let mut values: Vec<Ratio> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut literals = Vec::new();
    let mut depth = 0usize;
    // Between tokens we expect either an operand (a number or `(`) or an
    // operator (or `)`); anything else is a syntax error. This is also what
    // rules out unary signs and implicit multiplication.
    let mut expect_operand = true;
    let mut chars = text.chars().peekable();

    /// Pops one operator and applies it to the top two values.
    fn reduce(values: &mut Vec<Ratio>, op: Op) -> Eval<()> {
        let (Some(b), Some(a)) = (values.pop(), values.pop()) else { return Err(EvalError::Syntax) };
        values.push(a.apply(op, b)?);
        Ok(())
    }

    while let Some(c) = chars.next() {
        let op = match c {
            '+' => Some(Op::Add),
            '-' | '−' => Some(Op::Sub),
            '*' | '×' => Some(Op::Mul),
            '/' | '÷' => Some(Op::Div),
            _ => None,
        };
        if let Some(op) = op {
            if expect_operand {
                return Err(EvalError::Syntax);
            }
            while let Some(&Pending::Op(top)) = pending.last() {
                if top.precedence() < op.precedence() {
                    break;
                }
                pending.pop();
                reduce(&mut values, top)?;
            }
            pending.push(Pending::Op(op));
            expect_operand = true;
            continue;
        }
        match c {
            c if c.is_whitespace() => {}
            '0'..='9' => {
                if !expect_operand {
                    return Err(EvalError::Syntax);
                }
                let mut v = i128::from(c as u8 - b'0');
                while let Some(&d @ '0'..='9') = chars.peek() {
                    chars.next();
                    v = v.checked_mul(10).and_then(|v| v.checked_add(i128::from(d as u8 - b'0'))).ok_or(EvalError::Overflow)?;
                }
                literals.push(v);
                values.push(Ratio::integer(v));
                expect_operand = false;
            }
            '(' => {
                if !expect_operand {
                    return Err(EvalError::Syntax);
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(EvalError::TooDeep);
                }
                pending.push(Pending::Open);
            }
            ')' => {
                if expect_operand || depth == 0 {
                    return Err(EvalError::Syntax);
                }
                loop {
                    match pending.pop() {
                        Some(Pending::Op(op)) => reduce(&mut values, op)?,
                        Some(Pending::Open) => break,
                        None => return Err(EvalError::Syntax),
                    }
                }
                depth -= 1;
            }
            _ => return Err(EvalError::Syntax),
        }
    }
    if expect_operand || depth != 0 {
        return Err(EvalError::Syntax);
    }
    while let Some(p) = pending.pop() {
        match p {
            Pending::Op(op) => reduce(&mut values, op)?,
            Pending::Open => return Err(EvalError::Syntax),
        }
    }
    match values[..] {
        [value] => Ok(Evaluated { value, literals }),
        _ => Err(EvalError::Syntax),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Reference;

    fn reply(answer: &str) -> String {
        format!(" <think> thinking </think> <answer> {answer} </answer>")
    }

    fn value(text: &str) -> Eval<Ratio> {
        evaluate(text).map(|e| e.value)
    }

    const NUMBERS: [i64; 4] = [19, 36, 55, 7];

    #[test]
    fn a_right_equation_solves_in_any_order_and_spacing() {
        for answer in [
            "55 - 36 + 7 + 19",
            "19+7+55-36",
            "(55 - 36) + (7 + 19)",
            "((55 - 36)) + 7 + 19",
            "\t55-36 +\n7 + 19 ",
            "55 - 36 + 7 + 19 = 45",
            "55 - 36 + 7 + 19=45",
            "55 − 36 + 7 + 19",
        ] {
            assert!(solves(&reply(answer), &NUMBERS, "45"), "{answer}");
            assert!(solves(&reply(answer), &NUMBERS, " 45\n"), "{answer}");
        }
        assert!(solves(&reply("7 × (55 - 36) ÷ 19 + 36 - 36"), &[7, 55, 36, 19, 36, 36], "7"));
        assert_eq!(check(&reply("55 - 36 + 7 + 19"), &NUMBERS, "45"), Verdict::Solved);
    }

    #[test]
    fn wrong_values_and_claims_do_not_solve() {
        assert_eq!(check(&reply("55 - 36 + 7 + 19"), &NUMBERS, "46"), Verdict::Wrong);
        assert_eq!(check(&reply("55 - 36 + 7 + 19 = 46"), &NUMBERS, "46"), Verdict::Wrong, "false claim");
        assert_eq!(check(&reply("55 - 36 + 7 + 19 = 46"), &NUMBERS, "45"), Verdict::Wrong, "right side wrong");
        assert_eq!(check(&reply("55 - 36 + 7 + 19 = 45 = 45"), &NUMBERS, "45"), Verdict::Malformed);
        assert_eq!(check(&reply("55 - 36 + 7 + 19 = forty-five"), &NUMBERS, "45"), Verdict::Malformed);
        assert_eq!(check(&reply("55 - 36 + 7 + 19 = 45."), &NUMBERS, "45"), Verdict::Malformed);
        assert_eq!(check(&reply("45 = 55 - 36 + 7 + 19"), &NUMBERS, "45"), Verdict::Malformed);
        assert_eq!(check(&reply("= 45"), &NUMBERS, "45"), Verdict::Malformed);
        // Precedence is the usual one: 55 - 36 + 7 * 19 is 152, not 45 * 19.
        assert!(solves(&reply("55 - 36 + 7 * 19"), &NUMBERS, "152"));
        assert!(!solves(&reply("55 - 36 + 7 * 19"), &NUMBERS, "361"));
        // A target that is not an integer is solved by nothing.
        assert_eq!(check(&reply("55 - 36 + 7 + 19"), &NUMBERS, "forty-five"), Verdict::Wrong);
        assert_eq!(check(&reply("55 - 36 + 7 + 19"), &NUMBERS, "45.0"), Verdict::Wrong);
    }

    #[test]
    fn each_number_exactly_once() {
        // The value is right in each case; the numbers are not.
        assert_eq!(check(&reply("55 - 36 + 7 + 19 + 19 - 19"), &NUMBERS, "45"), Verdict::Wrong, "used twice");
        assert_eq!(check(&reply("55 - 36 + 26"), &NUMBERS, "45"), Verdict::Wrong, "missing and extra");
        assert_eq!(check(&reply("55 - 10"), &NUMBERS, "45"), Verdict::Wrong);
        assert_eq!(check(&reply("55 - 36 + 7 + 19 + 0"), &NUMBERS, "45"), Verdict::Wrong, "extra zero");
        assert_eq!(check(&reply("55 - 36 + 7 + 19 * 1"), &NUMBERS, "45"), Verdict::Wrong, "extra one");
        assert_eq!(check(&reply("45"), &NUMBERS, "45"), Verdict::Wrong, "just the target");
        // Duplicates in the numbers must each be used.
        assert!(solves(&reply("3 * 3 + 3"), &[3, 3, 3], "12"));
        assert!(!solves(&reply("3 * 3"), &[3, 3, 3], "9"));
        // Leading zeros spell the same number.
        assert!(solves(&reply("055 - 36 + 07 + 19"), &NUMBERS, "45"));
        // Numbers that are not the given ones but digit-wise similar do not count.
        assert!(!solves(&reply("5 + 5 - 36 + 7 + 19"), &NUMBERS, "0"));
        // No numbers: no expression can use them all, since an expression has a literal.
        assert!(!solves(&reply(""), &[], "0"));
        // Negative given numbers can never be matched (there is no unary minus).
        assert!(!solves(&reply("-3 + 5"), &[-3, 5], "2"));
    }

    #[test]
    fn unary_signs_implicit_products_and_other_syntax_are_rejected() {
        for bad in [
            "-19 + 36 + 55 - 7",
            "+19 + 36",
            "55 - -36",
            "55 + (-36)",
            "2(3 + 4)",
            "(2)(3)",
            "55 36",
            "55 +",
            "* 55",
            "()",
            "(55 - 36",
            "55 - 36)",
            ")55(",
            "55 ** 2",
            "55 ^ 2",
            "5.5 * 10",
            "55 x 36",
            "fifty-five",
            "",
            "   ",
            "١٩ + 36",   // Arabic-Indic digits are not ASCII digits
            "１９ + 36", // nor are full-width ones
        ] {
            assert_eq!(evaluate(bad).map(|_| ()), Err(EvalError::Syntax), "{bad:?}");
            assert_eq!(check(&reply(bad), &NUMBERS, "45"), Verdict::Malformed, "{bad:?}");
        }
    }

    #[test]
    fn arithmetic_is_exact_rational_and_checked() {
        // Fractions in between are fine: (7 / 2) * 2 is exactly 7.
        assert_eq!(value("7 / 2 * 2"), Ok(Ratio::integer(7)));
        assert!(solves(&reply("(7 / 2) * 2"), &[7, 2, 2], "7"));
        assert!(solves(&reply("1 / 3 + 1 / 3 + 1 / 3"), &[1, 3, 1, 3, 1, 3], "1"));
        // ... but the result must be the integer target, not close to it.
        assert_eq!(value("7 / 2"), Ok(Ratio { num: 7, den: 2 }));
        assert!(!solves(&reply("7 / 2"), &[7, 2], "3"));
        assert!(!solves(&reply("7 / 2"), &[7, 2], "4"));
        assert!(!solves(&reply("1 / 3 + 1 / 3 + 1 / 3"), &[1, 3, 1, 3, 1, 3], "0"));
        // Negative intermediates are allowed when the binary minus makes them.
        assert_eq!(value("3 - 5 * 2"), Ok(Ratio::integer(-7)));
        assert_eq!(value("1 / (3 - 5)"), Ok(Ratio { num: -1, den: 2 }));
        assert!(solves(&reply("3 - 5 + 4"), &[3, 5, 4], "2"));
        assert!(solves(&reply("3 - 5 - 4"), &[3, 5, 4], "-6"), "a negative target from data still works");
        // Left-to-right grouping of - and /.
        assert_eq!(value("20 - 5 - 3"), Ok(Ratio::integer(12)));
        assert_eq!(value("64 / 4 / 2"), Ok(Ratio::integer(8)));
        assert_eq!(value("64 / (4 / 2)"), Ok(Ratio::integer(32)));
        assert_eq!(value("2 + 3 * 4 - 6 / 2"), Ok(Ratio::integer(11)));
    }

    #[test]
    fn division_by_zero_and_overflow_are_malformed_not_panics() {
        assert_eq!(value("5 / 0"), Err(EvalError::DivisionByZero));
        assert_eq!(value("5 / (3 - 3)"), Err(EvalError::DivisionByZero));
        assert_eq!(value("0 / 5"), Ok(Ratio::integer(0)));
        assert_eq!(check(&reply("5 / (3 - 3)"), &[5, 3, 3], "0"), Verdict::Malformed);
        // A literal beyond i128.
        let huge = "9".repeat(50);
        assert_eq!(value(&huge), Err(EvalError::Overflow));
        assert_eq!(check(&reply(&format!("{huge} - {huge}")), &[], "0"), Verdict::Malformed);
        // Products that overflow, and a quotient that would.
        let big = i128::MAX.to_string();
        assert_eq!(value(&format!("{big} * 2")), Err(EvalError::Overflow));
        assert_eq!(value(&format!("{big} + 1")), Err(EvalError::Overflow));
        assert_eq!(value(&format!("0 - {big} - 1")), Err(EvalError::Overflow), "i128::MIN is refused");
        assert_eq!(value(&format!("1 / {big} / {big}")), Err(EvalError::Overflow));
        assert_eq!(value(&format!("{big} - {big}")), Ok(Ratio::integer(0)));
        assert_eq!(value(&format!("{big} / {big}")), Ok(Ratio::integer(1)));
        // A long product overflows partway and is caught.
        let tower = format!("1{}", " * 99999999999".repeat(10));
        assert_eq!(value(&tower), Err(EvalError::Overflow));
        // Big given numbers are compared exactly.
        let m = i64::MAX;
        assert!(solves(&reply(&format!("{m} - {m} + 1")), &[m, m, 1], "1"));
        assert!(solves(&reply(&format!("{m} * {m} / {m}")), &[m, m, m], &m.to_string()));
        // A claimed result beyond i128 is not an integer we read.
        assert_eq!(check(&reply(&format!("1 + 1 = {huge}")), &[1, 1], "2"), Verdict::Malformed);
    }

    #[test]
    fn nesting_is_bounded_and_huge_inputs_are_quick() {
        let nested = |d: usize| format!("{}55 - 36{} + 7 + 19", "(".repeat(d), ")".repeat(d));
        assert!(solves(&reply(&nested(10)), &NUMBERS, "45"));
        assert!(solves(&reply(&nested(MAX_DEPTH)), &NUMBERS, "45"));
        assert_eq!(value(&nested(MAX_DEPTH + 1)), Err(EvalError::TooDeep));
        let deep = nested(100_000);
        assert_eq!(check(&reply(&deep), &NUMBERS, "45"), Verdict::Malformed);
        let unbalanced = format!("{}1", "(".repeat(100_000));
        assert_eq!(check(&reply(&unbalanced), &[1], "1"), Verdict::Malformed);
        let closing = format!("1{}", ")".repeat(100_000));
        assert_eq!(check(&reply(&closing), &[1], "1"), Verdict::Malformed);
        // A megabyte of `1+1+…` evaluates in one pass (debug build: well under a second).
        let start = std::time::Instant::now();
        let long = format!("1{}", "+1".repeat(500_000));
        assert_eq!(value(&long), Ok(Ratio::integer(500_001)));
        assert_eq!(check(&reply(&long), &[1, 1], "500001"), Verdict::Wrong);
        let garbage = "<answer> 1 + ".repeat(100_000);
        assert_eq!(check(&garbage, &[1], "1"), Verdict::Malformed);
        assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    }

    #[test]
    fn random_text_over_the_alphabet_never_panics() {
        let alphabet: Vec<char> = "0123456789 +-*/()=×÷−x.".chars().collect();
        let mut rng = aha_runtime::sampler::Rng::new(1);
        let mut verdicts = [0usize; 3];
        for _ in 0..20_000 {
            let len = (rng.next_u32() % 24) as usize;
            let text: String = (0..len).map(|_| alphabet[rng.next_u32() as usize % alphabet.len()]).collect();
            let numbers: Vec<i64> = text.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
            let verdict = check(&reply(&text), &numbers, "1");
            verdicts[verdict as usize] += 1;
        }
        // The generator reaches every verdict, so the loop exercised them all.
        assert!(verdicts.iter().all(|&n| n > 0), "{verdicts:?}");
    }

    #[test]
    fn the_last_complete_answer_tag_is_read() {
        let n = [3, 4];
        assert!(!solves("3 + 4", &n, "7"), "no tags");
        assert!(!solves("<think> 3 + 4 = 7 </think>", &n, "7"), "no answer tag");
        assert!(!solves("<answer> 3 + 4", &n, "7"), "unclosed");
        assert!(!solves("3 + 4 </answer>", &n, "7"), "unopened");
        assert!(!solves("</answer> 3 + 4 <answer>", &n, "7"), "reversed");
        assert!(!solves("<ANSWER> 3 + 4 </ANSWER>", &n, "7"), "tags are case-sensitive");
        assert!(solves("<answer>3+4</answer>", &n, "7"));
        assert!(solves("<answer> 3 * 4 </answer> wait, <answer> 3 + 4 </answer>", &n, "7"));
        assert!(!solves("<answer> 3 + 4 </answer> wait, <answer> 3 * 4 </answer>", &n, "7"));
        assert!(solves("<answer> 3 + 4 </answer> then a truncated <answer> 3 *", &n, "7"));
        assert!(solves("<answer> 3 * <answer> 3 + 4 </answer>", &n, "7"));
        assert!(!solves("<answer> 3 + 4 <b> </answer>", &n, "7"));
        assert!(!solves("", &n, "7"));
        // Unicode around the tags is fine; inside, only the allowed signs.
        assert!(solves("<think> 答えは 🎉 </think> <answer> 3 + 4 </answer> ✓", &n, "7"));
        assert!(!solves("<answer> 3 + 4 🎉 </answer>", &n, "7"));
        assert!(!solves("<answer> 3 ＋ 4 </answer>", &n, "7"), "full-width plus");
        assert!(solves("<answer>\u{a0}3 + 4\u{2003}</answer>", &n, "7"), "Unicode whitespace");
    }

    #[test]
    fn the_reward_is_all_or_nothing_by_default() {
        let reference = Reference { answer: Some("45".into()), numbers: NUMBERS.to_vec(), ..Reference::default() };
        let no_answer = Reference { answer: None, ..reference.clone() };
        let good = reply("55 - 36 + 7 + 19");
        let wrong = reply("55 + 36 + 7 + 19");
        let sample = |completion, reference| Sample { prompt: "q", completion, reference };
        let samples = [
            sample(good.as_str(), &reference),
            sample(wrong.as_str(), &reference),
            sample("no answer", &reference),
            sample(good.as_str(), &no_answer),
        ];
        let reward = CountdownReward::default();
        assert_eq!(reward.name(), "countdown");
        assert_eq!(reward.score(&samples).unwrap(), vec![1.0, 0.0, 0.0, 0.0]);
        let tinyzero = CountdownReward { well_formed: 0.1 };
        assert_eq!(tinyzero.score(&samples).unwrap(), vec![1.0, 0.1, 0.0, 0.0]);
        assert_eq!(reward.score(&[]).unwrap(), Vec::<f32>::new());
    }
}
