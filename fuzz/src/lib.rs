//! The trainer code the fuzz targets reach, compiled here from the
//! trainer's own source files (`#[path]`), so that fuzzing needs neither
//! burn nor the rest of the trainer. Each file included here uses only
//! `std`, the crates in Cargo.toml and the modules beside it.
#![allow(dead_code, unused_imports)]

#[path = "../../trainer/src/error.rs"]
pub mod error;

#[path = "../../trainer/src/jsonl.rs"]
pub mod jsonl;

#[path = "../../trainer/src/config.rs"]
pub mod config;

#[path = "../../trainer/src/sandbox/list.rs"]
pub mod sandbox;

#[path = "../../trainer/src/rewards/answer.rs"]
pub mod answer;

#[path = "../../trainer/src/rewards/math.rs"]
pub mod math;

/// Stands in for `trainer/src/data.rs` (which needs the tokenizer and the
/// templates): the one function `answer.rs` takes from it, the GSM8K
/// `#### answer` rule, as data.rs has it.
pub mod data {
    pub fn final_answer(answer: &str) -> &str {
        match answer.rfind("####") {
            Some(at) => answer[at + 4..].trim(),
            None => answer.trim(),
        }
    }
}

/// Splits a fuzz input in two at its first 0xFF byte (never valid UTF-8, so
/// text parts cannot contain it): lets one input drive two arguments.
pub fn split2(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
