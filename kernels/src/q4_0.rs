//! Q4_0: blocks of 32 values, one f16 scale `d` and 16 bytes; byte j holds
//! element j in its low nibble and element j+16 in its high nibble;
//! value = (q − 8)·d. Byte-compatible with ggml's `block_q4_0` (18 bytes).

use crate::{BlockQ8_0, QK};
use bytemuck::{Pod, Zeroable};
use half::f16;

/// One Q4_0 block. Alignment 1, like [`BlockQ8_0`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4_0 {
    /// f16 scale, little-endian bytes.
    pub d: [u8; 2],
    pub qs: [u8; QK / 2],
}

impl BlockQ4_0 {
    #[inline]
    pub fn scale(&self) -> f32 {
        f16::from_le_bytes(self.d).to_f32()
    }

    /// The 4-bit codes (0..=15) of the 32 elements, in element order.
    #[inline]
    pub fn codes(&self) -> [u8; QK] {
        let mut out = [0u8; QK];
        for j in 0..QK / 2 {
            out[j] = self.qs[j] & 0x0F;
            out[j + QK / 2] = self.qs[j] >> 4;
        }
        out
    }
}

pub mod scalar {
    //! The specification: ggml's `quantize_row_q4_0_ref` and `ggml_vec_dot_q4_0_q8_0`.
    use super::*;

    pub fn quantize_row(x: &[f32], out: &mut [BlockQ4_0]) {
        debug_assert_eq!(x.len(), out.len() * QK);
        for (block, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
            // The value of largest magnitude, sign kept, maps to code 0 (−8·d).
            let (mut amax, mut max) = (0.0f32, 0.0f32);
            for &v in xs {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            let d = max / -8.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            block.d = f16::from_f32(d).to_le_bytes();
            for j in 0..QK / 2 {
                // Truncation after +8.5 is ggml's rounding; keep it for byte equality.
                let lo = ((xs[j] * id + 8.5) as i8).min(15) as u8;
                let hi = ((xs[j + QK / 2] * id + 8.5) as i8).min(15) as u8;
                block.qs[j] = lo | (hi << 4);
            }
        }
    }

    pub fn dequantize_row(blocks: &[BlockQ4_0], out: &mut [f32]) {
        debug_assert_eq!(out.len(), blocks.len() * QK);
        for (block, ys) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
            let d = block.scale();
            for (y, q) in ys.iter_mut().zip(block.codes()) {
                *y = (q as i32 - 8) as f32 * d;
            }
        }
    }

    /// Integer path: Σ_blocks d_w·d_x·Σ (q_w − 8)·q_x, the inner sum in i32.
    pub fn dot_q8_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
        debug_assert_eq!(w.len(), x.len());
        let mut sum = 0.0f32;
        for (a, b) in w.iter().zip(x) {
            let isum: i32 = a.codes().iter().zip(&b.qs).map(|(&p, &q)| (p as i32 - 8) * q as i32).sum();
            sum += isum as f32 * (a.scale() * b.scale());
        }
        sum
    }

    pub fn dot_f32(w: &[BlockQ4_0], x: &[f32]) -> f32 {
        debug_assert_eq!(w.len() * QK, x.len());
        let mut sum = 0.0f32;
        for (block, xs) in w.iter().zip(x.chunks_exact(QK)) {
            let s: f32 = block.codes().iter().zip(xs).map(|(&q, &v)| (q as i32 - 8) as f32 * v).sum();
            sum += s * block.scale();
        }
        sum
    }
}
