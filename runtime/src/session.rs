//! A session: the KV cache and every activation buffer, carved once from one
//! caller-supplied byte buffer, and the forward pass of the decoder.
//!
//! Buffers (shapes in elements; see `model::Layout`; `batch` is the number of
//! prompt tokens fed together, 1 unless the plan says otherwise):
//! ```text
//! key_cache, value_cache  [layers][context][kv_heads·head_dim]  f32 or f16
//! x, xb                   [batch][hidden]          residual stream, normed copy / block output
//! q / k, v                [batch][heads·head_dim] / [batch][kv_heads·head_dim]
//! attn_out                [batch][heads·head_dim]  attention output before o_proj
//! att                     [heads][context]         attention scores (one token at a time)
//! hb, hb2                 [batch][intermediate]    gate and up projections
//! logits, sample_idx      [vocab]                  last token's logits, sampler's index buffer
//! cos, sin                [head_dim/2]             RoPE angles of the current position
//! xq                      [batch] × Q8_0 blocks of the widest matvec input
//! tokens                  [context]                every token fed so far
//! ```

use crate::error::{Error, Result};
use crate::format::{Config, RopeScaling};
use crate::model::{KvType, Layout, Model, Region};
use aha_kernels::{rope, Batch, BlockQ8_0, Kernels, Matrix};
use half::f16;

enum KvCache<'w> {
    F32 { k: &'w mut [f32], v: &'w mut [f32] },
    F16 { k: &'w mut [u16], v: &'w mut [u16] },
}

struct Scratch<'w> {
    x: &'w mut [f32],
    xb: &'w mut [f32],
    q: &'w mut [f32],
    k: &'w mut [f32],
    v: &'w mut [f32],
    attn_out: &'w mut [f32],
    att: &'w mut [f32],
    hb: &'w mut [f32],
    hb2: &'w mut [f32],
    logits: &'w mut [f32],
    cos: &'w mut [f32],
    sin: &'w mut [f32],
    xq: &'w mut [BlockQ8_0],
    sample_idx: &'w mut [u32],
    tokens: &'w mut [u32],
}

/// Work on one KV head given its query heads' score rows and output rows.
type HeadFn<'f> = dyn Fn(usize, &mut [f32], &mut [f32]) + Sync + 'f;

/// How matvecs run: the kernel table, and under `std` an optional thread pool.
#[derive(Clone, Copy)]
struct Exec<'p> {
    k: &'static Kernels,
    integer_path: bool,
    #[cfg(feature = "std")]
    pool: Option<&'p aha_kernels::pool::ThreadPool>,
    #[cfg(not(feature = "std"))]
    _p: core::marker::PhantomData<&'p ()>,
}

impl Exec<'_> {
    /// Matvecs of one batch of inputs (q/k/v, or gate/up) in one hand-off
    /// to the threads; job j's output holds `n × rows`, input-major. One
    /// input takes the matvec kernels, several the row-outer matmul.
    fn matmuls(&self, act: &Batch, jobs: &mut [(&Matrix, &mut [f32])]) {
        if act.n == 1 {
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
            aha_kernels::matmul(self.k, w, act, |b, r, y| out[b * rows + r] = y);
        }
    }

    /// Runs `f(i, att_rows, out_rows)` for every KV head i, across threads under std.
    fn for_each_head(
        &self,
        heads: usize,
        att: &mut [f32],
        att_len: usize,
        out: &mut [f32],
        out_len: usize,
        f: &HeadFn,
    ) {
        #[cfg(feature = "std")]
        if let Some(pool) = self.pool {
            return pool.for_each_pair(heads, att, att_len, out, out_len, f);
        }
        for (h, (a, o)) in att.chunks_mut(att_len).zip(out.chunks_mut(out_len)).take(heads).enumerate() {
            f(h, a, o);
        }
    }

    /// The matmul input for weights `ws`: `n` rows of `x`, with their Q8_0
    /// forms (quantized once, shared by every matrix) when any is quantized.
    fn batch<'x>(&self, x: &'x [f32], n: usize, xq: &'x mut [BlockQ8_0], ws: &[&Matrix]) -> Batch<'x> {
        let cols = x.len() / n;
        if self.integer_path && ws.iter().any(|w| w.dtype.is_quantized()) && cols.is_multiple_of(aha_kernels::QK) {
            let blocks = &mut xq[..x.len() / aha_kernels::QK];
            for (row, q) in x.chunks_exact(cols).zip(blocks.chunks_exact_mut(cols / aha_kernels::QK)) {
                (self.k.quantize_q8_0)(row, q);
            }
            Batch { x, q8: Some(blocks), n }
        } else {
            Batch { x, q8: None, n }
        }
    }
}

