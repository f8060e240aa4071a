//! aha in a web page: the runtime compiled to WebAssembly (simd128 kernels),
//! driven by `worker.js` in a Web Worker so generation never blocks the page.
//!
//! A plain C ABI, no bindings generator: JavaScript copies the model file and
//! the prompt into this module's memory (`aha_alloc`), calls `aha_generate`,
//! and receives each token as it is produced through the imported
//! `aha.token(id, phase, text_ptr, text_len)`, then one `aha.done(...)` or
//! `aha.error(msg_ptr, msg_len)`.

use aha_runtime::{Finish, GenerateOptions, Generator, KvType, Model, Phase, Sampler, SamplerConfig, Session, Template};
use std::alloc::Layout;

#[link(wasm_import_module = "aha")]
extern "C" {
    /// One generated token: `phase` 0 = answer, 1 = thinking; the UTF-8 text it completes.
    fn token(id: u32, phase: u32, text: *const u8, text_len: usize);
    /// Generation ended: prompt tokens, generated tokens, why (0 stop token, 1 max tokens, 2 context full), kernels' name.
    fn done(prompt_tokens: u32, generated: u32, finish: u32, kernels: *const u8, kernels_len: usize);
    /// Generation failed; the message says why.
    fn error(msg: *const u8, msg_len: usize);
}

/// Buffers JavaScript fills are 64-byte aligned, as the model file's tensors are.
const ALIGN: usize = 64;

/// `len` bytes of this module's memory for JavaScript to fill (null if `len` is 0 or too large).
#[no_mangle]
pub extern "C" fn aha_alloc(len: usize) -> *mut u8 {
    match Layout::from_size_align(len, ALIGN) {
        // SAFETY: the layout has a non-zero size.
        Ok(layout) if len > 0 => unsafe { std::alloc::alloc(layout) },
        _ => std::ptr::null_mut(),
    }
}

/// Frees what `aha_alloc(len)` returned.
///
/// # Safety
/// `ptr` came from `aha_alloc(len)` with this `len` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn aha_free(ptr: *mut u8, len: usize) {
    if let (false, Ok(layout)) = (ptr.is_null(), Layout::from_size_align(len, ALIGN)) {
        // SAFETY: the caller passes back what `aha_alloc` gave, with its length.
        unsafe { std::alloc::dealloc(ptr, layout) }
    }
}

/// Generates an answer to `prompt` (wrapped in the template the tokenizer
/// implies, as `aha run --template auto`) from the model file at `model`:
/// greedy when `temperature` is 0, else temperature + top-p 0.95 sampling
/// seeded by `seed`. Returns 0, or 1 after reporting an error.
///
/// # Safety
/// `model` and `prompt` point to `model_len` and `prompt_len` readable bytes
/// (from `aha_alloc`) that stay untouched during the call.
#[no_mangle]
pub unsafe extern "C" fn aha_generate(
    model: *const u8,
    model_len: usize,
    prompt: *const u8,
    prompt_len: usize,
    max_tokens: u32,
    temperature: f32,
    seed: u32,
) -> u32 {
    // SAFETY: the caller guarantees both ranges are readable for the call
    // (a null pointer is taken as empty).
    let bytes = |ptr: *const u8, len: usize| if ptr.is_null() { &[][..] } else { unsafe { std::slice::from_raw_parts(ptr, len) } };
    let (model, prompt) = (bytes(model, model_len), bytes(prompt, prompt_len));
    match generate(model, prompt, max_tokens as usize, temperature, seed) {
        Ok(()) => 0,
        Err(message) => {
            // SAFETY: an imported function reading `message` during the call.
            unsafe { error(message.as_ptr(), message.len()) };
            1
        }
    }
}

fn generate(model: &[u8], prompt: &[u8], max_tokens: usize, temperature: f32, seed: u32) -> Result<(), String> {
    let prompt = std::str::from_utf8(prompt).map_err(|_| "the prompt is not UTF-8".to_string())?;
    let model = Model::from_bytes(model).map_err(|e| format!("reading the model file: {e}"))?;
    let tokenizer = model.tokenizer().map_err(|e| format!("this page needs a model file with a tokenizer: {e}"))?;
    let mut text = String::new();
    Template::detect(&tokenizer).render(prompt, &mut text).map_err(|e| e.to_string())?;
    let mut ids = tokenizer.encode_to_vec(&text).map_err(|e| format!("encoding the prompt: {e}"))?;
    if let (true, Some(bos)) = (tokenizer.add_bos(), tokenizer.bos()) {
        if ids.first() != Some(&bos) {
            ids.insert(0, bos);
        }
    }
    let context = (ids.len() + max_tokens).min(model.config.max_position as usize).max(ids.len() + 1);
    let plan = model.memory_plan(context, KvType::F32);
    // Not `plan.allocate()`: running out of memory is an error here, not an abort.
    let mut buf = Vec::new();
    buf.try_reserve_exact(plan.total())
        .map_err(|_| format!("cannot allocate {:.1} MB for a {context}-token context", plan.total() as f64 / 1e6))?;
    buf.resize(plan.total(), 0);
    let mut session = Session::new(&model, &mut buf, context, KvType::F32).map_err(|e| e.to_string())?;
    let kernels = session.kernels().name;
    let config = if temperature == 0.0 {
        SamplerConfig::greedy()
    } else {
        SamplerConfig { temperature, top_p: 0.95, seed: seed as u64, ..SamplerConfig::default() }
    };
    let sampler = Sampler::new(config).map_err(|e| e.to_string())?;
    let options = GenerateOptions { max_tokens, ..Default::default() };
    let mut generator = Generator::new(&mut session, &tokenizer, sampler, options);
    generator.prompt(&ids).map_err(|e| e.to_string())?;
    while let Some(event) = generator.next().map_err(|e| e.to_string())? {
        let phase = match event.phase {
            Phase::Answer => 0,
            Phase::Thinking => 1,
        };
        // SAFETY: an imported function reading `event.text` during the call.
        unsafe { token(event.token, phase, event.text.as_ptr(), event.text.len()) };
    }
    let finish = match generator.finish() {
        Some(Finish::Stop) => 0,
        Some(Finish::Length) | None => 1,
        Some(Finish::ContextFull) => 2,
    };
    let generated = generator.produced() as u32;
    // SAFETY: an imported function reading `kernels` during the call.
    unsafe { done(ids.len() as u32, generated, finish, kernels.as_ptr(), kernels.len()) };
    Ok(())
}
