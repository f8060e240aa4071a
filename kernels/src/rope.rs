//! Rotary position embedding (Su et al. 2021) in the rotate-half layout Hugging
//! Face's Llama/Qwen2 use: the pair of element i is element i + head_dim/2,
//! not its neighbour (the GPT-J layout).

/// The angle table for one position: cos/sin of pos·θ^(−2i/d), i < d/2.
/// Computed as Hugging Face does (inverse frequencies and angle in f32, then
/// cos/sin), so positions far into the context agree with it too.
pub fn cos_sin(pos: usize, head_dim: usize, theta: f32, cos: &mut [f32], sin: &mut [f32]) {
    cos_sin_with(pos, head_dim, |i| inv_freq(i, head_dim, theta), cos, sin)
}

/// θ^(−2i/d), the inverse frequency of pair `i`.
pub fn inv_freq(i: usize, head_dim: usize, theta: f32) -> f32 {
    let exponent = (2 * i) as f64 / head_dim as f64;
    (1.0 / libm::pow(theta as f64, exponent)) as f32
}

/// Llama 3.1's frequency-dependent scaling of one inverse frequency: long
/// wavelengths are divided by `factor`, short ones kept, the band between
/// interpolated (transformers' `_compute_llama3_parameters`).
pub fn llama3_scale(inv_freq: f32, factor: f32, low_freq_factor: f32, high_freq_factor: f32, original_max_position: f32) -> f32 {
    let low_freq_wavelen = original_max_position / low_freq_factor;
    let high_freq_wavelen = original_max_position / high_freq_factor;
    let wavelen = 2.0 * core::f32::consts::PI / inv_freq;
    if wavelen < high_freq_wavelen {
        inv_freq
    } else if wavelen > low_freq_wavelen {
        inv_freq / factor
    } else {
        let smooth = (original_max_position / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
        (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
    }
}

/// The angle table for one position from any inverse-frequency rule.
pub fn cos_sin_with(pos: usize, head_dim: usize, inv_freq: impl Fn(usize) -> f32, cos: &mut [f32], sin: &mut [f32]) {
    let half = head_dim / 2;
    for i in 0..half.min(cos.len()).min(sin.len()) {
        let angle = (pos as f32 * inv_freq(i)) as f64;
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
