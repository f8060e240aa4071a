//! List programming: `Write a program that returns xs sorted with 42 in
//! front` (the deck's example), answered by a program in the
//! [`crate::sandbox`] language and checked by running it on unit tests. The
//! question has no full stop: the R1-Zero template adds one.
//!
//! Each problem comes from one of two dozen families (sort, reverse,
//! filter, map, count, take, …), some with a parameter `k`. The answer is a
//! short reference program (`filter(xs, x => x == 42) ++ sort(filter(xs, x =>
//! x != 42))`), the solution one sentence of plan (`Keep the 42s, sort the
//! rest, put the 42s first.`), and the reference 4-6 tests on random small
//! lists whose expected values come from running the reference program in the
//! sandbox, so the tests and the language can never disagree.

use std::time::Duration;

use aha_runtime::sampler::Rng;

use super::{below, Problem, Task};
use crate::data::{CodeTest, Reference};
use crate::sandbox::{Limits, Program, Value};

/// Problems over lists of small non-negative integers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListProgramming {
    /// Test inputs have at most this many elements (at most [`Self::LEN_CAP`]).
    pub max_len: usize,
    /// Elements are drawn from `0..=max_value` (at most [`Self::VALUE_CAP`]),
    /// besides the values a family plants (42, zeros, `k`).
    pub max_value: i64,
}

impl Default for ListProgramming {
    fn default() -> Self {
        ListProgramming { max_len: 8, max_value: 20 }
    }
}

/// What a family's test inputs look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inputs {
    /// Any list; the empty list is one of the tests.
    Any,
    /// Non-empty lists: the program is undefined on `[]` (`max`, `head`).
    NonEmpty,
    /// Lists where about a third of the elements are `k` (the 42s, the zeros,
    /// the value counted), so the tests exercise what the question is about.
    Planted,
    /// Lists of a few distinct values, so that duplicates are common.
    Repeats,
}

/// A family's parameter `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Param {
    None,
    /// Always this value (42 in "sorted with 42 in front").
    Fixed(i64),
    /// Uniform in `lo..=hi`.
    Range(i64, i64),
    /// Uniform in the element range `0..=max_value`.
    Element,
}

/// A kind of problem. `{k}` in the texts is replaced by the parameter.
struct Family {
    /// Completes "Write a program that returns …".
    returns: &'static str,
    program: &'static str,
    solution: &'static str,
    param: Param,
    inputs: Inputs,
}

const fn family(returns: &'static str, program: &'static str, solution: &'static str, param: Param, inputs: Inputs) -> Family {
    Family { returns, program, solution, param, inputs }
}

