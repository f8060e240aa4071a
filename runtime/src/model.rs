//! Typed, zero-copy views of a model's weights, checked once against the
//! hyperparameters, and the memory plan for a context length.
//!
//! No allocator: instead of a table per layer, the model keeps layer 0's
//! tensor slots and one byte stride, and requires (and checks) that every
//! layer has the same tensor types and shapes laid out at that stride, which
//! the writer always produces. Layer `i`'s tensor is then layer 0's offset plus
//! `i · stride`.

use crate::error::{name, Error, Result};
use crate::format::{Config, ModelFile, TensorInfo};
use aha_kernels::{Batch, BlockQ8_0, DType, Matrix, PanelQ8};

/// The most layers a model may have (bounded so checking needs no allocation).
pub const MAX_LAYERS: usize = 1024;

/// The per-layer tensors, by their Hugging Face name after `model.layers.{i}.`.
pub const LAYER_TENSORS: [&str; 12] = [
    "input_layernorm.weight",
    "self_attn.q_proj.weight",
    "self_attn.q_proj.bias",
    "self_attn.k_proj.weight",
    "self_attn.k_proj.bias",
    "self_attn.v_proj.weight",
    "self_attn.v_proj.bias",
    "self_attn.o_proj.weight",
    "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
];
const ATTN_NORM: usize = 0;
const WQ: usize = 1;
const BQ: usize = 2;
const WK: usize = 3;
const BK: usize = 4;
const WV: usize = 5;
const BV: usize = 6;
const WO: usize = 7;
const MLP_NORM: usize = 8;
const W_GATE: usize = 9;
const W_UP: usize = 10;
const W_DOWN: usize = 11;

pub const EMBED: &str = "model.embed_tokens.weight";
pub const FINAL_NORM: &str = "model.norm.weight";
pub const LM_HEAD: &str = "lm_head.weight";

/// Where a tensor lies in the data section, with its format and shape.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Slot {
    offset: usize,
    len: usize,
    dtype: DType,
    rows: usize,
    cols: usize,
}

/// One layer's weights. Norms and biases are little-endian f32 bytes.
#[derive(Clone, Copy)]
pub struct Layer<'a> {
    pub attn_norm: &'a [u8],
    pub wq: Matrix<'a>,
    pub bq: Option<&'a [u8]>,
    pub wk: Matrix<'a>,
    pub bk: Option<&'a [u8]>,
    pub wv: Matrix<'a>,
    pub bv: Option<&'a [u8]>,
    pub wo: Matrix<'a>,
    pub mlp_norm: &'a [u8],
    pub w_gate: Matrix<'a>,
    pub w_up: Matrix<'a>,
    pub w_down: Matrix<'a>,
}

/// A model ready to run: the parsed file and checked weight slots.
#[derive(Clone, Copy)]
pub struct Model<'a> {
    pub file: ModelFile<'a>,
    pub config: Config,
    embed: Slot,
    final_norm: Slot,
    lm_head: Slot,
    layer0: [Option<Slot>; 12],
    stride: usize,
}

/// The KV cache's element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvType {
    F32,
    F16,
}

impl KvType {
    pub fn bytes(self) -> usize {
        match self {
            KvType::F32 => 4,
            KvType::F16 => 2,
        }
    }
}

/// Bytes a session needs for a context length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    pub context: usize,
    pub kv_type: KvType,
    /// Tokens processed together by one forward pass (prompt tokens, or one
    /// token of each of several sequences): each weight row is then read
    /// once per batch rather than once per token; 1 = token by token.
    pub batch: usize,
    /// Sequences with a KV cache of their own (1 for a [`crate::Session`];
    /// B for a [`crate::BatchSession`]).
    pub sequences: usize,
    /// KV cache: 2 · sequences · layers · context · kv_heads · head_dim elements.
    pub kv_bytes: usize,
    /// Activations, attention scores, logits, sampler and token history.
    pub scratch_bytes: usize,
}

impl MemoryPlan {
    /// The buffer size to hand to `Session::new` (includes alignment slack).
    pub fn total(&self) -> usize {
        self.kv_bytes + self.scratch_bytes + crate::format::ALIGN
    }

