//! Shared by the runtime's integration tests.

use aha_runtime::format::{Arch, Config, RopeScaling};

/// A two-layer Qwen2 with every feature small (GQA, biases, untied head).
pub fn tiny_config() -> Config {
    Config {
        arch: Arch::Qwen2,
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 64,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rope_theta: 10000.0,
        rope_scaling: RopeScaling::None,
        rms_norm_eps: 1e-6,
        max_position: 128,
        tie_embeddings: false,
        attention_bias: true,
    }
}
