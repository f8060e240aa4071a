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
