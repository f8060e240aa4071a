//! A session: the KV cache and every activation buffer, carved once from one
//! caller-supplied byte buffer, and the forward pass of the decoder.
//!
//! The forward pass ([`Core`]) runs a batch of *items*, each a token of some
//! sequence at that sequence's next position: the prompt's tokens of one
//! sequence ([`Session::feed`]), or one token of each of several sequences
//! ([`crate::BatchSession::step`]). Every matrix is read once per batch.
//!
//! Buffers (shapes in elements; see `model::Layout`; `batch` is the number of
//! items a pass takes, `seqs` the number of sequences, 1 for a [`Session`]):
//! ```text
//! key_cache, value_cache  [seqs][layers][context][kv_heads·head_dim]  f32 or f16
//! x, xb                   [batch][hidden]          residual stream, normed copy / block output
//! q / k, v                [batch][heads·head_dim] / [batch][kv_heads·head_dim]
//! attn_out                [batch][heads·head_dim]  attention output before o_proj
//! att                     [batch][heads][context]  attention scores
//! hb, hb2                 [batch][intermediate]    gate and up projections
//! logits                  [seqs][vocab]            each sequence's last logits
//! head_out                [min(batch, seqs)][vocab] several sequences' logits (seqs > 1)
//! cos, sin                [batch][head_dim/2]      RoPE angles of each item's position
//! xq                      [batch] × Q8_0 blocks of the widest matvec input
//! panel_q8, panel_f32     the batched kernels' input panels (batch > 1 or seqs > 1)
//! sample_idx              [vocab]                  the sampler's index buffer
//! tokens                  [seqs][context]          every token fed so far
//! item_seq, item_pos      [batch]                  each item's sequence and position
//! want                    [batch]                  the items whose logits are taken
//! positions, cursor       [seqs]                   tokens in each sequence's context
//! ```

use crate::error::{Error, Result};
use crate::format::{Config, RopeScaling};
use crate::model::{KvType, Layout, MemoryPlan, Model, Region};
use aha_kernels::{rope, Batch, BatchScratch, BlockQ8_0, Kernels, Matrix, PanelQ8};
use half::f16;

pub(crate) enum KvCache<'w> {
    F32 { k: &'w mut [f32], v: &'w mut [f32] },
    F16 { k: &'w mut [u16], v: &'w mut [u16] },
}

impl KvCache<'_> {
    /// Copies `len` elements of keys and values from `from` to `to`.
    fn copy_within(&mut self, from: usize, to: usize, len: usize) {
        match self {
            KvCache::F32 { k, v } => {
                k.copy_within(from..from + len, to);
                v.copy_within(from..from + len, to);
            }
            KvCache::F16 { k, v } => {
                k.copy_within(from..from + len, to);
                v.copy_within(from..from + len, to);
            }
        }
    }
}

pub(crate) struct Scratch<'w> {
    x: &'w mut [f32],
    xb: &'w mut [f32],
    q: &'w mut [f32],
    k: &'w mut [f32],
    v: &'w mut [f32],
    attn_out: &'w mut [f32],
    att: &'w mut [f32],
    hb: &'w mut [f32],
    hb2: &'w mut [f32],
    pub(crate) logits: &'w mut [f32],
    head_out: &'w mut [f32],
    cos: &'w mut [f32],
    sin: &'w mut [f32],
    xq: &'w mut [BlockQ8_0],
    panel_q8: &'w mut [PanelQ8],
    panel_f32: &'w mut [f32],
    pub(crate) sample_idx: &'w mut [u32],
    pub(crate) tokens: &'w mut [u32],
    item_seq: &'w mut [u32],
    item_pos: &'w mut [u32],
    want: &'w mut [u32],
    pub(crate) positions: &'w mut [u32],
    cursor: &'w mut [u32],
}

/// Work on one (item, KV head) pair given its query heads' score rows and output rows.
type HeadFn<'f> = dyn Fn(usize, &mut [f32], &mut [f32]) + Sync + 'f;

