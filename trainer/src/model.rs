//! The Qwen2/Llama decoder as burn modules: the same network the runtime
//! runs, with parameters named as Hugging Face names them
//! (`model.layers.3.self_attn.q_proj.weight`), so the module tree's paths *are*
//! the checkpoint's tensor names and `checkpoint.rs` needs no name table.
//!
//! Linear weights keep Hugging Face's `[out, in]` layout for the same reason.
//! Parameters are f32 (master weights); each forward casts them to the
//! compute precision. RMSNorm statistics, softmax and log-softmax run in f32
//! whatever the precision, as transformers does.

use burn::module::{Module, Param};
use burn::tensor::activation::{log_softmax, silu, softmax};
use burn::tensor::module::{embedding, linear};
use burn::tensor::{Bool, Device, Distribution, FloatDType, Int, Tensor, TensorData};

use crate::config::Config;

/// `y = x Wᵀ + b` with `W` stored `[out, in]` as in transformers.
#[derive(Module, Debug)]
pub struct Linear {
    pub weight: Param<Tensor<2>>,
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    pub fn init(d_in: usize, d_out: usize, bias: bool, std: f64, device: &Device) -> Linear {
        let weight = Tensor::random([d_out, d_in], Distribution::Normal(0.0, std), device);
        Linear {
            weight: Param::from_tensor(weight),
            bias: bias.then(|| Param::from_tensor(Tensor::zeros([d_out], device))),
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>, dtype: FloatDType) -> Tensor<D> {
        let weight = self.weight.val().cast(dtype).transpose();
        linear(x, weight, self.bias.as_ref().map(|b| b.val().cast(dtype)))
    }
}

/// Token embeddings, `[vocab, hidden]`.
#[derive(Module, Debug)]
pub struct Embedding {
    pub weight: Param<Tensor<2>>,
}

/// RMSNorm: `x / sqrt(mean(x²) + eps) * weight`, statistics in f32.
#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    pub eps: f64,
}

impl RmsNorm {
    fn init(d: usize, eps: f64, device: &Device) -> RmsNorm {
        RmsNorm { weight: Param::from_tensor(Tensor::ones([d], device)), eps }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let dtype = x.dtype();
        let x = x.cast(FloatDType::F32);
        let rms = (x.clone().square().mean_dim(2) + self.eps).sqrt();
        let normed = (x / rms).cast(dtype);
        normed * self.weight.val().cast(dtype).unsqueeze::<3>()
    }
}

/// Grouped-query attention with rotary position embeddings.
#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

/// The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub self_attn: Attention,
    pub mlp: Mlp,
    pub input_layernorm: RmsNorm,
    pub post_attention_layernorm: RmsNorm,
}

/// transformers' `Qwen2Model`/`LlamaModel`: the part under the `model.` prefix.
#[derive(Module, Debug)]
pub struct Body {
    pub embed_tokens: Embedding,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
}

/// transformers' `Qwen2ForCausalLM`/`LlamaForCausalLM`. With tied embeddings
/// there is no `lm_head` and the output projection is `embed_tokens`.
#[derive(Module, Debug)]
pub struct CausalLm {
    pub model: Body,
    pub lm_head: Option<Linear>,
    #[module(skip)]
    pub config: Config,
    /// RoPE's inverse frequencies (`head_dim / 2`), scaling applied.
    #[module(skip)]
    pub inv_freq: Vec<f32>,
    /// The dtype matmuls and activations run in.
    #[module(skip)]
    pub compute: FloatDType,
}

/// One forward's inputs: token ids, their positions (which differ from the
/// column index under left padding) and the attention mask.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// `[batch, len]`.
    pub tokens: Tensor<2, Int>,
    /// `[batch, len]`: the RoPE position of each token.
    pub positions: Tensor<2, Int>,
    /// `[batch, 1, len, past + len]`: true where a query must not see a key.
    pub mask: Tensor<4, Bool>,
}

impl Inputs {
    /// Rows of equal length with no padding: positions `0..len`, causal mask.
    pub fn causal(rows: &[Vec<u32>], device: &Device) -> Inputs {
        let pads: Vec<usize> = vec![0; rows.len()];
        Inputs::left_padded(rows, &pads, device)
    }

    /// Rows of equal length whose first `pads[b]` tokens are padding: the
    /// padding is masked as keys and positions start at 0 after it.
    pub fn left_padded(rows: &[Vec<u32>], pads: &[usize], device: &Device) -> Inputs {
        Inputs::continuing(rows, pads, 0, device)
    }

