//! Many sequences at once: B KV caches in one caller-supplied buffer, and a
//! forward pass that takes one token of each live sequence in a single pass
//! over the weights (each weight row read once per step for all of them),
//! as vLLM and HF `generate` batch their decoding.
//!
//! Each sequence has its own position, KV cache, token history and last
//! logits. A finished sequence simply stops being stepped (it drops out of
//! the batch, and its slot can take a new one after [`BatchSession::reset`]).
//! The samples of one prompt share its prefill: feed the prompt to one
//! sequence, then [`BatchSession::fork`] copies that prefix (KV rows, tokens,
//! logits) to the others.
//!
//! Every product runs through the batched kernels, even when one sequence is
//! live, and their lanes never interact, so a sequence's logits are the same
//! bits whatever else shares its steps: G samples drawn together equal the
//! same seeds drawn one at a time.
//!
//! Memory is planned up front ([`crate::Model::memory_plan_sequences`]); a
//! step allocates nothing.

use crate::error::{Error, Result};
use crate::model::{MemoryPlan, Model};
use crate::session::Core;
use aha_kernels::Kernels;

pub struct BatchSession<'m, 'w> {
    core: Core<'m, 'w>,
}

impl<'m, 'w> BatchSession<'m, 'w> {
    /// A batch session over `buf` (at least `plan.total()` bytes, any
    /// alignment; `plan` from [`Model::memory_plan_sequences`]).
    pub fn new(model: &'m Model<'m>, buf: &'w mut [u8], plan: &MemoryPlan, kernels: &'static Kernels) -> Result<BatchSession<'m, 'w>> {
        if !plan.batched() {
            return Err(Error::Usage { what: "a batch session needs a plan from memory_plan_sequences" });
        }
        Ok(BatchSession { core: Core::new(model, buf, plan, kernels, true)? })
    }

    /// Splits every product's rows and the attention across `threads` threads (std only).
    #[cfg(feature = "std")]
    pub fn set_threads(&mut self, threads: usize) {
        self.core.set_threads(threads);
    }

    /// Shares an existing pool.
    #[cfg(feature = "std")]
    pub fn set_pool(&mut self, pool: Option<std::sync::Arc<aha_kernels::pool::ThreadPool>>) {
        self.core.pool = pool;
    }

    /// The pool the products run on, if any.
    #[cfg(feature = "std")]
    pub fn pool(&self) -> Option<&std::sync::Arc<aha_kernels::pool::ThreadPool>> {
        self.core.pool.as_ref()
    }

    /// Chooses the integer path (default) or the float path for quantized weights.
    pub fn set_integer_path(&mut self, on: bool) {
        self.core.integer_path = on;
    }

    pub fn model(&self) -> &'m Model<'m> {
        self.core.model
    }

    /// Sequences this session holds.
    pub fn sequences(&self) -> usize {
        self.core.sequences
    }

    /// Tokens one pass takes (a step of more sequences, or a longer prompt, takes several).
    pub fn batch(&self) -> usize {
        self.core.batch
    }

    pub fn context(&self) -> usize {
        self.core.context
    }

    /// Tokens in sequence `seq`'s context so far.
    pub fn position(&self, seq: usize) -> Result<usize> {
        self.core.check_seq(seq)?;
        Ok(self.core.position(seq))
    }

    /// Every token sequence `seq` has been fed.
    pub fn tokens(&self, seq: usize) -> Result<&[u32]> {
        let pos = self.position(seq)?;
        let ctx = self.core.context;
        Ok(&self.core.s.tokens[seq * ctx..seq * ctx + pos])
    }

    /// Empties sequence `seq` (its slot can take a new sequence).
    pub fn reset(&mut self, seq: usize) -> Result<()> {
        self.truncate(seq, 0)
    }

    /// Drops sequence `seq`'s context back to its first `len` tokens.
    pub fn truncate(&mut self, seq: usize, len: usize) -> Result<()> {
        let keep = self.position(seq)?.min(len);
        self.core.s.positions[seq] = keep as u32;
        Ok(())
    }

    /// Feeds a prompt to sequence `seq`, `batch` tokens per pass; returns
    /// its logits after the last token.
    pub fn feed(&mut self, seq: usize, tokens: &[u32]) -> Result<&mut [f32]> {
        self.core.check_seq(seq)?;
        self.core.run(&|_| seq, tokens)?;
        Ok(self.core.logits_of(seq))
    }

    /// Makes sequence `to` a copy of the first `len` tokens of sequence
    /// `from` (KV cache rows and token history; and its logits, when `len`
    /// covers all of `from`): the samples of one prompt share its prefill.
    pub fn fork(&mut self, from: usize, to: usize, len: usize) -> Result<()> {
        self.core.check_seq(from)?;
        self.core.check_seq(to)?;
        self.core.copy_prefix(from, to, len);
        Ok(())
    }

    /// One token for each listed sequence, all in one pass over the weights
    /// (several if there are more than `batch`); each sequence's logits are
    /// then in [`BatchSession::logits`]. A sequence listed twice takes both
    /// tokens, in order. Nothing runs unless every token fits its context.
    pub fn step(&mut self, seqs: &[usize], tokens: &[u32]) -> Result<()> {
        if seqs.len() != tokens.len() {
            return Err(Error::Usage { what: "step needs one token per listed sequence" });
        }
        self.core.run(&|i| seqs[i], tokens)
    }

    /// Sequence `seq`'s logits after its last token.
    pub fn logits(&self, seq: usize) -> Result<&[f32]> {
        self.core.check_seq(seq)?;
        let vocab = self.core.model.config.vocab_size as usize;
        Ok(&self.core.s.logits[seq * vocab..(seq + 1) * vocab])
    }

    /// Sequence `seq`'s logits, the sampler's index buffer and its token history, at once.
    pub fn sampling_parts(&mut self, seq: usize) -> Result<(&mut [f32], &mut [u32], &[u32])> {
        let pos = self.position(seq)?;
        let (vocab, ctx) = (self.core.model.config.vocab_size as usize, self.core.context);
        let s = &mut self.core.s;
        Ok((&mut s.logits[seq * vocab..(seq + 1) * vocab], &mut *s.sample_idx, &s.tokens[seq * ctx..seq * ctx + pos]))
    }
}