/// How products run: the kernel table, and under `std` an optional thread pool.
#[derive(Clone, Copy)]
struct Exec<'p> {
    k: &'static Kernels,
    integer_path: bool,
    /// Every product through the batched kernels, even of one input (a
    /// batch session's, so a sequence's results do not depend on how many
    /// share its pass).
    batched: bool,
    #[cfg(feature = "std")]
    pool: Option<&'p aha_kernels::pool::ThreadPool>,
    #[cfg(not(feature = "std"))]
    _p: core::marker::PhantomData<&'p ()>,
}

impl Exec<'_> {
    /// Products of one batch of inputs (q/k/v, or gate/up) in one hand-off
    /// to the threads; job j's output holds `n × rows`, input-major. One
    /// input takes the matvec kernels (unless `batched`), several the
    /// batched ones.
    fn matmuls(&self, act: &Batch, jobs: &mut [(&Matrix, &mut [f32])]) {
        if act.n == 1 && !self.batched {
            let one = act.get(0);
            #[cfg(feature = "std")]
            if let Some(pool) = self.pool {
                return pool.matvecs(self.k, &one, jobs);
            }
            for (w, out) in jobs.iter_mut() {
                aha_kernels::matvec(self.k, w, &one, &mut out[..w.rows]);
            }
            return;
        }
        #[cfg(feature = "std")]
        if let Some(pool) = self.pool {
            return pool.matmuls(self.k, act, jobs);
        }
        for (w, out) in jobs.iter_mut() {
            let rows = w.rows;
            aha_kernels::matmul(self.k, w, act, &mut aha_kernels::MatOut::new(out, act.n, rows, rows));
        }
    }

    /// Runs `f(i, att_rows, out_rows)` for every (item, KV head) pair i, across threads under std.
    fn for_each_head(&self, pairs: usize, att: &mut [f32], att_len: usize, out: &mut [f32], out_len: usize, f: &HeadFn) {
        #[cfg(feature = "std")]
        if let Some(pool) = self.pool {
            return pool.for_each_pair(pairs, att, att_len, out, out_len, f);
        }
        for (h, (a, o)) in att.chunks_mut(att_len).zip(out.chunks_mut(out_len)).take(pairs).enumerate() {
            f(h, a, o);
        }
    }

    /// The product input for weights `ws`: `n` rows of `x`, with their Q8_0
    /// forms (quantized once, shared by every matrix) when any is quantized,
    /// and the batched kernels' panels when they will run.
    #[allow(clippy::too_many_arguments)]
    fn batch<'x>(
        &self,
        x: &'x [f32],
        n: usize,
        xq: &'x mut [BlockQ8_0],
        panel_q8: &'x mut [PanelQ8],
        panel_f32: &'x mut [f32],
        ws: &[&Matrix],
    ) -> Batch<'x> {
        let cols = x.len() / n;
        let quantized = ws.iter().any(|w| w.dtype.is_quantized());
        let int = self.integer_path && quantized && cols.is_multiple_of(aha_kernels::QK);
        let float = ws.iter().any(|w| !w.dtype.is_quantized()) || (quantized && !int);
        if n == 1 && !self.batched {
            // The matvec path: the Q8_0 row only.
            let q8 = if int {
                let blocks = &mut xq[..cols / aha_kernels::QK];
                (self.k.quantize_q8_0)(x, blocks);
                Some(&*blocks)
            } else {
                None
            };
            return Batch { n, cols, x, q8, panel_q8: &[], panel_f32: &[] };
        }
        Batch::prepare(self.k, x, n, int, float, BatchScratch { q8: xq, panel_q8, panel_f32 })
    }
}

/// The KV caches, buffers and forward pass shared by [`Session`] and
/// [`crate::BatchSession`].
pub(crate) struct Core<'m, 'w> {
    pub(crate) model: &'m Model<'m>,
    pub(crate) kernels: &'static Kernels,
    pub(crate) context: usize,
    /// Items one pass takes.
    pub(crate) batch: usize,
    pub(crate) sequences: usize,
    batched: bool,
    kv: KvCache<'w>,
    pub(crate) s: Scratch<'w>,
    /// Quantize matvec inputs to Q8_0 for quantized weights (the integer
    /// path, as llama.cpp); off = dequantize weights against f32 inputs.
    pub(crate) integer_path: bool,
    #[cfg(feature = "std")]
    pub(crate) pool: Option<std::sync::Arc<aha_kernels::pool::ThreadPool>>,
}

