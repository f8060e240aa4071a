//! Where code answers run. Two sandboxes, one per kind of program:
//!
//! - [`list`]: a tiny pure list language, interpreted with budgets; it has
//!   no files, network or processes by construction. The built-in `listprog`
//!   task and tests written as `{"input", "expected"}` value literals use it.
//! - [`python`]: real Python programs (MBPP, HumanEval, a JSONL's assert
//!   tests) run by the system's `python3` inside bubblewrap namespaces with
//!   resource limits; it refuses to run anything when the host cannot
//!   provide that isolation.

pub mod list;
pub mod python;

pub use list::*;
