//! Sizes and inputs a user controls, at their limits: context lengths and
//! memory plans that would overflow, hyperparameters beyond what the runtime
//! supports, malformed config.json and safetensors headers, and outputs that
//! are not regular files. Each gives an error naming the limit or the thing
//! at fault; none panics or overflows.

mod common;

use aha_kernels::DType;
use aha_runtime::convert::{parse_config, parse_safetensors_header, safetensors_header_len};
use aha_runtime::format::{Config, RopeScaling};
use aha_runtime::{Error, KvType, Model};
use common::tiny_config;
use serde_json::json;

fn tiny_model_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("m.aha");
    aha_runtime::writer::write_random_model(&path, &tiny_config(), DType::Q8_0, None, 1).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn contexts_are_checked_and_plans_never_overflow() {
    let bytes = tiny_model_bytes();
    let model = Model::from_bytes(&bytes).unwrap();
    for context in [0, 129, 100_000_000, usize::MAX] {
        let e = model.checked_plan(context, KvType::F32, 1).unwrap_err();
        assert!(matches!(e, Error::ContextOutOfRange { max_position: 128, .. }), "{e}");
        assert!(e.to_string().contains("128 positions"), "{e}");
    }
    let e = model.checked_plan(16, KvType::F32, 17).unwrap_err();
    assert_eq!(e.to_string(), "a prompt batch of 17 tokens is out of range: it must be between 1 and the context (16)");
    let plan = model.checked_plan(128, KvType::F16, 32).unwrap();
    assert_eq!(plan, model.memory_plan_batched(128, KvType::F16, 32));
    assert_eq!(plan.try_allocate().unwrap().len(), plan.total());

    // An absurd context saturates instead of wrapping: the plan cannot be
    // allocated (an error, not an abort) nor used.
    // (`usize` is 32 bits on wasm32, where 2^40 does not exist.)
    let huge = usize::MAX / (1 << 8);
    for context in [usize::MAX, usize::MAX / 3, huge] {
        let plan = model.memory_plan_batched(context, KvType::F32, 32);
        assert!(plan.total() >= plan.kv_bytes && plan.kv_bytes > huge, "{plan:?}");
        let e = plan.try_allocate().unwrap_err();
        assert!(e.to_string().starts_with("cannot allocate"), "{e}");
        let mut small = vec![0u8; 1024];
        assert!(aha_runtime::Session::with_plan(&model, &mut small, &plan, aha_kernels::best()).is_err());
    }
}

#[test]
fn hyperparameters_beyond_the_limits_are_named() {
    let cases: [(fn(&mut Config), &str); 6] = [
        (|c| c.hidden_size = 1 << 21, "hidden_size = 2097152 is larger than the supported 1048576"),
        (|c| c.vocab_size = u32::MAX, "vocab_size = 4294967295 is larger than the supported 1048576"),
        (|c| c.num_layers = 5000, "num_hidden_layers = 5000 is larger than the supported 1024"),
        (|c| c.rope_theta = f32::INFINITY, "rope_theta must be positive"),
        (|c| c.rms_norm_eps = f32::NAN, "rms_norm_eps non-negative"),
        (
            |c| {
                c.rope_scaling =
                    RopeScaling::Llama3 { factor: 8.0, low_freq_factor: 4.0, high_freq_factor: 4.0, original_max_position: 8192 }
            },
            "0 < low_freq_factor < high_freq_factor",
        ),
    ];
    for (change, message) in cases {
        let mut c = tiny_config();
        change(&mut c);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(message), "{e}");
    }
}

#[test]
fn config_json_errors_name_the_field() {
    let base = json!({
        "model_type": "qwen2", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    });
    assert!(parse_config(&base).is_ok());
    assert_eq!(parse_config(&json!([1, 2, 3])).unwrap_err(), "expected a JSON object of hyperparameters, found an array");
    assert_eq!(parse_config(&json!("qwen2")).unwrap_err(), "expected a JSON object of hyperparameters, found a string");
    let with = |key: &str, v: serde_json::Value| {
        let mut c = base.clone();
        c[key] = v;
        parse_config(&c).unwrap_err()
    };
    assert_eq!(with("hidden_size", json!(1u64 << 40)), "field `hidden_size` = 1099511627776 is too large (at most 4294967295)");
    assert_eq!(with("hidden_size", json!(-3)), "field `hidden_size` must be a non-negative integer, found -3");
    assert_eq!(with("vocab_size", json!(1.5)), "field `vocab_size` must be a non-negative integer, found 1.5");
    assert!(with("rope_theta", json!(1e300)).contains("rope_theta"));
}

#[test]
fn safetensors_headers_are_checked_against_the_file() {
    assert!(safetensors_header_len(u64::MAX.to_le_bytes(), 100).unwrap_err().contains("exceeds the file (100 bytes)"));
    assert_eq!(safetensors_header_len(10u64.to_le_bytes(), 100), Ok(10));
    let header = |offsets: serde_json::Value| {
        serde_json::to_vec(&json!({"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": offsets}}))
            .unwrap()
    };
    let h = header(json!([0, 8]));
    let entries = parse_safetensors_header(&h, 8 + h.len() as u64 + 8).unwrap();
    assert_eq!((entries[0].start, entries[0].end), (8 + h.len() as u64, 16 + h.len() as u64));
    for bad in [json!([u64::MAX - 8, u64::MAX]), json!([8, 0]), json!([0, 9]), json!([0]), json!([0, 8, 16]), json!("x")] {
        let h = header(bad.clone());
        let e = parse_safetensors_header(&h, 8 + h.len() as u64 + 8).unwrap_err();
        assert!(e.starts_with("tensor w: data_offsets"), "{bad}: {e}");
    }
    assert!(parse_safetensors_header(b"[1]", 100).unwrap_err().contains("is an array, not an object"));
    assert!(parse_safetensors_header(b"{", 100).unwrap_err().contains("not valid JSON"));
}

#[cfg(unix)]
#[test]
fn outputs_that_are_not_regular_files() {
    use aha_runtime::writer::{output_target, write_file, OutputTarget};
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = dir.path();
    assert_eq!(output_target(&d.join("new.aha")).unwrap(), OutputTarget::File(d.join("new.aha")));
    std::os::unix::fs::symlink("real", d.join("link")).unwrap();
    assert_eq!(output_target(&d.join("link")).unwrap(), OutputTarget::File(d.join("real")));
    std::os::unix::fs::symlink("loop", d.join("loop")).unwrap();
    assert!(output_target(&d.join("loop")).unwrap_err().to_string().contains("too many levels of symbolic links"));
    assert_eq!(output_target(std::path::Path::new("/dev/null")).unwrap(), OutputTarget::Stream("/dev/null".into()));
    let e = output_target(d).unwrap_err().to_string();
    assert!(e.contains("is a directory; refusing to write over it"), "{e}");
    std::os::unix::fs::symlink(d, d.join("dirlink")).unwrap();
    let e = output_target(&d.join("dirlink")).unwrap_err().to_string();
    assert!(e.contains("dirlink"), "names the path given: {e}");

    write_file(&d.join("link"), b"through the link").unwrap();
    assert_eq!(std::fs::read(d.join("real")).unwrap(), b"through the link");
    assert!(std::fs::symlink_metadata(d.join("link")).unwrap().file_type().is_symlink());
    write_file(std::path::Path::new("/dev/null"), b"gone").unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(d).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains(".tmp")).collect();
    assert!(leftovers.is_empty(), "no temporary files left: {leftovers:?}");
}
