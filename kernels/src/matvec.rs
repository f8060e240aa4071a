//! Matrix–vector products over any weight format: the one entry point the
//! forward pass uses. Quantized weights take the integer path when the caller
//! supplies the Q8_0 form of the input (quantized once per input and shared by
//! every matvec that reads it, as llama.cpp does), else the float path.

use crate::{BlockQ4_0, BlockQ8_0, DType, Kernels};
use core::ops::Range;

/// A row-major weight matrix read in place: `rows` rows of `cols` elements.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    pub dtype: DType,
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
}

impl<'a> Matrix<'a> {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        // Validated when the matrix was made (the runtime checks every tensor).
        self.dtype.row_bytes(self.cols).unwrap_or(0)
    }

    /// The sub-matrix of rows `r`.
    pub fn rows(&self, r: Range<usize>) -> Matrix<'a> {
        let rb = self.row_bytes();
        Matrix { dtype: self.dtype, data: &self.data[r.start * rb..r.end * rb], rows: r.len(), cols: self.cols }
    }

    /// Row `i` dequantized into `out` (embedding lookup).
    pub fn dequantize_row(&self, i: usize, out: &mut [f32]) {
        crate::dtype::dequantize(self.dtype, self.rows(i..i + 1).data, out);
    }
}

/// A matvec input: the f32 vector and, optionally, its Q8_0 form.
#[derive(Clone, Copy)]
pub struct Activation<'a> {
    pub x: &'a [f32],
    pub q8: Option<&'a [BlockQ8_0]>,
}

/// out[r] = Σ_c w[r, c]·x[c] for every row of `w` (`out.len() == w.rows`).
pub fn matvec(k: &Kernels, w: &Matrix, act: &Activation, out: &mut [f32]) {
    debug_assert_eq!(out.len(), w.rows);
    debug_assert_eq!(act.x.len(), w.cols);
    match (w.dtype, act.q8) {
        (DType::F32, _) => (k.matvec_f32)(w.data, act.x, out),
        (DType::F16, _) => (k.matvec_f16)(w.data, act.x, out),
        (DType::BF16, _) => (k.matvec_bf16)(w.data, act.x, out),
        (DType::Q8_0, Some(q)) => (k.matvec_q8_0)(bytemuck::cast_slice(w.data), q, out),
        (DType::Q4_0, Some(q)) => (k.matvec_q4_0)(bytemuck::cast_slice(w.data), q, out),
        (DType::Q8_0, None) => {
            let blocks: &[BlockQ8_0] = bytemuck::cast_slice(w.data);
            for (o, row) in out.iter_mut().zip(blocks.chunks_exact(w.cols / crate::QK)) {
                *o = (k.dot_q8_0_f32)(row, act.x);
            }
        }
        (DType::Q4_0, None) => {
            let blocks: &[BlockQ4_0] = bytemuck::cast_slice(w.data);
            for (o, row) in out.iter_mut().zip(blocks.chunks_exact(w.cols / crate::QK)) {
                *o = (k.dot_q4_0_f32)(row, act.x);
            }
        }
    }
}

/// Calls `f(rows, outs)` on consecutive groups of `group` weight rows (`nb`
/// blocks or elements each) and their outputs, then on each leftover row
/// alone: the SIMD backends' row blocking. Rows beyond `out.len()` are ignored.
#[allow(dead_code)] // unused on targets without a SIMD backend
pub(crate) fn row_groups<B>(w: &[B], nb: usize, group: usize, out: &mut [f32], mut f: impl FnMut(&[B], &mut [f32])) {
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    let rows = out.len().min(w.len() / nb);
    // Exactly `rows` rows of weights, so the remainder is the rows after the last group.
    let (w, out) = (&w[..rows * nb], &mut out[..rows]);
    let mut wg = w.chunks_exact(nb * group);
    let mut og = out.chunks_exact_mut(group);
    for (wr, or) in (&mut wg).zip(&mut og) {
        f(wr, or);
    }
    for (wr, or) in wg.remainder().chunks_exact(nb).zip(og.into_remainder().chunks_exact_mut(1)) {
        f(wr, or);
    }
}

/// A batch of `n` matvec inputs of `cols` each (row-major), and optionally
/// their Q8_0 forms: the prompt's tokens, processed together so each weight
/// row is read from memory once per batch instead of once per token.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    pub x: &'a [f32],
    pub q8: Option<&'a [BlockQ8_0]>,
    pub n: usize,
}

impl<'a> Batch<'a> {
    /// Input `b` as a single activation.
    pub fn get(&self, b: usize) -> Activation<'a> {
        let cols = self.x.len() / self.n.max(1);
        Activation {
            x: &self.x[b * cols..(b + 1) * cols],
            q8: self.q8.map(|q| {
                let blocks = q.len() / self.n.max(1);
                &q[b * blocks..(b + 1) * blocks]
            }),
        }
    }
}

/// For every row r of `w` and input b: `put(b, r, w[r]·x_b)`. Rows outer,
/// inputs inner, so a weight row stays in L1 while every input uses it.
pub fn matmul(k: &Kernels, w: &Matrix, batch: &Batch, mut put: impl FnMut(usize, usize, f32)) {
    let rb = w.row_bytes();
    for r in 0..w.rows {
        let row = &w.data[r * rb..(r + 1) * rb];
        for b in 0..batch.n {
            let act = batch.get(b);
            let y = match (w.dtype, act.q8) {
                (DType::F32, _) => (k.dot_f32)(row, act.x),
                (DType::F16, _) => (k.dot_f16)(row, act.x),
                (DType::BF16, _) => (k.dot_bf16)(row, act.x),
                (DType::Q8_0, Some(q)) => (k.dot_q8_0_q8_0)(bytemuck::cast_slice(row), q),
                (DType::Q4_0, Some(q)) => (k.dot_q4_0_q8_0)(bytemuck::cast_slice(row), q),
                (DType::Q8_0, None) => (k.dot_q8_0_f32)(bytemuck::cast_slice(row), act.x),
                (DType::Q4_0, None) => (k.dot_q4_0_f32)(bytemuck::cast_slice(row), act.x),
            };
            put(b, r, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_equals_one_matvec_per_input() {
        let (rows, cols, n) = (9, 64, 3);
        let w: std::vec::Vec<f32> = (0..rows * cols).map(|i| ((i * 37) % 23) as f32 / 23.0 - 0.5).collect();
        let x: std::vec::Vec<f32> = (0..n * cols).map(|i| ((i * 11) % 17) as f32 / 17.0 - 0.5).collect();
        let k = crate::scalar();
        for dtype in DType::ALL {
            let mut bytes = std::vec![0u8; dtype.row_bytes(cols).unwrap() * rows];
            crate::dtype::quantize(dtype, &w, &mut bytes);
            let m = Matrix { dtype, data: &bytes, rows, cols };
            let mut q = std::vec![BlockQ8_0::ZERO; n * cols / crate::QK];
            (k.quantize_q8_0)(&x, &mut q);
            let batch = Batch { x: &x, q8: Some(&q), n };
            let mut got = std::vec![0f32; n * rows];
            matmul(k, &m, &batch, |b, r, y| got[b * rows + r] = y);
            for b in 0..n {
                let mut want = std::vec![0f32; rows];
                matvec(k, &m, &batch.get(b), &mut want);
                assert_eq!(&got[b * rows..(b + 1) * rows], &want[..], "{dtype}");
            }
        }
    }
}