    /// Rows that continue sequences of which `past` tokens are in the KV
    /// cache, the first `pads[b]` of them padding.
    pub fn continuing(rows: &[Vec<u32>], pads: &[usize], past: usize, device: &Device) -> Inputs {
        let (b, t) = (rows.len(), rows.first().map_or(0, Vec::len));
        let keys = past + t;
        let tokens: Vec<i64> = rows.iter().flatten().map(|&x| x as i64).collect();
        let mut positions = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t * keys);
        for &pad in pads {
            positions.extend((past..keys).map(|i| i.saturating_sub(pad) as i64));
            for q in past..keys {
                mask.extend((0..keys).map(|k| k > q || k < pad));
            }
        }
        Inputs {
            tokens: Tensor::from_data(TensorData::new(tokens, [b, t]), device),
            positions: Tensor::from_data(TensorData::new(positions, [b, t]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, 1, t, keys]), device),
        }
    }
}

/// Keys and values of the tokens seen so far, per layer, for generation:
/// `[batch, kv_heads, capacity, head_dim]` each, filled up to `len`.
#[derive(Clone, Debug)]
pub struct KvCache {
    layers: Vec<(Tensor<4>, Tensor<4>)>,
    pub len: usize,
    pub capacity: usize,
}

impl KvCache {
    pub fn new(config: &Config, batch: usize, capacity: usize, dtype: FloatDType, device: &Device) -> KvCache {
        let shape = [batch, config.num_kv_heads as usize, capacity, config.head_dim as usize];
        let zeros = || Tensor::<4>::zeros(shape, device).cast(dtype);
        KvCache { layers: (0..config.num_layers).map(|_| (zeros(), zeros())).collect(), len: 0, capacity }
    }

    /// Keeps only the rows in `keep` (for dropping finished sequences).
    pub fn select_rows(&mut self, keep: Tensor<1, Int>) {
        for (k, v) in &mut self.layers {
            *k = k.clone().select(0, keep.clone());
            *v = v.clone().select(0, keep.clone());
        }
    }
}

impl CausalLm {
    /// A freshly initialised model: weights ~ N(0, 0.02²) as transformers
    /// initialises them, norms 1, biases 0. `device.seed` decides the draw.
    pub fn init(config: &Config, device: &Device) -> CausalLm {
        let c = config;
        let (h, i) = (c.hidden_size as usize, c.intermediate_size as usize);
        let (nh, nkv, hd) = (c.num_heads as usize, c.num_kv_heads as usize, c.head_dim as usize);
        let std = 0.02;
        let eps = c.rms_norm_eps as f64;
        let layers = (0..c.num_layers)
            .map(|_| DecoderLayer {
                self_attn: Attention {
                    q_proj: Linear::init(h, nh * hd, c.attention_bias, std, device),
                    k_proj: Linear::init(h, nkv * hd, c.attention_bias, std, device),
                    v_proj: Linear::init(h, nkv * hd, c.attention_bias, std, device),
                    o_proj: Linear::init(nh * hd, h, false, std, device),
                    num_heads: nh,
                    num_kv_heads: nkv,
                    head_dim: hd,
                },
                mlp: Mlp {
                    gate_proj: Linear::init(h, i, false, std, device),
                    up_proj: Linear::init(h, i, false, std, device),
                    down_proj: Linear::init(i, h, false, std, device),
                },
                input_layernorm: RmsNorm::init(h, eps, device),
                post_attention_layernorm: RmsNorm::init(h, eps, device),
            })
            .collect();
        let embed = Tensor::random([c.vocab_size as usize, h], Distribution::Normal(0.0, std), device);
        CausalLm {
            model: Body {
                embed_tokens: Embedding { weight: Param::from_tensor(embed) },
                layers,
                norm: RmsNorm::init(h, eps, device),
            },
            lm_head: (!c.tie_embeddings).then(|| Linear::init(h, c.vocab_size as usize, false, std, device)),
            config: *config,
            inv_freq: inv_freq(config),
            compute: FloatDType::F32,
        }
    }

    /// Runs matmuls and activations in `dtype` from now on.
    pub fn with_compute(mut self, dtype: FloatDType) -> CausalLm {
        self.compute = dtype;
        self
    }

    pub fn device(&self) -> Device {
        self.model.embed_tokens.weight.val().device()
    }

