//! Q8_0: blocks of 32 values, one f16 scale `d` and 32 signed bytes;
//! value = q·d. Byte-compatible with ggml's `block_q8_0` (34 bytes: `d` little-
//! endian, then `qs`). Also the activation format of the integer dot products.

use crate::QK;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// One Q8_0 block. Alignment 1, so a `&[u8]` of any alignment casts to
/// `&[BlockQ8_0]` (`bytemuck::cast_slice`) without copying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ8_0 {
    /// f16 scale, little-endian bytes.
    pub d: [u8; 2],
    pub qs: [i8; QK],
}

impl BlockQ8_0 {
    pub const ZERO: BlockQ8_0 = BlockQ8_0 { d: [0; 2], qs: [0; QK] };

    #[inline]
    pub fn scale(&self) -> f32 {
        f16::from_le_bytes(self.d).to_f32()
    }
}

pub mod scalar {
    //! The specification: ggml's `quantize_row_q8_0_ref` and `ggml_vec_dot_q8_0_q8_0`.
    use super::*;

    /// `x.len()` must equal `out.len() * 32`.
    pub fn quantize_row(x: &[f32], out: &mut [BlockQ8_0]) {
        debug_assert_eq!(x.len(), out.len() * QK);
        for (block, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
            let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            block.d = f16::from_f32(d).to_le_bytes();
            for (q, &v) in block.qs.iter_mut().zip(xs) {
                *q = libm::roundf(v * id) as i8;
            }
        }
    }

    pub fn dequantize_row(blocks: &[BlockQ8_0], out: &mut [f32]) {
        debug_assert_eq!(out.len(), blocks.len() * QK);
        for (block, ys) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
            let d = block.scale();
            for (y, &q) in ys.iter_mut().zip(&block.qs) {
                *y = q as f32 * d;
            }
        }
    }

    /// Integer path: Σ_blocks d_w·d_x·Σ q_w·q_x, the inner sum in i32.
    pub fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
        debug_assert_eq!(w.len(), x.len());
        let mut sum = 0.0f32;
        for (a, b) in w.iter().zip(x) {
            let isum: i32 = a.qs.iter().zip(&b.qs).map(|(&p, &q)| p as i32 * q as i32).sum();
            sum += isum as f32 * (a.scale() * b.scale());
        }
        sum
    }

    /// Float path: dequantize on the fly against f32 activations.
    pub fn dot_f32(w: &[BlockQ8_0], x: &[f32]) -> f32 {
        debug_assert_eq!(w.len() * QK, x.len());
        let mut sum = 0.0f32;
        for (block, xs) in w.iter().zip(x.chunks_exact(QK)) {
            let s: f32 = block.qs.iter().zip(xs).map(|(&q, &v)| q as f32 * v).sum();
            sum += s * block.scale();
        }
        sum
    }
}
