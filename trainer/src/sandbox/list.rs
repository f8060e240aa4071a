//! The list language: a tiny pure language whose interpreter is its own
//! sandbox, for the built-in code task (`listprog`) that small models learn.
//!
//! Code rewards (docs/method.md, rewards) run a model's program against unit tests.
//! Python needs a process, a jail and a clock ([`super::python`]); a program
//! in this language needs none of them: the interpreter is the sandbox. It
//! has no names for files, the network, processes, the clock or any global
//! state, so a program can only compute a value from its input.
//! Every resource it can consume is budgeted ([`Limits`]): interpreter steps,
//! list cells, nesting depth, wall-clock time and source length. A budget
//! running out is an error like any other, so an infinite loop or a huge
//! allocation costs a few milliseconds and scores 0; nothing panics, recurses
//! without bound, or allocates before the allocation is paid for.
//!
//! # The language
//!
//! A program is one expression over the input list `xs`, e.g. the deck's
//! "return the list sorted with 42 in front":
//!
//! ```text
//! filter(xs, x => x == 42) ++ sort(filter(xs, x => x != 42))
//! ```
//!
//! Values are integers (`i64`; overflow is an error, never a wrap), booleans
//! and lists of values; functions are values too but cannot be a result.
//!
//! ```text
//! program = expr
//! expr    = "let" NAME "=" expr "in" expr          (not recursive)
//!         | "if" expr "then" expr "else" expr
//!         | params "=>" expr                        (a function)
//!         | expr OP expr | "-" expr | "not" expr
//!         | postfix
//! params  = NAME | "(" [NAME {"," NAME}] ")"
//! postfix = primary { "(" [expr {"," expr}] ")"    (a call)
//!                   | "[" expr "]" }               (indexing, 0-based; -1 is the last)
//! primary = INTEGER | "true" | "false" | NAME | "(" expr ")"
//!         | "[" [expr {"," expr}] "]"
//! ```
//!
//! Binary operators, loosest first, all left-associative: `or`; `and`;
//! (prefix `not`); `== != < <= > >=`; `++` (list concatenation); `+ -`;
//! `* / %`; prefix `-` binds tightest. `let`, `if` and `=>` bodies extend as
//! far right as they can. `/` and `%` round toward minus infinity, as in
//! Python (`-7 / 2 == -4`, `-7 % 2 == 1`, so `x % 2 == 1` tests oddness);
//! dividing by zero is an error. `==` and `!=` compare any two values
//! (different kinds are unequal); `<` and friends compare integers, booleans
//! or lists (lexicographically). `and`, `or`, `not` and `if` need booleans.
//! `#` starts a comment that runs to the end of the line.
//!
//! Builtins (a variable of the same name shadows one; builtins are values, so
//! `map(xss, sort)` works):
//!
//! | call | result |
//! | --- | --- |
//! | `len(xs)`, `sum(xs)` | length; sum (0 for `[]`) |
//! | `min(xs)`, `max(xs)`, `min(a, b)`, `max(a, b)` | smallest / largest (error on `[]`) |
//! | `sort(xs)`, `reverse(xs)`, `unique(xs)` | sorted (stable); reversed; first copy of each element kept |
//! | `head(xs)`, `last(xs)`, `tail(xs)` | first; last (error on `[]`); all but the first (`[]` for `[]`) |
//! | `take(xs, n)`, `drop(xs, n)` | the first `n`; all but the first `n` (`n` clamped to `0..=len`) |
//! | `map(xs, f)`, `filter(xs, p)`, `count(xs, p)` | `f` of each; those where `p` holds; how many |
//! | `fold(xs, init, f)` | `f(…f(f(init, x0), x1)…)` |
//! | `contains(xs, v)` | whether some element equals `v` |
//! | `range(n)`, `range(a, b)` | `[0, …, n-1]`; `[a, …, b-1]` |
//! | `abs(n)` | absolute value |
//! | `while(s, p, f)` | `s`, replaced by `f(s)` as long as `p(s)` holds: the loop |
//!
//! # Calling convention
//!
//! A unit test ([`crate::data::CodeTest`]) is two value literals in the
//! syntax above (`[3, 42, 1]`, `7`, `true`, `[[1], []]`): the test's `input`
//! is parsed with [`parse_value`] and bound to `xs`; the program's result
//! must equal `expected`, parsed the same way. [`Value`]'s `Display` prints
//! that syntax, so `parse_value(&v.to_string()) == Ok(v)`.
//!
//! # Budgets
//!
//! * steps: one per expression evaluated, per element a builtin visits and
//!   per comparison of two elements: what stops `while(0, n => true, n => n)`;
//! * cells: list elements allocated over the whole run (including the input
//!   and the result), paid before a list of known size is built, so
//!   `range(1000000000000)` or doubling a list in a loop fails before
//!   allocating. Bulk copies (`++`, `range`, `take`, …) cost cells, not
//!   steps: the interpreter's work is bounded by steps + cells;
//! * depth: the nesting of the source, of the syntax tree, of evaluation
//!   (function calls included, so self-application `(f => f(f))(f => f(f))`
//!   stops) and of values (lists in lists, functions capturing functions), so
//!   no recursion in here (parsing, evaluation, comparison, printing or
//!   dropping) runs deeper than [`MAX_DEPTH_CAP`] levels;
//! * time: the wall clock, read every [`CLOCK_EVERY`] steps, a backstop for a
//!   slow machine (the step budget is the deterministic limit);
//! * source length, checked before anything else.

use std::cmp::Ordering;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What a program may consume. See the module documentation for what each
/// budget counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Interpreter steps (the instruction budget).
    pub max_steps: u64,
    /// List elements allocated over the whole run.
    pub max_cells: u64,
    /// Nesting of source, syntax tree, evaluation and values; capped at [`MAX_DEPTH_CAP`].
    pub max_depth: usize,
    /// Wall-clock time of one run.
    pub max_time: Duration,
    /// Program length in bytes.
    pub max_source_len: usize,
}

impl Default for Limits {
    /// Far more than a list program needs on a test input (sorting eight
    /// numbers takes 19 steps, the deck's "42 in front" 86), far less than
    /// would hurt a training step: a run that exhausts a budget costs a few
    /// tens of milliseconds and a few tens of MB at most.
    fn default() -> Self {
        Limits { max_steps: 100_000, max_cells: 1_000_000, max_depth: 128, max_time: Duration::from_millis(100), max_source_len: 4096 }
    }
}

/// The most nesting any limit allows: keeps the interpreter's recursion inside
/// an ordinary 2 MiB thread stack even in an unoptimised build, where a level
/// of parsing takes about 3.5 KiB of stack and a level of evaluation 1-2 KiB
/// (under 1 MiB at this cap; about a quarter of that at opt-level 1).
pub const MAX_DEPTH_CAP: usize = 256;

/// The wall clock is read once per this many steps (reading it every step
/// would cost more than the step).
pub const CLOCK_EVERY: u64 = 1024;

impl Limits {
    fn depth(&self) -> usize {
        self.max_depth.min(MAX_DEPTH_CAP)
    }
}

/// Why a program did not produce a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("the program is {len} bytes long, more than the {max} allowed")]
    SourceTooLong { len: usize, max: usize },
    /// Line and column are 1-based; the column counts characters.
    #[error("parse error at {line}:{column}: {message}")]
    Parse { line: usize, column: usize, message: String },
    /// The source, the syntax tree, the evaluation or a value nests too deeply.
    #[error("depth budget exceeded: {what} nests deeper than {max} levels")]
    TooDeep { what: &'static str, max: usize },
    #[error("step budget exceeded: more than {max} steps")]
    Steps { max: u64 },
    #[error("memory budget exceeded: more than {max} list cells")]
    Cells { max: u64 },
    #[error("time budget exceeded: more than {max:?}")]
    Time { max: Duration },
    #[error("unknown name `{0}`")]
    Unbound(String),
    /// A value of the wrong kind, or a call with the wrong number of arguments.
    #[error("type error: {0}")]
    Type(String),
    /// Overflow or division by zero.
    #[error("arithmetic error: {0}")]
    Arithmetic(String),
    /// An operation undefined for its arguments: `head([])`, an index out of range.
    #[error("{0}")]
    Domain(String),
}

impl SandboxError {
    /// Whether a budget ran out (as opposed to the program being wrong).
    pub fn is_budget(&self) -> bool {
        matches!(
            self,
            SandboxError::SourceTooLong { .. }
                | SandboxError::TooDeep { .. }
                | SandboxError::Steps { .. }
                | SandboxError::Cells { .. }
                | SandboxError::Time { .. }
        )
    }
}

type Res<T> = Result<T, SandboxError>;

// ---------------------------------------------------------------------------
// Values

/// A program's input or result. Those [`run`] and [`parse_value`] make nest
/// at most [`MAX_DEPTH_CAP`] deep, so printing and dropping them is safe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bool(bool),
    List(Vec<Value>),
}

impl Value {
    /// A list of integers.
    pub fn ints(values: &[i64]) -> Value {
        Value::List(values.iter().map(|&v| Value::Int(v)).collect())
    }
}

