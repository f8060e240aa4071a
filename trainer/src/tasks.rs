//! Built-in tasks: problems with verifiable answers generated from a seed, so
//! a run needs no dataset to pre-train, SFT or do R1-Zero RL on a small model.
//!
//! A [`Task`] makes one [`Problem`] (question, exact answer, worked solution)
//! from an RNG; the functions below turn problems into pre-training documents,
//! SFT records and RL prompts. A new task is a type implementing [`Task`] plus
//! one line in [`task_by_name`] and [`TASK_NAMES`].

use aha_runtime::sampler::Rng;
use aha_runtime::template::Template;

use crate::data::{Message, PromptFormat, PromptRecord, Reference, SftRecord};
use crate::error::Result;

pub mod countdown;
pub mod listprog;
pub mod styles;
pub mod words;

/// A problem with a checkable answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub question: String,
    /// What a worked demonstration writes inside `<answer>`.
    pub answer: String,
    /// Worked reasoning, step by step, ending at the answer: what goes inside
    /// `<think>` in demonstrations.
    pub solution: String,
    /// What samples are checked against. For arithmetic it is `answer`
    /// itself; for Countdown `answer` is one equation that works and the
    /// reference is the target and the numbers; for code `answer` is a
    /// program and the reference its unit tests.
    pub reference: Reference,
}

impl Problem {
    /// A problem whose answer is checked as is.
    pub fn new(question: String, answer: String, solution: String) -> Problem {
        let reference = Reference::answer(answer.as_str());
        Problem { question, answer, solution, reference }
    }
}

/// A generator of problems. Implementations are pure functions of the RNG
/// stream, so a seed fixes a dataset.
pub trait Task: Send + Sync {
    /// The name [`task_by_name`] knows it by.
    fn name(&self) -> &'static str;
    /// The next problem, drawing from `rng`.
    fn problem(&self, rng: &mut Rng) -> Problem;
}

/// The built-in tasks' names.
pub const TASK_NAMES: &[&str] = &["arith", "words", "countdown", "listprog"];

/// The built-in task called `name`, with its default settings.
pub fn task_by_name(name: &str) -> Option<Box<dyn Task>> {
    match name {
        "arith" => Some(Box::new(Arith::default())),
        "words" => Some(Box::new(words::WordProblems::default())),
        "countdown" => Some(Box::new(countdown::Countdown::default())),
        "listprog" => Some(Box::new(listprog::ListProgramming::default())),
        _ => None,
    }
}

/// The reply an R1 model should give: reasoning in `<think>`, the answer in
/// `<answer>` (docs/method.md, the prompt).
pub fn r1_completion(problem: &Problem) -> String {
    format!("<think> {} </think> <answer> {} </answer>", problem.solution, problem.answer)
}

/// A worked example as pre-training text: the question in `format`, then the
/// R1 reply, e.g. for R1-Zero `…User: Compute 7 * 3 + 5. Assistant: <think>
/// 7 * 3 = 21. 21 + 5 = 26. </think> <answer> 26 </answer>`. A model
/// pre-trained on these has seen the prompt and the reply format that RL
/// rewards. (The eos after it is [`crate::data::pack`]'s to add.)
pub fn corpus_document(problem: &Problem, format: &PromptFormat) -> Result<String> {
    format.render_conversation(&[Message::user(problem.question.as_str()), Message::assistant(r1_completion(problem))])
}

/// `n` pre-training documents from `task` (R1-Zero format), the same for the same seed.
pub fn write_corpus(task: &dyn Task, n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let problem = task.problem(&mut rng);
            // As `corpus_document(.., &PromptFormat::R1Zero)` renders it (tested),
            // through the runtime's template, which cannot fail.
            let mut doc = String::new();
            // Writing into a String never fails.
            let _ = Template::R1Zero.render(&problem.question, &mut doc);
            doc.push(' ');
            doc.push_str(&r1_completion(&problem));
            doc
        })
        .collect()
}

/// `n` SFT examples from `task`: the question and the R1 reply.
pub fn sft_records(task: &dyn Task, n: usize, seed: u64) -> Vec<SftRecord> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let problem = task.problem(&mut rng);
            SftRecord::PromptResponse { response: r1_completion(&problem), prompt: problem.question }
        })
        .collect()
}

/// `n` RL prompts from `task`, each with its answer.
pub fn prompt_records(task: &dyn Task, n: usize, seed: u64) -> Vec<PromptRecord> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let problem = task.problem(&mut rng);
            PromptRecord { reference: problem.reference, messages: vec![Message::user(problem.question)], id: None }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// arith

