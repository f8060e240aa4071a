//! Streaming generation: a session, a sampler and a tokenizer, one token at a
//! time, with stop tokens and, for every token, whether it lies inside
//! `<think>…</think>` or in the answer, so a caller can show, hide or count
//! the thinking. No allocation: each event's text borrows a small buffer in
//! the generator, and bytes of a character split across tokens are held back
//! until it is complete.

use crate::error::{Error, Result};
use crate::sampler::Sampler;
use crate::session::Session;
use crate::tokenizer::{TextDecoder, Tokenizer};

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
    /// Holds back bytes of a character split across tokens.
    decoder: TextDecoder,
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
        let by_text = STOP_TEXTS.iter().filter_map(|s| tokenizer.token_id(s));
        for t in tokenizer.stop_ids().chain(by_text).chain(options.stop_tokens.iter().copied()) {
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
            decoder: TextDecoder::new(),
            text: heapless::String::new(),
            started: false,
        }
    }

    /// Feeds the prompt. The phase starts as `Thinking` when the prompt's last
    /// think tag is an opening one (R1's distilled students' template ends
    /// with `<think>\n`).
    pub fn prompt(&mut self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Err(Error::Usage { what: "the prompt is empty" });
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

    /// The next token, or `None` when generation has finished (a lending
    /// iterator: the event borrows the generator, so this is not `Iterator`) ([`Generator::finish`] says why).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Event<'_>>> {
        if !self.started {
            return Err(Error::Usage { what: "Generator::next called before Generator::prompt" });
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
            // A token longer than the event buffer is cut (never seen in real vocabularies).
            let _ = self.decoder.push(self.tokenizer, token, &mut self.text);
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
}