fn carve<'w>(buf: &mut &'w mut [u8], at: &mut usize, region: (usize, usize)) -> &'w mut [u8] {
    let (offset, size) = region;
    let rest = core::mem::take(buf);
    let (_, rest) = rest.split_at_mut(offset - *at);
    let (mine, rest) = rest.split_at_mut(size);
    *at = offset + size;
    *buf = rest;
    mine
}

fn cast<T: bytemuck::Pod>(b: &mut [u8]) -> Result<&mut [T]> {
    bytemuck::try_cast_slice_mut(b).map_err(|_| Error::Corrupt { what: "workspace alignment" })
}

impl<'m, 'w> Core<'m, 'w> {
    /// A pool of `threads` workers for the products and attention (none for 1).
    #[cfg(feature = "std")]
    pub(crate) fn set_threads(&mut self, threads: usize) {
        self.pool = (threads > 1).then(|| std::sync::Arc::new(aha_kernels::pool::ThreadPool::new(threads)));
    }

    /// The buffers of `plan` carved from `buf`; `batched`: every product
    /// through the batched kernels.
    pub(crate) fn new(
        model: &'m Model<'m>,
        buf: &'w mut [u8],
        plan: &MemoryPlan,
        kernels: &'static Kernels,
        batched: bool,
    ) -> Result<Core<'m, 'w>> {
        let (context, kv, batch, sequences) = (plan.context, plan.kv_type, plan.batch.max(1), plan.sequences.max(1));
        if context == 0 {
            return Err(Error::BadConfig { what: "context must be at least 1" });
        }
        if context > u32::MAX as usize {
            return Err(Error::BadConfig { what: "context must fit in 32 bits" });
        }
        let layout = Layout::new(&model.config, context, kv, batch, sequences, plan.batched());
        let needed = layout.total + crate::format::ALIGN;
        if buf.len() < needed {
            return Err(Error::BufferTooSmall { needed, available: buf.len() });
        }
        let skip = buf.as_ptr().align_offset(crate::format::ALIGN).min(crate::format::ALIGN);
        let mut rest: &'w mut [u8] = &mut buf[skip..];
        let mut at = 0usize;
        let mut take = |r: Region| carve(&mut rest, &mut at, layout.regions[r as usize]);
        let (kb, vb) = (take(Region::KeyCache), take(Region::ValueCache));
        let kv_cache = match kv {
            KvType::F32 => KvCache::F32 { k: cast(kb)?, v: cast(vb)? },
            KvType::F16 => KvCache::F16 { k: cast(kb)?, v: cast(vb)? },
        };
        let s = Scratch {
            x: cast(take(Region::X))?,
            xb: cast(take(Region::Xb))?,
            q: cast(take(Region::Q))?,
            k: cast(take(Region::K))?,
            v: cast(take(Region::V))?,
            attn_out: cast(take(Region::AttnOut))?,
            att: cast(take(Region::Att))?,
            hb: cast(take(Region::Hb))?,
            hb2: cast(take(Region::Hb2))?,
            logits: cast(take(Region::Logits))?,
            head_out: cast(take(Region::HeadOut))?,
            cos: cast(take(Region::Cos))?,
            sin: cast(take(Region::Sin))?,
            xq: cast(take(Region::Xq))?,
            panel_q8: cast(take(Region::PanelQ8))?,
            panel_f32: cast(take(Region::PanelF32))?,
            sample_idx: cast(take(Region::SampleIdx))?,
            tokens: cast(take(Region::Tokens))?,
            item_seq: cast(take(Region::ItemSeq))?,
            item_pos: cast(take(Region::ItemPos))?,
            want: cast(take(Region::Want))?,
            positions: cast(take(Region::Positions))?,
            cursor: cast(take(Region::Cursor))?,
        };
        s.positions.fill(0);
        Ok(Core {
            model,
            kernels,
            context,
            batch,
            sequences,
            batched,
            kv: kv_cache,
            s,
            integer_path: true,
            #[cfg(feature = "std")]
            pool: None,
        })
    }

    pub(crate) fn position(&self, seq: usize) -> usize {
        self.s.positions[seq] as usize
    }

