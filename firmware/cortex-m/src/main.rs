//! A student on a Cortex-M4F microcontroller: the `.aha` model sits in flash
//! and is read in place; the KV cache, the scratch and the prompt's buffers
//! are static arrays sized by the build script for this model and prompt; no
//! heap. It wraps the prompt in the model's template, tokenizes it on the
//! device, generates greedily and prints over semihosting:
//!
//! ```text
//! [aha] model: qwen2, 2 layers, hidden 64, vocab 512, 147 KiB file in flash at 0x16980, kernels dsp
//! [aha] prompt: Compute 7 * 3 + 5
//! [aha] answer: …the streamed text…
//! [aha] prompt tokens: 1,91,89,…
//! [aha] tokens: 76,76,149,…
//! [aha] finish: max tokens
//! [aha] ticks: prompt 558409 (29 tokens), generation 898060 (32 tokens, 28064 per token)
//! [aha] flash: 299956 B used = code 89432 B + constants 210484 B (the model file 151168 B) + data 0 B
//! [aha] ram: 32500 B used = static 26824 B (arena 24512 B for KV F16 at context 62) + stack 5676 B
//! ```
//!
//! then exits with status 0 (1 on any error, panic or fault). The matvecs
//! run on the DSP-extension kernels (`aha_kernels::arm`). SysTick counts core clock
//! cycles on a board; under QEMU with `-icount shift=0` (the runner here) one
//! instruction takes 1 ns of virtual time and the mps2's 25 MHz clock ticks
//! every 40 instructions, so instructions = 40 × ticks.
#![no_std]
#![no_main]

use aha_runtime::tokenizer::SliceSink;
use aha_runtime::{Finish, GenerateOptions, Generator, Model, Sampler, SamplerConfig, Session, Template};
use board::{exit, memory_map, start_clock, ticks};
use core::fmt::{self, Write};
use cortex_m_rt::entry;
use cortex_m_semihosting::hio;

mod board;

/// Constants the build script derives from the model and the settings.
mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

/// `T` at a 64-byte boundary: the model file's tensors sit at multiples of
/// 64 from its start, and the arena's regions at multiples of 64.
#[repr(C, align(64))]
struct Aligned<T: ?Sized>(T);

/// The model file in flash (`.rodata`), read in place.
static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.aha")));

#[entry]
fn main() -> ! {
    // cortex-m-rt hands these to `main` as `&'static mut`: zeroed RAM
    // (`.bss`), never on the stack, taken once.
    static mut ARENA: Aligned<[u8; config::ARENA_BYTES]> = Aligned([0; config::ARENA_BYTES]);
    static mut PROMPT_IDS: [u32; config::PROMPT_TOKENS] = [0; config::PROMPT_TOKENS];
    static mut SCRATCH: [u32; config::PROMPT_SCRATCH] = [0; config::PROMPT_SCRATCH];

    let mut out = match hio::hstdout() {
        Ok(out) => out,
        Err(()) => exit(false),
    };
    if let Some(p) = cortex_m::Peripherals::take() {
        start_clock(p.SYST);
    }
    let ok = match run(&mut ARENA.0, PROMPT_IDS, SCRATCH, &mut out) {
        Ok(()) => true,
        Err(e) => {
            let _ = writeln!(out, "[aha] error: {e}");
            false
        }
    };
    exit(ok)
}

/// Everything that can go wrong, printed before exiting with status 1.
enum Failure {
    Runtime(aha_runtime::Error),
    /// Semihosting output failed, or a buffer the build script sized was short.
    Text(&'static str),
}

impl From<aha_runtime::Error> for Failure {
    fn from(e: aha_runtime::Error) -> Self {
        Failure::Runtime(e)
    }
}

impl From<aha_runtime::tokenizer::TokenizerError> for Failure {
    fn from(e: aha_runtime::tokenizer::TokenizerError) -> Self {
        Failure::Runtime(e.into())
    }
}

impl From<fmt::Error> for Failure {
    fn from(_: fmt::Error) -> Self {
        Failure::Text("writing to the host failed")
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Runtime(e) => write!(f, "{e}"),
            Failure::Text(what) => f.write_str(what),
        }
    }
}

