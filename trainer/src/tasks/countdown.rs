//! Countdown (TinyZero's task): given a few numbers and a target, write an
//! equation that uses each number exactly once with `+ - * /` and equals the
//! target. `Using the numbers [19, 36, 55, 7], create an equation that equals
//! 45. Use each number once with + - * /`, answer `55 - 36 + 7 + 19`.
//!
//! Problems are made backwards: draw the numbers, combine random pairs with
//! random operations until one value is left, and make that value the
//! target, so every problem has at least one solution (the one generated).
//! Every intermediate value is a positive integer no larger than
//! [`Countdown::max_target`] (subtraction only of a smaller value, division
//! only when exact), so the worked solution reads like the `arith` task's:
//! one `a op b = c.` step per operation. Zero is avoided because `x * (a - a)`
//! would make the other numbers irrelevant.
//!
//! The question ends without a full stop because the R1-Zero template adds
//! one after the prompt. The reference is the target and the numbers; the
//! `countdown` reward ([`crate::rewards::countdown`]) checks any equation.

use aha_runtime::sampler::Rng;

use super::{below, Problem, Task};
use crate::data::Reference;

/// The Countdown task's knobs.
///
/// The defaults (3 or 4 numbers from 1 to 20, target and every step at most
/// 200) are smaller than TinyZero's (1 to 99, 3 or 4 numbers) because aha's
/// models are small and trained from scratch: products of two numbers up to
/// 20 stay within what such a model can learn to multiply, while the search
/// over orders and operations, the point of the task, is unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct Countdown {
    /// How many numbers a problem gives: from `min_numbers` to `max_numbers`,
    /// clamped to `2..=`[`Countdown::NUMBERS_CAP`].
    pub min_numbers: usize,
    pub max_numbers: usize,
    /// Numbers are drawn from `1..=max_number` (at most [`Countdown::NUMBER_CAP`]);
    /// repeats are allowed.
    pub max_number: i64,
    /// The largest target and the largest intermediate value of the
    /// generated solution (at most [`Countdown::TARGET_CAP`]).
    pub max_target: i64,
}

impl Default for Countdown {
    fn default() -> Self {
        Countdown { min_numbers: 3, max_numbers: 4, max_number: 20, max_target: 200 }
    }
}

impl Countdown {
    /// Most numbers per problem.
    pub const NUMBERS_CAP: usize = 6;
    /// Largest number allowed.
    pub const NUMBER_CAP: i64 = 10_000;
    /// Largest target allowed; with every intermediate at most this, no
    /// product of two of them overflows i64.
    pub const TARGET_CAP: i64 = 1_000_000;
    /// Tries at a problem within the bounds before falling back to the sum.
    const ATTEMPTS: usize = 1000;

    /// The knobs clamped to what the generator supports.
    fn limits(&self) -> (usize, usize, i64, i64) {
        let min = self.min_numbers.clamp(2, Self::NUMBERS_CAP);
        let max = self.max_numbers.clamp(min, Self::NUMBERS_CAP);
        let max_number = self.max_number.clamp(1, Self::NUMBER_CAP);
        let max_target = self.max_target.clamp(1, Self::TARGET_CAP);
        (min, max, max_number, max_target)
    }

    /// Numbers and an expression over them whose value is a fair target.
    /// Knobs that leave no such expression (say `max_target` 1) get the sum
    /// of the numbers, which is never one of them, whatever its size.
    fn expression(&self, rng: &mut Rng) -> (Vec<i64>, Expr) {
        let (min, max, max_number, max_target) = self.limits();
        let mut numbers = Vec::new();
        for _ in 0..Self::ATTEMPTS {
            let n = min + below(rng, max - min + 1);
            numbers = (0..n).map(|_| 1 + below(rng, max_number as usize) as i64).collect();
            if let Some(expr) = combine_all(rng, &numbers, max_target) {
                // A target equal to a given number is trivial to reach.
                if !numbers.contains(&expr.value()) {
                    return (numbers, expr);
                }
            }
        }
        // `numbers` holds the last attempt's draw: at least two numbers.
        let first = Expr::Num(numbers.first().copied().unwrap_or(1));
        let sum = numbers.iter().skip(1).fold(first, |acc, &n| {
            let value = acc.value() + n;
            Expr::Bin { op: Op::Add, left: Box::new(acc), right: Box::new(Expr::Num(n)), value }
        });
        (numbers, sum)
    }
}