impl fmt::Display for Value {
    /// The literal syntax [`parse_value`] reads: `[1, -2, [true]]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    item.fmt(f)?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Reads a value literal (`[3, 42, 1]`, `-7`, `true`, `[[1], []]`), nested at
/// most [`Limits::default`]'s depth.
pub fn parse_value(text: &str) -> Res<Value> {
    let tokens = lex(text)?;
    let mut p = Parser::new(text, tokens, Limits::default().depth());
    let value = p.value()?;
    p.finish()?;
    Ok(value)
}

/// Parses and runs `program` on `input` (bound to `xs`).
pub fn run(program: &str, input: &Value, limits: &Limits) -> Res<Value> {
    Program::parse(program, limits)?.run(input, limits)
}

/// A parsed program, to run on many inputs.
#[derive(Debug)]
pub struct Program {
    expr: Expr,
}

impl Program {
    /// Parses `source`, within the source-length and depth limits.
    pub fn parse(source: &str, limits: &Limits) -> Res<Program> {
        if source.len() > limits.max_source_len {
            return Err(SandboxError::SourceTooLong { len: source.len(), max: limits.max_source_len });
        }
        let tokens = lex(source)?;
        let mut p = Parser::new(source, tokens, limits.depth());
        let expr = p.expr(0)?.expr;
        p.finish()?;
        Ok(Program { expr })
    }

    /// Evaluates the program with `xs` bound to `input`.
    pub fn run(&self, input: &Value, limits: &Limits) -> Res<Value> {
        let mut m = Machine::new(limits);
        let xs = m.import(input, 0)?;
        let env = m.bind(&None, "xs", xs)?;
        let result = m.eval(&self.expr, &env)?;
        m.export(&result)
    }
}

// ---------------------------------------------------------------------------
// Lexer

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'s> {
    /// Unsigned: `-` is an operator (and `parse_value`'s sign).
    Int(u64),
    Name(&'s str),
    Sym(&'static str),
    End,
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Int(v) => write!(f, "`{v}`"),
            Tok::Name(s) => write!(f, "`{s}`"),
            Tok::Sym(s) => write!(f, "`{s}`"),
            Tok::End => f.write_str("the end of the program"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Token<'s> {
    tok: Tok<'s>,
    /// Byte offset in the source.
    at: usize,
}

/// Two-character symbols first, so that `==` is not read as `=` `=`.
const SYMBOLS: [&str; 19] = ["==", "!=", "<=", ">=", "++", "=>", "(", ")", "[", "]", ",", "+", "-", "*", "/", "%", "<", ">", "="];

const KEYWORDS: [&str; 10] = ["let", "in", "if", "then", "else", "and", "or", "not", "true", "false"];

fn lex(src: &str) -> Res<Vec<Token<'_>>> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if c.is_ascii_digit() {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let value =
                src[start..i].parse::<u64>().map_err(|_| parse_error(src, start, format!("integer `{}` is too large", &src[start..i])))?;
            tokens.push(Token { tok: Tok::Int(value), at: start });
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            tokens.push(Token { tok: Tok::Name(&src[start..i]), at: start });
        } else if let Some(sym) = SYMBOLS.iter().find(|s| src[i..].starts_with(**s)) {
            i += sym.len();
            tokens.push(Token { tok: Tok::Sym(sym), at: start });
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(parse_error(src, start, format!("unexpected character `{ch}`")));
        }
    }
    tokens.push(Token { tok: Tok::End, at: src.len() });
    Ok(tokens)
}

/// A parse error at byte offset `at`, located by line and column.
fn parse_error(src: &str, at: usize, message: String) -> SandboxError {
    let before = src.get(..at).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    SandboxError::Parse { line, column, message }
}

// ---------------------------------------------------------------------------
// Syntax tree and parser

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Concat,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// Binding strength of prefix `not`: looser than comparisons, so
/// `not x == 1` is `not (x == 1)`.
const NOT_PREC: u8 = 3;
/// Prefix `-`'s operand binds tighter than every binary operator.
const NEG_PREC: u8 = 8;

impl BinOp {
    fn from_tok(tok: Tok) -> Option<BinOp> {
        Some(match tok {
            Tok::Name("or") => BinOp::Or,
            Tok::Name("and") => BinOp::And,
            Tok::Sym("==") => BinOp::Eq,
            Tok::Sym("!=") => BinOp::Ne,
            Tok::Sym("<") => BinOp::Lt,
            Tok::Sym("<=") => BinOp::Le,
            Tok::Sym(">") => BinOp::Gt,
            Tok::Sym(">=") => BinOp::Ge,
            Tok::Sym("++") => BinOp::Concat,
            Tok::Sym("+") => BinOp::Add,
            Tok::Sym("-") => BinOp::Sub,
            Tok::Sym("*") => BinOp::Mul,
            Tok::Sym("/") => BinOp::Div,
            Tok::Sym("%") => BinOp::Mod,
            _ => return None,
        })
    }

    fn prec(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 4,
            BinOp::Concat => 5,
            BinOp::Add | BinOp::Sub => 6,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 7,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Concat => "++",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
        }
    }
}

#[derive(Debug)]
enum Expr {
    Int(i64),
    Bool(bool),
    Var(String),
    List(Vec<Expr>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    Let(String, Box<Expr>, Box<Expr>),
    Lambda(Vec<String>, Box<Expr>),
    Call(Box<Expr>, Vec<Expr>),
    Index(Box<Expr>, Box<Expr>),
}

/// A parsed subtree with its height, which the parser keeps under the depth
/// limit so that evaluating and dropping the tree recurse boundedly (a chain
/// `1 + 1 + … + 1` is built by a loop but is as deep as it is long).
struct Sub {
    expr: Expr,
    height: usize,
}

/// Recursive descent with precedence climbing. Every recursion passes through
/// [`Parser::expr`] or [`Parser::value`], which count it against the depth
/// limit, so `((((…` fails cleanly instead of overflowing the stack.
struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token<'s>>,
    pos: usize,
    depth: usize,
    max_depth: usize,
}