fn run(arena: &mut [u8], prompt_ids: &mut [u32], scratch: &mut [u32], out: &mut impl Write) -> Result<(), Failure> {
    let model = Model::from_bytes(&MODEL.0)?;
    #[cfg(feature = "verify-crc")]
    {
        model.file.verify()?;
        writeln!(out, "[aha] verify: every tensor's CRC-32 matches")?;
    }
    let tokenizer = model.tokenizer()?;
    let c = &model.config;
    let session_kernels = aha_kernels::best();
    writeln!(
        out,
        "[aha] model: {}, {} layers, hidden {}, vocab {}, {} KiB file in flash at {:p}, kernels {}",
        c.arch.name(),
        c.num_layers,
        c.hidden_size,
        c.vocab_size,
        MODEL.0.len() / 1024,
        MODEL.0.as_ptr(),
        session_kernels.name,
    )?;

    // The prompt: template, tokens, and a bos if the tokenizer wants one
    // (as `aha run` does).
    let template = Template::from_name(config::TEMPLATE).ok_or(Failure::Text("unknown template"))?;
    let mut text = heapless::String::<{ config::PROMPT_TEXT_BYTES }>::new();
    template.render(config::PROMPT, &mut text).map_err(|_| Failure::Text("the prompt outgrew its buffer"))?;
    writeln!(out, "[aha] prompt: {}", config::PROMPT)?;
    let (bos_slot, rest) = prompt_ids.split_first_mut().ok_or(Failure::Text("no room for the prompt"))?;
    let mut sink = SliceSink::new(rest);
    tokenizer.encode(&text, scratch, &mut sink)?;
    let n = sink.ids().len();
    let prompt: &[u32] = match (tokenizer.add_bos(), tokenizer.bos()) {
        (true, Some(bos)) if rest.first() != Some(&bos) => {
            *bos_slot = bos;
            &prompt_ids[..n + 1]
        }
        _ => &prompt_ids[1..n + 1],
    };

    let mut session = Session::new(&model, arena, config::CONTEXT, config::KV)?;
    let sampler = Sampler::new(SamplerConfig::greedy())?;
    let options = GenerateOptions { max_tokens: config::MAX_TOKENS, ..Default::default() };
    let mut generator = Generator::new(&mut session, &tokenizer, sampler, options);

    let t0 = ticks();
    generator.prompt(prompt)?;
    let prompt_ticks = ticks() - t0;

    out.write_str("[aha] answer: ")?;
    let mut tokens = heapless::Vec::<u32, { config::MAX_TOKENS }>::new();
    let mut generation_ticks = 0;
    loop {
        let t = ticks();
        let Some(event) = generator.next()? else { break };
        generation_ticks += ticks() - t;
        tokens.push(event.token).map_err(|_| Failure::Text("more tokens than MAX_TOKENS"))?;
        out.write_str(event.text)?;
    }
    writeln!(out)?;
    let finish = match generator.finish() {
        Some(Finish::Stop) => "stop token",
        Some(Finish::Length) => "max tokens",
        Some(Finish::ContextFull) => "context full",
        None => "?",
    };

    write!(out, "[aha] prompt tokens: ")?;
    list(out, prompt)?;
    write!(out, "[aha] tokens: ")?;
    list(out, &tokens)?;
    writeln!(out, "[aha] finish: {finish}")?;
    writeln!(
        out,
        "[aha] ticks: prompt {prompt_ticks} ({} tokens), generation {generation_ticks} ({} tokens, {} per token)",
        prompt.len(),
        tokens.len(),
        generation_ticks / (tokens.len().max(1) as u64),
    )?;
    let m = memory_map();
    writeln!(
        out,
        "[aha] flash: {} B used = code {} B + constants {} B (the model file {} B) + data {} B",
        m.flash,
        m.code,
        m.rodata,
        MODEL.0.len(),
        m.data
    )?;
    writeln!(
        out,
        "[aha] ram: {} B used = static {} B (arena {} B for KV {:?} at context {}) + stack {} B",
        m.statics + m.stack,
        m.statics,
        config::ARENA_BYTES,
        config::KV,
        config::CONTEXT,
        m.stack
    )?;
    Ok(())
}

fn list(out: &mut impl Write, ids: &[u32]) -> fmt::Result {
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        write!(out, "{id}")?;
    }
    writeln!(out)
}