const FAMILIES: &[Family] = &[
    family("xs sorted in ascending order", "sort(xs)", "Sort the list.", Param::None, Inputs::Any),
    family("xs sorted in descending order", "reverse(sort(xs))", "Sort the list, then reverse it.", Param::None, Inputs::Any),
    family("xs reversed", "reverse(xs)", "Reverse the list.", Param::None, Inputs::Any),
    family(
        "xs sorted with 42 in front",
        "filter(xs, x => x == 42) ++ sort(filter(xs, x => x != 42))",
        "Keep the 42s, sort the rest, put the 42s first.",
        Param::Fixed(42),
        Inputs::Planted,
    ),
    family(
        "xs with the zeros moved to the end",
        "filter(xs, x => x != 0) ++ filter(xs, x => x == 0)",
        "Keep the other elements in order, then put the zeros after them.",
        Param::Fixed(0),
        Inputs::Planted,
    ),
    family(
        "the even elements of xs",
        "filter(xs, x => x % 2 == 0)",
        "Keep the elements whose remainder by 2 is 0.",
        Param::None,
        Inputs::Any,
    ),
    family(
        "the odd elements of xs",
        "filter(xs, x => x % 2 == 1)",
        "Keep the elements whose remainder by 2 is 1.",
        Param::None,
        Inputs::Any,
    ),
    family(
        "the elements of xs greater than {k}",
        "filter(xs, x => x > {k})",
        "Keep the elements greater than {k}.",
        Param::Element,
        Inputs::Any,
    ),
    family(
        "each element of xs multiplied by {k}",
        "map(xs, x => x * {k})",
        "Multiply each element by {k}.",
        Param::Range(2, 5),
        Inputs::Any,
    ),
    family("each element of xs plus {k}", "map(xs, x => x + {k})", "Add {k} to each element.", Param::Range(1, 9), Inputs::Any),
    family("each element of xs squared", "map(xs, x => x * x)", "Multiply each element by itself.", Param::None, Inputs::Any),
    family("xs without duplicates", "unique(xs)", "Keep the first copy of each element.", Param::None, Inputs::Repeats),
    family("the first {k} elements of xs", "take(xs, {k})", "Take {k} elements from the front.", Param::Range(1, 4), Inputs::Any),
    family("xs without its first {k} elements", "drop(xs, {k})", "Drop {k} elements from the front.", Param::Range(1, 4), Inputs::Any),
    family("the sum of xs", "sum(xs)", "Add up the elements.", Param::None, Inputs::Any),
    family(
        "the sum of the even elements of xs",
        "sum(filter(xs, x => x % 2 == 0))",
        "Keep the even elements, then add them up.",
        Param::None,
        Inputs::Any,
    ),
    family("the length of xs", "len(xs)", "Count the elements.", Param::None, Inputs::Any),
    family(
        "how many times {k} occurs in xs",
        "count(xs, x => x == {k})",
        "Count the elements equal to {k}.",
        Param::Range(0, 9),
        Inputs::Planted,
    ),
    family("whether xs contains {k}", "contains(xs, {k})", "Check whether some element equals {k}.", Param::Range(0, 9), Inputs::Planted),
    family("the largest element of xs", "max(xs)", "Take the maximum.", Param::None, Inputs::NonEmpty),
    family("the smallest element of xs", "min(xs)", "Take the minimum.", Param::None, Inputs::NonEmpty),
    family("the first element of xs", "head(xs)", "Take the first element.", Param::None, Inputs::NonEmpty),
    family("the last element of xs", "last(xs)", "Take the last element.", Param::None, Inputs::NonEmpty),
];

impl ListProgramming {
    /// Longest test input allowed.
    pub const LEN_CAP: usize = 16;
    /// Largest element allowed: keeps every family's result (a sum of
    /// squares at most) far inside `i64`.
    pub const VALUE_CAP: i64 = 1000;
    /// Fewest and most tests per problem.
    pub const MIN_TESTS: usize = 4;
    pub const MAX_TESTS: usize = 6;

    /// The knobs clamped to what the generator supports.
    fn limits(&self) -> (usize, i64) {
        (self.max_len.clamp(1, Self::LEN_CAP), self.max_value.clamp(1, Self::VALUE_CAP))
    }

    /// One test input for `family` with parameter `k`.
    fn input(&self, rng: &mut Rng, family: &Family, k: i64) -> Vec<i64> {
        let (max_len, max_value) = self.limits();
        let len = 1 + below(rng, max_len);
        let top = if family.inputs == Inputs::Repeats { max_value.min(4) } else { max_value };
        (0..len)
            .map(|_| if family.inputs == Inputs::Planted && below(rng, 3) == 0 { k } else { below(rng, top as usize + 1) as i64 })
            .collect()
    }