impl<'s> Parser<'s> {
    fn new(src: &'s str, tokens: Vec<Token<'s>>, max_depth: usize) -> Parser<'s> {
        Parser { src, tokens, pos: 0, depth: 0, max_depth }
    }

    fn peek(&self) -> Tok<'s> {
        self.peek_at(0)
    }

    fn peek_at(&self, k: usize) -> Tok<'s> {
        self.tokens.get(self.pos + k).map_or(Tok::End, |t| t.tok)
    }

    fn bump(&mut self) {
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
    }

    fn error(&self, message: String) -> SandboxError {
        let at = self.tokens.get(self.pos).map_or(self.src.len(), |t| t.at);
        parse_error(self.src, at, message)
    }

    // Error constructors are out of line: formatting takes stack space, and
    // the parsing functions sit on the stack once per level of nesting.

    #[cold]
    #[inline(never)]
    fn unexpected(&self, expected: &str) -> SandboxError {
        self.error(format!("expected {expected}, found {}", self.peek()))
    }

    #[cold]
    #[inline(never)]
    fn too_large(&self, v: u64) -> SandboxError {
        self.error(format!("integer `{v}` is too large"))
    }

    /// Consumes the symbol or keyword `tok`, or fails saying what was expected.
    fn expect(&mut self, tok: Tok<'static>, expected: &str) -> Res<()> {
        if self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// A variable name (not a keyword).
    fn name(&mut self) -> Res<String> {
        match self.peek() {
            Tok::Name(n) if !KEYWORDS.contains(&n) => {
                self.bump();
                Ok(n.to_string())
            }
            _ => Err(self.unexpected("a name")),
        }
    }

    fn finish(&self) -> Res<()> {
        match self.peek() {
            Tok::End => Ok(()),
            _ => Err(self.unexpected("the end of the program")),
        }
    }

    /// Counts one level of parser recursion.
    fn enter(&mut self) -> Res<()> {
        if self.depth >= self.max_depth {
            return Err(SandboxError::TooDeep { what: "the program", max: self.max_depth });
        }
        self.depth += 1;
        Ok(())
    }

    /// A node over children of the given heights.
    fn node(&self, expr: Expr, children: &[usize]) -> Res<Sub> {
        let height = 1 + children.iter().copied().max().unwrap_or(0);
        if height > self.max_depth {
            return Err(SandboxError::TooDeep { what: "the syntax tree", max: self.max_depth });
        }
        Ok(Sub { expr, height })
    }

    /// An expression whose binary operators bind at least as tightly as `min`.
    fn expr(&mut self, min: u8) -> Res<Sub> {
        self.enter()?;
        let result = self.binary(min);
        self.depth -= 1;
        result
    }

    fn binary(&mut self, min: u8) -> Res<Sub> {
        let mut lhs = self.prefix()?;
        while let Some(op) = BinOp::from_tok(self.peek()) {
            if op.prec() < min {
                break;
            }
            self.bump();
            lhs = self.binary_rhs(lhs, op)?;
        }
        Ok(lhs)
    }

    fn binary_rhs(&mut self, lhs: Sub, op: BinOp) -> Res<Sub> {
        let rhs = self.expr(op.prec() + 1)?;
        let heights = [lhs.height, rhs.height];
        self.node(Expr::Binary(op, Box::new(lhs.expr), Box::new(rhs.expr)), &heights)
    }

    fn prefix(&mut self) -> Res<Sub> {
        match self.peek() {
            Tok::Sym("-") => self.unary(NEG_PREC),
            Tok::Name("not") => self.unary(NOT_PREC + 1),
            Tok::Name("if") => self.if_expr(),
            Tok::Name("let") => self.let_expr(),
            _ if self.lambda_ahead() => self.lambda(),
            _ => self.postfix(),
        }
    }

    /// `-a` or `not a`, whose operand binds at least as tightly as `prec`.
    fn unary(&mut self, prec: u8) -> Res<Sub> {
        let negate = self.peek() == Tok::Sym("-");
        self.bump();
        let a = self.expr(prec)?;
        let a_expr = Box::new(a.expr);
        self.node(if negate { Expr::Neg(a_expr) } else { Expr::Not(a_expr) }, &[a.height])
    }

    fn if_expr(&mut self) -> Res<Sub> {
        self.bump();
        let c = self.expr(0)?;
        self.expect(Tok::Name("then"), "`then`")?;
        let t = self.expr(0)?;
        self.expect(Tok::Name("else"), "`else`")?;
        let e = self.expr(0)?;
        let heights = [c.height, t.height, e.height];
        self.node(Expr::If(Box::new(c.expr), Box::new(t.expr), Box::new(e.expr)), &heights)
    }

    fn let_expr(&mut self) -> Res<Sub> {
        self.bump();
        let name = self.name()?;
        self.expect(Tok::Sym("="), "`=`")?;
        let value = self.expr(0)?;
        self.expect(Tok::Name("in"), "`in`")?;
        let body = self.expr(0)?;
        let heights = [value.height, body.height];
        self.node(Expr::Let(name, Box::new(value.expr), Box::new(body.expr)), &heights)
    }

    /// Whether the next tokens are `x =>` or `(a, b) =>` (one token of
    /// lookahead cannot tell a parameter list from a parenthesised expression).
    fn lambda_ahead(&self) -> bool {
        let is_param = |tok| matches!(tok, Tok::Name(n) if !KEYWORDS.contains(&n));
        match self.peek() {
            tok if is_param(tok) => self.peek_at(1) == Tok::Sym("=>"),
            Tok::Sym("(") => {
                let mut k = 1;
                if self.peek_at(k) != Tok::Sym(")") {
                    loop {
                        if !is_param(self.peek_at(k)) {
                            return false;
                        }
                        k += 1;
                        if self.peek_at(k) != Tok::Sym(",") {
                            break;
                        }
                        k += 1;
                    }
                    if self.peek_at(k) != Tok::Sym(")") {
                        return false;
                    }
                }
                self.peek_at(k + 1) == Tok::Sym("=>")
            }
            _ => false,
        }
    }

    fn lambda(&mut self) -> Res<Sub> {
        let mut params = Vec::new();
        if self.peek() == Tok::Sym("(") {
            self.bump();
            while self.peek() != Tok::Sym(")") {
                if !params.is_empty() {
                    self.expect(Tok::Sym(","), "`,`")?;
                }
                params.push(self.name()?);
            }
            self.bump();
        } else {
            params.push(self.name()?);
        }
        self.expect(Tok::Sym("=>"), "`=>`")?;
        let body = self.expr(0)?;
        self.node(Expr::Lambda(params, Box::new(body.expr)), &[body.height])
    }

    fn postfix(&mut self) -> Res<Sub> {
        let mut sub = self.primary()?;
        loop {
            sub = match self.peek() {
                Tok::Sym("(") => self.call(sub)?,
                Tok::Sym("[") => self.index(sub)?,
                _ => return Ok(sub),
            };
        }
    }

    /// `f(args)`, at the `(`.
    fn call(&mut self, f: Sub) -> Res<Sub> {
        self.bump();
        let (args, height) = self.sequence(")")?;
        self.node(Expr::Call(Box::new(f.expr), args), &[f.height, height])
    }

    /// `xs[i]`, at the `[`.
    fn index(&mut self, list: Sub) -> Res<Sub> {
        self.bump();
        let i = self.expr(0)?;
        self.expect(Tok::Sym("]"), "`]`")?;
        let heights = [list.height, i.height];
        self.node(Expr::Index(Box::new(list.expr), Box::new(i.expr)), &heights)
    }

    /// `a, b, c` up to the closing symbol (consumed), with the tallest height.
    fn sequence(&mut self, close: &'static str) -> Res<(Vec<Expr>, usize)> {
        let mut items = Vec::new();
        let mut height = 0;
        while self.peek() != Tok::Sym(close) {
            if !items.is_empty() {
                self.expect(Tok::Sym(","), if close == ")" { "`,` or `)`" } else { "`,` or `]`" })?;
            }
            let item = self.expr(0)?;
            height = height.max(item.height);
            items.push(item.expr);
        }
        self.bump();
        Ok((items, height))
    }

    fn primary(&mut self) -> Res<Sub> {
        let tok = self.peek();
        match tok {
            Tok::Int(v) => {
                let v = i64::try_from(v).map_err(|_| self.too_large(v))?;
                self.bump();
                self.node(Expr::Int(v), &[])
            }
            Tok::Name("true") | Tok::Name("false") => {
                self.bump();
                self.node(Expr::Bool(tok == Tok::Name("true")), &[])
            }
            Tok::Name(n) if !KEYWORDS.contains(&n) => {
                self.bump();
                self.node(Expr::Var(n.to_string()), &[])
            }
            Tok::Sym("(") => {
                self.bump();
                let inner = self.expr(0)?;
                self.expect(Tok::Sym(")"), "`)`")?;
                Ok(inner)
            }
            Tok::Sym("[") => {
                self.bump();
                let (items, height) = self.sequence("]")?;
                self.node(Expr::List(items), &[height])
            }
            _ => Err(self.unexpected("an expression")),
        }
    }

    /// A value literal (for [`parse_value`]).
    fn value(&mut self) -> Res<Value> {
        self.enter()?;
        let value = self.value_inner();
        self.depth -= 1;
        value
    }

    fn value_inner(&mut self) -> Res<Value> {
        let value = match self.peek() {
            Tok::Int(v) => Value::Int(i64::try_from(v).map_err(|_| self.too_large(v))?),
            Tok::Sym("-") => {
                self.bump();
                match self.peek() {
                    // Down to i64::MIN, whose magnitude is not an i64.
                    Tok::Int(v) if v <= 1 << 63 => Value::Int((-(v as i128)) as i64),
                    Tok::Int(v) => return Err(self.too_large(v)),
                    _ => return Err(self.unexpected("a number after `-`")),
                }
            }
            Tok::Name("true") => Value::Bool(true),
            Tok::Name("false") => Value::Bool(false),
            Tok::Sym("[") => {
                self.bump();
                let mut items = Vec::new();
                while self.peek() != Tok::Sym("]") {
                    if !items.is_empty() {
                        self.expect(Tok::Sym(","), "`,` or `]`")?;
                    }
                    items.push(self.value()?);
                }
                Value::List(items)
            }
            _ => return Err(self.unexpected("a value (integer, boolean or list)")),
        };
        self.bump();
        Ok(value)
    }
}

// ---------------------------------------------------------------------------
// Runtime values

/// A value during evaluation. Lists and functions are shared, not copied
/// (values are immutable, so no cycles can form and `Rc` frees everything).
/// `'p` is the program's lifetime: functions point into its syntax tree.
#[derive(Clone)]
enum Val<'p> {
    Int(i64),
    Bool(bool),
    List(Rc<List<'p>>),
    Fun(Rc<Closure<'p>>),
    Builtin(Builtin),
}

/// Every compound value records its height (how deeply values nest inside
/// it) and is built only under the depth limit, so that comparing, exporting
/// and dropping it recurse boundedly.
struct List<'p> {
    items: Vec<Val<'p>>,
    height: usize,
}

struct Closure<'p> {
    params: &'p [String],
    body: &'p Expr,
    env: Env<'p>,
    height: usize,
}

/// Variables in scope: a persistent linked list, innermost first, shared by
/// the closures that capture it.
type Env<'p> = Option<Rc<Scope<'p>>>;

struct Scope<'p> {
    name: &'p str,
    val: Val<'p>,
    parent: Env<'p>,
    height: usize,
}

fn env_height(env: &Env) -> usize {
    env.as_ref().map_or(0, |s| s.height)
}

impl Val<'_> {
    fn height(&self) -> usize {
        match self {
            Val::Int(_) | Val::Bool(_) | Val::Builtin(_) => 0,
            Val::List(l) => l.height,
            Val::Fun(f) => f.height,
        }
    }

    /// The kind, with an article, for error messages.
    fn kind(&self) -> &'static str {
        match self {
            Val::Int(_) => "an integer",
            Val::Bool(_) => "a boolean",
            Val::List(_) => "a list",
            Val::Fun(_) | Val::Builtin(_) => "a function",
        }
    }
}

// Error constructors are out of line: formatting takes stack space, and the
// evaluator's functions sit on the stack once per level of nesting.

/// `` `what` expects `expected`, got … ``.
#[cold]
#[inline(never)]
fn expects(what: &str, expected: &str, got: &Val) -> SandboxError {
    SandboxError::Type(format!("`{what}` expects {expected}, got {}", got.kind()))
}

/// `` `what` expects `expected`, got … and … ``.
#[cold]
#[inline(never)]
fn expects2(what: &str, expected: &str, x: &Val, y: &Val) -> SandboxError {
    SandboxError::Type(format!("`{what}` expects {expected}, got {} and {}", x.kind(), y.kind()))
}

#[cold]
#[inline(never)]
fn domain(what: &str, problem: &str) -> SandboxError {
    SandboxError::Domain(format!("`{what}` {problem}"))
}

#[cold]
#[inline(never)]
fn overflow(what: &str) -> SandboxError {
    SandboxError::Arithmetic(format!("integer overflow in `{what}`"))
}

fn as_int(v: &Val, what: &str) -> Res<i64> {
    match v {
        Val::Int(n) => Ok(*n),
        other => Err(expects(what, "an integer", other)),
    }
}

fn as_bool(v: &Val, what: &str) -> Res<bool> {
    match v {
        Val::Bool(b) => Ok(*b),
        other => Err(expects(what, "a boolean", other)),
    }
}