pub struct Session<'m, 'w> {
    model: &'m Model<'m>,
    kernels: &'static Kernels,
    context: usize,
    /// Prompt tokens processed together by `feed`.
    batch: usize,
    pos: usize,
    kv: KvCache<'w>,
    s: Scratch<'w>,
    /// Quantize matvec inputs to Q8_0 for quantized weights (the integer
    /// path, as llama.cpp); off = dequantize weights against f32 inputs.
    integer_path: bool,
    #[cfg(feature = "std")]
    pool: Option<std::sync::Arc<aha_kernels::pool::ThreadPool>>,
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

impl<'m, 'w> Session<'m, 'w> {
    /// A session over `buf` (at least `model.memory_plan(context, kv).total()`
    /// bytes, any alignment), with the fastest kernels this CPU has.
    pub fn new(model: &'m Model<'m>, buf: &'w mut [u8], context: usize, kv: KvType) -> Result<Session<'m, 'w>> {
        Session::with_plan(model, buf, &model.memory_plan(context, kv), aha_kernels::best())
    }

    /// A session laid out by `plan` (e.g. [`Model::memory_plan_batched`]),
    /// with the given kernels.
    pub fn with_plan(
        model: &'m Model<'m>,
        buf: &'w mut [u8],
        plan: &crate::model::MemoryPlan,
        kernels: &'static Kernels,
    ) -> Result<Session<'m, 'w>> {
        let (context, kv, batch) = (plan.context, plan.kv_type, plan.batch.max(1));
        if context == 0 {
            return Err(Error::BadConfig { what: "context must be at least 1" });
        }
        let layout = Layout::new(&model.config, context, kv, batch);
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
            KvType::F32 => KvCache::F32 { k: f32s(kb)?, v: f32s(vb)? },
            KvType::F16 => KvCache::F16 { k: u16s(kb)?, v: u16s(vb)? },
        };
        let s = Scratch {
            x: f32s(take(Region::X))?,
            xb: f32s(take(Region::Xb))?,
            q: f32s(take(Region::Q))?,
            k: f32s(take(Region::K))?,
            v: f32s(take(Region::V))?,
            attn_out: f32s(take(Region::AttnOut))?,
            att: f32s(take(Region::Att))?,
            hb: f32s(take(Region::Hb))?,
            hb2: f32s(take(Region::Hb2))?,
            logits: f32s(take(Region::Logits))?,
            cos: f32s(take(Region::Cos))?,
            sin: f32s(take(Region::Sin))?,
            xq: bytemuck::try_cast_slice_mut(take(Region::Xq)).map_err(|_| Error::Corrupt { what: "workspace alignment" })?,
            sample_idx: bytemuck::try_cast_slice_mut(take(Region::SampleIdx))
                .map_err(|_| Error::Corrupt { what: "workspace alignment" })?,
            tokens: bytemuck::try_cast_slice_mut(take(Region::Tokens))
                .map_err(|_| Error::Corrupt { what: "workspace alignment" })?,
        };
        Ok(Session {
            model,
            kernels,
            context,
            batch,
            pos: 0,
            kv: kv_cache,
            s,
            integer_path: true,
            #[cfg(feature = "std")]
            pool: None,
        })
    }

    /// Splits matvec rows across `threads` threads (std only; 1 = no pool).
    #[cfg(feature = "std")]
    pub fn set_threads(&mut self, threads: usize) {
        self.pool = (threads > 1).then(|| std::sync::Arc::new(aha_kernels::pool::ThreadPool::new(threads)));
    }

    /// Shares an existing pool (several sessions, one set of threads).
    #[cfg(feature = "std")]
    pub fn set_pool(&mut self, pool: Option<std::sync::Arc<aha_kernels::pool::ThreadPool>>) {
        self.pool = pool;
    }

