//! Multi-step arithmetic word problems, generated (GSM8K-like, but small and
//! regular enough for a model trained from scratch): shopping with change,
//! sharing, rates, ages, saving, travel, recipes, reading, sales, supplies.
//! `Ava buys 3 pens for $4 each and 2 notebooks for $5 each. Ava pays with a
//! $50 bill. How much change does Ava get?`, solution `3 * 4 = 12. 2 * 5 =
//! 10. 12 + 10 = 22. 50 - 22 = 28.`, answer `28`.
//!
//! Each template draws its numbers so that every step is exact: divisions
//! come out whole, subtractions never go below zero, and the answer is a
//! non-negative integer. The solution does one operation per step, in the
//! order a person would, like the `arith` task's. The only number a step
//! may use that the question does not state is 60 (minutes in an hour).

use aha_runtime::sampler::Rng;

use super::{below, Problem, Task};

/// The word-problem task's knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct WordProblems {
    /// No number in the question, the steps or the answer exceeds it (a
    /// draw that would is drawn again). Clamped to
    /// [`WordProblems::MIN_VALUE`]`..=`[`WordProblems::VALUE_CAP`]; the
    /// templates' own ranges stay below the default.
    pub max_value: i64,
}

impl Default for WordProblems {
    fn default() -> Self {
        WordProblems { max_value: 1000 }
    }
}

impl WordProblems {
    /// Smallest `max_value` honoured: most templates fit under it (those
    /// that cannot, like hours turned into minutes, are drawn again).
    pub const MIN_VALUE: i64 = 100;
    pub const VALUE_CAP: i64 = 1_000_000;
    /// Draws before giving up on `max_value` (for a template that fits
    /// rarely under a low bound; with the floor above it is never reached in
    /// practice, and the problem is still correct, only larger).
    const ATTEMPTS: usize = 1000;

    /// A problem and the index of the template it came from.
    fn generate(&self, rng: &mut Rng) -> (usize, Problem) {
        let max_value = self.max_value.clamp(Self::MIN_VALUE, Self::VALUE_CAP);
        let mut last = None;
        for _ in 0..Self::ATTEMPTS {
            let template = below(rng, TEMPLATES.len());
            let mut work = Work::default();
            let question = TEMPLATES[template](rng, &mut work);
            let Some(answer) = work.answer() else { continue };
            let fits = work.largest <= max_value && numbers_in(&question).all(|n| n <= max_value);
            last = Some((template, Problem::new(question, answer.to_string(), work.steps.join(" "))));
            if fits {
                break;
            }
        }
        // Unreachable fallback: some template always evaluates (see tests).
        last.unwrap_or_else(|| (0, Problem::new("How much is 1 + 1?".into(), "2".into(), "1 + 1 = 2.".into())))
    }
}

impl Task for WordProblems {
    fn name(&self) -> &'static str {
        "words"
    }

    fn problem(&self, rng: &mut Rng) -> Problem {
        self.generate(rng).1
    }
}

/// The worked solution being written: one `a op b = c.` per operation.
/// A step that would be inexact, negative or overflow spoils the problem
/// (the generator draws again) instead of writing a false step.
#[derive(Debug, Default)]
struct Work {
    steps: Vec<String>,
    last: i64,
    largest: i64,
    spoiled: bool,
}

impl Work {
    fn op(&mut self, a: i64, op: char, b: i64) -> i64 {
        let value = match op {
            '+' => a.checked_add(b),
            '-' => a.checked_sub(b),
            '*' => a.checked_mul(b),
            '/' if b > 0 && a % b == 0 => Some(a / b),
            _ => None,
        };
        match value.filter(|v| *v >= 0) {
            Some(v) => {
                self.steps.push(format!("{a} {op} {b} = {v}."));
                self.last = v;
                self.largest = self.largest.max(a).max(b).max(v);
                v
            }
            None => {
                self.spoiled = true;
                0
            }
        }
    }

    /// The last step's result, if every step was sound.
    fn answer(&self) -> Option<i64> {
        (!self.spoiled && !self.steps.is_empty()).then_some(self.last)
    }
}

/// Every run of ASCII digits in `text`, as a number.
fn numbers_in(text: &str) -> impl Iterator<Item = i64> + '_ {
    text.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok())
}

/// Uniform in `lo..=hi`.
fn range(rng: &mut Rng, lo: i64, hi: i64) -> i64 {
    lo + below(rng, (hi - lo + 1) as usize) as i64
}