    pub(crate) fn check_seq(&self, seq: usize) -> Result<()> {
        if seq >= self.sequences {
            return Err(Error::NoSequence { index: seq, sequences: self.sequences });
        }
        Ok(())
    }

    /// Sequence `seq`'s logits after its last token.
    pub(crate) fn logits_of(&mut self, seq: usize) -> &mut [f32] {
        let vocab = self.model.config.vocab_size as usize;
        &mut self.s.logits[seq * vocab..(seq + 1) * vocab]
    }

    /// Sets `to`'s context to the first `len` tokens of `from`'s: KV rows,
    /// token history and, when `len` is all of `from`'s context, its logits.
    pub(crate) fn copy_prefix(&mut self, from: usize, to: usize, len: usize) {
        let c = self.model.config;
        let (layers, kv_dim) = (c.num_layers as usize, c.kv_dim());
        let len = len.min(self.position(from));
        if from != to {
            let per_layer = self.context * kv_dim;
            for l in 0..layers {
                let base = |s: usize| (s * layers + l) * per_layer;
                self.kv.copy_within(base(from), base(to), len * kv_dim);
            }
            let ctx = self.context;
            self.s.tokens.copy_within(from * ctx..from * ctx + len, to * ctx);
            if len == self.position(from) {
                let vocab = c.vocab_size as usize;
                self.s.logits.copy_within(from * vocab..(from + 1) * vocab, to * vocab);
            }
        }
        self.s.positions[to] = len as u32;
    }

    /// Feeds `tokens`, token i to sequence `seq_of(i)` at that sequence's
    /// next position (a sequence's tokens in the order given), `batch` at a
    /// time; every sequence's logits after its last token are then in
    /// `logits_of`. Nothing is run unless every token fits.
    pub(crate) fn run(&mut self, seq_of: &dyn Fn(usize) -> usize, tokens: &[u32]) -> Result<()> {
        let vocab = self.model.config.vocab_size;
        // Check everything first, so a refused call changes nothing.
        self.s.cursor.copy_from_slice(self.s.positions);
        for (i, &t) in tokens.iter().enumerate() {
            let seq = seq_of(i);
            self.check_seq(seq)?;
            if t >= vocab {
                return Err(Error::TokenOutOfRange { token: t, vocab });
            }
            if self.s.cursor[seq] as usize >= self.context {
                return Err(Error::ContextFull { context: self.context });
            }
            self.s.cursor[seq] += 1;
        }
        let mut start = 0;
        while start < tokens.len() {
            let n = self.batch.min(tokens.len() - start);
            let mut wanted = 0;
            for b in 0..n {
                let seq = seq_of(start + b);
                self.s.item_seq[b] = seq as u32;
                self.s.item_pos[b] = self.s.positions[seq];
                self.s.positions[seq] += 1;
                // Logits after a sequence's last token of the call.
                if !(start + b + 1..tokens.len()).any(|j| seq_of(j) == seq) {
                    self.s.want[wanted] = b as u32;
                    wanted += 1;
                }
            }
            self.forward(&tokens[start..start + n], wanted);
            start += n;
        }
        Ok(())
    }

