#!/usr/bin/env python3
"""Regenerate the model test fixtures under ``tests/fixtures/``.

Usage (from the repository root)::

    pip install numpy tokenizers          # tokenizers (HF) is needed for qwen2-tokenizer
    python3 scripts/make_fixtures.py

PyTorch / transformers are not available where these fixtures were made, so
the reference outputs are produced by a small float64 NumPy re-implementation
of the Hugging Face transformers forward pass of ``Qwen2ForCausalLM`` and
``LlamaForCausalLM`` (see ``forward`` below):

    embed_tokens -> per layer:
        x = x + o_proj(attn(rope(q_proj(rms(x))), rope(k_proj(rms(x))), v_proj(rms(x))))
        x = x + down_proj(silu(gate_proj(rms(x))) * up_proj(rms(x)))
    -> norm -> lm_head (== embed_tokens when tie_word_embeddings)

with RMSNorm ``x * rsqrt(mean(x^2) + eps) * w``, RoPE in HF's rotate-half
layout with ``inv_freq = 1 / theta ** (arange(0, d, 2) / d)``, causal
grouped-query attention scaled by ``1/sqrt(head_dim)``, q/k/v biases for
Qwen2 (Llama: only when ``attention_bias``, which also adds an o_proj bias),
``head_dim = config.get("head_dim", hidden // heads)`` and the RoPE theta
read from either ``rope_parameters.rope_theta`` (transformers 5) or the
top-level ``rope_theta`` (transformers 4).

Validation: before writing anything, the script runs this implementation on
the transformers-made fixture ``/work/shared/fixtures/hf/qwen2-tiny`` (override
with ``$AHA_HF_FIXTURE``; logits produced by transformers 5.17 in float32) and
asserts that, for every sequence and position, the max |logit difference| is
below 1e-5 x that row's max |logit|, and that its 24-token greedy continuation
is reproduced exactly.  If that fixture is missing the script refuses to run
(pass ``--skip-validation`` to override, at your own risk).

Every fixture folder is Hugging Face-shaped: config.json, generation_config.json,
safetensors weights (bf16 / f16 / f32, single file or sharded with
model.safetensors.index.json) and reference.json with the same schema as the
transformers fixture::

    {"config": <name>, "inputs": [[ids...] x3], "logits": [seq][pos][vocab],
     "greedy": {"prompt": [4 ids], "generated": [24 ids]},
     "greedy_min_margin": <smallest top1-top2 logit gap along the greedy run>,
     "greedy_text": {"prompt": str, "prompt_ids": [...], "generated": [24 ids],
                     "generated_text": str, "min_margin": float}  # qwen2-tokenizer only}

prompt_ids / generated_text come from the HF `tokenizers` library applied to the
copied tokenizer.json.  In qwen2-tokenizer, embedding rows past the tokenizer's
vocabulary (ids >= 411 of 512) are scaled down to std 0.01 (padding rows), so
the text continuation only uses decodable ids.

The reference is computed in float64 from the *stored* weights upcast exactly
(bf16 -> f64 and f16 -> f64 are exact), so it is what a correct loader that
converts to f32 should reproduce up to f32 arithmetic error.  Logits are
written as the float32-rounded value in shortest round-trip form (about 8-9
significant digits; relative rounding error <= 6e-8, far below a 1e-4
tolerance).  Greedy decoding is a full recompute of the argmax at every step
(no EOS stopping); if any step has a top-1/top-2 gap below MIN_MARGIN or emits a
special token (ids < 16), the prompt is redrawn from the next seed.

Everything is seeded (numpy PCG64), so the output is byte-for-byte
deterministic for a given numpy version.
"""

import json
import os
import shutil
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures")
HF_DIR = os.environ.get("AHA_HF_FIXTURE", "/work/shared/fixtures/hf")
HF_FIXTURE = os.path.join(HF_DIR, "qwen2-tiny")
BPE_TOKENIZER = os.path.join(HF_DIR, "bpe-tokenizer", "tokenizer.json")