fn pick<'a>(rng: &mut Rng, options: &[&'a str]) -> &'a str {
    options[below(rng, options.len())]
}

/// Two different entries of `options`.
fn pick_two<'a>(rng: &mut Rng, options: &[&'a str]) -> (&'a str, &'a str) {
    let i = below(rng, options.len());
    let j = (i + 1 + below(rng, options.len() - 1)) % options.len();
    (options[i], options[j])
}

const NAMES: &[&str] = &[
    "Ava", "Ben", "Cara", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena", "Max", "Nora", "Omar", "Pia", "Raj", "Sara",
    "Tom", "Uma", "Zoe",
];
/// Things bought or shared, plural.
const ITEMS: &[&str] = &["apples", "pens", "notebooks", "cupcakes", "stickers", "marbles", "candles", "oranges", "cookies", "toy cars"];
const PRODUCTS: &[&str] = &["toys", "boxes", "bottles", "bricks", "cups", "chairs"];
const GOALS: &[&str] = &["bike", "game", "guitar", "tent", "camera", "scooter", "watch"];
const VEHICLES: &[&str] = &["train", "bus", "car", "truck"];

/// A template writes the question and works the solution into `work`.
type Template = fn(&mut Rng, &mut Work) -> String;

const TEMPLATES: &[Template] = &[shopping, sharing, rate, ages, saving, travel, recipe, reading, sales, supplies];

/// 4 steps: two purchases, their total, the change.
fn shopping(rng: &mut Rng, w: &mut Work) -> String {
    let name = pick(rng, NAMES);
    let (x, y) = pick_two(rng, ITEMS);
    let (a, p, b, q) = (range(rng, 2, 9), range(rng, 1, 12), range(rng, 2, 9), range(rng, 1, 12));
    let first = w.op(a, '*', p);
    let second = w.op(b, '*', q);
    let total = w.op(first, '+', second);
    // The smallest common bill above the total (the ranges keep it under 500).
    let bill = [20, 50, 100, 200, 500].into_iter().find(|&b| b > total).unwrap_or(500);
    w.op(bill, '-', total);
    format!(
        "{name} buys {a} {x} for ${p} each and {b} {y} for ${q} each. {name} pays with a ${bill} bill. \
         How much change does {name} get?"
    )
}

/// 3 steps: a product, minus what is kept, shared exactly.
fn sharing(rng: &mut Rng, w: &mut Work) -> String {
    let name = pick(rng, NAMES);
    let x = pick(rng, ITEMS);
    let (a, b, k) = (range(rng, 2, 9), range(rng, 2, 12), range(rng, 2, 6));
    // Keep what makes the rest divide by k, plus up to two more shares.
    let remainder = (a * b) % k;
    let keep = if remainder == 0 { k } else { remainder } + k * range(rng, 0, 2);
    let total = w.op(a, '*', b);
    let rest = w.op(total, '-', keep);
    w.op(rest, '/', k);
    if rest == 0 {
        w.spoiled = true;
    }
    format!(
        "{name} has {a} bags of {x} with {b} in each bag. {name} keeps {keep} and shares the rest equally among \
         {k} friends. How many {x} does each friend get?"
    )
}

/// 3 steps: hours to minutes, batches, items.
fn rate(rng: &mut Rng, w: &mut Work) -> String {
    let x = pick(rng, PRODUCTS);
    let m = [2, 3, 4, 5, 6, 10, 12, 15, 20, 30][below(rng, 10)];
    let (r, h) = (range(rng, 1, 9), range(rng, 2, 5));
    let minutes = w.op(h, '*', 60);
    let batches = w.op(minutes, '/', m);
    w.op(batches, '*', r);
    format!("A machine makes {r} {x} every {m} minutes. How many {x} does it make in {h} hours?")
}

/// 3 steps: a multiple, a difference, years ahead.
fn ages(rng: &mut Rng, w: &mut Work) -> String {
    let (b, a) = pick_two(rng, NAMES);
    let c = loop {
        let c = pick(rng, NAMES);
        if c != a && c != b {
            break c;
        }
    };
    let (y, k, z) = (range(rng, 2, 12), range(rng, 2, 4), range(rng, 1, 10));
    let d = range(rng, 1, y * k - 1);
    let age_a = w.op(y, '*', k);
    let age_c = w.op(age_a, '-', d);
    w.op(age_c, '+', z);
    format!(
        "{b} is {y} years old. {a} is {k} times as old as {b}. {c} is {d} years younger than {a}. \
         How old will {c} be in {z} years?"
    )
}

