//! The answer extractors the rewards read model output with: a completion
//! (before a 0xFF byte) and a reference answer (after it).
#![no_main]

use aha_fuzz::answer::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (completion, reference) = aha_fuzz::split2(data);
    let completion = String::from_utf8_lossy(completion);
    let reference = String::from_utf8_lossy(reference);
    if let Some(answer) = extract_answer(&completion) {
        assert!(completion.contains(answer), "an answer is a part of the completion");
        let _ = answers_match(answer, &reference);
    }
    let _ = think_text(&completion);
    let _ = answer_tag(&completion);
    let _ = normalize_text(&completion);
    let _ = strip_wrappers(&completion);
    if let (Some(a), Some(b)) = (parse_number(&completion), parse_number(&reference)) {
        assert_eq!(a.matches(b), b.matches(a), "number matching is symmetric");
        let _ = a.to_f64();
    }
    assert_eq!(answers_match(&completion, &reference), answers_match(&completion, &format!("#### {reference}")));
});