/// Multi-step integer arithmetic: `Compute 7 * 3 + (5 - 2)`, with `+ - *`,
/// the usual precedence, sometimes a parenthesised group, and a solution that
/// does one operation per step (`7 * 3 = 21. 5 - 2 = 3. 21 + 3 = 24.`).
/// Answers are exact integers and may be negative.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Arith {
    /// Operands are drawn from `1..=max_operand` (at most [`Arith::OPERAND_CAP`]).
    pub max_operand: u32,
    /// Operands per expression, at least 2, at most [`Arith::OPERANDS_CAP`]:
    /// the number of steps is one less.
    pub min_operands: usize,
    pub max_operands: usize,
    /// Chance that an expression of 3 or more operands gets a parenthesised group.
    pub parentheses: f32,
    /// The operations drawn from, a subset of `+-*` (empty or none known: all three).
    pub operations: String,
}

impl Default for Arith {
    fn default() -> Self {
        Arith { max_operand: 20, min_operands: 2, max_operands: 4, parentheses: 0.3, operations: "+-*".into() }
    }
}

/// One element of an expression being reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sym {
    Num(i64),
    Op(Op),
    Open,
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
}

impl Op {
    const ALL: [Op; 3] = [Op::Add, Op::Sub, Op::Mul];

    fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
        }
    }

    /// The caps on the knobs keep every intermediate within i64.
    fn apply(self, a: i64, b: i64) -> i64 {
        match self {
            Op::Add => a + b,
            Op::Sub => a - b,
            Op::Mul => a * b,
        }
    }
}

impl Arith {
    /// Largest operand allowed (so that no intermediate overflows i64).
    pub const OPERAND_CAP: u32 = 1000;
    /// Most operands allowed: 1000^6 = 10^18 < i64::MAX.
    pub const OPERANDS_CAP: usize = 6;

    /// The knobs clamped to what the generator supports.
    fn limits(&self) -> (u32, usize, usize) {
        let max_operand = self.max_operand.clamp(1, Self::OPERAND_CAP);
        let min = self.min_operands.clamp(2, Self::OPERANDS_CAP);
        let max = self.max_operands.clamp(min, Self::OPERANDS_CAP);
        (max_operand, min, max)
    }

    /// The operations drawn from, in `+ - *` order.
    fn ops(&self) -> Vec<Op> {
        let ops: Vec<Op> = Op::ALL.into_iter().filter(|op| self.operations.contains(op.symbol())).collect();
        if ops.is_empty() {
            Op::ALL.to_vec()
        } else {
            ops
        }
    }

    /// The expression as symbols.
    fn expression(&self, rng: &mut Rng) -> Vec<Sym> {
        let (max_operand, min, max) = self.limits();
        let n = min + below(rng, max - min + 1);
        let mut syms = Vec::with_capacity(2 * n + 1);
        for i in 0..n {
            if i > 0 {
                let ops = self.ops();
                syms.push(Sym::Op(ops[below(rng, ops.len())]));
            }
            syms.push(Sym::Num(1 + below(rng, max_operand as usize) as i64));
        }
        if n >= 3 && rng.next_f32() < self.parentheses {
            // A group of 2..n-1 operands starting at operand `first`.
            let len = 2 + below(rng, n - 2);
            let first = below(rng, n - len + 1);
            syms.insert(2 * (first + len) - 1, Sym::Close);
            syms.insert(2 * first, Sym::Open);
        }
        syms
    }
}

impl Task for Arith {
    fn name(&self) -> &'static str {
        "arith"
    }

    fn problem(&self, rng: &mut Rng) -> Problem {
        let mut syms = self.expression(rng);
        let question = format!("Compute {}", render(&syms));
        let mut steps = Vec::new();
        let answer = reduce(&mut syms, &mut steps);
        Problem::new(question, answer.to_string(), steps.join(" "))
    }
}

/// `7 * (3 + 5)`.
fn render(syms: &[Sym]) -> String {
    let mut out = String::new();
    for s in syms {
        match s {
            Sym::Num(v) => out.push_str(&v.to_string()),
            Sym::Op(op) => {
                out.push(' ');
                out.push_str(op.symbol());
                out.push(' ');
            }
            Sym::Open => out.push('('),
            Sym::Close => out.push(')'),
        }
    }
    out
}