/// 3 steps: what is missing, the weekly saving, the weeks.
fn saving(rng: &mut Rng, w: &mut Work) -> String {
    let name = pick(rng, NAMES);
    let goal = pick(rng, GOALS);
    let (s, allowance, chores, weeks) = (range(rng, 1, 50), range(rng, 2, 10), range(rng, 1, 10), range(rng, 2, 12));
    let cost = s + (allowance + chores) * weeks;
    let missing = w.op(cost, '-', s);
    let weekly = w.op(allowance, '+', chores);
    w.op(missing, '/', weekly);
    format!(
        "{name} has ${s} and wants a {goal} that costs ${cost}. {name} saves ${allowance} from allowance and \
         ${chores} from chores every week. How many weeks will it take to save enough?"
    )
}

/// 3 steps: two legs of a journey and their sum.
fn travel(rng: &mut Rng, w: &mut Work) -> String {
    let vehicle = pick(rng, VEHICLES);
    let (v, h, u, g) = (5 * range(rng, 3, 18), range(rng, 2, 5), 5 * range(rng, 3, 18), range(rng, 2, 5));
    let first = w.op(v, '*', h);
    let second = w.op(u, '*', g);
    w.op(first, '+', second);
    format!(
        "A {vehicle} travels at {v} km per hour for {h} hours, then at {u} km per hour for {g} hours. \
         How many km does it travel in total?"
    )
}

/// 2 steps: how many batches, then how much.
fn recipe(rng: &mut Rng, w: &mut Work) -> String {
    let name = pick(rng, NAMES);
    let (cups, per, batches) = (range(rng, 2, 5), range(rng, 2, 6), range(rng, 2, 8));
    let wanted = per * batches;
    let times = w.op(wanted, '/', per);
    w.op(times, '*', cups);
    format!(
        "A recipe uses {cups} cups of flour for {per} pancakes. {name} wants to make {wanted} pancakes. \
         How many cups of flour are needed?"
    )
}

/// 3 steps: pages read, plus Sunday's, pages left.
fn reading(rng: &mut Rng, w: &mut Work) -> String {
    let name = pick(rng, NAMES);
    let (a, d, b, left) = (range(rng, 5, 30), range(rng, 2, 7), range(rng, 5, 40), range(rng, 10, 200));
    let pages = a * d + b + left;
    let weekdays = w.op(a, '*', d);
    let read = w.op(weekdays, '+', b);
    w.op(pages, '-', read);
    format!(
        "A book has {pages} pages. {name} reads {a} pages a day for {d} days and then {b} pages on Sunday. \
         How many pages are left to read?"
    )
}

/// 3 steps: Tuesday's sales, both days, the money.
fn sales(rng: &mut Rng, w: &mut Work) -> String {
    let (price, monday, more) = (range(rng, 2, 6), range(rng, 10, 60), range(rng, 2, 30));
    let tuesday = w.op(monday, '+', more);
    let muffins = w.op(monday, '+', tuesday);
    w.op(muffins, '*', price);
    format!(
        "A bakery sells muffins for ${price} each. It sells {monday} muffins on Monday and {more} more on \
         Tuesday than on Monday. How much money does it make on the two days?"
    )
}