    /// A zeroed buffer of [`MemoryPlan::total`] bytes (aborts if the
    /// allocator cannot give it: see [`MemoryPlan::try_allocate`]).
    #[cfg(feature = "alloc")]
    pub fn allocate(&self) -> alloc::vec::Vec<u8> {
        alloc::vec![0u8; self.total()]
    }

    /// [`MemoryPlan::allocate`], with an error naming the size instead of an
    /// abort when the allocator refuses.
    #[cfg(feature = "alloc")]
    pub fn try_allocate(&self) -> Result<alloc::vec::Vec<u8>> {
        let bytes = self.total();
        let mut buf = alloc::vec::Vec::new();
        if bytes >= Layout::SATURATED || buf.try_reserve_exact(bytes).is_err() {
            return Err(Error::OutOfMemory { bytes: bytes as u64, context: self.context });
        }
        buf.resize(bytes, 0);
        Ok(buf)
    }

    /// Whether this plan runs every product through the batched kernels
    /// (panels of inputs), even for one token: a [`crate::BatchSession`]'s.
    pub(crate) fn batched(&self) -> bool {
        self.sequences > 1 || self.batch > 1
    }
}

/// The byte layout of a session's buffer, shared by the plan and the session
/// so they cannot disagree. Each region starts at a multiple of 64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub regions: [(usize, usize); Region::COUNT],
    pub kv_bytes: usize,
    pub total: usize,
}

#[derive(Clone, Copy)]
pub(crate) enum Region {
    KeyCache,
    ValueCache,
    X,
    Xb,
    Q,
    K,
    V,
    AttnOut,
    Att,
    Hb,
    Hb2,
    Logits,
    HeadOut,
    Cos,
    Sin,
    Xq,
    PanelQ8,
    PanelF32,
    SampleIdx,
    Tokens,
    ItemSeq,
    ItemPos,
    Want,
    Positions,
    Cursor,
}

impl Region {
    /// One past the last region (derived, so adding a region cannot desynchronise it).
    pub const COUNT: usize = Region::Cursor as usize + 1;
}

impl Layout {
    /// `batch` tokens per forward pass over `sequences` KV caches; `panels`:
    /// room for the batched kernels' input panels. Sizes are computed with
    /// saturating arithmetic and capped at [`Layout::SATURATED`], so an
    /// absurd context yields a plan no buffer can satisfy (and a clear error
    /// where the buffer is checked or allocated), never an overflow.
    pub fn new(c: &Config, context: usize, kv: KvType, batch: usize, sequences: usize, panels: bool) -> Layout {
        let n = batch.max(1);
        let seqs = sequences.max(1);
        let (hidden, inter, vocab) = (c.hidden_size as usize, c.intermediate_size as usize, c.vocab_size as usize);
        let q_dim = c.q_dim();
        let mul = |xs: &[usize]| xs.iter().fold(1usize, |a, &b| a.saturating_mul(b));
        let kv_cache = mul(&[seqs, c.num_layers as usize, context, c.kv_dim(), kv.bytes()]);
        let widest = hidden.max(inter).max(q_dim);
        // Logits of several sequences from one pass land here first.
        let head_rows = if seqs > 1 { n.min(seqs) } else { 0 };
        let (pq, pf) = if panels {
            (mul(&[Batch::panel_q8_len(n, widest), core::mem::size_of::<PanelQ8>()]), mul(&[Batch::panel_f32_len(n, widest), 4]))
        } else {
            (0, 0)
        };
        let sizes: [usize; Region::COUNT] = [
            kv_cache,
            kv_cache,
            mul(&[n, hidden, 4]),
            mul(&[n, hidden, 4]),
            mul(&[n, q_dim, 4]),
            mul(&[n, c.kv_dim(), 4]),
            mul(&[n, c.kv_dim(), 4]),
            mul(&[n, q_dim, 4]),
            mul(&[n, c.num_heads as usize, context, 4]),
            mul(&[n, inter, 4]),
            mul(&[n, inter, 4]),
            mul(&[seqs, vocab, 4]),
            mul(&[head_rows, vocab, 4]),
            mul(&[n, c.head_dim as usize / 2, 4]),
            mul(&[n, c.head_dim as usize / 2, 4]),
            mul(&[Batch::q8_len(n, widest), core::mem::size_of::<BlockQ8_0>()]),
            pq,
            pf,
            vocab * 4,
            mul(&[seqs, context, 4]),
            mul(&[n, 4]),
            mul(&[n, 4]),
            mul(&[n, 4]),
            mul(&[seqs, 4]),
            mul(&[seqs, 4]),
        ];
        let cap = |x: usize| x.min(Layout::SATURATED);
        let mut regions = [(0, 0); Region::COUNT];
        let mut at = 0;
        for (r, &size) in regions.iter_mut().zip(&sizes) {
            let size = cap(size);
            *r = (at, size);
            at = cap(crate::format::align_up(cap(at + size)));
        }
        Layout { regions, kv_bytes: cap(crate::format::align_up(cap(kv_cache)).saturating_mul(2)), total: at }
    }