    /// 4-6 distinct inputs: the empty list where the program is defined on
    /// it, and for planted families at least one input holding `k`.
    fn inputs(&self, rng: &mut Rng, family: &Family, k: i64) -> Vec<Vec<i64>> {
        let n = Self::MIN_TESTS + below(rng, Self::MAX_TESTS - Self::MIN_TESTS + 1);
        let mut inputs = Vec::with_capacity(n);
        if family.inputs != Inputs::NonEmpty {
            inputs.push(Vec::new());
        }
        // Small knobs may allow fewer distinct lists than tests wanted.
        for _ in 0..20 * n {
            if inputs.len() == n {
                break;
            }
            let input = self.input(rng, family, k);
            if !inputs.contains(&input) {
                inputs.push(input);
            }
        }
        if family.inputs == Inputs::Planted && !inputs.iter().flatten().any(|&v| v == k) {
            if let Some(last) = inputs.last_mut().filter(|l| !l.is_empty()) {
                let at = below(rng, last.len());
                last[at] = k;
            }
        }
        inputs
    }
}

impl Task for ListProgramming {
    fn name(&self) -> &'static str {
        "listprog"
    }

    fn problem(&self, rng: &mut Rng) -> Problem {
        let family = &FAMILIES[below(rng, FAMILIES.len())];
        let (_, max_value) = self.limits();
        let k = match family.param {
            Param::None => 0,
            Param::Fixed(v) => v,
            Param::Range(lo, hi) => lo + below(rng, (hi - lo + 1) as usize) as i64,
            Param::Element => below(rng, max_value as usize + 1) as i64,
        };
        let fill = |text: &str| text.replace("{k}", &k.to_string());
        let program = fill(family.program);
        let inputs = self.inputs(rng, family, k);
        Problem {
            question: format!("Write a program that returns {}", fill(family.returns)),
            solution: fill(family.solution),
            reference: Reference { answer: Some(program.clone()), tests: tests(&program, &inputs), ..Reference::default() },
            answer: program,
        }
    }
}