/// 4 steps: a product, minus broken ones, shared exactly, minus the teacher's.
fn supplies(rng: &mut Rng, w: &mut Work) -> String {
    let (a, b, k) = (range(rng, 3, 12), range(rng, 10, 50), range(rng, 2, 8));
    let remainder = (a * b) % k;
    let broken = if remainder == 0 { k } else { remainder };
    let teacher = range(rng, 1, 5);
    let total = w.op(a, '*', b);
    let whole = w.op(total, '-', broken);
    let each = w.op(whole, '/', k);
    w.op(each, '-', teacher);
    format!(
        "A school orders {a} boxes of {b} pencils. {broken} pencils are broken. The rest are shared equally \
         among {k} classes, and each class gives {teacher} pencils to its teacher. How many pencils are left \
         for the students of each class?"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent check of a solution: each step `a op b = c.` is true
    /// arithmetic on integers, uses only numbers from the question, earlier
    /// results or 60, and the last result is the answer.
    fn check(p: &Problem) {
        let stated: Vec<i64> = numbers_in(&p.question).collect();
        let mut known = stated.clone();
        known.push(60);
        let mut last = None;
        let steps: Vec<&str> = p.solution.split('.').map(str::trim).filter(|s| !s.is_empty()).collect();
        assert!((2..=4).contains(&steps.len()), "2 to 4 operations: {p:?}");
        assert_eq!(p.solution.matches(". ").count() + 1, steps.len(), "steps are `. `-separated: {p:?}");
        assert!(p.solution.ends_with('.'));
        for step in steps {
            let parts: Vec<&str> = step.split(' ').collect();
            let [a, op, b, "=", c] = parts[..] else { panic!("step {step:?} in {p:?}") };
            let (a, b, c): (i64, i64, i64) = (a.parse().unwrap(), b.parse().unwrap(), c.parse().unwrap());
            let want = match op {
                "+" => a + b,
                "-" => a - b,
                "*" => a * b,
                "/" => {
                    assert!(b != 0 && a % b == 0, "inexact {step} in {p:?}");
                    a / b
                }
                other => panic!("operator {other}"),
            };
            assert_eq!(c, want, "{step} in {p:?}");
            assert!(c >= 0, "{step} in {p:?}");
            for v in [a, b] {
                assert!(known.contains(&v), "{v} in {step} comes from nowhere: {p:?}");
            }
            known.push(c);
            last = Some(c);
        }
        assert_eq!(last.unwrap().to_string(), p.answer, "{p:?}");
        assert_eq!(p.reference.answer.as_deref(), Some(p.answer.as_str()));
    }

    fn generate(task: &WordProblems, n: usize, seed: u64) -> Vec<(usize, Problem)> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| task.generate(&mut rng)).collect()
    }

    #[test]
    fn every_solution_is_true_step_by_step_and_ends_at_the_answer() {
        for (_, p) in generate(&WordProblems::default(), 3000, 1) {
            check(&p);
            let answer: i64 = p.answer.parse().unwrap();
            assert!((0..=1000).contains(&answer), "{p:?}");
            assert!(numbers_in(&p.question).chain(numbers_in(&p.solution)).all(|n| n <= 1000), "{p:?}");
            assert!(p.question.ends_with('?') && p.question.matches('?').count() == 1, "{p:?}");
            assert!(p.question.len() < 300, "{p:?}");
        }
    }

    #[test]
    fn every_template_appears_and_works() {
        let mut seen = vec![0usize; TEMPLATES.len()];
        for (t, _) in generate(&WordProblems::default(), 100, 2) {
            seen[t] += 1;
        }
        assert!(seen.iter().filter(|&&n| n > 0).count() >= 8, "{seen:?}");
        // Each template alone, many times: it never writes a false step
        // (a spoiled draw is redrawn, so it must succeed often).
        let mut rng = Rng::new(3);
        for (t, template) in TEMPLATES.iter().enumerate() {
            let mut good = 0;
            for _ in 0..500 {
                let mut work = Work::default();
                let question = template(&mut rng, &mut work);
                if let Some(answer) = work.answer() {
                    good += 1;
                    check(&Problem::new(question, answer.to_string(), work.steps.join(" ")));
                }
            }
            assert!(good > 400, "template {t} works {good} times in 500");
        }
    }

    #[test]
    fn the_bound_holds_for_small_values() {
        let small = WordProblems { max_value: 0 };
        for (_, p) in generate(&small, 500, 4) {
            check(&p);
            assert!(numbers_in(&p.question).chain(numbers_in(&p.solution)).all(|n| n <= 100), "{p:?}");
        }
        let huge = WordProblems { max_value: i64::MAX };
        for (_, p) in generate(&huge, 100, 5) {
            check(&p);
        }
    }

    #[test]
    fn a_spoiled_step_is_not_written() {
        let mut w = Work::default();
        assert_eq!(w.op(7, '/', 2), 0);
        assert!(w.steps.is_empty() && w.answer().is_none());
        let mut w = Work::default();
        w.op(3, '-', 5);
        assert_eq!(w.answer(), None);
        let mut w = Work::default();
        w.op(i64::MAX, '*', 2);
        assert_eq!(w.answer(), None);
        let mut w = Work::default();
        let v = w.op(3, '*', 12);
        w.op(v, '-', 7);
        assert_eq!((w.answer(), w.steps.join(" ")), (Some(29), "3 * 12 = 36. 36 - 7 = 29.".to_string()));
    }

    #[test]
    fn same_seed_same_problems() {
        let task = WordProblems::default();
        assert_eq!(task.name(), "words");
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..100).map(|_| task.problem(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