N_GREEDY = 24
# A greedy step is accepted only if the top-1 logit beats the runner-up by at
# least this much (absolute; logits here are O(1)), so f32 runtimes agree.
MIN_MARGIN = 1e-3
# Greedy continuations must avoid special tokens (EOS etc.) so that a runtime
# which stops on EOS still produces all 24 tokens.
FIRST_ORDINARY_ID = 16


# --------------------------------------------------------------------------
# safetensors I/O (by hand: numpy has no bfloat16)
# --------------------------------------------------------------------------

def bf16_bits_from_f32(x):
    """Round float32 -> bfloat16 (round to nearest, ties to even); uint16 bits."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16)


def f32_from_bf16_bits(u):
    return (np.asarray(u, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


_DT = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


def load_safetensors(path):
    """Return {name: float64 array} (exact upcast of the stored values)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        raw = np.frombuffer(data[base + s:base + e], dtype=np.dtype(_DT[info["dtype"]]).newbyteorder("<"))
        if info["dtype"] == "BF16":
            raw = f32_from_bf16_bits(raw)
        out[name] = raw.astype(np.float64).reshape(info["shape"])
    return out


def load_model_dir(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        weights = {}
        with open(idx) as f:
            wmap = json.load(f)["weight_map"]
        for shard in sorted(set(wmap.values())):
            weights.update(load_safetensors(os.path.join(d, shard)))
        assert set(weights) == set(wmap), "index/shard mismatch"
        return weights
    return load_safetensors(os.path.join(d, "model.safetensors"))


def save_safetensors(path, tensors):
    """tensors: {name: (dtype_str, shape, raw little-endian bytes)}; keys sorted like HF."""
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    blobs = []
    for name in sorted(tensors):
        dt, shape, raw = tensors[name]
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def encode_tensor(x, dtype):
    """Quantise a float64 array to the storage dtype.

    Returns ((dtype_str, shape, bytes), exact float64 value of what was stored).
    """
    x32 = np.asarray(x, dtype=np.float32)
    if dtype == "bf16":
        bits = bf16_bits_from_f32(x32)
        return ("BF16", x.shape, bits.astype("<u2").tobytes()), f32_from_bf16_bits(bits).astype(np.float64)
    if dtype == "f16":
        h = x32.astype(np.float16)
        return ("F16", x.shape, h.astype("<f2").tobytes()), h.astype(np.float64)
    if dtype == "f32":
        return ("F32", x.shape, x32.astype("<f4").tobytes()), x32.astype(np.float64)
    raise ValueError(dtype)


# --------------------------------------------------------------------------
# Reference forward pass (float64)
# --------------------------------------------------------------------------

def rope_theta(cfg):
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and "rope_theta" in rp:
        assert rp.get("rope_type", "default") == "default"
        return float(rp["rope_theta"])
    assert cfg.get("rope_scaling") in (None, {}), "rope scaling not implemented"
    return float(cfg.get("rope_theta", 10000.0))


def head_dim_of(cfg):
    hd = cfg.get("head_dim")
    return int(hd) if hd else cfg["hidden_size"] // cfg["num_attention_heads"]


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def linear(x, W, b=None):
    y = x @ W.T
    return y if b is None else y + b


def forward(cfg, W, ids):
    """Logits [T, vocab] (float64) for one token sequence, positions 0..T-1."""
    mt = cfg["model_type"]
    assert mt in ("qwen2", "llama"), mt
    assert cfg.get("hidden_act", "silu") == "silu"
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    D = head_dim_of(cfg)
    eps = cfg["rms_norm_eps"]
    qkv_bias = mt == "qwen2" or bool(cfg.get("attention_bias", False))
    o_bias = mt == "llama" and bool(cfg.get("attention_bias", False))
    mlp_bias = mt == "llama" and bool(cfg.get("mlp_bias", False))
    assert not (mt == "qwen2" and cfg.get("use_sliding_window"))

    ids = np.asarray(ids)
    T = len(ids)
    x = W["model.embed_tokens.weight"][ids]
    inv_freq = 1.0 / (rope_theta(cfg) ** (np.arange(0, D, 2, dtype=np.float64) / D))
    freqs = np.arange(T, dtype=np.float64)[:, None] * inv_freq[None, :]
    emb = np.concatenate([freqs, freqs], axis=-1)          # [T, D]
    cos, sin = np.cos(emb)[None], np.sin(emb)[None]          # [1, T, D]
    causal = np.triu(np.ones((T, T), dtype=bool), k=1)

    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        g = lambda n: W.get(p + n)
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = linear(h, g("self_attn.q_proj.weight"), g("self_attn.q_proj.bias") if qkv_bias else None)
        k = linear(h, g("self_attn.k_proj.weight"), g("self_attn.k_proj.bias") if qkv_bias else None)
        v = linear(h, g("self_attn.v_proj.weight"), g("self_attn.v_proj.bias") if qkv_bias else None)
        q = q.reshape(T, H, D).transpose(1, 0, 2)            # [H, T, D]
        k = k.reshape(T, KV, D).transpose(1, 0, 2)
        v = v.reshape(T, KV, D).transpose(1, 0, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = H // KV                                        # repeat_kv
        k = np.repeat(k, rep, axis=0)
        v = np.repeat(v, rep, axis=0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(D)            # [H, T, T]
        s = np.where(causal[None], -np.inf, s)
        s = s - s.max(axis=-1, keepdims=True)
        a = np.exp(s)
        a = a / a.sum(axis=-1, keepdims=True)
        o = (a @ v).transpose(1, 0, 2).reshape(T, H * D)
        x = x + linear(o, g("self_attn.o_proj.weight"), g("self_attn.o_proj.bias") if o_bias else None)

        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        gb = g("mlp.gate_proj.bias") if mlp_bias else None
        ub = g("mlp.up_proj.bias") if mlp_bias else None
        db = g("mlp.down_proj.bias") if mlp_bias else None
        gt = linear(h, g("mlp.gate_proj.weight"), gb)
        up = linear(h, g("mlp.up_proj.weight"), ub)
        x = x + linear(gt / (1.0 + np.exp(-gt)) * up, g("mlp.down_proj.weight"), db)

    x = rms_norm(x, W["model.norm.weight"], eps)
    lm = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", True) and "lm_head.weight" not in W \
        else W["lm_head.weight"]
    return x @ lm.T


def greedy(cfg, W, prompt, n=N_GREEDY):
    """Greedy continuation (full recompute each step). Returns (tokens, min top1-top2 margin)."""
    seq = list(prompt)
    out, margin = [], np.inf
    for _ in range(n):
        last = forward(cfg, W, seq)[-1]
        top2 = np.sort(last)[-2:]
        margin = min(margin, float(top2[1] - top2[0]))
        t = int(np.argmax(last))
        out.append(t)
        seq.append(t)
    return out, margin


# --------------------------------------------------------------------------
# Step 1: validation against the transformers-made fixture
# --------------------------------------------------------------------------

def validate_against_hf(d=HF_FIXTURE):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(d, "reference.json")) as f:
        ref = json.load(f)
    W = load_model_dir(d)
    worst = 0.0
    for ids, want in zip(ref["inputs"], ref["logits"]):
        got = forward(cfg, W, ids)
        want = np.asarray(want, dtype=np.float64)
        assert got.shape == want.shape, (got.shape, want.shape)
        rel = np.abs(got - want).max(axis=-1) / np.abs(want).max(axis=-1)
        worst = max(worst, float(rel.max()))
    gen, margin = greedy(cfg, W, ref["greedy"]["prompt"], len(ref["greedy"]["generated"]))
    ok_greedy = gen == ref["greedy"]["generated"]
    print(f"[validate] {d}: max rel logit err {worst:.3e} (limit 1e-5), "
          f"greedy {'MATCH' if ok_greedy else 'MISMATCH'} ({len(gen)} tokens, min margin {margin:.4g})")
    assert worst < 1e-5, f"logits differ from transformers reference: {worst}"
    assert ok_greedy, f"greedy mismatch: {gen} vs {ref['greedy']['generated']}"
    return worst


# --------------------------------------------------------------------------
# Step 2: fixture generation
# --------------------------------------------------------------------------

def cfg_llama_tf4(hidden, heads, kv, layers, inter, vocab, tied, theta, dtype, head_dim=None, max_pos=512):
    c = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": None,
        "eos_token_id": None,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.1,
        "intermediate_size": inter,
        "max_position_embeddings": max_pos,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": theta,
        "tie_word_embeddings": tied,
        "torch_dtype": dtype,
        "transformers_version": "4.46.3",
        "use_cache": True,
        "vocab_size": vocab,
    }
    if head_dim is not None:
        c["head_dim"] = head_dim
    return dict(sorted(c.items()))


def cfg_qwen2_tf5(hidden, heads, kv, layers, inter, vocab, tied, theta, dtype, eps=1e-06, max_pos=256,
                  eos=None):
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": None,
        "dtype": dtype,
        "eos_token_id": eos,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.1,
        "intermediate_size": inter,
        "layer_types": ["full_attention"] * layers,
        "max_position_embeddings": max_pos,
        "max_window_layers": 28,
        "model_type": "qwen2",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv,
        "pad_token_id": None,
        "rms_norm_eps": eps,
        "rope_parameters": {"rope_theta": theta, "rope_type": "default"},
        "sliding_window": None,
        "tie_word_embeddings": tied,
        "transformers_version": "5.17.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab,
    }


