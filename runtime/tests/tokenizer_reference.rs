//! The tokenizer against Hugging Face `tokenizers`: the shared fixture's ten
//! strings, and the reference ids in `tests/data/tokenizer/` (made by
//! `scripts/make_tokenizer_reference.py`) for three tokenizer families.

use std::collections::BTreeMap;

use aha_runtime::tokenizer::{build_from_json, Tokenizer};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/hf/bpe-tokenizer");

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    decoded: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn fixture_reference_ids_and_text() {
    let blob = build_from_json(&read(&format!("{FIXTURE}/tokenizer.json")), None).unwrap();
    let tok = Tokenizer::parse(&blob).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&read(&format!("{FIXTURE}/reference.json"))).unwrap();
    assert_eq!(cases.len(), 10);
    for case in &cases {
        let ids = tok.encode_to_vec(&case.text).unwrap();
        assert_eq!(ids, case.ids, "ids of {:?}", case.text);
        assert_eq!(tok.decode_to_string(&case.ids).unwrap(), case.decoded, "text of {:?}", case.text);
        // The same through the no-alloc path with a bounded scratch.
        let mut scratch = vec![0u32; Tokenizer::scratch_bound(case.text.len())];
        let mut out = Vec::new();
        let n = tok.encode(&case.text, &mut scratch, &mut |id| out.push(id)).unwrap();
        assert_eq!((n, &out), (case.ids.len(), &case.ids));
    }
}

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tokenizer");
const FAMILIES: [&str; 3] = ["qwen2", "llama3", "gpt2"];

#[derive(serde::Deserialize)]
struct Reference {
    cases: Vec<Row>,
}

/// One text: HF's ids per tokenizer, the decoded text where it differs from
/// the input, and the pre-token lengths (in chars) per split regex.
#[derive(serde::Deserialize)]
struct Row {
    text: String,
    ids: BTreeMap<String, Vec<u32>>,
    decoded: BTreeMap<String, String>,
    split: BTreeMap<String, Vec<usize>>,
}

fn reference() -> Vec<Row> {
    let r: Reference = serde_json::from_str(&read(&format!("{DATA}/reference.json"))).unwrap();
    assert!(r.cases.len() > 300);
    r.cases
}

#[test]
fn pre_tokenizer_splits_match_the_regexes() {
    use aha_runtime::tokenizer::pretokenize::split;
    use aha_runtime::tokenizer::PreTokenizer;
    let mut failures = Vec::new();
    for row in reference() {
        for (kind, name) in [(PreTokenizer::Qwen2, "qwen2"), (PreTokenizer::Llama3, "llama3"), (PreTokenizer::Gpt2, "gpt2")] {
            let got: Vec<usize> = split(kind, &row.text).map(|p| p.chars().count()).collect();
            if got != row.split[name] {
                failures.push(format!("{kind:?} {:?}\n  got  {got:?}\n  want {:?}", row.text, row.split[name]));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn three_families_match_hugging_face() {
    let rows = reference();
    let mut failures = Vec::new();
    for name in FAMILIES {
        let blob = build_from_json(&read(&format!("{DATA}/{name}.tokenizer.json")), None).unwrap();
        let tok = Tokenizer::parse(&blob).unwrap();
        for row in &rows {
            let want_ids = &row.ids[name];
            let want_text = row.decoded.get(name).unwrap_or(&row.text);
            let ids = tok.encode_to_vec(&row.text).unwrap();
            if ids != *want_ids {
                failures.push(format!("{name} ids {:?}\n  got  {ids:?}\n  want {want_ids:?}", row.text));
            }
            let text = tok.decode_to_string(want_ids).unwrap();
            if text != *want_text {
                failures.push(format!("{name} text {:?}\n  got  {text:?}\n  want {want_text:?}", row.text));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