/// Unit tests whose expected values are the reference program's results. An
/// input the program fails on (none, for the families above: the tests check)
/// is left out rather than given a made-up expectation.
fn tests(program: &str, inputs: &[Vec<i64>]) -> Vec<CodeTest> {
    // The clock is the one budget that is not deterministic: without it, the
    // same seed gives the same tests on a loaded machine.
    let limits = Limits { max_time: Duration::from_secs(3600), ..Limits::default() };
    let Ok(program) = Program::parse(program, &limits) else {
        return Vec::new();
    };
    inputs
        .iter()
        .filter_map(|input| {
            let input = Value::ints(input);
            let expected = program.run(&input, &limits).ok()?;
            Some(CodeTest { input: input.to_string(), expected: expected.to_string() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewards::code::pass_rate;
    use crate::sandbox::parse_value;
    use crate::tasks::r1_completion;

    fn problems(task: &ListProgramming, n: usize, seed: u64) -> Vec<Problem> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| task.problem(&mut rng)).collect()
    }

    fn list(text: &str) -> Vec<i64> {
        match parse_value(text).unwrap() {
            Value::List(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::Int(n) => n,
                    other => panic!("{other}"),
                })
                .collect(),
            other => panic!("{other}"),
        }
    }

    /// The family of a question, and its `k` read back from the question.
    fn family_of(question: &str) -> (&'static Family, i64) {
        let phrase = question.strip_prefix("Write a program that returns ").unwrap();
        for f in FAMILIES {
            let (before, after) = f.returns.split_once("{k}").unwrap_or((f.returns, ""));
            if f.returns.contains("{k}") {
                if let Some(k) = phrase.strip_prefix(before).and_then(|rest| rest.strip_suffix(after)) {
                    if let Ok(k) = k.parse() {
                        return (f, k);
                    }
                }
            } else if phrase == f.returns {
                return (f, if let Param::Fixed(v) = f.param { v } else { 0 });
            }
        }
        panic!("no family for {question:?}")
    }

    /// The families' meaning, written in Rust independently of the sandbox.
    fn oracle(family: &Family, k: i64, xs: &[i64]) -> Value {
        let ints = |v: Vec<i64>| Value::ints(&v);
        let keep = |p: &dyn Fn(i64) -> bool| xs.iter().copied().filter(|&x| p(x)).collect::<Vec<_>>();
        let mut sorted = xs.to_vec();
        sorted.sort();
        match family.program {
            "sort(xs)" => ints(sorted),
            "reverse(sort(xs))" => ints(sorted.into_iter().rev().collect()),
            "reverse(xs)" => ints(xs.iter().rev().copied().collect()),
            "filter(xs, x => x == 42) ++ sort(filter(xs, x => x != 42))" => {
                let mut out = keep(&|x| x == 42);
                out.extend(sorted.iter().filter(|&&x| x != 42));
                ints(out)
            }
            "filter(xs, x => x != 0) ++ filter(xs, x => x == 0)" => {
                let mut out = keep(&|x| x != 0);
                out.extend(keep(&|x| x == 0));
                ints(out)
            }
            "filter(xs, x => x % 2 == 0)" => ints(keep(&|x| x % 2 == 0)),
            "filter(xs, x => x % 2 == 1)" => ints(keep(&|x| x % 2 == 1)),
            "filter(xs, x => x > {k})" => ints(keep(&|x| x > k)),
            "map(xs, x => x * {k})" => ints(xs.iter().map(|x| x * k).collect()),
            "map(xs, x => x + {k})" => ints(xs.iter().map(|x| x + k).collect()),
            "map(xs, x => x * x)" => ints(xs.iter().map(|x| x * x).collect()),
            "unique(xs)" => {
                let mut out: Vec<i64> = Vec::new();
                for &x in xs {
                    if !out.contains(&x) {
                        out.push(x);
                    }
                }
                ints(out)
            }
            "take(xs, {k})" => ints(xs.iter().take(k as usize).copied().collect()),
            "drop(xs, {k})" => ints(xs.iter().skip(k as usize).copied().collect()),
            "sum(xs)" => Value::Int(xs.iter().sum()),
            "sum(filter(xs, x => x % 2 == 0))" => Value::Int(keep(&|x| x % 2 == 0).iter().sum()),
            "len(xs)" => Value::Int(xs.len() as i64),
            "count(xs, x => x == {k})" => Value::Int(keep(&|x| x == k).len() as i64),
            "contains(xs, {k})" => Value::Bool(xs.contains(&k)),
            "max(xs)" => Value::Int(*xs.iter().max().unwrap()),
            "min(xs)" => Value::Int(*xs.iter().min().unwrap()),
            "head(xs)" => Value::Int(xs[0]),
            "last(xs)" => Value::Int(*xs.last().unwrap()),
            other => panic!("no oracle for {other}"),
        }
    }

    #[test]
    fn every_problem_is_consistent_and_its_tests_are_right() {
        let task = ListProgramming::default();
        let mut seen = vec![0; FAMILIES.len()];
        let mut identity_rejected = 0;
        let all = problems(&task, 3000, 1);
        for p in &all {
            let (family, k) = family_of(&p.question);
            seen[FAMILIES.iter().position(|f| std::ptr::eq(f, family)).unwrap()] += 1;
            let tests = &p.reference.tests;
            assert!((4..=6).contains(&tests.len()), "{p:?}");
            assert_eq!(p.reference.answer.as_deref(), Some(p.answer.as_str()));
            assert!(p.reference.numbers.is_empty());
            // The worked demonstration earns full marks from the code reward.
            assert_eq!(pass_rate(&r1_completion(p), tests), 1.0, "{p:?}");
            let mut inputs = Vec::new();
            for t in tests {
                let xs = list(&t.input);
                assert!(xs.len() <= task.max_len, "{p:?}");
                assert_eq!(parse_value(&t.expected).unwrap(), oracle(family, k, &xs), "{} on {}", p.answer, t.input);
                assert!(!inputs.contains(&xs), "repeated input in {p:?}");
                inputs.push(xs);
            }
            if family.inputs == Inputs::NonEmpty {
                assert!(inputs.iter().all(|xs| !xs.is_empty()), "{p:?}");
            } else {
                assert!(inputs.contains(&Vec::new()), "no empty-list edge case in {p:?}");
            }
            if family.inputs == Inputs::Planted {
                assert!(inputs.iter().flatten().any(|&v| v == k), "{k} never planted in {p:?}");
            }
            identity_rejected += (pass_rate("<answer> xs </answer>", tests) < 1.0) as usize;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        // The tests tell a program that does nothing from a right one.
        assert!(identity_rejected > all.len() * 95 / 100, "{identity_rejected}");
    }

    #[test]
    fn the_deck_example_is_one_of_the_problems() {
        let p = problems(&ListProgramming::default(), 500, 2)
            .into_iter()
            .find(|p| p.question == "Write a program that returns xs sorted with 42 in front")
            .unwrap();
        assert_eq!(p.answer, "filter(xs, x => x == 42) ++ sort(filter(xs, x => x != 42))");
        assert_eq!(p.solution, "Keep the 42s, sort the rest, put the 42s first.");
        assert_eq!(
            r1_completion(&p),
            "<think> Keep the 42s, sort the rest, put the 42s first. </think> <answer> filter(xs, x => x == 42) \
             ++ sort(filter(xs, x => x != 42)) </answer>"
        );
        assert_eq!(pass_rate(&format!(" {}", r1_completion(&p)), &p.reference.tests), 1.0);
        // Sorting alone misses the tests that hold a 42 among smaller numbers.
        assert!(pass_rate("<answer> sort(xs) </answer>", &p.reference.tests) < 1.0);
    }

    #[test]
    fn corpus_documents_read_as_one_sentence_per_question() {
        for doc in crate::tasks::write_corpus(&ListProgramming::default(), 50, 6) {
            assert!(doc.contains("User: Write a program that returns "), "{doc}");
            assert!(!doc.contains(".. Assistant:"), "{doc}");
            assert!(doc.ends_with(" </answer>"), "{doc}");
        }
    }

    #[test]
    fn same_seed_same_problems() {
        let task = ListProgramming::default();
        assert_eq!(task.name(), "listprog");
        assert_eq!(problems(&task, 100, 7), problems(&task, 100, 7));
        assert_ne!(problems(&task, 100, 7), problems(&task, 100, 8));
    }

    #[test]
    fn knobs_shape_the_inputs_and_extremes_are_clamped() {
        let small = ListProgramming { max_len: 2, max_value: 3 };
        for p in problems(&small, 300, 3) {
            let (family, k) = family_of(&p.question);
            assert_eq!(pass_rate(&r1_completion(&p), &p.reference.tests), 1.0, "{p:?}");
            for t in &p.reference.tests {
                let xs = list(&t.input);
                assert!(xs.len() <= 2, "{p:?}");
                assert!(xs.iter().all(|&x| (0..=3).contains(&x) || (family.inputs == Inputs::Planted && x == k)), "{p:?}");
            }
            // Few distinct short lists exist; there are still tests, if fewer.
            assert!(!p.reference.tests.is_empty(), "{p:?}");
        }
        let wild = ListProgramming { max_len: usize::MAX, max_value: i64::MAX };
        for p in problems(&wild, 300, 4) {
            assert!((4..=6).contains(&p.reference.tests.len()), "{p:?}");
            assert_eq!(pass_rate(&r1_completion(&p), &p.reference.tests), 1.0, "{p:?}");
            for t in &p.reference.tests {
                assert!(list(&t.input).len() <= ListProgramming::LEN_CAP);
            }
        }
        let degenerate = ListProgramming { max_len: 0, max_value: -5 };
        for p in problems(&degenerate, 100, 5) {
            assert_eq!(pass_rate(&r1_completion(&p), &p.reference.tests), 1.0, "{p:?}");
        }
    }
}