VARIANTS = [
    dict(name="llama-gqa4-bf16-sharded", seed=1001, store="bf16", shards=2,
         cfg=cfg_llama_tf4(128, 8, 2, 3, 256, 320, False, 500000.0, "bfloat16")),
    dict(name="qwen2-mha-untied-f16", seed=1002, store="f16", shards=1,
         cfg=cfg_qwen2_tf5(96, 6, 6, 2, 192, 384, False, 1000000.0, "float16")),
    dict(name="llama-headdim-f32", seed=1003, store="f32", shards=1,
         cfg=cfg_llama_tf4(64, 4, 2, 2, 128, 256, True, 10000.0, "float32", head_dim=32)),
    dict(name="qwen2-tokenizer", seed=1004, store="f32", shards=1, tokenizer=True,
         cfg=cfg_qwen2_tf5(64, 4, 2, 2, 192, 512, True, 10000.0, "float32", eos=2)),
]

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
GREEDY_TEXT_PROMPT = "Wait, that's an aha moment: 12 + 30 = 42"


def random_weights(cfg, rng):
    """Float64 master weights in the HF naming; std 0.1 matrices, norms ~1+-0.3, biases std 0.2."""
    hid, inter, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim_of(cfg)
    qkv_bias = cfg["model_type"] == "qwen2" or cfg.get("attention_bias", False)
    std = cfg["initializer_range"]
    mat = lambda *s: rng.normal(0.0, std, size=s)
    norm = lambda n: 1.0 + rng.normal(0.0, 0.3, size=(n,))
    bias = lambda n: rng.normal(0.0, 0.2, size=(n,))
    W = {"model.embed_tokens.weight": mat(V, hid)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        W[p + "input_layernorm.weight"] = norm(hid)
        W[p + "self_attn.q_proj.weight"] = mat(H * D, hid)
        W[p + "self_attn.k_proj.weight"] = mat(KV * D, hid)
        W[p + "self_attn.v_proj.weight"] = mat(KV * D, hid)
        if qkv_bias:
            W[p + "self_attn.q_proj.bias"] = bias(H * D)
            W[p + "self_attn.k_proj.bias"] = bias(KV * D)
            W[p + "self_attn.v_proj.bias"] = bias(KV * D)
        W[p + "self_attn.o_proj.weight"] = mat(hid, H * D)
        W[p + "post_attention_layernorm.weight"] = norm(hid)
        W[p + "mlp.gate_proj.weight"] = mat(inter, hid)
        W[p + "mlp.up_proj.weight"] = mat(inter, hid)
        W[p + "mlp.down_proj.weight"] = mat(hid, inter)
    W["model.norm.weight"] = norm(hid)
    if not cfg["tie_word_embeddings"]:
        W["lm_head.weight"] = mat(V, hid)
    return W


def fmt_f32(x):
    """Shortest decimal that round-trips to the same float32."""
    return np.format_float_positional(np.float32(x), unique=True, trim="-") if abs(x) >= 1e-4 or x == 0 \
        else np.format_float_scientific(np.float32(x), unique=True, trim="-")


def dump_reference(path, ref):
    """JSON writer: logits as float32 shortest-repr, everything else via json."""
    parts = []
    for k, v in ref.items():
        if k == "logits":
            seqs = ["[" + ",".join("[" + ",".join(fmt_f32(z) for z in row) + "]" for row in seq) + "]"
                    for seq in v]
            parts.append(json.dumps(k) + ": [" + ",\n".join(seqs) + "]")
        else:
            parts.append(json.dumps(k) + ": " + json.dumps(v))
    with open(path, "w") as f:
        f.write("{" + ",\n".join(parts) + "}\n")


def write_weights(d, stored_tensors, shards):
    names = list(stored_tensors)  # insertion order == HF state-dict order
    if shards == 1:
        save_safetensors(os.path.join(d, "model.safetensors"), stored_tensors)
        return
    total = sum(len(stored_tensors[n][2]) for n in names)
    # Greedy split by bytes in state-dict order (a layer may straddle shards, as in HF).
    groups, cur, acc = [], [], 0
    for n in names:
        if len(groups) < shards - 1 and cur and acc + len(stored_tensors[n][2]) > total * (len(groups) + 1) / shards:
            groups.append(cur)
            cur = []
        cur.append(n)
        acc += len(stored_tensors[n][2])
    groups.append(cur)
    assert len(groups) == shards
    weight_map = {}
    for j, g in enumerate(groups):
        fn = f"model-{j + 1:05d}-of-{shards:05d}.safetensors"
        save_safetensors(os.path.join(d, fn), {n: stored_tensors[n] for n in g})
        for n in g:
            weight_map[n] = fn
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")


def pick_greedy(cfg, W, seed, prompt_fn):
    """Redraw prompts (seed, seed+1, ...) until the greedy run is unambiguous and special-free."""
    for attempt in range(1000):
        rng = np.random.default_rng(seed + attempt)
        prompt = prompt_fn(rng)
        gen, margin = greedy(cfg, W, prompt)
        if margin >= MIN_MARGIN and min(gen) >= FIRST_ORDINARY_ID:
            return prompt, gen, margin, seed + attempt
    raise RuntimeError("no unambiguous greedy prompt found")


def make_variant(v):
    cfg, name = v["cfg"], v["name"]
    d = os.path.join(OUT_DIR, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    rng = np.random.default_rng(v["seed"])
    master = random_weights(cfg, rng)
    tok = None
    if v.get("tokenizer"):
        from tokenizers import Tokenizer  # required for this variant
        tok = Tokenizer.from_file(BPE_TOKENIZER)
        n_tok = tok.get_vocab_size(with_added_tokens=True)
        assert n_tok <= cfg["vocab_size"]
        # Like real Qwen checkpoints, rows past the tokenizer's vocabulary are padding: give
        # them small (std 0.01) embeddings so greedy text stays decodable.
        master["model.embed_tokens.weight"][n_tok:] *= 0.1
    stored, W = {}, {}
    for n, x in master.items():
        stored[n], W[n] = encode_tensor(x, v["store"])
    write_weights(d, stored, v["shards"])
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    gen_cfg = {"_from_model_config": True, "transformers_version": cfg["transformers_version"], "use_cache": True}
    if cfg.get("eos_token_id") is not None:
        gen_cfg["eos_token_id"] = cfg["eos_token_id"]
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump(gen_cfg, f, indent=2)
        f.write("\n")

    # Round-trip: what a loader reads back must equal what the reference uses.
    back = load_model_dir(d)
    assert set(back) == set(W) and all(np.array_equal(back[n], W[n]) for n in W)

    V = cfg["vocab_size"]
    lo = FIRST_ORDINARY_ID if v.get("tokenizer") else 0
    inputs = [rng.integers(lo, V, size=L).tolist() for L in (16, 16, 11)]
    logits64 = [forward(cfg, back, ids) for ids in inputs]
    r32 = max(float(np.abs(l.astype(np.float32).astype(np.float64) - l).max()) for l in logits64)
    rel32 = max(float((np.abs(l.astype(np.float32).astype(np.float64) - l).max(-1) / np.abs(l).max(-1)).max())
                for l in logits64)

    prompt, gen, margin, gseed = pick_greedy(cfg, back, v["seed"] * 1000,
                                              lambda r: r.integers(FIRST_ORDINARY_ID, V, size=4).tolist())
    ref = {"config": name, "inputs": inputs, "logits": [l.tolist() for l in logits64],
           "greedy": {"prompt": prompt, "generated": gen}, "greedy_min_margin": margin}

    if v.get("tokenizer"):
        shutil.copyfile(BPE_TOKENIZER, os.path.join(d, "tokenizer.json"))
        tok_cfg = {
            "add_bos_token": False,
            "bos_token": None,
            "chat_template": QWEN_CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|im_end|>",
            "model_max_length": cfg["max_position_embeddings"],
            "pad_token": "<|endoftext|>",
            "tokenizer_class": "Qwen2Tokenizer",
        }
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(tok_cfg, f, indent=2)
            f.write("\n")
        pids = tok.encode(GREEDY_TEXT_PROMPT).ids
        assert tok.decode(pids) == GREEDY_TEXT_PROMPT
        tgen, tmargin = greedy(cfg, back, pids)
        assert tmargin >= MIN_MARGIN and FIRST_ORDINARY_ID <= min(tgen) and max(tgen) < n_tok, \
            f"greedy_text ambiguous (margin {tmargin}) or hits a special/padding token: reseed"
        ref["greedy_text"] = {"prompt": GREEDY_TEXT_PROMPT, "prompt_ids": pids, "generated": tgen,
                              "generated_text": tok.decode(tgen), "min_margin": tmargin}
        ref["greedy_min_margin"] = min(margin, tmargin)

    dump_reference(os.path.join(d, "reference.json"), ref)
    # Re-read and check the JSON logits against the float64 truth.
    with open(os.path.join(d, "reference.json")) as f:
        chk = json.load(f)
    assert chk["inputs"] == inputs and chk["greedy"]["generated"] == gen
    jerr = max(float(np.abs(np.asarray(a) - b).max()) for a, b in zip(chk["logits"], logits64))
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"[{name}] {v['store']} x{v['shards']} shard(s), {len(W)} tensors, "
          f"f64->f32 logit rounding: max abs {r32:.3e} (rel {rel32:.3e}), json vs f64 max abs {jerr:.3e}; "
          f"greedy seed {gseed}, min margin {ref['greedy_min_margin']:.4g}; {size / 1024:.0f} KiB")


def main():
    if "--skip-validation" in sys.argv:
        print("[validate] SKIPPED")
    else:
        if not os.path.exists(HF_FIXTURE):
            sys.exit(f"missing transformers fixture {HF_FIXTURE} (set AHA_HF_FIXTURE or --skip-validation)")
        validate_against_hf()
    os.makedirs(OUT_DIR, exist_ok=True)
    for v in VARIANTS:
        make_variant(v)


if __name__ == "__main__":
    main()