impl Task for Countdown {
    fn name(&self) -> &'static str {
        "countdown"
    }

    fn problem(&self, rng: &mut Rng) -> Problem {
        let (numbers, expr) = self.expression(rng);
        let target = expr.value();
        let question = question(&numbers, target);
        let mut answer = String::new();
        expr.render(&mut answer);
        let mut steps = Vec::new();
        expr.steps(&mut steps);
        let reference = Reference { answer: Some(target.to_string()), numbers, ..Reference::default() };
        Problem { question, answer, solution: steps.join(" "), reference }
    }
}

/// The question for a Countdown problem (also for datasets such as
/// TinyZero's, whose rows hold only `nums` and `target`).
pub fn question(numbers: &[i64], target: i64) -> String {
    format!("Using the numbers {numbers:?}, create an equation that equals {target}. Use each number once with + - * /")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

impl Op {
    const ALL: [Op; 4] = [Op::Add, Op::Sub, Op::Mul, Op::Div];

    fn symbol(self) -> char {
        match self {
            Op::Add => '+',
            Op::Sub => '-',
            Op::Mul => '*',
            Op::Div => '/',
        }
    }

    fn precedence(self) -> u8 {
        match self {
            Op::Add | Op::Sub => 1,
            Op::Mul | Op::Div => 2,
        }
    }

    /// `a op b` if it is a positive integer no larger than `max`.
    fn apply(self, a: i64, b: i64, max: i64) -> Option<i64> {
        let v = match self {
            Op::Add => a.checked_add(b)?,
            Op::Sub => a.checked_sub(b)?,
            Op::Mul => a.checked_mul(b)?,
            Op::Div if b != 0 && a % b == 0 => a / b,
            Op::Div => return None,
        };
        (1..=max).contains(&v).then_some(v)
    }
}

/// An expression tree; each operation keeps its value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    Num(i64),
    Bin { op: Op, left: Box<Expr>, right: Box<Expr>, value: i64 },
}

impl Expr {
    fn value(&self) -> i64 {
        match self {
            Expr::Num(v) | Expr::Bin { value: v, .. } => *v,
        }
    }

    /// A number binds tighter than any operation.
    fn precedence(&self) -> u8 {
        match self {
            Expr::Num(_) => u8::MAX,
            Expr::Bin { op, .. } => op.precedence(),
        }
    }

    /// The expression with parentheses exactly where the usual reading
    /// (`* /` before `+ -`, left to right) would group it differently, so
    /// the answer reads as the tree that the solution steps through:
    /// `(55 - 36) + 7` is written `55 - 36 + 7`, but `55 - (36 + 7)` keeps
    /// its parentheses, as does `7 + (1 + 2)`.
    fn render(&self, out: &mut String) {
        match self {
            Expr::Num(v) => out.push_str(&v.to_string()),
            Expr::Bin { op, left, right, .. } => {
                let group = |e: &Expr, parenthesise: bool, out: &mut String| {
                    if parenthesise {
                        out.push('(');
                        e.render(out);
                        out.push(')');
                    } else {
                        e.render(out);
                    }
                };
                group(left, left.precedence() < op.precedence(), out);
                out.push(' ');
                out.push(op.symbol());
                out.push(' ');
                group(right, right.precedence() <= op.precedence(), out);
            }
        }
    }

    /// One `a op b = c.` per operation, operands before the operation that
    /// uses them, left before right: the order a person reading the answer
    /// would compute it.
    fn steps(&self, out: &mut Vec<String>) {
        if let Expr::Bin { op, left, right, value } = self {
            left.steps(out);
            right.steps(out);
            out.push(format!("{} {} {} = {value}.", left.value(), op.symbol(), right.value()));
        }
    }
}

