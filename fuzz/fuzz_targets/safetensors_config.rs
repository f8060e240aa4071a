//! The checkpoint readers of `aha convert` / `export`: a config.json (before
//! a 0xFF byte) and a safetensors file's first bytes (after it): the
//! 8-byte header length and the JSON header.
#![no_main]

use aha_runtime::convert::{parse_config, parse_safetensors_header, safetensors_header_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (config, safetensors) = aha_fuzz::split2(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(config) {
        if let Ok(c) = parse_config(&value) {
            c.validate().expect("parse_config validates what it returns");
        }
    }
    if safetensors.len() >= 8 {
        let first8: [u8; 8] = safetensors[..8].try_into().expect("8 bytes");
        // The file is this input, or pretend it is much longer (offsets far in).
        for file_len in [safetensors.len() as u64, u64::MAX] {
            if let Ok(n) = safetensors_header_len(first8, file_len) {
                let header = &safetensors[8..][..(n as usize).min(safetensors.len() - 8)];
                if let Ok(entries) = parse_safetensors_header(header, file_len) {
                    for e in entries {
                        assert!(e.start <= e.end && e.end <= file_len, "{e:?} lies outside the file");
                    }
                }
            }
        }
    }
});
