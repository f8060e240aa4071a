//! The list-language sandbox: a program (before a 0xFF byte) run on an
//! input value (after it) stays within its budgets and never panics.
#![no_main]

use aha_fuzz::sandbox::{parse_value, Limits, Program, Value};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let (program, input) = aha_fuzz::split2(data);
    let (Ok(program), Ok(input)) = (std::str::from_utf8(program), std::str::from_utf8(input)) else { return };
    let limits = Limits { max_steps: 20_000, max_cells: 100_000, max_time: Duration::from_millis(50), ..Limits::default() };
    let input = parse_value(input).unwrap_or_else(|_| Value::ints(&[3, 1, 2]));
    assert_eq!(parse_value(&input.to_string()).as_ref(), Ok(&input), "values print as they parse");
    if let Ok(program) = Program::parse(program, &limits) {
        if let Ok(result) = program.run(&input, &limits) {
            // Results print as value literals (depth permitting) that parse back.
            if let Ok(back) = parse_value(&result.to_string()) {
                assert_eq!(back, result);
            }
        }
    }
});
