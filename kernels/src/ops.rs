//! Element-wise and row kernels of the forward pass: RMSNorm, softmax, the
//! SiLU-gated product (SwiGLU) and bias addition. All in place or into a
//! caller's buffer; nothing allocates.

pub mod scalar {
    #[inline]
    fn read(b: &[u8]) -> f32 {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// out = x / sqrt(mean(x²) + eps) · w, with `w` little-endian f32 bytes
    /// (Zhang & Sennrich 2019; HF computes the mean in f32 as here).
    pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[u8], eps: f32) {
        debug_assert_eq!(out.len(), x.len());
        debug_assert_eq!(w.len(), x.len() * 4);
        let ss: f32 = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
        let scale = 1.0 / libm::sqrtf(ss + eps);
        for ((o, &v), b) in out.iter_mut().zip(x).zip(w.chunks_exact(4)) {
            *o = v * scale * read(b);
        }
    }

    /// Numerically stable softmax in place.
    pub fn softmax(x: &mut [f32]) {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0.0f32;
        for v in x.iter_mut() {
            *v = libm::expf(*v - max);
            sum += *v;
        }
        let inv = 1.0 / sum;
        for v in x.iter_mut() {
            *v *= inv;
        }
    }

    /// gate = silu(gate) · up, silu(g) = g·σ(g) (Shazeer 2020, SwiGLU).
    pub fn swiglu(gate: &mut [f32], up: &[f32]) {
        debug_assert_eq!(gate.len(), up.len());
        for (g, &u) in gate.iter_mut().zip(up) {
            *g = *g / (1.0 + libm::expf(-*g)) * u;
        }
    }

    /// y += b, with `b` little-endian f32 bytes (q/k/v projection biases).
    pub fn add_bias(y: &mut [f32], b: &[u8]) {
        debug_assert_eq!(b.len(), y.len() * 4);
        for (o, c) in y.iter_mut().zip(b.chunks_exact(4)) {
            *o += read(c);
        }
    }
}
