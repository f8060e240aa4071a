//! The tokenizer's API, its round trip on random text, and its robustness to
//! corrupt blobs and small buffers.

use aha_runtime::tokenizer::{build_from_json, load_json, SliceSink, TextDecoder, Tokenizer, TokenizerBuilder, TokenizerError};
use aha_runtime::Error;
use proptest::prelude::*;
use unicode_normalization::UnicodeNormalization;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/hf/bpe-tokenizer/tokenizer.json");
const LLAMA3: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tokenizer/llama3.tokenizer.json");

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture_blob() -> Vec<u8> {
    static BLOB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BLOB.get_or_init(|| build_from_json(&read(FIXTURE), None).unwrap()).clone()
}

fn llama3_blob() -> Vec<u8> {
    static BLOB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BLOB.get_or_init(|| build_from_json(&read(LLAMA3), None).unwrap()).clone()
}

fn invalid_message(r: Result<Vec<u8>, Error>) -> String {
    match r {
        Err(Error::Invalid(msg)) => msg,
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

#[test]
fn lookups() {
    let blob = fixture_blob();
    let tok = Tokenizer::parse(&blob).unwrap();
    assert_eq!(tok.vocab_size(), 411);
    for (text, id) in [("<|endoftext|>", 0), ("<|im_start|>", 1), ("<|im_end|>", 2), ("<think>", 3), ("</think>", 4)] {
        assert_eq!(tok.token_id(text), Some(id), "{text}");
        assert!(tok.is_special(id));
        assert_eq!(tok.token_bytes(id), Some(text.as_bytes()));
    }
    // Vocabulary tokens by their bytes: 'H' is a byte token, " world"-style
    // merges are found too.
    assert_eq!(tok.token_id("H"), Some(46));
    assert!(!tok.is_special(46));
    assert_eq!(tok.token_bytes(46), Some(&b"H"[..]));
    assert_eq!(tok.token_bytes(227), Some(&b" "[..]));
    assert_eq!(tok.token_id("no such token"), None);
    assert_eq!(tok.token_bytes(411), None);
    assert_eq!(tok.added_tokens().count(), 7);
    assert_eq!(tok.pre_tokenizer(), aha_runtime::tokenizer::PreTokenizer::Qwen2);
    assert_eq!(tok.normalizer(), aha_runtime::tokenizer::Normalizer::Nfc);
    assert_eq!(tok.chat_template(), None);
    assert!(!tok.add_bos());
    // The fixture's first merge is "Ġ s" (rank 0): ' ' + 's' -> " s".
    let (rank, merged) = tok.merge(227, tok.token_id("s").unwrap()).unwrap();
    assert_eq!((rank, tok.token_bytes(merged)), (0, Some(&b" s"[..])));
    assert_eq!(tok.merge(tok.token_id("s").unwrap(), 227), None);
    assert_eq!(tok.decode_to_string(&[411]), Err(TokenizerError::UnknownToken(411)));
}

#[test]
fn configs_give_template_and_special_ids() {
    let config = r#"{
        "bos_token": null,
        "eos_token": {"content": "<|im_end|>", "special": true},
        "pad_token": "<|endoftext|>",
        "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    }"#;
    let generation = r#"{"eos_token_id": [2, 0], "bos_token_id": 1}"#;
    let blob = TokenizerBuilder::new(&read(FIXTURE)).tokenizer_config(config).generation_config(generation).build().unwrap();
    let tok = Tokenizer::parse(&blob).unwrap();
    assert_eq!(tok.eos(), Some(2));
    assert_eq!(tok.pad(), Some(0));
    assert_eq!(tok.bos(), Some(1));
    assert!(tok.chat_template().unwrap().starts_with("{% for m in messages %}"));
    assert_eq!(tok.stop_ids().collect::<Vec<_>>(), [0, 2]);
    // build_from_json's second argument is the same tokenizer_config.json.
    let blob = build_from_json(&read(FIXTURE), Some(config)).unwrap();
    let tok = Tokenizer::parse(&blob).unwrap();
    assert_eq!((tok.eos(), tok.pad(), tok.bos()), (Some(2), Some(0), None));
    assert_eq!(tok.stop_ids().collect::<Vec<_>>(), [2]);

    // Llama 3's post-processor puts bos first.
    let blob = build_from_json(&read(LLAMA3), None).unwrap();
    let tok = Tokenizer::parse(&blob).unwrap();
    assert!(tok.add_bos());
    assert_eq!(tok.bos(), tok.token_id("<|endoftext|>"));

    // Named chat templates: "default" is taken.
    let config = r#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}"#;
    let blob = build_from_json(&read(FIXTURE), Some(config)).unwrap();
    assert_eq!(Tokenizer::parse(&blob).unwrap().chat_template(), Some("D"));

    let bad = r#"{"eos_token": "<|not a token|>"}"#;
    assert!(invalid_message(build_from_json(&read(FIXTURE), Some(bad))).contains("eos_token"));
}

#[test]
fn load_json_reads_the_file() {
    assert_eq!(load_json(FIXTURE).unwrap(), fixture_blob());
    assert!(matches!(load_json("/nonexistent/tokenizer.json"), Err(Error::Io { .. })));
}

#[test]
fn unsupported_tokenizers_are_named_errors() {
    let json: serde_json::Value = serde_json::from_str(&read(FIXTURE)).unwrap();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut j = json.clone();
        f(&mut j);
        invalid_message(build_from_json(&j.to_string(), None))
    };
    assert!(with(&|j| j["model"]["type"] = "Unigram".into()).contains("model.type"));
    assert!(with(&|j| j["model"]["type"] = "WordPiece".into()).contains("model.type"));
    assert!(with(&|j| j["model"]["byte_fallback"] = true.into()).contains("byte_fallback"));
    assert!(with(&|j| j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\w+|\s+".into()).contains("pre_tokenizer.pattern"));
    assert!(with(&|j| j["pre_tokenizer"] = serde_json::json!({"type": "Whitespace"})).contains("pre_tokenizer"));
    assert!(with(&|j| j["normalizer"] = serde_json::json!({"type": "NFKC"})).contains("normalizer"));
    assert!(with(&|j| j["decoder"] = serde_json::json!({"type": "Metaspace"})).contains("decoder"));
    assert!(with(&|j| j["model"]["merges"][0] = "Ġ zzz-not-a-token".into()).contains("model.merges[0]"));
    assert!(invalid_message(build_from_json("{not json", None)).contains("tokenizer.json"));
}

#[test]
fn scratch_and_sink_limits_are_errors() {
    let blob = fixture_blob();
    let tok = Tokenizer::parse(&blob).unwrap();
    let text = "a".repeat(100);
    let mut scratch = [0u32; 10];
    let mut ids = Vec::new();
    let err = tok.encode(&text, &mut scratch, &mut |id| ids.push(id)).unwrap_err();
    assert_eq!(err, TokenizerError::ScratchTooSmall { needed: 200, available: 10 });

    // Not-NFC text is normalized into the scratch first.
    let mut scratch = vec![0u32; Tokenizer::scratch_bound(3)];
    let mut out = [0u32; 4];
    let mut sink = SliceSink::new(&mut out);
    tok.encode("e\u{301}", &mut scratch, &mut sink).unwrap();
    assert_eq!(sink.ids(), tok.encode_to_vec("\u{e9}").unwrap());

    let mut out = [0u32; 2];
    let mut sink = SliceSink::new(&mut out);
    let mut scratch = vec![0u32; 64];
    assert_eq!(tok.encode("Hello world", &mut scratch, &mut sink), Err(TokenizerError::OutputFull));
    let mut small: heapless::Vec<u32, 4> = heapless::Vec::new();
    assert_eq!(tok.encode("Hello world", &mut scratch, &mut small), Err(TokenizerError::OutputFull));
}

#[test]
fn blob_framing_errors() {
    let blob = fixture_blob();
    let mut longer = blob.clone();
    longer.push(0);
    assert!(matches!(Tokenizer::parse(&longer), Err(TokenizerError::Corrupt(_))));
    assert!(matches!(Tokenizer::parse(&blob[..blob.len() - 1]), Err(TokenizerError::Corrupt(_))));
    assert!(matches!(Tokenizer::parse(&[]), Err(TokenizerError::Corrupt(_))));
    let mut v2 = blob.clone();
    v2[0] = 2; // the version is the first varint
    assert_eq!(Tokenizer::parse(&v2).unwrap_err(), TokenizerError::UnsupportedVersion(2));
    // Any alignment: the tables are read byte-wise.
    let mut shifted = vec![0u8; 3];
    shifted.extend_from_slice(&blob);
    let tok = Tokenizer::parse(&shifted[3..]).unwrap();
    assert_eq!(tok.encode_to_vec("Hello world").unwrap(), [46, 75, 82, 82, 85, 227, 93, 267, 82, 74]);
}

#[test]
fn streaming_decoder_holds_back_partial_characters() {
    let blob = fixture_blob();
    let tok = Tokenizer::parse(&blob).unwrap();
    // "😀" is four byte tokens in this small vocabulary.
    let ids = tok.encode_to_vec("a😀b").unwrap();
    assert!(ids.len() >= 5);
    let mut d = TextDecoder::new();
    let mut text = String::new();
    let mut seen = Vec::new();
    for &id in &ids {
        d.push(&tok, id, &mut text).unwrap();
        seen.push(text.clone());
    }
    d.finish(&mut text).unwrap();
    assert_eq!(text, "a😀b");
    // Nothing but complete characters ever came out.
    assert_eq!(seen[0], "a");
    assert!(seen.iter().all(|s| s == "a" || s == "a😀" || s == "a😀b"));
}

/// Text made of the pieces the pre-tokenizer and BPE find hardest.
fn tricky_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z]{1,8}",
        2 => "[0-9]{1,6}",
        2 => "[ \t\n\r]{1,5}",
        2 => "[ ]{0,1}'(s|t|re|ve|m|ll|d|S|T|RE|VE|M|LL|D|ſ|x)",
        2 => "[!-/:-@\\[-`{-~]{1,4}",
        1 => "[\u{4e00}-\u{4e80}]{1,4}",
        1 => "[\u{3040}-\u{30ff}]{1,4}",
        1 => "[\u{ac00}-\u{ac80}\u{1100}-\u{1112}\u{1161}-\u{1175}]{1,4}",
        1 => "[\u{1f600}-\u{1f64f}\u{1f3fb}-\u{1f3ff}\u{200d}\u{fe0f}]{1,3}",
        2 => "[a-z][\u{300}-\u{36f}\u{323}]{1,3}",
        1 => "[\u{a0}\u{3000}\u{2028}\u{85}\u{b}\u{c}]{1,2}",
        1 => "(<\\|im_start\\|>|<\\|im_end\\|>|<think>|</think>|<\\|endoftext\\|>)",
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_encode_is_nfc(text in tricky_text()) {
        let blob = fixture_blob();
        let tok = Tokenizer::parse(&blob).unwrap();
        let ids = tok.encode_to_vec(&text).unwrap();
        let nfc: String = text.nfc().collect();
        prop_assert_eq!(tok.decode_to_string(&ids).unwrap(), nfc);
        // The no-alloc path with the documented bound agrees.
        let mut scratch = vec![0u32; Tokenizer::scratch_bound(text.len())];
        let mut out = Vec::new();
        tok.encode(&text, &mut scratch, &mut out).unwrap();
        prop_assert_eq!(out, ids);
    }

    #[test]
    fn llama3_round_trip_is_identity(text in tricky_text()) {
        let blob = llama3_blob();
        let tok = Tokenizer::parse(&blob).unwrap();
        let ids = tok.encode_to_vec(&text).unwrap();
        prop_assert_eq!(tok.decode_to_string(&ids).unwrap(), text);
    }

    #[test]
    fn streaming_equals_lossy_whole(ids in proptest::collection::vec(0u32..411, 0..40)) {
        let blob = fixture_blob();
        let tok = Tokenizer::parse(&blob).unwrap();
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| tok.token_bytes(id).unwrap().iter().copied()).collect();
        prop_assert_eq!(tok.decode_to_string(&ids).unwrap(), String::from_utf8_lossy(&bytes).into_owned());
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(tok) = Tokenizer::parse(&bytes) {
            exercise(&tok, "Hello <think> world 12'll é e\u{301}");
        }
        // The same bytes after a valid prefix of the format.
        let mut framed = vec![1u8];
        framed.extend_from_slice(&bytes);
        if let Ok(tok) = Tokenizer::parse(&framed) {
            exercise(&tok, "Hello <think> world 12'll é e\u{301}");
        }
    }

}