    /// The decoder on `tokens` (at most `batch`), item b being sequence
    /// `item_seq[b]` at position `item_pos[b]` (Vaswani et al. 2017 with the
    /// Llama/Qwen2 changes: pre-RMSNorm, RoPE, GQA, SwiGLU). Buffers hold
    /// one row per item; every matrix is read once for the whole batch.
    /// Logits are computed for the first `wanted` items listed in `want`.
    fn forward(&mut self, tokens: &[u32], wanted: usize) {
        let c = self.model.config;
        let n = tokens.len();
        if n == 0 {
            return;
        }
        debug_assert!(n <= self.batch);
        let model = self.model;
        let exec = Exec {
            k: self.kernels,
            integer_path: self.integer_path,
            batched: self.batched,
            #[cfg(feature = "std")]
            pool: self.pool.as_deref(),
            #[cfg(not(feature = "std"))]
            _p: core::marker::PhantomData,
        };
        let k = self.kernels;
        let s = &mut self.s;
        let (hd, n_heads, n_kv) = (c.head_dim as usize, c.num_heads as usize, c.num_kv_heads as usize);
        let (h, q_dim, kv_dim, inter) = (c.hidden_size as usize, c.q_dim(), c.kv_dim(), c.intermediate_size as usize);
        let (layers, context, vocab) = (c.num_layers as usize, self.context, c.vocab_size as usize);
        let group = n_heads / n_kv;
        let scale = 1.0 / libm::sqrtf(hd as f32);
        let eps = c.rms_norm_eps;
        // The batch's rows of each buffer.
        let (x, xb) = (&mut s.x[..n * h], &mut s.xb[..n * h]);
        let (q, kk, v) = (&mut s.q[..n * q_dim], &mut s.k[..n * kv_dim], &mut s.v[..n * kv_dim]);
        let attn_out = &mut s.attn_out[..n * q_dim];
        let (hb, hb2) = (&mut s.hb[..n * inter], &mut s.hb2[..n * inter]);
        let (item_seq, item_pos) = (&s.item_seq[..n], &s.item_pos[..n]);
        // Where sequence `seq`'s layer `l` begins in the caches.
        let cache_base = |seq: usize, l: usize| (seq * layers + l) * context * kv_dim;

        // Each item's RoPE angles, once for every layer.
        let half = hd / 2;
        let (cos, sin) = (&mut s.cos[..n * half], &mut s.sin[..n * half]);
        for (b, &token) in tokens.iter().enumerate() {
            s.tokens[item_seq[b] as usize * context + item_pos[b] as usize] = token;
            model.embed().dequantize_row(token as usize, &mut x[b * h..(b + 1) * h]);
            rope_angles(&c, item_pos[b] as usize, &mut cos[b * half..(b + 1) * half], &mut sin[b * half..(b + 1) * half]);
        }

        for l in 0..layers {
            let w = model.layer(l);

            // Attention block: x += o_proj(attention(rmsnorm(x))).
            rmsnorm_rows(k, xb, x, h, w.attn_norm, eps);
            let act = exec.batch(xb, n, s.xq, s.panel_q8, s.panel_f32, &[&w.wq, &w.wk, &w.wv]);
            exec.matmuls(&act, &mut [(&w.wq, &mut *q), (&w.wk, &mut *kk), (&w.wv, &mut *v)]);
            for b in 0..n {
                let (qb, kb, vb) =
                    (&mut q[b * q_dim..(b + 1) * q_dim], &mut kk[b * kv_dim..(b + 1) * kv_dim], &mut v[b * kv_dim..(b + 1) * kv_dim]);
                for (y, bias) in [(&mut *qb, w.bq), (&mut *kb, w.bk), (&mut *vb, w.bv)] {
                    if let Some(bias) = bias {
                        (k.add_bias)(y, bias);
                    }
                }
                let (cb, sb) = (&cos[b * half..(b + 1) * half], &sin[b * half..(b + 1) * half]);
                (k.rope)(qb, hd, cb, sb);
                (k.rope)(kb, hd, cb, sb);
                let row = cache_base(item_seq[b] as usize, l) + item_pos[b] as usize * kv_dim;
                match &mut self.kv {
                    KvCache::F32 { k: kc, v: vc } => {
                        kc[row..row + kv_dim].copy_from_slice(kb);
                        vc[row..row + kv_dim].copy_from_slice(vb);
                    }
                    KvCache::F16 { k: kc, v: vc } => {
                        for (d, &x) in kc[row..row + kv_dim].iter_mut().zip(kb.iter()) {
                            *d = f16::from_f32(x).to_bits();
                        }
                        for (d, &x) in vc[row..row + kv_dim].iter_mut().zip(vb.iter()) {
                            *d = f16::from_f32(x).to_bits();
                        }
                    }
                }
            }
            // Causal attention: item b sees its sequence's cache rows
            // 0..=pos (its own included, and the batch's earlier tokens of
            // the same sequence, written above). Work is split by (item, KV
            // head) pairs, in one hand-off: the `group` query heads sharing
            // a KV head read each key and value row while it is in L1.
            let kv = &self.kv;
            let qs = &*q;
            let pair = |i: usize, att: &mut [f32], out: &mut [f32]| {
                let (b, kvh) = (i / n_kv, i % n_kv);
                let queries = &qs[b * q_dim + kvh * group * hd..b * q_dim + (kvh + 1) * group * hd];
                let first = cache_base(item_seq[b] as usize, l) + kvh * hd;
                let span = item_pos[b] as usize + 1;
                attend(k, kv, queries, hd, first, kv_dim, scale, span, context, att, out);
            };
            exec.for_each_head(n * n_kv, s.att, group * context, attn_out, group * hd, &pair);
            let act = exec.batch(attn_out, n, s.xq, s.panel_q8, s.panel_f32, &[&w.wo]);
            exec.matmuls(&act, &mut [(&w.wo, &mut *xb)]);
            add(x, xb);

            // MLP block: x += down(silu(gate(y)) · up(y)), y = rmsnorm(x).
            rmsnorm_rows(k, xb, x, h, w.mlp_norm, eps);
            let act = exec.batch(xb, n, s.xq, s.panel_q8, s.panel_f32, &[&w.w_gate, &w.w_up]);
            exec.matmuls(&act, &mut [(&w.w_gate, &mut *hb), (&w.w_up, &mut *hb2)]);
            (k.swiglu)(hb, hb2);
            let act = exec.batch(hb, n, s.xq, s.panel_q8, s.panel_f32, &[&w.w_down]);
            exec.matmuls(&act, &mut [(&w.w_down, &mut *xb)]);
            add(x, xb);
        }

        // The output projection, only for the items whose logits are taken.
        if wanted == 0 {
            return;
        }
        for (j, &b) in s.want[..wanted].iter().enumerate() {
            let b = b as usize;
            (k.rmsnorm)(&mut xb[j * h..(j + 1) * h], &x[b * h..(b + 1) * h], model.final_norm(), eps);
        }
        let head = model.lm_head();
        let act = exec.batch(&xb[..wanted * h], wanted, s.xq, s.panel_q8, s.panel_f32, &[&head]);
        if wanted == 1 {
            let seq = item_seq[s.want[0] as usize] as usize;
            exec.matmuls(&act, &mut [(&head, &mut s.logits[seq * vocab..(seq + 1) * vocab])]);
        } else {
            exec.matmuls(&act, &mut [(&head, &mut s.head_out[..wanted * vocab])]);
            for (j, &b) in s.want[..wanted].iter().enumerate() {
                let seq = item_seq[b as usize] as usize;
                s.logits[seq * vocab..(seq + 1) * vocab].copy_from_slice(&s.head_out[j * vocab..(j + 1) * vocab]);
            }
        }
    }
}

