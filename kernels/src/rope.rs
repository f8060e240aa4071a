//! Rotary position embedding (Su et al. 2021) in the rotate-half layout Hugging
//! Face's Llama/Qwen2 use: the pair of element i is element i + head_dim/2,
//! not its neighbour (the GPT-J layout).

/// The angle table for one position: cos/sin of pos·θ^(−2i/d), i < d/2.
/// Computed as Hugging Face does (inverse frequencies and angle in f32, then
/// cos/sin), so positions far into the context agree with it too.
pub fn cos_sin(pos: usize, head_dim: usize, theta: f32, cos: &mut [f32], sin: &mut [f32]) {
    let half = head_dim / 2;
    debug_assert!(cos.len() >= half && sin.len() >= half);
    for i in 0..half {
        let exponent = (2 * i) as f64 / head_dim as f64;
        let inv_freq = (1.0 / libm::pow(theta as f64, exponent)) as f32;
        let angle = (pos as f32 * inv_freq) as f64;
        cos[i] = libm::cos(angle) as f32;
        sin[i] = libm::sin(angle) as f32;
    }
}

pub mod scalar {
    /// Rotates each of the `x.len() / head_dim` heads of `x` in place.
    pub fn apply(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
        let half = head_dim / 2;
        for head in x.chunks_exact_mut(head_dim) {
            let (a, b) = head.split_at_mut(half);
            for i in 0..half {
                let (x0, x1) = (a[i], b[i]);
                a[i] = x0 * cos[i] - x1 * sin[i];
                b[i] = x1 * cos[i] + x0 * sin[i];
            }
        }
    }
}
