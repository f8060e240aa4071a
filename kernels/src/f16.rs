//! Half-precision weights, F16 (IEEE binary16) and BF16 (bfloat16), stored as
//! little-endian bytes so any byte slice can be read in place.

use half::{bf16, f16};

pub mod scalar {
    use super::*;

    pub fn quantize_row_f16(x: &[f32], out: &mut [u8]) {
        debug_assert_eq!(out.len(), x.len() * 2);
        for (o, &v) in out.chunks_exact_mut(2).zip(x) {
            o.copy_from_slice(&f16::from_f32(v).to_le_bytes());
        }
    }

    pub fn dequantize_row_f16(w: &[u8], out: &mut [f32]) {
        debug_assert_eq!(w.len(), out.len() * 2);
        for (y, b) in out.iter_mut().zip(w.chunks_exact(2)) {
            *y = f16::from_le_bytes([b[0], b[1]]).to_f32();
        }
    }

    pub fn quantize_row_bf16(x: &[f32], out: &mut [u8]) {
        debug_assert_eq!(out.len(), x.len() * 2);
        for (o, &v) in out.chunks_exact_mut(2).zip(x) {
            o.copy_from_slice(&bf16::from_f32(v).to_le_bytes());
        }
    }

    pub fn dequantize_row_bf16(w: &[u8], out: &mut [f32]) {
        debug_assert_eq!(w.len(), out.len() * 2);
        for (y, b) in out.iter_mut().zip(w.chunks_exact(2)) {
            *y = bf16::from_le_bytes([b[0], b[1]]).to_f32();
        }
    }

    pub fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
        debug_assert_eq!(w.len(), x.len() * 2);
        w.chunks_exact(2).zip(x).map(|(b, &v)| f16::from_le_bytes([b[0], b[1]]).to_f32() * v).sum()
    }

    pub fn dot_bf16(w: &[u8], x: &[f32]) -> f32 {
        debug_assert_eq!(w.len(), x.len() * 2);
        w.chunks_exact(2).zip(x).map(|(b, &v)| bf16::from_le_bytes([b[0], b[1]]).to_f32() * v).sum()
    }

    /// y += a·w, w in F16 (attention over an f16 KV cache).
    pub fn axpy_f16(a: f32, w: &[u8], y: &mut [f32]) {
        debug_assert_eq!(w.len(), y.len() * 2);
        for (o, b) in y.iter_mut().zip(w.chunks_exact(2)) {
            *o += a * f16::from_le_bytes([b[0], b[1]]).to_f32();
        }
    }
}
