//! Streaming generation: a session, a sampler and a tokenizer, one token at a
//! time, with stop tokens and, for every token, whether it lies inside
//! `<think>…</think>` or in the answer, so a caller can show, hide or count
//! the thinking. No allocation: each event's text borrows a small buffer in
//! the generator, and bytes of a character split across tokens are held back
//! until it is complete.

use crate::error::{Error, Result};
use crate::sampler::Sampler;
use crate::session::Session;
use crate::tokenizer::Tokenizer;

/// Where a token lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Inside `<think>…</think>` (the tags included).
    Thinking,
    Answer,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// A stop token was sampled.
    Stop,
    /// `max_tokens` were generated.
    Length,
    /// The session's context is full.
    ContextFull,
}

/// One generated token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'g> {
    pub token: u32,
    pub phase: Phase,
    /// The text this token completes (may be empty mid-character; empty for stop tokens).
    pub text: &'g str,
    /// This token is a stop token (it is not fed back).
    pub stop: bool,
}

/// Capacity of one event's text.
pub const EVENT_TEXT: usize = 1024;

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    /// Extra stop tokens beyond the tokenizer's end-of-sequence ones.
    pub stop_tokens: heapless::Vec<u32, 16>,
    /// Force `</think>` after this many thinking tokens.
    pub think_budget: Option<usize>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { max_tokens: 256, stop_tokens: heapless::Vec::new(), think_budget: None }
    }
}

/// End-of-sequence tokens of the families aha runs, matched by content.
const STOP_TEXTS: [&str; 6] =
    ["<|im_end|>", "<|endoftext|>", "<｜end▁of▁sentence｜>", "</s>", "<|eot_id|>", "<|end_of_text|>"];

pub struct Generator<'g, 'm, 'w> {
    session: &'g mut Session<'m, 'w>,
    tokenizer: &'g Tokenizer<'m>,
    sampler: Sampler,
    stops: heapless::Vec<u32, 24>,
    think_open: Option<u32>,
    think_close: Option<u32>,
    phase: Phase,
    options: GenerateOptions,
    produced: usize,
    thinking: usize,
    /// Sampled, not yet fed to the session.
    pending: Option<u32>,
    finish: Option<Finish>,
    /// Bytes of an incomplete UTF-8 character carried to the next token.
    carry: heapless::Vec<u8, 4>,
    text: heapless::String<EVENT_TEXT>,
    started: bool,
}

