//! The tokenizer.json importer (with a tokenizer_config.json after a 0xFF
//! byte): any input converts or gives an error, and a blob it builds must
//! parse back and encode.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (json, config) = aha_fuzz::split2(data);
    let (Ok(json), Ok(config)) = (std::str::from_utf8(json), std::str::from_utf8(config)) else { return };
    let config = (!config.is_empty()).then_some(config);
    let Ok(blob) = aha_runtime::tokenizer::build_from_json(json, config) else { return };
    let tokenizer = aha_runtime::tokenizer::Tokenizer::parse(&blob).expect("a blob the importer built parses");
    if let Ok(ids) = tokenizer.encode_to_vec("Hello, wörld! 123 <think>") {
        let _ = tokenizer.decode_to_string(&ids);
    }
});
