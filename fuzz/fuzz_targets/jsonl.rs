//! The trainer's JSONL reader (metrics, plots): any bytes read as objects
//! line by line or give an error naming the line, in both tail modes.
#![no_main]

use aha_fuzz::jsonl::{object, read_lines, Tail};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    for tail in [Tail::Strict, Tail::SkipIncomplete] {
        let mut last = 0;
        let result = read_lines(data, Path::new("fuzz.jsonl"), tail, |line, text| {
            assert!(line > last, "line numbers increase");
            last = line;
            object(text).map(|_| ())
        });
        if let Err(e) = result {
            assert!(e.to_string().starts_with("fuzz.jsonl:"), "{e}");
        }
    }
});