    /// Where sizes stop growing: far below `usize::MAX`, so sums of a few
    /// saturated sizes and alignment slack cannot overflow either.
    pub const SATURATED: usize = usize::MAX / 8;
}

fn parse_layer_name(tensor: &str) -> Option<(usize, usize)> {
    let rest = tensor.strip_prefix("model.layers.")?;
    let dot = rest.find('.')?;
    let layer: usize = rest[..dot].parse().ok()?;
    let kind = LAYER_TENSORS.iter().position(|s| *s == &rest[dot + 1..])?;
    Some((layer, kind))
}

impl<'a> Model<'a> {
    /// Parses and checks a model file in place.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Model<'a>> {
        Model::new(ModelFile::parse(bytes)?)
    }

    /// Checks every tensor the architecture needs: present once, shaped as
    /// the hyperparameters say, of a usable type, laid out uniformly by layer.
    pub fn new(file: ModelFile<'a>) -> Result<Model<'a>> {
        let c = *file.config();
        let (hidden, inter, vocab) = (c.hidden_size as u64, c.intermediate_size as u64, c.vocab_size as u64);
        let (q_dim, kv_dim) = (c.q_dim() as u64, c.kv_dim() as u64);
        let layers = c.num_layers as usize;
        let layer_shapes: [[u64; 2]; 12] = [
            [1, hidden],
            [q_dim, hidden],
            [1, q_dim],
            [kv_dim, hidden],
            [1, kv_dim],
            [kv_dim, hidden],
            [1, kv_dim],
            [hidden, q_dim],
            [1, hidden],
            [inter, hidden],
            [inter, hidden],
            [hidden, inter],
        ];
        let vector = |kind: usize| matches!(kind, ATTN_NORM | BQ | BK | BV | MLP_NORM);
        let bias = |kind: usize| matches!(kind, BQ | BK | BV);

        let slot = |info: &TensorInfo<'a>, expected: [u64; 2], must_be_f32: bool| -> Result<Slot> {
            let dtype = info.dtype()?;
            let (rows, cols) = info.rows_cols();
            if [rows, cols] != expected {
                return Err(Error::TensorShape { name: name(info.name), expected, found: [rows, cols] });
            }
            if must_be_f32 && dtype != DType::F32 {
                return Err(Error::TensorType { name: name(info.name), dtype });
            }
            file.tensor_bytes(info)?; // bounds, checked again for clarity of the error
            Ok(Slot { offset: info.offset as usize, len: info.len as usize, dtype, rows: rows as usize, cols: cols as usize })
        };

        // Pass 1: globals and layer 0, plus layer 1's first tensor for the stride.
        let (mut embed, mut final_norm, mut lm_head) = (None, None, None);
        let mut layer0 = [None; 12];
        let mut layer1_norm = None;
        for info in file.tensors() {
            let info = info?;
            match info.name {
                EMBED => embed = Some(slot(&info, [vocab, hidden], false)?),
                FINAL_NORM => final_norm = Some(slot(&info, [1, hidden], true)?),
                LM_HEAD => lm_head = Some(slot(&info, [vocab, hidden], false)?),
                other => match parse_layer_name(other) {
                    Some((0, kind)) => {
                        if layer0[kind].is_some() {
                            return Err(Error::NonUniformLayers { name: name(other) });
                        }
                        layer0[kind] = Some(slot(&info, layer_shapes[kind], vector(kind))?)
                    }
                    Some((1, ATTN_NORM)) => layer1_norm = Some(info.offset as usize),
                    _ => {}
                },
            }
        }
        let missing = |n: &str| Error::MissingTensor { name: name(n) };
        let embed = embed.ok_or_else(|| missing(EMBED))?;
        let final_norm = final_norm.ok_or_else(|| missing(FINAL_NORM))?;
        let lm_head = match (lm_head, c.tie_embeddings) {
            (Some(s), false) => s,
            (None, true) => embed,
            (None, false) => return Err(missing(LM_HEAD)),
            (Some(_), true) => return Err(Error::BadConfig { what: "tied embeddings but the file has an lm_head" }),
        };
        for (kind, s) in layer0.iter().enumerate() {
            let required = !bias(kind) || c.attention_bias;
            if s.is_none() && required {
                let mut n = name("model.layers.0.");
                let _ = n.push_str(LAYER_TENSORS[kind]);
                return Err(Error::MissingTensor { name: n });
            }
            if s.is_some() && !required {
                return Err(Error::BadConfig { what: "q/k/v biases present but attention_bias is false" });
            }
        }
        let base = layer0[ATTN_NORM].map_or(0, |s| s.offset);
        let stride = match layer1_norm {
            Some(off) if off > base => off - base,
            Some(_) => return Err(Error::NonUniformLayers { name: name("model.layers.1.input_layernorm.weight") }),
            None if layers == 1 => 0,
            None => return Err(missing("model.layers.1.input_layernorm.weight")),
        };

        // Pass 2: every layer's tensor sits at layer 0's slot plus i·stride, once.
        let mut seen = [[0u64; MAX_LAYERS / 64]; 12];
        for info in file.tensors() {
            let info = info?;
            let Some((layer, kind)) = parse_layer_name(info.name) else { continue };
            let Some(s0) = layer0[kind] else {
                return Err(Error::BadConfig { what: "q/k/v biases present but attention_bias is false" });
            };
            let s = slot(&info, layer_shapes[kind], vector(kind))?;
            let at = s0.offset.checked_add(layer.saturating_mul(stride));
            let bit = 1u64 << (layer % 64);
            if layer >= layers || s.dtype != s0.dtype || at != Some(s.offset) || seen[kind][layer / 64] & bit != 0 {
                return Err(Error::NonUniformLayers { name: name(info.name) });
            }
            seen[kind][layer / 64] |= bit;
        }
        for (kind, s) in layer0.iter().enumerate() {
            if s.is_none() {
                continue;
            }
            if let Some(l) = (0..layers).find(|&l| seen[kind][l / 64] & (1 << (l % 64)) == 0) {
                let mut n = name("model.layers.");
                let _ = core::fmt::write(&mut n, format_args!("{l}.{}", LAYER_TENSORS[kind]));
                return Err(Error::MissingTensor { name: n });
            }
        }
        Ok(Model { file, config: c, embed, final_norm, lm_head, layer0, stride })
    }

    fn bytes(&self, s: &Slot, layer: usize) -> &'a [u8] {
        let start = s.offset + layer * self.stride;
        // In bounds: `new` checked every layer's slot against the file.
        &self.file.data[start..start + s.len]
    }

    fn matrix(&self, s: &Slot, layer: usize) -> Matrix<'a> {
        Matrix { dtype: s.dtype, data: self.bytes(s, layer), rows: s.rows, cols: s.cols }
    }

    /// Layer `i`'s weights (`i < num_layers`).
    pub fn layer(&self, i: usize) -> Layer<'a> {
        let m = |k: usize| self.layer0[k].map(|s| self.matrix(&s, i)).unwrap_or(Matrix { dtype: DType::F32, data: &[], rows: 0, cols: 0 });
        let v = |k: usize| self.layer0[k].map(|s| self.bytes(&s, i));
        Layer {
            attn_norm: v(ATTN_NORM).unwrap_or(&[]),
            wq: m(WQ),
            bq: v(BQ),
            wk: m(WK),
            bk: v(BK),
            wv: m(WV),
            bv: v(BV),
            wo: m(WO),
            mlp_norm: v(MLP_NORM).unwrap_or(&[]),
            w_gate: m(W_GATE),
            w_up: m(W_UP),
            w_down: m(W_DOWN),
        }
    }

    pub fn embed(&self) -> Matrix<'a> {
        self.matrix(&self.embed, 0)
    }

    pub fn lm_head(&self) -> Matrix<'a> {
        self.matrix(&self.lm_head, 0)
    }

    pub fn final_norm(&self) -> &'a [u8] {
        self.bytes(&self.final_norm, 0)
    }

    /// Bytes of KV cache and scratch a session needs for `context` tokens,
    /// feeding the prompt token by token (the smallest plan).
    pub fn memory_plan(&self, context: usize, kv_type: KvType) -> MemoryPlan {
        self.memory_plan_batched(context, kv_type, 1)
    }

    /// As [`Model::memory_plan`], with scratch to feed `batch` prompt tokens at once.
    pub fn memory_plan_batched(&self, context: usize, kv_type: KvType, batch: usize) -> MemoryPlan {
        self.plan(context, kv_type, batch.max(1), 1)
    }

    /// The plan of a [`crate::BatchSession`]: `sequences` KV caches of
    /// `context` tokens each, and `batch` tokens per forward pass (at least
    /// `sequences`, so one step serves every sequence; more to prefill long
    /// prompts in fewer passes).
    pub fn memory_plan_sequences(&self, context: usize, kv_type: KvType, sequences: usize, batch: usize) -> MemoryPlan {
        let sequences = sequences.max(1);
        self.plan(context, kv_type, batch.max(sequences).max(2), sequences)
    }

    fn plan(&self, context: usize, kv_type: KvType, batch: usize, sequences: usize) -> MemoryPlan {
        let mut plan = MemoryPlan { context, kv_type, batch, sequences, kv_bytes: 0, scratch_bytes: 0 };
        let l = Layout::new(&self.config, context, kv_type, batch, sequences, plan.batched());
        plan.kv_bytes = l.kv_bytes;
        plan.scratch_bytes = l.total.saturating_sub(l.kv_bytes);
        plan
    }

    /// Checks a context length a caller asked for: at least 1 token and at
    /// most the model's positions (`max_position_embeddings`).
    pub fn check_context(&self, context: usize) -> Result<()> {
        let max_position = self.config.max_position;
        if context == 0 || context > max_position as usize {
            return Err(Error::ContextOutOfRange { context, max_position });
        }
        Ok(())
    }

    /// [`Model::memory_plan_batched`] for a context a user chose: refused
    /// (with the limit) when [`Model::check_context`] fails, and the batch
    /// must be at least 1 and at most the context.
    pub fn checked_plan(&self, context: usize, kv_type: KvType, batch: usize) -> Result<MemoryPlan> {
        self.check_context(context)?;
        if batch == 0 || batch > context {
            return Err(Error::BatchOutOfRange { batch, context });
        }
        Ok(self.memory_plan_batched(context, kv_type, batch))
    }

    /// The tokenizer stored in the file; refused if it has ids the model
    /// has no embedding row for.
    pub fn tokenizer(&self) -> Result<crate::tokenizer::Tokenizer<'a>> {
        let blob = self.file.header.tokenizer.ok_or(Error::NoTokenizer)?;
        let tokenizer = crate::tokenizer::Tokenizer::parse(blob)?;
        if tokenizer.vocab_size() > self.config.vocab_size {
            return Err(Error::TokenizerVocab { tokenizer: tokenizer.vocab_size(), model: self.config.vocab_size });
        }
        Ok(tokenizer)
    }

    /// Bytes of weights read per generated token (every matrix once, plus one embedding row).
    pub fn weight_bytes(&self) -> u64 {
        self.file.weight_bytes()
    }
}