    /// Final hidden states `[batch, len, hidden]` (after the last norm).
    /// With a cache, the inputs continue the cached sequence (their mask
    /// covers cached keys too) and the cache is extended.
    pub fn hidden(&self, inputs: &Inputs, mut cache: Option<&mut KvCache>) -> Tensor<3> {
        let dtype = self.compute;
        let mut x = embedding(self.model.embed_tokens.weight.val(), inputs.tokens.clone()).cast(dtype);
        let (cos, sin) = self.rope_tables(&inputs.positions, dtype);
        let past = cache.as_ref().map_or(0, |c| c.len);
        for (index, layer) in self.model.layers.iter().enumerate() {
            let kv = cache.as_deref_mut().map(|c| &mut c.layers[index]);
            let h = layer.input_layernorm.forward(x.clone());
            x = x + layer.self_attn.forward(h, &cos, &sin, &inputs.mask, kv, past, dtype);
            let h = layer.post_attention_layernorm.forward(x.clone());
            x = x + layer.mlp.forward(h, dtype);
        }
        if let Some(cache) = cache {
            cache.len += inputs.tokens.dims()[1];
        }
        self.model.norm.forward(x)
    }

    /// Logits `[…, vocab]` in f32 from hidden states `[…, hidden]`.
    pub fn project<const D: usize>(&self, hidden: Tensor<D>) -> Tensor<D> {
        let logits = match &self.lm_head {
            Some(head) => head.forward(hidden, self.compute),
            None => linear(hidden, self.model.embed_tokens.weight.val().cast(self.compute).transpose(), None),
        };
        logits.cast(FloatDType::F32)
    }

    /// Logits `[batch, len, vocab]`, f32.
    pub fn forward(&self, inputs: &Inputs, cache: Option<&mut KvCache>) -> Tensor<3> {
        self.project(self.hidden(inputs, cache))
    }

    /// `log_softmax(logits / temperature)`, `[n, vocab]`, at the positions
    /// `at` of the inputs (flat indices `b · len + t`). The output projection
    /// and the softmax, the widest tensors of a step, are computed there
    /// only: at the positions a loss or a log-prob reads, not at prompt or
    /// padding positions. `at` must not be empty.
    pub fn logprobs_at(&self, inputs: &Inputs, at: &Tensor<1, Int>, temperature: f32) -> Tensor<2> {
        let hidden = self.hidden(inputs, None);
        let [batch, len, width] = hidden.dims();
        let logits = self.project(hidden.reshape([batch * len, width]).select(0, at.clone()));
        log_softmax(if temperature != 1.0 { logits / temperature as f64 } else { logits }, 1)
    }

    /// [`CausalLm::logprobs_at`] and, from it, log π(target) at each of
    /// those positions (`[n]`; `targets` is `[batch, len]`).
    pub fn target_logprobs_at(&self, inputs: &Inputs, targets: Tensor<2, Int>, at: &Tensor<1, Int>, temperature: f32) -> (Tensor<1>, Tensor<2>) {
        let n = at.dims()[0];
        let all = self.logprobs_at(inputs, at, temperature);
        let targets = targets.flatten::<1>(0, 1).select(0, at.clone()).reshape([n, 1]);
        (all.clone().gather(1, targets).reshape([n]), all)
    }

    /// log π(target | prefix) for each position: `[batch, len]`, where
    /// `targets[b][t]` is the token that follows `inputs.tokens[b][t]`.
    pub fn token_logprobs(&self, inputs: &Inputs, targets: Tensor<2, Int>) -> Tensor<2> {
        let logp = log_softmax(self.forward(inputs, None), 2);
        logp.gather(2, targets.unsqueeze_dim::<3>(2)).squeeze_dim::<2>(2)
    }

    /// Cross-entropy summed over positions, each weighted by `weights`
    /// (0 leaves a position out, and the vocabulary is projected only where
    /// the weight is not 0). The caller divides by the number of target
    /// tokens of the whole batch, so that gradient accumulation over
    /// micro-batches equals one large batch.
    pub fn nll_sum(&self, inputs: &Inputs, targets: Tensor<2, Int>, weights: Tensor<2>) -> Tensor<1> {
        let host: Vec<f32> = weights.to_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        let at = nonzero(&host);
        if at.is_empty() {
            // Nothing to learn from here; a zero that keeps the graph.
            return -(self.token_logprobs(inputs, targets) * weights).sum();
        }
        let device = weights.device();
        let at = positions(&at, &device);
        let weights = weights.flatten::<1>(0, 1).select(0, at.clone());
        let (logp, _) = self.target_logprobs_at(inputs, targets, &at, 1.0);
        -(logp * weights).sum()
    }

