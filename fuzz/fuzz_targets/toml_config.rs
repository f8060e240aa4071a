//! Model configs written as TOML (`aha pretrain --config model.toml`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = aha_fuzz::config::parse_config_toml(text) {
        c.validate().expect("a config that parses is valid");
        let json = aha_fuzz::config::hf_config_json(&c, Default::default());
        assert_eq!(aha_runtime::convert::parse_config(&json), Ok(c), "config.json round-trips");
    }
});