proptest! {
    // About one mutated blob in twenty still parses (a rank, a token's
    // bytes, a byte's initial id changed); those are encoded and decoded.
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn mutated_blobs_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        text in tricky_text(),
    ) {
        let mut blob = fixture_blob();
        for (at, byte) in edits {
            let i = at.index(blob.len());
            blob[i] = byte;
        }
        if truncate {
            blob.truncate(cut.index(blob.len()));
        }
        if let Ok(tok) = Tokenizer::parse(&blob) {
            exercise(&tok, &text);
        }
    }
}

/// Runs every entry point on a tokenizer from untrusted bytes; results may be
/// errors, but nothing may panic.
fn exercise(tok: &Tokenizer, text: &str) {
    let _ = tok.encode_to_vec(text);
    let mut scratch = [0u32; 64];
    let _ = tok.encode(text, &mut scratch, &mut |_| {});
    let ids: Vec<u32> = (0..tok.vocab_size().min(600)).chain([tok.vocab_size(), u32::MAX]).collect();
    let _ = tok.decode_to_string(&ids);
    for &id in &ids {
        let _ = tok.token_bytes(id);
        let _ = tok.is_special(id);
    }
    let _ = tok.token_id("<think>");
    let _ = tok.token_id("H");
    let _ = tok.added_tokens().count();
    let _ = tok.stop_ids().count();
    let _ = tok.chat_template();
}