fn as_list<'a, 'p>(v: &'a Val<'p>, what: &str) -> Res<&'a [Val<'p>]> {
    match v {
        Val::List(l) => Ok(&l.items),
        other => Err(expects(what, "a list", other)),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Builtin {
    Len,
    Sum,
    Min,
    Max,
    Sort,
    Reverse,
    Unique,
    Head,
    Last,
    Tail,
    Take,
    Drop,
    Map,
    Filter,
    Count,
    Fold,
    Contains,
    Range,
    Abs,
    While,
}

impl Builtin {
    const ALL: [(&'static str, Builtin, &'static str); 20] = [
        ("len", Builtin::Len, "len(xs)"),
        ("sum", Builtin::Sum, "sum(xs)"),
        ("min", Builtin::Min, "min(xs) or min(a, b)"),
        ("max", Builtin::Max, "max(xs) or max(a, b)"),
        ("sort", Builtin::Sort, "sort(xs)"),
        ("reverse", Builtin::Reverse, "reverse(xs)"),
        ("unique", Builtin::Unique, "unique(xs)"),
        ("head", Builtin::Head, "head(xs)"),
        ("last", Builtin::Last, "last(xs)"),
        ("tail", Builtin::Tail, "tail(xs)"),
        ("take", Builtin::Take, "take(xs, n)"),
        ("drop", Builtin::Drop, "drop(xs, n)"),
        ("map", Builtin::Map, "map(xs, f)"),
        ("filter", Builtin::Filter, "filter(xs, p)"),
        ("count", Builtin::Count, "count(xs, p)"),
        ("fold", Builtin::Fold, "fold(xs, init, f)"),
        ("contains", Builtin::Contains, "contains(xs, v)"),
        ("range", Builtin::Range, "range(n) or range(a, b)"),
        ("abs", Builtin::Abs, "abs(n)"),
        ("while", Builtin::While, "while(state, p, f)"),
    ];

    fn by_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.iter().find(|(n, _, _)| *n == name).map(|(_, b, _)| *b)
    }

    fn entry(self) -> (&'static str, &'static str) {
        Builtin::ALL.iter().find(|(_, b, _)| *b == self).map_or(("?", "?"), |(n, _, usage)| (n, usage))
    }

    fn name(self) -> &'static str {
        self.entry().0
    }

    fn usage(self) -> &'static str {
        self.entry().1
    }
}

// ---------------------------------------------------------------------------
// Evaluator

/// One run's budgets and the evaluation-depth counter.
struct Machine<'l> {
    limits: &'l Limits,
    max_depth: usize,
    steps: u64,
    cells: u64,
    depth: usize,
    started: Instant,
    next_clock: u64,
}

impl<'l> Machine<'l> {
    fn new(limits: &'l Limits) -> Machine<'l> {
        Machine { limits, max_depth: limits.depth(), steps: 0, cells: 0, depth: 0, started: Instant::now(), next_clock: CLOCK_EVERY }
    }

    /// Pays `n` steps, reading the clock every [`CLOCK_EVERY`] of them.
    fn tick(&mut self, n: u64) -> Res<()> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.limits.max_steps {
            return Err(SandboxError::Steps { max: self.limits.max_steps });
        }
        if self.steps >= self.next_clock {
            self.next_clock = self.steps.saturating_add(CLOCK_EVERY);
            if self.started.elapsed() > self.limits.max_time {
                return Err(SandboxError::Time { max: self.limits.max_time });
            }
        }
        Ok(())
    }

    /// Pays for `n` list cells, before they are allocated.
    fn alloc(&mut self, n: u64) -> Res<()> {
        self.cells = self.cells.saturating_add(n);
        if self.cells > self.limits.max_cells {
            return Err(SandboxError::Cells { max: self.limits.max_cells });
        }
        Ok(())
    }

    fn too_deep(&self, what: &'static str) -> SandboxError {
        SandboxError::TooDeep { what, max: self.max_depth }
    }