impl<'g, 'm, 'w> Generator<'g, 'm, 'w> {
    pub fn new(
        session: &'g mut Session<'m, 'w>,
        tokenizer: &'g Tokenizer<'m>,
        sampler: Sampler,
        options: GenerateOptions,
    ) -> Generator<'g, 'm, 'w> {
        let mut stops = heapless::Vec::new();
        for t in STOP_TEXTS.iter().filter_map(|s| tokenizer.token_id(s)).chain(options.stop_tokens.iter().copied()) {
            if !stops.contains(&t) {
                let _ = stops.push(t);
            }
        }
        Generator {
            session,
            think_open: tokenizer.token_id("<think>"),
            think_close: tokenizer.token_id("</think>"),
            tokenizer,
            sampler,
            stops,
            phase: Phase::Answer,
            options,
            produced: 0,
            thinking: 0,
            pending: None,
            finish: None,
            carry: heapless::Vec::new(),
            text: heapless::String::new(),
            started: false,
        }
    }

    /// Feeds the prompt. The phase starts as `Thinking` when the prompt's last
    /// think tag is an opening one (R1's distilled students' template ends
    /// with `<think>\n`).
    pub fn prompt(&mut self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Err(Error::BadSampler { what: "the prompt is empty" });
        }
        for &t in ids.iter().rev() {
            if Some(t) == self.think_open {
                self.phase = Phase::Thinking;
                break;
            }
            if Some(t) == self.think_close {
                break;
            }
        }
        self.session.feed(ids)?;
        self.started = true;
        Ok(())
    }

    /// The next token, or `None` when generation has finished ([`Generator::finish`] says why).
    pub fn next(&mut self) -> Result<Option<Event<'_>>> {
        if !self.started {
            return Err(Error::BadSampler { what: "call prompt() before next()" });
        }
        if self.finish.is_some() {
            return Ok(None);
        }
        if let Some(t) = self.pending.take() {
            if self.session.position() >= self.session.context() {
                self.finish = Some(Finish::ContextFull);
                return Ok(None);
            }
            self.session.step(t)?;
        }
        if self.produced >= self.options.max_tokens {
            self.finish = Some(Finish::Length);
            return Ok(None);
        }
        let (logits, idx, history) = self.session.sampling_parts();
        let mut token = self.sampler.sample(logits, idx, history);
        if self.phase == Phase::Thinking {
            if let (Some(budget), Some(close)) = (self.options.think_budget, self.think_close) {
                if self.thinking >= budget {
                    token = close;
                }
            }
        }
        self.produced += 1;

        let phase = if Some(token) == self.think_open {
            self.phase = Phase::Thinking;
            Phase::Thinking
        } else if Some(token) == self.think_close {
            self.phase = Phase::Answer;
            Phase::Thinking
        } else {
            self.phase
        };
        if phase == Phase::Thinking {
            self.thinking += 1;
        }
        let stop = self.stops.contains(&token);
        self.text.clear();
        if stop {
            self.finish = Some(Finish::Stop);
        } else {
            self.pending = Some(token);
            let bytes = self.tokenizer.token_bytes(token).unwrap_or(&[]);
            self.push_utf8(bytes);
        }
        Ok(Some(Event { token, phase, text: &self.text, stop }))
    }

    /// Why generation ended, once it has.
    pub fn finish(&self) -> Option<Finish> {
        self.finish
    }

    /// Tokens generated so far (stop token included).
    pub fn produced(&self) -> usize {
        self.produced
    }

    /// Tokens generated inside `<think>…</think>`.
    pub fn thinking_tokens(&self) -> usize {
        self.thinking
    }

    /// Appends the complete characters of `carry + bytes` to `text`, keeping
    /// an incomplete trailing character in `carry`; invalid bytes become U+FFFD.
    fn push_utf8(&mut self, bytes: &[u8]) {
        let mut buf: heapless::Vec<u8, 4> = core::mem::take(&mut self.carry);
        let mut rest = bytes;
        // Complete the carried character first, byte by byte.
        while !buf.is_empty() && !rest.is_empty() {
            let _ = buf.push(rest[0]);
            rest = &rest[1..];
            match core::str::from_utf8(&buf) {
                Ok(s) => {
                    let _ = self.text.push_str(s);
                    buf.clear();
                }
                Err(e) if e.error_len().is_some() => {
                    let _ = self.text.push('\u{FFFD}');
                    // Re-scan what followed the bad lead byte.
                    let tail: heapless::Vec<u8, 4> = buf[1..].iter().copied().collect();
                    buf.clear();
                    self.emit(&tail, &mut buf);
                }
                Err(_) if buf.len() == 4 => {
                    let _ = self.text.push('\u{FFFD}');
                    buf.clear();
                }
                Err(_) => {}
            }
        }
        if buf.is_empty() {
            self.emit(rest, &mut buf);
        }
        self.carry = buf;
    }

    fn emit(&mut self, mut bytes: &[u8], carry: &mut heapless::Vec<u8, 4>) {
        loop {
            match core::str::from_utf8(bytes) {
                Ok(s) => {
                    let _ = self.text.push_str(s);
                    return;
                }
                Err(e) => {
                    let (good, bad) = bytes.split_at(e.valid_up_to());
                    let _ = self.text.push_str(core::str::from_utf8(good).unwrap_or(""));
                    match e.error_len() {
                        Some(n) => {
                            let _ = self.text.push('\u{FFFD}');
                            bytes = &bad[n..];
                        }
                        None => {
                            carry.clear();
                            let _ = carry.extend_from_slice(bad);
                            return;
                        }
                    }
                }
            }
        }
    }
}