    /// cos and sin of each position × frequency, `[batch, 1, len, head_dim]`,
    /// halves repeated as transformers' rotate-half convention wants.
    fn rope_tables(&self, positions: &Tensor<2, Int>, dtype: FloatDType) -> (Tensor<4>, Tensor<4>) {
        let device = positions.device();
        let half = self.inv_freq.len();
        let inv = Tensor::<1>::from_data(TensorData::new(self.inv_freq.clone(), [half]), &device);
        let pos = positions.clone().float().cast(FloatDType::F32).unsqueeze_dim::<3>(2);
        let freqs = pos * inv.unsqueeze::<3>();
        let angles = Tensor::cat(vec![freqs.clone(), freqs], 2).unsqueeze_dim::<4>(1);
        (angles.clone().cos().cast(dtype), angles.sin().cast(dtype))
    }
}

impl Attention {
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        mask: &Tensor<4, Bool>,
        cache: Option<&mut (Tensor<4>, Tensor<4>)>,
        past: usize,
        dtype: FloatDType,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let heads = |y: Tensor<3>, n: usize| y.reshape([b, t, n, hd]).swap_dims(1, 2);
        let q = rotate(heads(self.q_proj.forward(x.clone(), dtype), nh), cos, sin);
        let mut k = rotate(heads(self.k_proj.forward(x.clone(), dtype), nkv), cos, sin);
        let mut v = heads(self.v_proj.forward(x, dtype), nkv);
        if let Some((ck, cv)) = cache {
            let end = past + t;
            *ck = ck.clone().slice_assign([0..b, 0..nkv, past..end, 0..hd], k);
            *cv = cv.clone().slice_assign([0..b, 0..nkv, past..end, 0..hd], v);
            k = ck.clone().slice([0..b, 0..nkv, 0..end, 0..hd]);
            v = cv.clone().slice([0..b, 0..nkv, 0..end, 0..hd]);
        }
        let s = k.dims()[2];
        // The query heads sharing a KV head are consecutive, so folding them
        // into the row dimension lets one matmul serve the group without
        // copying keys or values per query head.
        let group = nh / nkv;
        let q = q.reshape([b, nkv, group * t, hd]);
        let scores = q.matmul(k.swap_dims(2, 3)).cast(FloatDType::F32) * (1.0 / (hd as f64).sqrt());
        let scores = scores.reshape([b, nh, t, s]).mask_fill(mask.clone().expand([b, nh, t, s]), -1e9);
        let probs = softmax(scores, 3).cast(dtype).reshape([b, nkv, group * t, s]);
        let out = probs.matmul(v).reshape([b, nh, t, hd]).swap_dims(1, 2).reshape([b, t, nh * hd]);
        self.o_proj.forward(out, dtype)
    }
}

/// RoPE, rotate-half form: `x cos + rotate_half(x) sin`.
fn rotate(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let [b, h, t, d] = x.dims();
    let first = x.clone().slice([0..b, 0..h, 0..t, 0..d / 2]);
    let second = x.clone().slice([0..b, 0..h, 0..t, d / 2..d]);
    let rotated = Tensor::cat(vec![second.neg(), first], 3);
    x * cos.clone() + rotated * sin.clone()
}

impl Mlp {
    fn forward(&self, x: Tensor<3>, dtype: FloatDType) -> Tensor<3> {
        let gate = silu(self.gate_proj.forward(x.clone(), dtype));
        self.down_proj.forward(gate * self.up_proj.forward(x, dtype), dtype)
    }
}

/// RoPE inverse frequencies, as the runtime computes them (Llama 3.1 scaling
/// included), so both engines rotate identically.
/// The flat indices of the non-zero entries of `mask`.
pub fn nonzero(mask: &[f32]) -> Vec<i64> {
    mask.iter().enumerate().filter(|(_, m)| **m != 0.0).map(|(i, _)| i as i64).collect()
}

/// Flat positions as an index tensor.
pub fn positions(at: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(at.to_vec(), [at.len()]), device)
}

/// `values[i]` at flat position `at[i]` of a `[rows, len]` tensor of zeros
/// (the gradient flows back to `values`).
pub fn spread(values: Tensor<1>, at: Tensor<1, Int>, rows: usize, len: usize) -> Tensor<2> {
    let zeros = Tensor::<1>::zeros([rows * len], &values.device());
    zeros.select_assign(0, at, values, burn::tensor::IndexingUpdateOp::Add).reshape([rows, len])
}

pub fn inv_freq(config: &Config) -> Vec<f32> {
    let head_dim = config.head_dim as usize;
    (0..head_dim / 2)
        .map(|i| {
            let f = aha_kernels::rope::inv_freq(i, head_dim, config.rope_theta);
            match config.rope_scaling {
                crate::config::RopeScaling::None => f,
                crate::config::RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position } => {
                    aha_kernels::rope::llama3_scale(f, factor, low_freq_factor, high_freq_factor, original_max_position as f32)
                }
            }
        })
        .collect()
}