/// One sequence: its KV cache, its buffers and the forward pass.
pub struct Session<'m, 'w> {
    core: Core<'m, 'w>,
}

impl<'m, 'w> Session<'m, 'w> {
    /// A session over `buf` (at least `model.memory_plan(context, kv).total()`
    /// bytes, any alignment), with the fastest kernels this CPU has.
    pub fn new(model: &'m Model<'m>, buf: &'w mut [u8], context: usize, kv: KvType) -> Result<Session<'m, 'w>> {
        Session::with_plan(model, buf, &model.memory_plan(context, kv), aha_kernels::best())
    }

    /// A session laid out by `plan` (e.g. [`Model::memory_plan_batched`]),
    /// with the given kernels.
    pub fn with_plan(model: &'m Model<'m>, buf: &'w mut [u8], plan: &MemoryPlan, kernels: &'static Kernels) -> Result<Session<'m, 'w>> {
        Ok(Session { core: Core::new(model, buf, plan, kernels, false)? })
    }

    /// Splits matvec rows across `threads` threads (std only; 1 = no pool).
    #[cfg(feature = "std")]
    pub fn set_threads(&mut self, threads: usize) {
        self.core.set_threads(threads);
    }

    /// Shares an existing pool (several sessions, one set of threads).
    #[cfg(feature = "std")]
    pub fn set_pool(&mut self, pool: Option<std::sync::Arc<aha_kernels::pool::ThreadPool>>) {
        self.core.pool = pool;
    }

    /// Chooses the integer path (default) or the float path for quantized weights.
    pub fn set_integer_path(&mut self, on: bool) {
        self.core.integer_path = on;
    }

    pub fn model(&self) -> &'m Model<'m> {
        self.core.model
    }