/// Evaluates `syms` one operation at a time, as a person would: the innermost
/// parenthesised group first, within a group `*` before `+ -`, left to right.
/// Each operation is written to `steps` as `a op b = c.`.
fn reduce(syms: &mut Vec<Sym>, steps: &mut Vec<String>) -> i64 {
    loop {
        // The innermost group: the last `(` before the first `)`, or everything.
        let close = syms.iter().position(|s| *s == Sym::Close);
        let open = close.and_then(|c| syms[..c].iter().rposition(|s| *s == Sym::Open));
        let (lo, hi) = match (open, close) {
            (Some(o), Some(c)) => (o + 1, c),
            _ => (0, syms.len()),
        };
        let group = &syms[lo..hi];
        let at = group
            .iter()
            .position(|s| *s == Sym::Op(Op::Mul))
            .or_else(|| group.iter().position(|s| matches!(s, Sym::Op(_))))
            .map(|i| lo + i);
        match at {
            Some(i) => {
                if let (Sym::Num(a), Sym::Op(op), Sym::Num(b)) = (syms[i - 1], syms[i], syms[i + 1]) {
                    let c = op.apply(a, b);
                    // A negative right operand in parentheses: `2 - (-11)`, not `2 - -11`.
                    let b_text = if b < 0 { format!("({b})") } else { b.to_string() };
                    steps.push(format!("{a} {} {b_text} = {c}.", op.symbol()));
                    syms.splice(i - 1..=i + 1, [Sym::Num(c)]);
                } else {
                    // Unreachable for generated expressions: operators sit between numbers.
                    return 0;
                }
            }
            // The group is one number: drop its parentheses, or finish.
            None => match (open, close) {
                (Some(o), Some(c)) => {
                    syms.remove(c);
                    syms.remove(o);
                }
                _ => return if let [Sym::Num(v)] = syms[..] { v } else { 0 },
            },
        }
    }
}