    /// A list of already paid-for items, if it does not nest too deeply.
    fn list<'p>(&self, items: Vec<Val<'p>>) -> Res<Val<'p>> {
        let height = 1 + items.iter().map(Val::height).max().unwrap_or(0);
        if height > self.max_depth {
            return Err(self.too_deep("a value"));
        }
        Ok(Val::List(Rc::new(List { items, height })))
    }

    /// `env` extended with `name = val`.
    fn bind<'p>(&self, env: &Env<'p>, name: &'p str, val: Val<'p>) -> Res<Env<'p>> {
        let height = 1 + val.height().max(env_height(env));
        if height > self.max_depth {
            return Err(self.too_deep("a value"));
        }
        Ok(Some(Rc::new(Scope { name, val, parent: env.clone(), height })))
    }

    /// The input as a runtime value; its cells count against the budget.
    fn import<'p>(&mut self, v: &Value, depth: usize) -> Res<Val<'p>> {
        if depth >= self.max_depth {
            return Err(self.too_deep("the input"));
        }
        Ok(match v {
            Value::Int(n) => Val::Int(*n),
            Value::Bool(b) => Val::Bool(*b),
            Value::List(items) => {
                self.alloc(items.len() as u64)?;
                let items = items.iter().map(|item| self.import(item, depth + 1)).collect::<Res<Vec<_>>>()?;
                self.list(items)?
            }
        })
    }

    /// The result as a [`Value`]. Writing it out copies shared sublists, so
    /// its cells count against the budget too (`[l, l, …]` is cheap to build
    /// and big to write).
    fn export(&mut self, v: &Val) -> Res<Value> {
        Ok(match v {
            Val::Int(n) => Value::Int(*n),
            Val::Bool(b) => Value::Bool(*b),
            Val::List(l) => {
                self.alloc(l.items.len() as u64)?;
                Value::List(l.items.iter().map(|item| self.export(item)).collect::<Res<_>>()?)
            }
            Val::Fun(_) | Val::Builtin(_) => return Err(SandboxError::Type("the result is or contains a function".into())),
        })
    }

    fn eval<'p>(&mut self, e: &'p Expr, env: &Env<'p>) -> Res<Val<'p>> {
        self.tick(1)?;
        if self.depth >= self.max_depth {
            return Err(self.too_deep("the evaluation"));
        }
        self.depth += 1;
        let v = self.eval_node(e, env);
        self.depth -= 1;
        v
    }

    /// One node. Every arm is a call or a line, which keeps this frame small:
    /// it is on the stack once per level of nesting.
    fn eval_node<'p>(&mut self, e: &'p Expr, env: &Env<'p>) -> Res<Val<'p>> {
        match e {
            Expr::Int(n) => Ok(Val::Int(*n)),
            Expr::Bool(b) => Ok(Val::Bool(*b)),
            Expr::Var(name) => lookup(env, name),
            Expr::List(items) => self.eval_list(items, env),
            Expr::Neg(a) => self.eval_neg(a, env),
            Expr::Not(a) => self.eval_not(a, env),
            Expr::Binary(op, a, b) => self.eval_binary(*op, a, b, env),
            Expr::If(c, t, f) => self.eval_if(c, t, f, env),
            Expr::Let(name, value, body) => self.eval_let(name, value, body, env),
            Expr::Lambda(params, body) => self.closure(params, body, env),
            Expr::Call(f, args) => self.eval_call(f, args, env),
            Expr::Index(l, i) => self.eval_index(l, i, env),
        }
    }

    fn eval_list<'p>(&mut self, items: &'p [Expr], env: &Env<'p>) -> Res<Val<'p>> {
        self.alloc(items.len() as u64)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(self.eval(item, env)?);
        }
        self.list(out)
    }

    fn eval_neg<'p>(&mut self, a: &'p Expr, env: &Env<'p>) -> Res<Val<'p>> {
        let n = as_int(&self.eval(a, env)?, "-")?;
        n.checked_neg().map(Val::Int).ok_or_else(|| overflow("-"))
    }

    fn eval_not<'p>(&mut self, a: &'p Expr, env: &Env<'p>) -> Res<Val<'p>> {
        Ok(Val::Bool(!as_bool(&self.eval(a, env)?, "not")?))
    }

    fn eval_if<'p>(&mut self, c: &'p Expr, t: &'p Expr, f: &'p Expr, env: &Env<'p>) -> Res<Val<'p>> {
        let branch = if as_bool(&self.eval(c, env)?, "if")? { t } else { f };
        self.eval(branch, env)
    }

    fn eval_let<'p>(&mut self, name: &'p str, value: &'p Expr, body: &'p Expr, env: &Env<'p>) -> Res<Val<'p>> {
        let v = self.eval(value, env)?;
        let env = self.bind(env, name, v)?;
        self.eval(body, &env)
    }

    fn closure<'p>(&self, params: &'p [String], body: &'p Expr, env: &Env<'p>) -> Res<Val<'p>> {
        let height = 1 + env_height(env);
        if height > self.max_depth {
            return Err(self.too_deep("a value"));
        }
        Ok(Val::Fun(Rc::new(Closure { params, body, env: env.clone(), height })))
    }

    fn eval_call<'p>(&mut self, f: &'p Expr, args: &'p [Expr], env: &Env<'p>) -> Res<Val<'p>> {
        let f = self.eval(f, env)?;
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            vals.push(self.eval(a, env)?);
        }
        self.call(&f, vals)
    }

    /// `xs[i]`, 0-based; negative indices count from the end.
    fn eval_index<'p>(&mut self, l: &'p Expr, i: &'p Expr, env: &Env<'p>) -> Res<Val<'p>> {
        let l = self.eval(l, env)?;
        let i = self.eval(i, env)?;
        let items = as_list(&l, "[]")?;
        let i = as_int(&i, "[]")?;
        let at = if i < 0 { items.len() as i128 + i as i128 } else { i as i128 };
        match usize::try_from(at).ok().and_then(|at| items.get(at)) {
            Some(v) => Ok(v.clone()),
            None => Err(out_of_range(i, items.len())),
        }
    }

    fn eval_binary<'p>(&mut self, op: BinOp, a: &'p Expr, b: &'p Expr, env: &Env<'p>) -> Res<Val<'p>> {
        // `and` and `or` short-circuit: the right side is evaluated only if needed.
        if matches!(op, BinOp::And | BinOp::Or) {
            let left = as_bool(&self.eval(a, env)?, op.symbol())?;
            if left == (op == BinOp::Or) {
                return Ok(Val::Bool(left));
            }
            return Ok(Val::Bool(as_bool(&self.eval(b, env)?, op.symbol())?));
        }
        let x = self.eval(a, env)?;
        let y = self.eval(b, env)?;
        self.apply(op, &x, &y)
    }

    /// A binary operator other than `and` / `or` on two values.
    fn apply<'p>(&mut self, op: BinOp, x: &Val<'p>, y: &Val<'p>) -> Res<Val<'p>> {
        let order = |o: Ordering| match op {
            BinOp::Lt => o == Ordering::Less,
            BinOp::Le => o != Ordering::Greater,
            BinOp::Gt => o == Ordering::Greater,
            _ => o != Ordering::Less,
        };
        match (op, x, y) {
            (BinOp::Eq, _, _) => Ok(Val::Bool(self.equal(x, y)?)),
            (BinOp::Ne, _, _) => Ok(Val::Bool(!self.equal(x, y)?)),
            (BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge, _, _) => Ok(Val::Bool(order(self.compare(x, y)?))),
            (BinOp::Concat, Val::List(l), Val::List(r)) => {
                self.alloc(l.items.len() as u64 + r.items.len() as u64)?;
                let mut out = Vec::with_capacity(l.items.len() + r.items.len());
                out.extend_from_slice(&l.items);
                out.extend_from_slice(&r.items);
                self.list(out)
            }
            (BinOp::Concat, _, _) => Err(expects2("++", "two lists", x, y)),
            (_, Val::Int(m), Val::Int(n)) => arithmetic(op, *m, *n).map(Val::Int),
            _ => Err(expects2(op.symbol(), "two integers", x, y)),
        }
    }

    /// Calls a function value with its arguments.
    fn call<'p>(&mut self, f: &Val<'p>, args: Vec<Val<'p>>) -> Res<Val<'p>> {
        match f {
            Val::Fun(c) => {
                if c.params.len() != args.len() {
                    return Err(arity(c.params.len(), args.len()));
                }
                let mut env = c.env.clone();
                for (param, arg) in c.params.iter().zip(args) {
                    env = self.bind(&env, param, arg)?;
                }
                self.eval(c.body, &env)
            }
            Val::Builtin(b) => self.builtin(*b, &args),
            other => Err(expects("()", "a function", other)),
        }
    }

    /// Calls the predicate `p` on `x`; it must answer a boolean.
    fn test<'p>(&mut self, p: &Val<'p>, x: &Val<'p>, what: &str) -> Res<bool> {
        let v = self.call(p, vec![x.clone()])?;
        as_bool(&v, what)
    }

    fn builtin<'p>(&mut self, b: Builtin, args: &[Val<'p>]) -> Res<Val<'p>> {
        use Builtin as B;
        // One call site for all builtins: a `match` with a call per arm would
        // give this frame, which is on the stack once per level of nesting, a
        // result slot per arm in an unoptimised build.
        let run: fn(&mut Self, &[Val<'p>]) -> Res<Val<'p>> = match b {
            B::Len => |_, a| match a {
                [xs] => Ok(Val::Int(as_list(xs, "len")?.len() as i64)),
                _ => Err(bad_call(B::Len, a.len())),
            },
            B::Sum => |m, a| match a {
                [xs] => m.sum(as_list(xs, "sum")?),
                _ => Err(bad_call(B::Sum, a.len())),
            },
            B::Min => |m, a| m.extreme(B::Min, a),
            B::Max => |m, a| m.extreme(B::Max, a),
            B::Sort => |m, a| match a {
                [xs] => m.sort(as_list(xs, "sort")?),
                _ => Err(bad_call(B::Sort, a.len())),
            },
            B::Reverse => |m, a| match a {
                [xs] => m.reverse(as_list(xs, "reverse")?),
                _ => Err(bad_call(B::Reverse, a.len())),
            },
            B::Unique => |m, a| match a {
                [xs] => m.unique(as_list(xs, "unique")?),
                _ => Err(bad_call(B::Unique, a.len())),
            },
            B::Head => |_, a| match a {
                [xs] => as_list(xs, "head")?.first().cloned().ok_or_else(|| domain("head", "of an empty list")),
                _ => Err(bad_call(B::Head, a.len())),
            },
            B::Last => |_, a| match a {
                [xs] => as_list(xs, "last")?.last().cloned().ok_or_else(|| domain("last", "of an empty list")),
                _ => Err(bad_call(B::Last, a.len())),
            },
            B::Tail => |m, a| match a {
                [xs] => m.slice(as_list(xs, "tail")?, 1, i64::MAX),
                _ => Err(bad_call(B::Tail, a.len())),
            },
            B::Take => |m, a| match a {
                [xs, n] => m.slice(as_list(xs, "take")?, 0, as_int(n, "take")?),
                _ => Err(bad_call(B::Take, a.len())),
            },
            B::Drop => |m, a| match a {
                [xs, n] => m.slice(as_list(xs, "drop")?, as_int(n, "drop")?, i64::MAX),
                _ => Err(bad_call(B::Drop, a.len())),
            },
            B::Map => |m, a| match a {
                [xs, f] => m.map(as_list(xs, "map")?, f),
                _ => Err(bad_call(B::Map, a.len())),
            },
            B::Filter => |m, a| match a {
                [xs, p] => m.filter(as_list(xs, "filter")?, p),
                _ => Err(bad_call(B::Filter, a.len())),
            },
            B::Count => |m, a| match a {
                [xs, p] => m.count(as_list(xs, "count")?, p),
                _ => Err(bad_call(B::Count, a.len())),
            },
            B::Fold => |m, a| match a {
                [xs, init, f] => m.fold(as_list(xs, "fold")?, init, f),
                _ => Err(bad_call(B::Fold, a.len())),
            },
            B::Contains => |m, a| match a {
                [xs, v] => m.contains(as_list(xs, "contains")?, v),
                _ => Err(bad_call(B::Contains, a.len())),
            },
            B::Range => |m, a| match a {
                [n] => m.range(0, as_int(n, "range")?),
                [lo, hi] => m.range(as_int(lo, "range")?, as_int(hi, "range")?),
                _ => Err(bad_call(B::Range, a.len())),
            },
            B::Abs => |_, a| match a {
                [n] => as_int(n, "abs")?.checked_abs().map(Val::Int).ok_or_else(|| overflow("abs")),
                _ => Err(bad_call(B::Abs, a.len())),
            },
            B::While => |m, a| match a {
                [state, p, f] => m.repeat(state, p, f),
                _ => Err(bad_call(B::While, a.len())),
            },
        };
        run(self, args)
    }

    fn sum<'p>(&mut self, items: &[Val<'p>]) -> Res<Val<'p>> {
        self.tick(items.len() as u64)?;
        let mut total: i64 = 0;
        for x in items {
            total = total.checked_add(as_int(x, "sum")?).ok_or_else(|| overflow("sum"))?;
        }
        Ok(Val::Int(total))
    }

    /// `min(xs)`, `min(a, b)`, `max(xs)`, `max(a, b)`: the first of equals.
    fn extreme<'p>(&mut self, b: Builtin, args: &[Val<'p>]) -> Res<Val<'p>> {
        let items = match args {
            [xs] => as_list(xs, b.name())?,
            [_, _] => args,
            _ => return Err(bad_call(b, args.len())),
        };
        let Some(mut best) = items.first() else {
            return Err(domain(b.name(), "of an empty list"));
        };
        let keep = if b == Builtin::Min { Ordering::Less } else { Ordering::Greater };
        for x in &items[1..] {
            if self.compare(x, best)? == keep {
                best = x;
            }
        }
        Ok(best.clone())
    }

    fn reverse<'p>(&mut self, items: &[Val<'p>]) -> Res<Val<'p>> {
        self.alloc(items.len() as u64)?;
        self.list(items.iter().rev().cloned().collect())
    }

    /// `items[from..to]` with the bounds clamped into the list (for `tail`,
    /// `take`, `drop`).
    fn slice<'p>(&mut self, items: &[Val<'p>], from: i64, to: i64) -> Res<Val<'p>> {
        let clamp = |i: i64| usize::try_from(i.max(0)).unwrap_or(usize::MAX).min(items.len());
        let (from, to) = (clamp(from), clamp(to));
        let to = to.max(from);
        self.alloc((to - from) as u64)?;
        self.list(items[from..to].to_vec())
    }

    fn unique<'p>(&mut self, items: &[Val<'p>]) -> Res<Val<'p>> {
        let mut kept: Vec<Val<'p>> = Vec::new();
        for x in items {
            let mut seen = false;
            for k in &kept {
                if self.equal(k, x)? {
                    seen = true;
                    break;
                }
            }
            if !seen {
                kept.push(x.clone());
            }
        }
        // No longer than the paid-for input: paid after it is built.
        self.alloc(kept.len() as u64)?;
        self.list(kept)
    }

    fn map<'p>(&mut self, items: &[Val<'p>], f: &Val<'p>) -> Res<Val<'p>> {
        self.alloc(items.len() as u64)?;
        let mut out = Vec::with_capacity(items.len());
        for x in items {
            out.push(self.call(f, vec![x.clone()])?);
        }
        self.list(out)
    }

    fn filter<'p>(&mut self, items: &[Val<'p>], p: &Val<'p>) -> Res<Val<'p>> {
        let mut out = Vec::new();
        for x in items {
            if self.test(p, x, "filter")? {
                out.push(x.clone());
            }
        }
        // No longer than the paid-for input: paid after it is built.
        self.alloc(out.len() as u64)?;
        self.list(out)
    }

    fn count<'p>(&mut self, items: &[Val<'p>], p: &Val<'p>) -> Res<Val<'p>> {
        let mut n = 0;
        for x in items {
            n += self.test(p, x, "count")? as i64;
        }
        Ok(Val::Int(n))
    }

    fn fold<'p>(&mut self, items: &[Val<'p>], init: &Val<'p>, f: &Val<'p>) -> Res<Val<'p>> {
        let mut acc = init.clone();
        for x in items {
            acc = self.call(f, vec![acc, x.clone()])?;
        }
        Ok(acc)
    }

    fn contains<'p>(&mut self, items: &[Val<'p>], v: &Val<'p>) -> Res<Val<'p>> {
        for x in items {
            if self.equal(x, v)? {
                return Ok(Val::Bool(true));
            }
        }
        Ok(Val::Bool(false))
    }

    /// `while(state, p, f)`: the language's only loop.
    fn repeat<'p>(&mut self, state: &Val<'p>, p: &Val<'p>, f: &Val<'p>) -> Res<Val<'p>> {
        let mut state = state.clone();
        while self.test(p, &state, "while")? {
            state = self.call(f, vec![state])?;
        }
        Ok(state)
    }

    /// `[a, …, b-1]`, paid for before it is built.
    fn range<'p>(&mut self, a: i64, b: i64) -> Res<Val<'p>> {
        let len = (b as i128 - a as i128).max(0) as u64;
        self.alloc(len)?;
        self.list((a..b).map(Val::Int).collect())
    }

    /// A stable bottom-up merge sort. `slice::sort_by` cannot stop on a
    /// failed comparison (mixed kinds, an exhausted budget); this can.
    fn sort<'p>(&mut self, items: &[Val<'p>]) -> Res<Val<'p>> {
        let n = items.len();
        self.alloc(n as u64)?;
        let mut src = items.to_vec();
        let mut dst = Vec::with_capacity(n);
        let mut width = 1;
        while width < n {
            dst.clear();
            let mut lo = 0;
            while lo < n {
                let mid = (lo + width).min(n);
                let hi = (lo + 2 * width).min(n);
                let (mut i, mut j) = (lo, mid);
                while i < mid && j < hi {
                    // Strictly less: equal elements keep their order.
                    if self.compare(&src[j], &src[i])? == Ordering::Less {
                        dst.push(src[j].clone());
                        j += 1;
                    } else {
                        dst.push(src[i].clone());
                        i += 1;
                    }
                }
                dst.extend_from_slice(&src[i..mid]);
                dst.extend_from_slice(&src[j..hi]);
                lo = hi;
            }
            std::mem::swap(&mut src, &mut dst);
            width *= 2;
        }
        self.list(src)
    }

    /// Ordering of integers, booleans, or lists (lexicographic); a step per
    /// pair of elements looked at.
    fn compare(&mut self, a: &Val, b: &Val) -> Res<Ordering> {
        self.tick(1)?;
        match (a, b) {
            (Val::Int(x), Val::Int(y)) => Ok(x.cmp(y)),
            (Val::Bool(x), Val::Bool(y)) => Ok(x.cmp(y)),
            (Val::List(x), Val::List(y)) => {
                for (p, q) in x.items.iter().zip(&y.items) {
                    let o = self.compare(p, q)?;
                    if o != Ordering::Equal {
                        return Ok(o);
                    }
                }
                Ok(x.items.len().cmp(&y.items.len()))
            }
            _ => Err(unordered(a, b)),
        }
    }

    /// Structural equality; values of different kinds are unequal, functions
    /// cannot be compared.
    fn equal(&mut self, a: &Val, b: &Val) -> Res<bool> {
        self.tick(1)?;
        match (a, b) {
            (Val::Fun(_) | Val::Builtin(_), _) | (_, Val::Fun(_) | Val::Builtin(_)) => {
                Err(expects2("==", "two values that are not functions", a, b))
            }
            (Val::Int(x), Val::Int(y)) => Ok(x == y),
            (Val::Bool(x), Val::Bool(y)) => Ok(x == y),
            (Val::List(x), Val::List(y)) => {
                if Rc::ptr_eq(x, y) {
                    return Ok(true);
                }
                if x.items.len() != y.items.len() {
                    return Ok(false);
                }
                for (p, q) in x.items.iter().zip(&y.items) {
                    if !self.equal(p, q)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

fn lookup<'p>(env: &Env<'p>, name: &str) -> Res<Val<'p>> {
    let mut scope = env.as_deref();
    while let Some(s) = scope {
        if s.name == name {
            return Ok(s.val.clone());
        }
        scope = s.parent.as_deref();
    }
    Builtin::by_name(name).map(Val::Builtin).ok_or_else(|| SandboxError::Unbound(name.to_string()))
}

#[cold]
#[inline(never)]
fn arity(params: usize, args: usize) -> SandboxError {
    SandboxError::Type(format!("a function of {params} parameter(s) called with {args} argument(s)"))
}

#[cold]
#[inline(never)]
fn bad_call(b: Builtin, args: usize) -> SandboxError {
    SandboxError::Type(format!("`{}` is called as {}, not with {args} argument(s)", b.name(), b.usage()))
}

#[cold]
#[inline(never)]
fn unordered(a: &Val, b: &Val) -> SandboxError {
    SandboxError::Type(format!("cannot order {} and {}", a.kind(), b.kind()))
}

#[cold]
#[inline(never)]
fn out_of_range(i: i64, len: usize) -> SandboxError {
    SandboxError::Domain(format!("index {i} out of range for a list of length {len}"))
}

/// `+ - * / %` on integers, checked; `/` and `%` round toward minus infinity.
fn arithmetic(op: BinOp, m: i64, n: i64) -> Res<i64> {
    let sym = op.symbol();
    if matches!(op, BinOp::Div | BinOp::Mod) && n == 0 {
        return Err(SandboxError::Arithmetic(format!("division by zero in `{sym}`")));
    }
    let v = match op {
        BinOp::Add => m.checked_add(n),
        BinOp::Sub => m.checked_sub(n),
        BinOp::Mul => m.checked_mul(n),
        BinOp::Div => m.checked_div(n).map(|q| if m % n != 0 && (m < 0) != (n < 0) { q - 1 } else { q }),
        // checked_rem fails only for i64::MIN % -1, whose remainder is 0.
        BinOp::Mod => Some(m.checked_rem(n).map_or(0, |r| if r != 0 && (r < 0) != (n < 0) { r + n } else { r })),
        _ => None,
    };
    v.ok_or_else(|| overflow(sym))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &[i64]) -> Value {
        Value::ints(v)
    }

    /// Runs with generous time so that a loaded machine cannot change which budget fires.
    fn eval_on(program: &str, input: &Value) -> Res<Value> {
        run(program, input, &Limits { max_time: Duration::from_secs(30), ..Limits::default() })
    }

    fn eval(program: &str) -> Res<Value> {
        eval_on(program, &ints(&[3, 1, 2]))
    }

    fn ok(program: &str) -> String {
        match eval(program) {
            Ok(v) => v.to_string(),
            Err(e) => panic!("{program}: {e}"),
        }
    }

    fn err(program: &str) -> SandboxError {
        match eval(program) {
            Ok(v) => panic!("{program}: expected an error, got {v}"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_deck_example_sorts_with_42_in_front() {
        let program = "filter(xs, x => x == 42) ++ sort(filter(xs, x => x != 42))";
        let out = eval_on(program, &ints(&[5, 42, 1, 42, 3])).unwrap();
        assert_eq!(out, ints(&[42, 42, 1, 3, 5]));
        assert_eq!(eval_on(program, &ints(&[])).unwrap(), ints(&[]));
    }

    #[test]
    fn arithmetic_precedence_and_python_division() {
        assert_eq!(ok("1 + 2 * 3"), "7");
        assert_eq!(ok("(1 + 2) * 3"), "9");
        assert_eq!(ok("10 - 3 - 2"), "5");
        assert_eq!(ok("2 * -3"), "-6");
        assert_eq!(ok("- -4"), "4");
        assert_eq!(ok("7 / 2"), "3");
        assert_eq!(ok("-7 / 2"), "-4");
        assert_eq!(ok("7 / -2"), "-4");
        assert_eq!(ok("-7 % 2"), "1");
        assert_eq!(ok("7 % -2"), "-1");
        assert_eq!(ok("-8 % 2"), "0");
        assert_eq!(ok("1 + 2 == 3 and not 1 > 2"), "true");
        assert_eq!(ok("not 1 == 2"), "true");
        assert_eq!(ok("false or true and false"), "false");
        assert_eq!(ok("[1] ++ [2] ++ []"), "[1, 2]");
        assert_eq!(ok("[1 + 1, 2 * 2] ++ xs"), "[2, 4, 3, 1, 2]");
        assert_eq!(ok("# a comment\n  len(xs) # another\n"), "3");
    }

    #[test]
    fn arithmetic_errors_are_errors_not_panics() {
        assert!(matches!(err("1 / 0"), SandboxError::Arithmetic(m) if m.contains("division by zero")));
        assert!(matches!(err("1 % 0"), SandboxError::Arithmetic(_)));
        assert!(matches!(err("9223372036854775807 + 1"), SandboxError::Arithmetic(m) if m.contains("overflow")));
        assert!(matches!(err("-9223372036854775807 - 2"), SandboxError::Arithmetic(_)));
        assert!(matches!(err("4611686018427387904 * 2"), SandboxError::Arithmetic(_)));
        let min = "(-9223372036854775807 - 1)";
        assert!(matches!(err(&format!("{min} / -1")), SandboxError::Arithmetic(_)));
        assert_eq!(ok(&format!("{min} % -1")), "0");
        assert!(matches!(err(&format!("-{min}")), SandboxError::Arithmetic(_)));
        assert!(matches!(err(&format!("abs({min})")), SandboxError::Arithmetic(_)));
        assert!(matches!(err("sum([9223372036854775807, 1])"), SandboxError::Arithmetic(_)));
        assert!(matches!(err("99999999999999999999"), SandboxError::Parse { .. }));
    }

    #[test]
    fn every_builtin() {
        assert_eq!(ok("len(xs)"), "3");
        assert_eq!(ok("len([])"), "0");
        assert_eq!(ok("sum(xs)"), "6");
        assert_eq!(ok("sum([])"), "0");
        assert_eq!(ok("min(xs)"), "1");
        assert_eq!(ok("max(xs)"), "3");
        assert_eq!(ok("min(4, -2)"), "-2");
        assert_eq!(ok("max(4, -2)"), "4");
        assert_eq!(ok("max([[1, 2], [1, 3], [0]])"), "[1, 3]");
        assert_eq!(ok("sort(xs)"), "[1, 2, 3]");
        assert_eq!(ok("sort([5, -1, 5, 0, 3, 3, 9, -7, 2])"), "[-7, -1, 0, 2, 3, 3, 5, 5, 9]");
        assert_eq!(ok("sort([[2], [1, 5], [1], []])"), "[[], [1], [1, 5], [2]]");
        assert_eq!(ok("sort([true, false])"), "[false, true]");
        assert_eq!(ok("sort([])"), "[]");
        assert_eq!(ok("reverse(xs)"), "[2, 1, 3]");
        assert_eq!(ok("unique([3, 1, 3, 2, 1])"), "[3, 1, 2]");
        assert_eq!(ok("head(xs)"), "3");
        assert_eq!(ok("last(xs)"), "2");
        assert_eq!(ok("tail(xs)"), "[1, 2]");
        assert_eq!(ok("tail([])"), "[]");
        assert_eq!(ok("take(xs, 2)"), "[3, 1]");
        assert_eq!(ok("take(xs, 10)"), "[3, 1, 2]");
        assert_eq!(ok("take(xs, -1)"), "[]");
        assert_eq!(ok("drop(xs, 2)"), "[2]");
        assert_eq!(ok("drop(xs, 5)"), "[]");
        assert_eq!(ok("drop(xs, -9223372036854775807)"), "[3, 1, 2]");
        assert_eq!(ok("map(xs, x => x * 10)"), "[30, 10, 20]");
        assert_eq!(ok("filter(xs, x => x % 2 == 1)"), "[3, 1]");
        assert_eq!(ok("count(xs, x => x > 1)"), "2");
        assert_eq!(ok("fold(xs, 0, (acc, x) => acc * 10 + x)"), "312");
        assert_eq!(ok("contains(xs, 2)"), "true");
        assert_eq!(ok("contains(xs, 7)"), "false");
        assert_eq!(ok("contains([[1]], [1])"), "true");
        assert_eq!(ok("range(4)"), "[0, 1, 2, 3]");
        assert_eq!(ok("range(-3)"), "[]");
        assert_eq!(ok("range(2, 5)"), "[2, 3, 4]");
        assert_eq!(ok("range(5, 2)"), "[]");
        assert_eq!(ok("abs(-5)"), "5");
        assert_eq!(ok("while(1, n => n < 100, n => n * 2)"), "128");
        assert_eq!(ok("while(xs, l => len(l) > 1, tail)"), "[2]");
        assert_eq!(ok("xs[0]"), "3");
        assert_eq!(ok("xs[-1]"), "2");
        assert_eq!(ok("[[1, 2], [3]][0][1]"), "2");
        assert_eq!(ok("map([[2, 1], [4, 3]], sort)"), "[[1, 2], [3, 4]]");
    }

    #[test]
    fn functions_bindings_and_conditionals() {
        assert_eq!(ok("let n = len(xs) in n * n"), "9");
        assert_eq!(ok("let f = x => x + 1 in f(f(1))"), "3");
        assert_eq!(ok("let add = (a, b) => a + b in add(2, 5)"), "7");
        assert_eq!(ok("(() => 4)()"), "4");
        assert_eq!(ok("let k = 10 in map(xs, x => x + k)"), "[13, 11, 12]");
        // Closures capture their scope, not the caller's.
        assert_eq!(ok("let k = 1 in let f = x => x + k in let k = 100 in f(0)"), "1");
        assert_eq!(ok("if len(xs) > 2 then head(xs) else 0"), "3");
        assert_eq!(ok("1 + if false then 1 else 2 * 5"), "11");
        // A variable shadows a builtin; `let` is not recursive.
        assert_eq!(ok("let sort = 5 in sort + 1"), "6");
        assert!(matches!(err("let f = n => f(n) in f(1)"), SandboxError::Unbound(n) if n == "f"));
        // `and` / `or` short-circuit past an error.
        assert_eq!(ok("false and 1 / 0 == 1"), "false");
        assert_eq!(ok("true or head([]) == 1"), "true");
        // `==` across kinds is false, `<` across kinds an error.
        assert_eq!(ok("[1] == 1"), "false");
        assert_eq!(ok("[1, [2]] == [1, [2]]"), "true");
        assert_eq!(ok("[1, 2] < [1, 3]"), "true");
        assert!(matches!(err("[1] < 1"), SandboxError::Type(_)));
    }

    #[test]
    fn wrong_programs_give_errors_that_name_the_problem() {
        let e = err("sum(1)");
        assert!(e.to_string().contains("`sum` expects a list, got an integer"), "{e}");
        let e = err("take(xs)");
        assert!(e.to_string().contains("take(xs, n)"), "{e}");
        assert!(matches!(err("ys"), SandboxError::Unbound(n) if n == "ys"));
        assert!(matches!(err("1 + [1]"), SandboxError::Type(_)));
        assert!(matches!(err("if 1 then 2 else 3"), SandboxError::Type(_)));
        assert!(matches!(err("not 3"), SandboxError::Type(_)));
        assert!(matches!(err("3(1)"), SandboxError::Type(_)));
        assert!(matches!(err("(x => x)(1, 2)"), SandboxError::Type(_)));
        assert!(matches!(err("filter(xs, x => x)"), SandboxError::Type(_)));
        assert!(matches!(err("sort([1, true])"), SandboxError::Type(_)));
        assert!(matches!(err("(x => x) == (x => x)"), SandboxError::Type(_)));
        assert!(matches!(err("x => x"), SandboxError::Type(m) if m.contains("function")));
        assert!(matches!(err("[sort]"), SandboxError::Type(_)));
        assert!(matches!(err("head([])"), SandboxError::Domain(m) if m.contains("empty")));
        assert!(matches!(err("max([])"), SandboxError::Domain(_)));
        assert!(matches!(err("xs[3]"), SandboxError::Domain(m) if m.contains("out of range")));
        assert!(matches!(err("xs[-4]"), SandboxError::Domain(_)));
        assert!(matches!(err("xs[-9223372036854775807]"), SandboxError::Domain(_)));
        assert!(matches!(err("xs[true]"), SandboxError::Type(_)));
    }

    #[test]
    fn parse_errors_carry_a_position() {
        let at = |program: &str| match eval(program) {
            Err(SandboxError::Parse { line, column, .. }) => (line, column),
            other => panic!("{program}: {other:?}"),
        };
        assert_eq!(at("sort(xs"), (1, 8));
        assert_eq!(at("sort(xs))"), (1, 9));
        assert_eq!(at("1 +"), (1, 4));
        assert_eq!(at("map(xs,\n  x => x $ 2)"), (2, 10));
        assert_eq!(at("let in = 3 in in"), (1, 5));
        assert_eq!(at("if true then 1"), (1, 15));
        assert_eq!(at("[1, 2,]"), (1, 7));
        assert_eq!(at(""), (1, 1));
        assert_eq!(at("é"), (1, 1));
        assert_eq!(at("sort(xs) ```"), (1, 10));
        let e = eval("xs ++").unwrap_err().to_string();
        assert!(e.contains("expected an expression, found the end of the program"), "{e}");
    }

    #[test]
    fn values_round_trip_through_text() {
        let values = [
            Value::Int(0),
            Value::Int(-17),
            Value::Int(i64::MAX),
            Value::Int(i64::MIN),
            Value::Bool(true),
            Value::Bool(false),
            ints(&[]),
            ints(&[3, 42, -1]),
            Value::List(vec![ints(&[]), Value::List(vec![Value::Bool(false), ints(&[1])]), Value::Int(2)]),
        ];
        for v in values {
            let text = v.to_string();
            assert_eq!(parse_value(&text), Ok(v.clone()), "{text}");
        }
        assert_eq!(ints(&[1, -2]).to_string(), "[1, -2]");
        assert_eq!(parse_value("  [ 1,2 ,\n3 ]  "), Ok(ints(&[1, 2, 3])));
        for bad in ["", "[1, 2", "[1 2]", "1 + 1", "x", "[1,]", "- 1x", "9223372036854775808", "-9223372036854775809"] {
            assert!(matches!(parse_value(bad), Err(SandboxError::Parse { .. })), "{bad:?}");
        }
        let deep = "[".repeat(100_000);
        assert!(matches!(parse_value(&deep), Err(SandboxError::TooDeep { .. })));
    }

    #[test]
    fn an_infinite_loop_hits_the_step_budget_quickly() {
        let t = Instant::now();
        for program in [
            "while(0, n => true, n => n + 1)",
            "while(xs, l => true, l => reverse(l))",
            "while(0, n => true, n => len(map(range(50), x => x)))",
            "while(true, b => b, b => b and true or false)",
        ] {
            let e = eval(program).unwrap_err();
            assert_eq!(e, SandboxError::Steps { max: 100_000 }, "{program}");
            assert!(e.is_budget());
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        let tiny = Limits { max_steps: 50, ..Limits::default() };
        assert_eq!(run("sort(range(100))", &ints(&[]), &tiny), Err(SandboxError::Steps { max: 50 }));
    }

    #[test]
    fn the_clock_stops_a_program_the_steps_would_not() {
        let slow = Limits { max_steps: u64::MAX, max_time: Duration::from_millis(20), ..Limits::default() };
        let t = Instant::now();
        let e = run("while(0, n => true, n => n)", &ints(&[]), &slow).unwrap_err();
        assert_eq!(e, SandboxError::Time { max: Duration::from_millis(20) });
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    #[test]
    fn huge_allocations_hit_the_cell_budget_before_allocating() {
        for program in [
            "range(1000000000000)",
            "range(-9223372036854775807, 9223372036854775807)",
            "while([1], l => true, l => l ++ l)",
            // Sharing makes this cheap to build; writing the result out is paid for.
            "let a = range(900) in let b = map(a, x => a) in map(a, x => b)",
        ] {
            let e = eval(program).unwrap_err();
            assert_eq!(e, SandboxError::Cells { max: 1_000_000 }, "{program}");
        }
        let small = Limits { max_cells: 10, ..Limits::default() };
        assert_eq!(run("xs ++ xs", &ints(&[1, 2, 3, 4]), &small), Err(SandboxError::Cells { max: 10 }));
        assert_eq!(run("xs", &ints(&[0; 11]), &small), Err(SandboxError::Cells { max: 10 }));
        // Exactly: the input (4), the literal (1), the concatenation (5), the result written out (5).
        let exact = Limits { max_cells: 15, ..Limits::default() };
        assert!(run("xs ++ [0]", &ints(&[1, 2, 3, 4]), &exact).is_ok());
        let short = Limits { max_cells: 14, ..Limits::default() };
        assert_eq!(run("xs ++ [0]", &ints(&[1, 2, 3, 4]), &short), Err(SandboxError::Cells { max: 14 }));
    }

    /// Runs `f` on a thread with an ordinary 2 MiB stack: a stack overflow
    /// would abort the test process, not fail this test quietly.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new().stack_size(2 << 20).spawn(f).unwrap().join().unwrap()
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        on_small_stack(|| {
            let limits = Limits { max_source_len: usize::MAX, max_time: Duration::from_secs(60), ..Limits::default() };
            let too_deep = |program: &str| {
                let e = run(program, &ints(&[1, 2]), &limits).unwrap_err();
                assert!(matches!(e, SandboxError::TooDeep { .. }), "{}: {e}", &program[..20.min(program.len())]);
                assert!(e.is_budget());
            };
            let n = 100_000;
            too_deep(&format!("{}1{}", "(".repeat(n), ")".repeat(n)));
            too_deep(&format!("{}1", "-".repeat(n)));
            too_deep(&"[".repeat(n));
            too_deep(&format!("{}xs", "not ".repeat(n)));
            too_deep(&format!("{}1", "let a = 1 in ".repeat(n)));
            too_deep(&format!("{}xs{}", "sort(".repeat(n), ")".repeat(n)));
            too_deep(&format!("xs{}", "[0]".repeat(n)));
            // Within the source-length limit, but as tall as it is long.
            too_deep(&format!("1{}", " + 1".repeat(500)));
            too_deep(&format!("xs{}", "(1)".repeat(500)));
            // Unbounded recursion by self-application.
            too_deep("let w = f => f(f) in w(w)");
            too_deep("let y = f => (x => f(x(x)))(x => f(x(x))) in y(g => n => g(n + 1))(0)");
            // Values that grow deeper on every iteration.
            too_deep("while([], l => true, l => [l])");
            too_deep("while(x => x, g => true, g => (x => g(x)))");
        });
    }

    #[test]
    fn nesting_up_to_the_limit_works_on_a_small_stack() {
        on_small_stack(|| {
            let limits = Limits { max_depth: MAX_DEPTH_CAP, max_steps: 10_000_000, max_time: Duration::from_secs(60), ..Limits::default() };
            let input = ints(&[1]);
            let deepest = |make: &dyn Fn(usize) -> String| -> usize {
                (1..=MAX_DEPTH_CAP).rev().find(|&d| run(&make(d), &input, &limits).is_ok()).unwrap_or(0)
            };
            // Calls nested in the source: a level of parsing, tree and evaluation each.
            let d = deepest(&|d| format!("{}xs{}", "sort(".repeat(d), ")".repeat(d)));
            assert!(d >= MAX_DEPTH_CAP - 4, "{d}");
            // Functions called by builtins called by functions.
            let d = deepest(&|d| format!("{}x{}", "map(xs, x => ".repeat(d), ")".repeat(d)));
            assert!(d >= MAX_DEPTH_CAP / 2 - 4, "{d}");
            // Recursion by self-application.
            let d = deepest(&|d| format!("let f = (me, n) => if n == 0 then 0 else 1 + me(me, n - 1) in f(f, {d})"));
            assert!(d >= MAX_DEPTH_CAP / 4 - 4, "{d}");
            // A value as deep as allowed: built twice, compared, exported, printed, dropped.
            let nested = |d: usize| {
                let build = format!("fold(range({d}), [], (l, i) => [l])");
                format!("let a = {build} in let b = {build} in if a == b and a <= b then a else []")
            };
            let d = deepest(&nested);
            assert!(d >= MAX_DEPTH_CAP - 10, "{d}");
            let v = run(&nested(d), &input, &limits).unwrap();
            assert_eq!(v.to_string(), format!("{}{}", "[".repeat(d + 1), "]".repeat(d + 1)));
        });
    }

    #[test]
    fn long_source_is_refused_before_parsing() {
        let long = format!("xs{}", " ".repeat(5000));
        assert_eq!(eval(&long), Err(SandboxError::SourceTooLong { len: 5002, max: 4096 }));
        let parens = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(matches!(eval(&parens), Err(SandboxError::SourceTooLong { .. })));
        let big_list = format!("[{}]", vec!["1"; 1000].join(", "));
        assert_eq!(eval(&format!("len({big_list})")), Ok(Value::Int(1000)));
    }

    /// Random token soup and mutated programs: every run ends in a value or an
    /// error, never a panic, and quickly.
    #[test]
    fn random_programs_never_panic() {
        use aha_runtime::sampler::Rng;
        let vocab: Vec<&str> = "xs x y ( ) [ ] , => + - * / % == != < >= ++ and or not if then else let = in 0 1 2 42 \
                                -1 9223372036854775807 sort map filter fold while range len head take unique true sum # \n"
            .split(' ')
            .collect();
        let seeds = [
            "filter(xs, x => x == 42) ++ sort(filter(xs, x => x != 42))",
            "fold(xs, 0, (a, x) => a + x * x)",
            "let f = x => x + 1 in map(xs, f)",
            "while(xs, l => len(l) > 1, l => tail(l))",
        ];
        let mut rng = Rng::new(11);
        let pick = |rng: &mut Rng, n: usize| (rng.next_u32() as usize) % n;
        let limits = Limits { max_time: Duration::from_secs(30), ..Limits::default() };
        let start = Instant::now();
        let (mut values, mut errors) = (0, 0);
        for i in 0..6000 {
            let program = if i % 2 == 0 {
                let n = 1 + pick(&mut rng, 30);
                (0..n).map(|_| vocab[pick(&mut rng, vocab.len())]).collect::<Vec<_>>().join(" ")
            } else {
                // A valid program with a few characters replaced, deleted or duplicated.
                let mut chars: Vec<char> = seeds[pick(&mut rng, seeds.len())].chars().collect();
                for _ in 0..1 + pick(&mut rng, 3) {
                    let at = pick(&mut rng, chars.len());
                    match pick(&mut rng, 3) {
                        0 => chars[at] = vocab[pick(&mut rng, vocab.len())].chars().next().unwrap(),
                        1 => drop(chars.remove(at)),
                        _ => chars.insert(at, chars[at]),
                    }
                }
                chars.into_iter().collect()
            };
            match run(&program, &ints(&[3, 42, 1, 0, 42]), &limits) {
                Ok(v) => {
                    values += 1;
                    assert_eq!(parse_value(&v.to_string()), Ok(v));
                }
                Err(e) => {
                    errors += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        assert!(values > 150 && errors > 3000, "{values} values, {errors} errors");
        assert!(start.elapsed() < Duration::from_secs(60), "{:?}", start.elapsed());
    }

    #[test]
    fn a_parsed_program_runs_on_many_inputs() {
        let limits = Limits::default();
        let p = Program::parse("reverse(sort(xs))", &limits).unwrap();
        assert_eq!(p.run(&ints(&[2, 9, 4]), &limits), Ok(ints(&[9, 4, 2])));
        assert_eq!(p.run(&ints(&[]), &limits), Ok(ints(&[])));
        assert!(matches!(p.run(&Value::Int(3), &limits), Err(SandboxError::Type(_))));
        assert_eq!(run("xs + 1", &Value::Int(3), &limits), Ok(Value::Int(4)));
    }
}
