//! The `.aha` parser and loader: any bytes parse to `Ok` or a named error
//! (DESIGN.md's contract); a file that loads also plans, verifies, yields
//! its tokenizer and, when small, runs one token through the forward pass.
#![no_main]

use aha_runtime::{KvType, Model, ModelFile, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = ModelFile::parse(data) else { return };
    for info in file.tensors() {
        let Ok(info) = info else { break };
        let _ = file.tensor_bytes(&info);
        let _ = info.elements();
    }
    let _ = file.verify();
    let _ = file.weight_bytes();
    let Ok(model) = Model::new(file) else { return };
    if let Ok(tokenizer) = model.tokenizer() {
        if let Ok(ids) = tokenizer.encode_to_vec("Compute 7 * 3 + 5 <think>") {
            let _ = tokenizer.decode_to_string(&ids);
        }
    }
    for context in [0, 1, 8, usize::MAX] {
        let _ = model.checked_plan(context, KvType::F16, 4);
        let _ = model.memory_plan_batched(context, KvType::F32, 32).total();
    }
    let plan = model.memory_plan(4, KvType::F32);
    // One forward step when it is cheap (the fuzzer must stay fast).
    if plan.total() < (4 << 20) && model.weight_bytes() < (4 << 20) {
        let mut buf = plan.allocate();
        if let Ok(mut session) = Session::new(&model, &mut buf, 4, KvType::F32) {
            let _ = session.step(0).map(|logits| logits.len());
            let _ = session.feed(&[1, 2]).map(|logits| logits.len());
        }
    }
});