    /// Chooses the integer path (default) or the float path for quantized weights.
    pub fn set_integer_path(&mut self, on: bool) {
        self.integer_path = on;
    }

    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    pub fn kernels(&self) -> &'static Kernels {
        self.kernels
    }

    /// Tokens in the context so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn context(&self) -> usize {
        self.context
    }

    /// Every token fed so far.
    pub fn tokens(&self) -> &[u32] {
        &self.s.tokens[..self.pos]
    }

    /// Forgets the context (the KV cache is overwritten as tokens are fed again).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Drops the context back to its first `len` tokens (e.g. to reuse a shared prompt).
    pub fn truncate(&mut self, len: usize) {
        self.pos = self.pos.min(len);
    }

    /// Feeds a prompt, `batch` tokens at a time; returns the logits after its last token.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<&mut [f32]> {
        if self.pos + tokens.len() > self.context {
            return Err(Error::ContextFull { context: self.context });
        }
        let chunks = tokens.chunks(self.batch);
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.enumerate() {
            self.forward(chunk, i == last)?;
        }
        Ok(&mut self.s.logits[..])
    }

    /// Feeds one token; returns the logits for the next.
    pub fn step(&mut self, token: u32) -> Result<&mut [f32]> {
        self.forward(&[token], true)?;
        Ok(&mut self.s.logits[..])
    }

    /// The last logits (as `step` returned them).
    pub fn logits(&self) -> &[f32] {
        self.s.logits
    }

    /// The last logits, the sampler's index buffer and the token history, at once.
    pub fn sampling_parts(&mut self) -> (&mut [f32], &mut [u32], &[u32]) {
        (self.s.logits, self.s.sample_idx, &self.s.tokens[..self.pos])
    }

    /// The decoder on `tokens` (at most `batch`) at the current position
    /// (Vaswani et al. 2017 with the Llama/Qwen2 changes: pre-RMSNorm, RoPE,
    /// GQA, SwiGLU). Buffers hold one row per token of the batch; every
    /// matrix is read once for the whole batch. Logits are of the last token.
    fn forward(&mut self, tokens: &[u32], want_logits: bool) -> Result<()> {
        let c = self.model.config;
        let n = tokens.len();
        if n == 0 {
            return Ok(());
        }
        debug_assert!(n <= self.batch);
        if let Some(&token) = tokens.iter().find(|&&t| t >= c.vocab_size) {
            return Err(Error::TokenOutOfRange { token, vocab: c.vocab_size });
        }
        if self.pos + n > self.context {
            return Err(Error::ContextFull { context: self.context });
        }
        let model = self.model;
        let pos = self.pos;
        let exec = Exec {
            k: self.kernels,
            integer_path: self.integer_path,
            #[cfg(feature = "std")]
            pool: self.pool.as_deref(),
            #[cfg(not(feature = "std"))]
            _p: core::marker::PhantomData,
        };
        let k = self.kernels;
        let s = &mut self.s;
        let (hd, n_heads, n_kv) = (c.head_dim as usize, c.num_heads as usize, c.num_kv_heads as usize);
        let (h, q_dim, kv_dim, inter) = (c.hidden_size as usize, c.q_dim(), c.kv_dim(), c.intermediate_size as usize);
        let group = n_heads / n_kv;
        let scale = 1.0 / libm::sqrtf(hd as f32);
        let eps = c.rms_norm_eps;
        // The batch's rows of each buffer.
        let (x, xb) = (&mut s.x[..n * h], &mut s.xb[..n * h]);
        let (q, kk, v) = (&mut s.q[..n * q_dim], &mut s.k[..n * kv_dim], &mut s.v[..n * kv_dim]);
        let attn_out = &mut s.attn_out[..n * q_dim];
        let (hb, hb2) = (&mut s.hb[..n * inter], &mut s.hb2[..n * inter]);

        for (b, &token) in tokens.iter().enumerate() {
            s.tokens[pos + b] = token;
            model.embed().dequantize_row(token as usize, &mut x[b * h..(b + 1) * h]);
        }

        for l in 0..c.num_layers as usize {
            let w = model.layer(l);

            // Attention block: x += o_proj(attention(rmsnorm(x))).
            rmsnorm_rows(k, xb, x, h, w.attn_norm, eps);
            let act = exec.batch(xb, n, s.xq, &[&w.wq, &w.wk, &w.wv]);
            exec.matmuls(&act, &mut [(&w.wq, &mut *q), (&w.wk, &mut *kk), (&w.wv, &mut *v)]);
            let layer_base = l * self.context * kv_dim;
            for b in 0..n {
                let (qb, kb, vb) =
                    (&mut q[b * q_dim..(b + 1) * q_dim], &mut kk[b * kv_dim..(b + 1) * kv_dim], &mut v[b * kv_dim..(b + 1) * kv_dim]);
                for (y, bias) in [(&mut *qb, w.bq), (&mut *kb, w.bk), (&mut *vb, w.bv)] {
                    if let Some(bias) = bias {
                        (k.add_bias)(y, bias);
                    }
                }
                rope_angles(&c, pos + b, s.cos, s.sin);
                (k.rope)(qb, hd, s.cos, s.sin);
                (k.rope)(kb, hd, s.cos, s.sin);
                let row = layer_base + (pos + b) * kv_dim;
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
            // Causal attention over cache rows 0..=pos+b, token by token (each
            // sees itself and earlier ones). Work is split by KV head: the
            // `group` query heads sharing one read each key and value row
            // while it is in L1, instead of once per query head.
            for b in 0..n {
                let span = pos + b + 1;
                let kv = &self.kv;
                let qb = &q[b * q_dim..(b + 1) * q_dim];
                let context = self.context;
                let kv_head = |kvh: usize, att: &mut [f32], out: &mut [f32]| {
                    let queries = &qb[kvh * group * hd..(kvh + 1) * group * hd];
                    let first = layer_base + kvh * hd;
                    attend(k, kv, queries, hd, first, kv_dim, scale, span, context, att, out);
                };
                let out = &mut attn_out[b * q_dim..(b + 1) * q_dim];
                exec.for_each_head(n_kv, s.att, group * self.context, out, group * hd, &kv_head);
            }
            let act = exec.batch(attn_out, n, s.xq, &[&w.wo]);
            exec.matmuls(&act, &mut [(&w.wo, &mut *xb)]);
            add(x, xb);

            // MLP block: x += down(silu(gate(y)) · up(y)), y = rmsnorm(x).
            rmsnorm_rows(k, xb, x, h, w.mlp_norm, eps);
            let act = exec.batch(xb, n, s.xq, &[&w.w_gate, &w.w_up]);
            exec.matmuls(&act, &mut [(&w.w_gate, &mut *hb), (&w.w_up, &mut *hb2)]);
            (k.swiglu)(hb, hb2);
            let act = exec.batch(hb, n, s.xq, &[&w.w_down]);
            exec.matmuls(&act, &mut [(&w.w_down, &mut *xb)]);
            add(x, xb);
        }
        self.pos += n;

        if want_logits {
            let last = &x[(n - 1) * h..n * h];
            (k.rmsnorm)(&mut xb[..h], last, model.final_norm(), eps);
            let head = model.lm_head();
            let act = exec.batch(&xb[..h], 1, s.xq, &[&head]);
            exec.matmuls(&act, &mut [(&head, &mut *s.logits)]);
        }
        Ok(())
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
    let group = queries.len() / hd;
    out.fill(0.0);
    for t in 0..span {
        let at = first + t * kv_dim;
        for (g, q) in queries.chunks_exact(hd).enumerate() {
            att[g * context + t] = scale
                * match kv {
                    KvCache::F32 { k: kc, .. } => (k.dot_f32_f32)(q, &kc[at..at + hd]),
                    KvCache::F16 { k: kc, .. } => (k.dot_f16)(bytemuck::cast_slice(&kc[at..at + hd]), q),
                };
        }
    }
    for g in 0..group {
        (k.softmax)(&mut att[g * context..g * context + span]);
    }
    for t in 0..span {
        let at = first + t * kv_dim;
        for (g, o) in out.chunks_exact_mut(hd).enumerate() {
            let a = att[g * context + t];
            match kv {
                KvCache::F32 { v: vc, .. } => (k.axpy_f32)(a, &vc[at..at + hd], o),
                KvCache::F16 { v: vc, .. } => (k.axpy_f16)(a, bytemuck::cast_slice(&vc[at..at + hd]), o),
            }
        }
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn f32s(b: &mut [u8]) -> Result<&mut [f32]> {
    bytemuck::try_cast_slice_mut(b).map_err(|_| Error::Corrupt { what: "workspace alignment" })
}

fn u16s(b: &mut [u8]) -> Result<&mut [u16]> {
    bytemuck::try_cast_slice_mut(b).map_err(|_| Error::Corrupt { what: "workspace alignment" })
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
