//! F32 weights, read from little-endian bytes (so a file mapped at any
//! alignment works), and the f32·f32 helpers attention uses.

pub mod scalar {
    #[inline]
    fn read(b: &[u8]) -> f32 {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn quantize_row(x: &[f32], out: &mut [u8]) {
        debug_assert_eq!(out.len(), x.len() * 4);
        for (o, &v) in out.chunks_exact_mut(4).zip(x) {
            o.copy_from_slice(&v.to_le_bytes());
        }
    }

    pub fn dequantize_row(w: &[u8], out: &mut [f32]) {
        debug_assert_eq!(w.len(), out.len() * 4);
        for (y, b) in out.iter_mut().zip(w.chunks_exact(4)) {
            *y = read(b);
        }
    }

    /// Weight bytes · f32 activations.
    pub fn dot(w: &[u8], x: &[f32]) -> f32 {
        debug_assert_eq!(w.len(), x.len() * 4);
        // Eight partial sums: the compiler vectorises this, and the summation
        // order is fixed so results do not depend on the optimiser.
        let mut acc = [0.0f32; 8];
        let mut wc = w.chunks_exact(32);
        let mut xc = x.chunks_exact(8);
        for (wb, xs) in (&mut wc).zip(&mut xc) {
            for k in 0..8 {
                acc[k] += read(&wb[4 * k..]) * xs[k];
            }
        }
        let mut tail = 0.0f32;
        for (b, &v) in wc.remainder().chunks_exact(4).zip(xc.remainder()) {
            tail += read(b) * v;
        }
        acc.iter().sum::<f32>() + tail
    }

    /// f32 · f32 (query · key with an f32 KV cache).
    pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        let mut acc = [0.0f32; 8];
        let mut ac = a.chunks_exact(8);
        let mut bc = b.chunks_exact(8);
        for (xs, ys) in (&mut ac).zip(&mut bc) {
            for k in 0..8 {
                acc[k] += xs[k] * ys[k];
            }
        }
        let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
        acc.iter().sum::<f32>() + tail
    }

    /// y += a·x (weighting values by attention).
    pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
        debug_assert_eq!(x.len(), y.len());
        for (o, &v) in y.iter_mut().zip(x) {
            *o += a * v;
        }
    }
}