/// Uniform in `0..bound` (bound > 0), without modulo bias.
fn below(rng: &mut Rng, bound: usize) -> usize {
    let bound = bound.max(1) as u32;
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let r = rng.next_u32();
        if r >= threshold {
            return (r % bound) as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent evaluator: recursive descent over the question's text.
    fn evaluate(expr: &str) -> i64 {
        fn number(s: &[u8], i: &mut usize) -> i64 {
            skip(s, i);
            if s[*i] == b'(' {
                *i += 1;
                let v = sum(s, i);
                skip(s, i);
                assert_eq!(s[*i], b')');
                *i += 1;
                return v;
            }
            let start = *i;
            while *i < s.len() && s[*i].is_ascii_digit() {
                *i += 1;
            }
            std::str::from_utf8(&s[start..*i]).unwrap().parse().unwrap()
        }
        fn product(s: &[u8], i: &mut usize) -> i64 {
            let mut v = number(s, i);
            loop {
                skip(s, i);
                if *i < s.len() && s[*i] == b'*' {
                    *i += 1;
                    v *= number(s, i);
                } else {
                    return v;
                }
            }
        }
        fn sum(s: &[u8], i: &mut usize) -> i64 {
            let mut v = product(s, i);
            loop {
                skip(s, i);
                match s.get(*i) {
                    Some(b'+') => {
                        *i += 1;
                        v += product(s, i);
                    }
                    Some(b'-') => {
                        *i += 1;
                        v -= product(s, i);
                    }
                    _ => return v,
                }
            }
        }
        fn skip(s: &[u8], i: &mut usize) {
            while *i < s.len() && s[*i] == b' ' {
                *i += 1;
            }
        }
        let s = expr.as_bytes();
        let mut i = 0;
        let v = sum(s, &mut i);
        assert_eq!(i, s.len(), "trailing text in {expr:?}");
        v
    }

    fn problems(task: &dyn Task, n: usize, seed: u64) -> Vec<Problem> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| task.problem(&mut rng)).collect()
    }

    #[test]
    fn arith_answers_are_correct() {
        let mut parenthesised = 0;
        for p in problems(&Arith::default(), 2000, 1) {
            let expr = p.question.strip_prefix("Compute ").unwrap();
            parenthesised += expr.contains('(') as usize;
            assert_eq!(p.answer, evaluate(expr).to_string(), "{}", p.question);
        }
        assert!(parenthesised > 100, "parentheses should appear sometimes: {parenthesised}");
    }

    #[test]
    fn arith_solution_ends_at_the_answer_one_step_per_operation() {
        for p in problems(&Arith::default(), 500, 2) {
            let steps: Vec<&str> = p.solution.split(". ").collect();
            let operations = p.question.matches([' ']).count() / 2;
            assert_eq!(steps.len(), operations, "{p:?}");
            let last = p.solution.trim_end_matches('.').rsplit(' ').next().unwrap();
            assert_eq!(last, p.answer, "{p:?}");
            // Each step is true arithmetic.
            for step in p.solution.split('.').map(str::trim).filter(|s| !s.is_empty()) {
                let (lhs, rhs) = step.split_once(" = ").unwrap();
                let mut parts = lhs.split(' ');
                let (a, op, b) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
                let b = b.trim_start_matches('(').trim_end_matches(')');
                let (a, b): (i64, i64) = (a.parse().unwrap(), b.parse().unwrap());
                let want = match op {
                    "+" => a + b,
                    "-" => a - b,
                    "*" => a * b,
                    other => panic!("operator {other}"),
                };
                assert_eq!(rhs.parse::<i64>().unwrap(), want, "{step}");
            }
        }
    }

    #[test]
    fn arith_example_reads_step_by_step() {
        let mut syms = vec![Sym::Num(7), Sym::Op(Op::Mul), Sym::Num(3), Sym::Op(Op::Add), Sym::Num(5)];
        let mut steps = Vec::new();
        assert_eq!(reduce(&mut syms, &mut steps), 26);
        assert_eq!(steps.join(" "), "7 * 3 = 21. 21 + 5 = 26.");
        let mut syms = vec![
            Sym::Num(3),
            Sym::Op(Op::Sub),
            Sym::Open,
            Sym::Num(4),
            Sym::Op(Op::Add),
            Sym::Num(5),
            Sym::Close,
            Sym::Op(Op::Mul),
            Sym::Num(2),
        ];
        assert_eq!(render(&syms), "3 - (4 + 5) * 2");
        let mut steps = Vec::new();
        assert_eq!(reduce(&mut syms, &mut steps), -15);
        assert_eq!(steps.join(" "), "4 + 5 = 9. 9 * 2 = 18. 3 - 18 = -15.");
        let mut syms = vec![Sym::Num(2), Sym::Op(Op::Mul), Sym::Open, Sym::Num(1), Sym::Op(Op::Sub), Sym::Num(4), Sym::Close];
        let mut steps = Vec::new();
        assert_eq!(reduce(&mut syms, &mut steps), -6);
        assert_eq!(steps.join(" "), "1 - 4 = -3. 2 * (-3) = -6.");
    }

    #[test]
    fn arith_knobs_shape_the_problems_and_extremes_are_clamped() {
        let easy = Arith { max_operand: 5, min_operands: 2, max_operands: 2, parentheses: 0.0, ..Arith::default() };
        for p in problems(&easy, 200, 3) {
            let expr = p.question.strip_prefix("Compute ").unwrap();
            let nums: Vec<i64> = expr.split(' ').filter_map(|t| t.parse().ok()).collect();
            assert_eq!(nums.len(), 2);
            assert!(nums.iter().all(|&v| (1..=5).contains(&v)), "{expr}");
        }
        let wild = Arith { max_operand: u32::MAX, min_operands: 0, max_operands: usize::MAX, parentheses: 1.0, operations: "?".into() };
        for p in problems(&wild, 300, 4) {
            let expr = p.question.strip_prefix("Compute ").unwrap();
            assert_eq!(p.answer, evaluate(expr).to_string());
        }
    }

    #[test]
    fn same_seed_same_data() {
        let task = task_by_name("arith").unwrap();
        assert_eq!(task.name(), "arith");
        assert_eq!(problems(task.as_ref(), 50, 9), problems(task.as_ref(), 50, 9));
        assert_ne!(problems(task.as_ref(), 50, 9), problems(task.as_ref(), 50, 10));
        assert_eq!(write_corpus(task.as_ref(), 20, 5), write_corpus(task.as_ref(), 20, 5));
        assert_eq!(sft_records(task.as_ref(), 20, 5), sft_records(task.as_ref(), 20, 5));
        assert!(task_by_name("nope").is_none());
        for name in TASK_NAMES {
            assert_eq!(task_by_name(name).unwrap().name(), *name);
        }
    }

    #[test]
    fn corpus_documents_are_in_the_r1_zero_format() {
        let task = Arith::default();
        let docs = write_corpus(&task, 10, 6);
        let probs = problems(&task, 10, 6);
        for (doc, p) in docs.iter().zip(&probs) {
            assert_eq!(doc, &corpus_document(p, &PromptFormat::R1Zero).unwrap());
            let tail = format!("User: {}. Assistant: <think> {} </think> <answer> {} </answer>", p.question, p.solution, p.answer);
            assert!(doc.ends_with(&tail), "{doc}");
            assert!(doc.starts_with("A conversation between User and Assistant."));
        }
        let records = sft_records(&task, 10, 6);
        assert_eq!(records[0], SftRecord::PromptResponse { prompt: probs[0].question.clone(), response: r1_completion(&probs[0]) });
        let prompts = prompt_records(&task, 10, 6);
        assert_eq!(prompts[3].question(), probs[3].question);
        assert_eq!(prompts[3].reference.answer.as_deref(), Some(probs[3].answer.as_str()));
    }
}
