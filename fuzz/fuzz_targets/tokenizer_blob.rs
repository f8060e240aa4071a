//! A text to encode (before the first 0xFF byte, which UTF-8 never has) and
//! the tokenizer blob stored in model files (after it): parsing, encoding
//! and decoding never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (text, blob) = aha_fuzz::split2(data);
    let Ok(tokenizer) = aha_runtime::tokenizer::Tokenizer::parse(blob) else { return };
    let text = String::from_utf8_lossy(text);
    if let Ok(ids) = tokenizer.encode_to_vec(&text) {
        let _ = tokenizer.decode_to_string(&ids);
    }
    // Ids straight from the input, in and out of range.
    let ids: Vec<u32> = blob.chunks_exact(2).take(64).map(|b| u16::from_le_bytes([b[0], b[1]]) as u32).collect();
    let _ = tokenizer.decode_to_string(&ids);
    for id in [0, tokenizer.vocab_size().saturating_sub(1), tokenizer.vocab_size(), u32::MAX] {
        let _ = tokenizer.token_bytes(id);
        let _ = tokenizer.is_special(id);
    }
    let _ = tokenizer.added_tokens().count();
    let _ = tokenizer.stop_ids().count();
    let _ = tokenizer.chat_template();
});
