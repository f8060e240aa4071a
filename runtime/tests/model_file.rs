//! The model-file parser against hostile input: random bytes, truncations,
//! bit flips, and mutated headers with a recomputed checksum (so the decoder
//! itself, not only the CRC, is exercised). Every case must return `Ok` or an
//! error, never panic; and a file that still parses must run a forward step.

mod common;

use aha_kernels::DType;
use aha_runtime::{Error, KvType, Model, Session};
use proptest::prelude::*;
use std::sync::OnceLock;

use common::tiny_config;

/// A valid Q4_0 model file, made once.
fn valid() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        // Under cargo's own temporary folder: wasm32-wasip1 (where these tests
        // also run, in Node.js) has no system temporary directory.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let path = dir.path().join("m.aha");
        aha_runtime::writer::write_random_model(&path, &tiny_config(), DType::Q4_0, None, 1).unwrap();
        std::fs::read(path).unwrap()
    })
}

/// Parses, and if that works, runs two steps: must not panic.
fn exercise(bytes: &[u8]) -> Result<(), Error> {
    let model = Model::from_bytes(bytes)?;
    let ctx = 4;
    let mut buf = model.memory_plan(ctx, KvType::F32).allocate();
    let mut s = Session::new(&model, &mut buf, ctx, KvType::F32)?;
    s.step(1)?;
    s.step(2)?;
    if let Ok(t) = model.tokenizer() {
        let _ = t.vocab_size();
    }
    let _ = model.file.verify();
    Ok(())
}

#[test]
fn the_valid_file_runs_and_verifies() {
    exercise(valid()).unwrap();
    Model::from_bytes(valid()).unwrap().file.verify().unwrap();
}

#[test]
fn named_errors_for_common_damage() {
    let v = valid();
    assert!(matches!(Model::from_bytes(&v[..10]), Err(Error::Truncated { .. })));
    assert!(matches!(Model::from_bytes(b"GGUF\x03\0\0\0rest-of-it"), Err(Error::BadMagic)));
    let mut wrong_version = v.to_vec();
    wrong_version[4] = 99;
    assert!(matches!(Model::from_bytes(&wrong_version), Err(Error::UnsupportedVersion { found: 99, .. })));
    let mut header_flip = v.to_vec();
    header_flip[40] ^= 0x10;
    assert!(matches!(Model::from_bytes(&header_flip), Err(Error::Checksum { .. })));
    // Cut inside the tensor data: the last tensor lies outside the file.
    let err = Model::from_bytes(&v[..v.len() - 100]).err().expect("truncated data must fail");
    assert!(matches!(err, Error::TensorBounds { .. }), "{err}");
    assert!(err.to_string().contains("lm_head.weight"), "{err}");
    // A flipped weight byte parses (data is checked lazily) but verify names the tensor.
    let mut data_flip = v.to_vec();
    let last = data_flip.len() - 1;
    data_flip[last] ^= 1;
    let model = Model::from_bytes(&data_flip).unwrap();
    let err = model.file.verify().unwrap_err();
    assert!(err.to_string().contains("lm_head.weight"), "{err}");
}

/// Where the header starts and ends.
fn header_span(v: &[u8]) -> (usize, usize) {
    let len = u32::from_le_bytes(v[8..12].try_into().unwrap()) as usize;
    (16, 16 + len)
}

fn with_crc(mut v: Vec<u8>) -> Vec<u8> {
    let (a, b) = header_span(&v);
    let crc = crc32fast::hash(&v[a..b]);
    v[12..16].copy_from_slice(&crc.to_le_bytes());
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = exercise(&bytes);
        let mut prefixed = b"AHA\0\x01\0\0\0".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = exercise(&prefixed);
    }

    #[test]
    fn truncations_never_panic(cut in 0usize..100_000) {
        let v = valid();
        let _ = exercise(&v[..cut.min(v.len())]);
    }

    #[test]
    fn mutated_headers_with_fixed_crc_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut v = valid().to_vec();
        let (a, b) = header_span(&v);
        for (i, byte) in edits {
            v[a + i.index(b - a)] = byte;
        }
        let _ = exercise(&with_crc(v));
    }

    #[test]
    fn mutated_header_lengths_never_panic(len in any::<u32>()) {
        let mut v = valid().to_vec();
        v[8..12].copy_from_slice(&len.to_le_bytes());
        let _ = exercise(&v);
    }
}