    pub fn kernels(&self) -> &'static Kernels {
        self.core.kernels
    }

    /// Tokens in the context so far.
    pub fn position(&self) -> usize {
        self.core.position(0)
    }

    pub fn context(&self) -> usize {
        self.core.context
    }

    /// Every token fed so far.
    pub fn tokens(&self) -> &[u32] {
        &self.core.s.tokens[..self.position()]
    }

    /// Forgets the context (the KV cache is overwritten as tokens are fed again).
    pub fn reset(&mut self) {
        self.core.s.positions[0] = 0;
    }

    /// Drops the context back to its first `len` tokens (e.g. to reuse a shared prompt).
    pub fn truncate(&mut self, len: usize) {
        let keep = self.position().min(len);
        self.core.s.positions[0] = keep as u32;
    }

    /// Feeds a prompt, `batch` tokens at a time; returns the logits after its last token.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<&mut [f32]> {
        self.core.run(&|_| 0, tokens)?;
        Ok(self.core.logits_of(0))
    }

    /// Feeds one token; returns the logits for the next.
    pub fn step(&mut self, token: u32) -> Result<&mut [f32]> {
        self.feed(&[token])
    }

    /// The last logits (as `step` returned them).
    pub fn logits(&self) -> &[f32] {
        self.core.s.logits
    }

    /// The last logits, the sampler's index buffer and the token history, at once.
    pub fn sampling_parts(&mut self) -> (&mut [f32], &mut [u32], &[u32]) {
        let pos = self.position();
        let s = &mut self.core.s;
        (&mut *s.logits, &mut *s.sample_idx, &s.tokens[..pos])
    }
}

/// RMSNorm of each `h`-wide row of `x` into `out`.
fn rmsnorm_rows(k: &Kernels, out: &mut [f32], x: &[f32], h: usize, w: &[u8], eps: f32) {
    for (o, r) in out.chunks_exact_mut(h).zip(x.chunks_exact(h)) {
        (k.rmsnorm)(o, r, w, eps);
    }
}

/// The query heads of one KV head (`queries`: group × head_dim) against
/// cache rows t < span, whose key/value for this head start at
/// `first + t·kv_dim`: scores (row g of `att` has stride `context`) =
/// q_g·k_t·scale, softmax per head, out_g = Σ_t score_g,t·v_t.
#[allow(clippy::too_many_arguments)]
fn attend(
    k: &Kernels,
    kv: &KvCache,
    queries: &[f32],
    hd: usize,
    first: usize,
    kv_dim: usize,
    scale: f32,
    span: usize,
    context: usize,
    att: &mut [f32],
    out: &mut [f32],
) {
    out.fill(0.0);
    for (g, q) in queries.chunks_exact(hd).enumerate() {
        let scores = &mut att[g * context..g * context + span];
        match kv {
            KvCache::F32 { k: kc, .. } => (k.scores_f32)(q, &kc[first..], kv_dim, scale, scores),
            KvCache::F16 { k: kc, .. } => (k.scores_f16)(q, bytemuck::cast_slice(&kc[first..]), kv_dim, scale, scores),
        }
        (k.softmax)(scores);
    }
    for (g, o) in out.chunks_exact_mut(hd).enumerate() {
        let weights = &att[g * context..g * context + span];
        match kv {
            KvCache::F32 { v: vc, .. } => (k.mix_f32)(weights, &vc[first..], kv_dim, o),
            KvCache::F16 { v: vc, .. } => (k.mix_f16)(weights, bytemuck::cast_slice(&vc[first..]), kv_dim, o),
        }
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// RoPE's cos/sin table for `pos`, with the model's frequency scaling.
fn rope_angles(c: &Config, pos: usize, cos: &mut [f32], sin: &mut [f32]) {
    let hd = c.head_dim as usize;
    rope::cos_sin_with(
        pos,
        hd,
        |i| {
            let f = rope::inv_freq(i, hd, c.rope_theta);
            match c.rope_scaling {
                RopeScaling::None => f,
                RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position } => {
                    rope::llama3_scale(f, factor, low_freq_factor, high_freq_factor, original_max_position as f32)
                }
            }
        },
        cos,
        sin,
    )
}