/// Combines `numbers` two at a time (a random pair, a random operation that
/// keeps the value a positive integer ≤ `max`, either operand first for `-`
/// and `/`) until one expression is left; `None` when a pair admits no
/// operation. Random pairs give every tree shape, chains and balanced alike.
fn combine_all(rng: &mut Rng, numbers: &[i64], max: i64) -> Option<Expr> {
    let mut pool: Vec<Expr> = numbers.iter().map(|&n| Expr::Num(n)).collect();
    while pool.len() > 1 {
        let i = below(rng, pool.len());
        let j = (i + 1 + below(rng, pool.len() - 1)) % pool.len();
        let (a, b) = if i < j {
            let b = pool.swap_remove(j);
            (pool.swap_remove(i), b)
        } else {
            let a = pool.swap_remove(i);
            (a, pool.swap_remove(j))
        };
        let mut ops = Op::ALL;
        for k in (1..ops.len()).rev() {
            ops.swap(k, below(rng, k + 1));
        }
        let combined = ops.iter().find_map(|&op| {
            let (x, y) = (a.value(), b.value());
            let (left, right, value) = match op.apply(x, y, max) {
                Some(v) => (&a, &b, v),
                None => (&b, &a, op.apply(y, x, max)?),
            };
            Some(Expr::Bin { op, left: Box::new(left.clone()), right: Box::new(right.clone()), value })
        })?;
        pool.push(combined);
    }
    pool.pop()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewards::countdown::solves;
    use crate::tasks::r1_completion;

    fn problems(task: &Countdown, n: usize, seed: u64) -> Vec<Problem> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| task.problem(&mut rng)).collect()
    }

    /// The numbers listed in the question, read back from its text.
    fn listed(question: &str) -> Vec<i64> {
        let inside = question.split_once('[').and_then(|(_, r)| r.split_once(']')).unwrap().0;
        inside.split(", ").map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn every_problem_is_solved_by_its_own_answer() {
        let task = Countdown::default();
        let mut sizes = [0usize; 7];
        let mut ops = [0usize; 4];
        let mut parenthesised = 0;
        for p in problems(&task, 2000, 1) {
            let target = p.reference.answer.clone().unwrap();
            assert!(solves(&r1_completion(&p), &p.reference.numbers, &target), "{p:?}");
            assert_eq!(listed(&p.question), p.reference.numbers, "{p:?}");
            assert!(p.question.ends_with(&format!("equals {target}. Use each number once with + - * /")));
            let numbers = &p.reference.numbers;
            sizes[numbers.len()] += 1;
            assert!(numbers.iter().all(|n| (1..=20).contains(n)), "{p:?}");
            let t: i64 = target.parse().unwrap();
            assert!((1..=200).contains(&t) && !numbers.contains(&t), "{p:?}");
            assert!(!p.answer.contains('='));
            // Every number appears in the answer once (the reward checks it too).
            let mut used: Vec<i64> = p.answer.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
            let mut given = numbers.clone();
            used.sort();
            given.sort();
            assert_eq!(used, given, "{p:?}");
            for (k, sym) in ['+', '-', '*', '/'].iter().enumerate() {
                ops[k] += p.answer.contains(*sym) as usize;
            }
            parenthesised += p.answer.contains('(') as usize;
        }
        assert_eq!(sizes[0..3].iter().sum::<usize>() + sizes[5..].iter().sum::<usize>(), 0, "{sizes:?}");
        assert!(sizes[3] > 700 && sizes[4] > 700, "{sizes:?}");
        assert!(ops.iter().all(|&n| n > 100), "every operation appears: {ops:?}");
        assert!(parenthesised > 200, "{parenthesised}");
    }

    #[test]
    fn solutions_step_through_positive_integers_to_the_target() {
        for p in problems(&Countdown::default(), 500, 2) {
            let steps: Vec<&str> = p.solution.split(". ").collect();
            assert_eq!(steps.len(), p.reference.numbers.len() - 1, "one step per operation: {p:?}");
            // The pool of values not yet used: the numbers, then each step's result.
            let mut pool = p.reference.numbers.clone();
            let mut last = 0;
            for step in p.solution.split('.').map(str::trim).filter(|s| !s.is_empty()) {
                let parts: Vec<&str> = step.split(' ').collect();
                let [a, op, b, "=", c] = parts[..] else { panic!("step {step:?}") };
                let (a, b, c): (i64, i64, i64) = (a.parse().unwrap(), b.parse().unwrap(), c.parse().unwrap());
                let want = match op {
                    "+" => a + b,
                    "-" => a - b,
                    "*" => a * b,
                    "/" => {
                        assert_eq!(a % b, 0, "{step}");
                        a / b
                    }
                    other => panic!("operator {other}"),
                };
                assert_eq!(c, want, "{step}");
                assert!((1..=200).contains(&c), "{step}");
                for v in [a, b] {
                    let at = pool.iter().position(|&x| x == v).unwrap_or_else(|| panic!("{v} unavailable: {p:?}"));
                    pool.swap_remove(at);
                }
                pool.push(c);
                last = c;
            }
            assert_eq!(pool, vec![last]);
            assert_eq!(last.to_string(), p.reference.answer.clone().unwrap());
        }
    }

    #[test]
    fn parentheses_follow_the_tree() {
        let num = |v| Box::new(Expr::Num(v));
        let bin = |op, left, right, value| Box::new(Expr::Bin { op, left, right, value });
        let render = |e: &Expr| {
            let mut s = String::new();
            e.render(&mut s);
            let mut steps = Vec::new();
            e.steps(&mut steps);
            (s, steps.join(" "))
        };
        let e = bin(Op::Add, bin(Op::Add, bin(Op::Sub, num(55), num(36), 19), num(7), 26), num(19), 45);
        assert_eq!(render(&e), ("55 - 36 + 7 + 19".into(), "55 - 36 = 19. 19 + 7 = 26. 26 + 19 = 45.".into()));
        let e = bin(Op::Sub, num(55), bin(Op::Add, num(36), num(7), 43), 12);
        assert_eq!(render(&e).0, "55 - (36 + 7)");
        let e = bin(Op::Mul, bin(Op::Add, num(2), num(3), 5), bin(Op::Div, num(8), num(4), 2), 10);
        assert_eq!(render(&e), ("(2 + 3) * (8 / 4)".into(), "2 + 3 = 5. 8 / 4 = 2. 5 * 2 = 10.".into()));
        let e = bin(Op::Add, bin(Op::Mul, num(2), num(3), 6), bin(Op::Div, num(8), num(4), 2), 8);
        assert_eq!(render(&e).0, "2 * 3 + 8 / 4");
        let e = bin(Op::Div, num(24), bin(Op::Div, num(8), num(4), 2), 12);
        assert_eq!(render(&e).0, "24 / (8 / 4)");
    }

    #[test]
    fn same_seed_same_problems() {
        let task = Countdown::default();
        assert_eq!(task.name(), "countdown");
        assert_eq!(problems(&task, 100, 7), problems(&task, 100, 7));
        assert_ne!(problems(&task, 100, 7), problems(&task, 100, 8));
    }

    #[test]
    fn knobs_shape_problems_and_extremes_still_give_solvable_ones() {
        let big = Countdown { min_numbers: 5, max_numbers: 6, max_number: 99, max_target: 999 };
        for p in problems(&big, 300, 3) {
            let n = &p.reference.numbers;
            assert!((5..=6).contains(&n.len()) && n.iter().all(|v| (1..=99).contains(v)), "{p:?}");
            assert!(solves(&r1_completion(&p), n, p.reference.answer.as_deref().unwrap()), "{p:?}");
        }
        // No fair target within the bound: the sum, which still solves.
        let cramped = Countdown { min_numbers: 0, max_numbers: 0, max_number: 0, max_target: 0 };
        for p in problems(&cramped, 5, 4) {
            assert_eq!(p.reference.numbers, vec![1, 1]);
            assert_eq!((p.answer.as_str(), p.reference.answer.as_deref()), ("1 + 1", Some("2")));
        }
        let wild = Countdown { min_numbers: usize::MAX, max_numbers: usize::MAX, max_number: i64::MAX, max_target: i64::MAX };
        for p in problems(&wild, 50, 5) {
            assert_eq!(p.reference.numbers.len(), Countdown::NUMBERS_CAP);
            assert!(solves(&r1_completion(&p), &p.reference.numbers, p.reference.answer.as_deref().unwrap()), "{p:?}");
        }
    }
}
