//! Batched matrix products: one weight matrix against `n` inputs at once,
//! each weight read from memory once for all of them (prompt processing,
//! and decoding many sequences in one step).
//!
//! The weights stay where they are (the model file, read in place, at any
//! alignment); it is the *inputs* that are laid out for the kernels, once
//! per product and shared by every matrix that reads them, in groups of
//! [`LANES`] inputs:
//!
//! - integer path ([`PanelQ8`]): the Q8_0 form of each input, interleaved by
//!   4-byte words: word e (elements 4e..4e+4) of the group's eight inputs is
//!   one 32-byte run, so a kernel broadcasts four weight bytes and multiplies
//!   them with all eight inputs in one instruction (`vpmaddubsw`, `vpdpbusd`,
//!   `sdot`), an i32 lane per input. Scales are stored as f32, and each input
//!   block's Σq beside them (Q4_0's codes carry an offset of 8, taken back as
//!   8·Σq once per block).
//! - float path (`panel_f32`): the f32 inputs transposed, `[group][col][lane]`,
//!   so a kernel broadcasts one weight and does one FMA for eight inputs.
//!
//! A kernel keeps a tile of outputs in registers, several weight rows × one
//! or two groups of inputs, so each weight load serves up to 16 inputs and
//! each input load several rows. Lanes never interact: every output is
//! computed by the same operations in the same order whatever `n` is and
//! wherever its input sits in the batch, so a sequence's results do not
//! depend on the company it keeps (a batch of one gives the same bits as
//! the same input among 63 others).
//!
//! [`scalar`] is the specification: each output is the one-row dot product
//! of the format's scalar module, on the plain inputs (`x`, `q8`).

use crate::{dtype, Activation, BlockQ4_0, BlockQ8_0, DType, Kernels, Matrix, QK};
use bytemuck::{Pod, Zeroable};
use core::marker::PhantomData;
use core::ops::Range;

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod wasm;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

/// Inputs per group: the lanes of the batched kernels.
pub const LANES: usize = 8;

/// One Q8_0 block (32 elements) of a group of [`LANES`] inputs, interleaved
/// for the batched integer kernels (see the module documentation). Inputs
/// past the batch's end are zero (scale 0), so they add nothing.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct PanelQ8 {
    /// `qs[e][i]`: elements 4e..4e+4 of input i.
    pub qs: [[[i8; 4]; LANES]; QK / 4],
    /// Input i's scale, as f32 (exactly its f16 value).
    pub d: [f32; LANES],
    /// Σ of input i's 32 quants.
    pub sum: [i32; LANES],
}
const _: () = assert!(core::mem::size_of::<PanelQ8>() == 320);

impl PanelQ8 {
    pub const ZERO: PanelQ8 = PanelQ8 { qs: [[[0; 4]; LANES]; QK / 4], d: [0.0; LANES], sum: [0; LANES] };
}

/// `n` inputs of `cols` elements, ready for [`matmul`]: the f32 rows and,
/// as the weights need them, their Q8_0 rows and the kernels' panels.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    pub n: usize,
    pub cols: usize,
    /// `n × cols`, row-major.
    pub x: &'a [f32],
    /// `n × cols/32` Q8_0 blocks (the integer path), row-major.
    pub q8: Option<&'a [BlockQ8_0]>,
    /// `groups × cols/32` (empty without the integer path).
    pub panel_q8: &'a [PanelQ8],
    /// `groups × cols × LANES` (empty without the float path).
    pub panel_f32: &'a [f32],
}

/// Buffers [`Batch::prepare`] fills (any may be longer than needed).
pub struct BatchScratch<'s> {
    pub q8: &'s mut [BlockQ8_0],
    pub panel_q8: &'s mut [PanelQ8],
    pub panel_f32: &'s mut [f32],
}

impl<'a> Batch<'a> {
    /// Groups of [`LANES`] inputs that `n` inputs take.
    pub fn groups(n: usize) -> usize {
        n.div_ceil(LANES)
    }

    /// Q8_0 blocks the plain rows of `n` inputs of `cols` take.
    pub fn q8_len(n: usize, cols: usize) -> usize {
        n * cols.div_ceil(QK)
    }

    /// [`PanelQ8`]s that `n` inputs of `cols` take.
    pub fn panel_q8_len(n: usize, cols: usize) -> usize {
        Self::groups(n) * cols.div_ceil(QK)
    }

    /// f32s of the float panel of `n` inputs of `cols`.
    pub fn panel_f32_len(n: usize, cols: usize) -> usize {
        Self::groups(n) * cols * LANES
    }

    /// The batch of the `n` rows of `x`, for the integer path (`int`: Q8_0
    /// rows and panel; `cols` must be a whole number of blocks) and/or the
    /// float path (`float`: the f32 panel). Each input is quantized once here
    /// and shared by every matrix that reads the batch.
    pub fn prepare(k: &Kernels, x: &'a [f32], n: usize, int: bool, float: bool, s: BatchScratch<'a>) -> Batch<'a> {
        let cols = x.len().checked_div(n).unwrap_or(0);
        let x = &x[..n * cols];
        let int = int && cols.is_multiple_of(QK);
        let (q8, panel_q8): (Option<&'a [BlockQ8_0]>, &'a [PanelQ8]) = if int {
            let nb = cols / QK;
            let q8 = &mut s.q8[..n * nb];
            for (row, q) in x.chunks_exact(cols).zip(q8.chunks_exact_mut(nb.max(1))) {
                (k.quantize_q8_0)(row, q);
            }
            let panel = &mut s.panel_q8[..Self::panel_q8_len(n, cols)];
            pack_q8(q8, n, nb, panel);
            (Some(q8), panel)
        } else {
            (None, &[])
        };
        let panel_f32: &'a [f32] = if float {
            let panel = &mut s.panel_f32[..Self::panel_f32_len(n, cols)];
            pack_f32(x, n, cols, panel);
            panel
        } else {
            &[]
        };
        Batch { n, cols, x, q8, panel_q8, panel_f32 }
    }

    /// Input `b` as a single activation.
    pub fn get(&self, b: usize) -> Activation<'a> {
        let nb = self.cols / QK;
        Activation { x: &self.x[b * self.cols..(b + 1) * self.cols], q8: self.q8.map(|q| &q[b * nb..(b + 1) * nb]) }
    }
}

/// Interleaves `n` rows of `nb` Q8_0 blocks into panels (`groups × nb`).
pub fn pack_q8(q8: &[BlockQ8_0], n: usize, nb: usize, panel: &mut [PanelQ8]) {
    for (g, group) in panel.chunks_exact_mut(nb.max(1)).take(Batch::groups(n)).enumerate() {
        for (kb, p) in group.iter_mut().enumerate() {
            *p = PanelQ8::ZERO;
            for i in 0..LANES.min(n - g * LANES) {
                let block = &q8[(g * LANES + i) * nb + kb];
                p.d[i] = block.scale();
                p.sum[i] = block.qs.iter().map(|&q| q as i32).sum();
                for (e, word) in block.qs.chunks_exact(4).enumerate() {
                    p.qs[e][i].copy_from_slice(word);
                }
            }
        }
    }
}

/// Transposes `n` rows of `cols` f32 into the float panel (`[group][col][lane]`).
pub fn pack_f32(x: &[f32], n: usize, cols: usize, panel: &mut [f32]) {
    let groups = Batch::groups(n);
    for g in 0..groups {
        let group = &mut panel[g * cols * LANES..(g + 1) * cols * LANES];
        let live = LANES.min(n - g * LANES);
        if live < LANES {
            group.fill(0.0);
        }
        for i in 0..live {
            let row = &x[(g * LANES + i) * cols..(g * LANES + i + 1) * cols];
            for (c, &v) in row.iter().enumerate() {
                group[c * LANES + i] = v;
            }
        }
    }
}

/// Where a batched product writes: output (b, r) at `b·ld + r`, for `n`
/// inputs and `rows` rows (input-major, as the forward pass keeps its
/// activations). A view of a caller's `&mut [f32]`; the thread pool splits
/// it by rows.
pub struct MatOut<'a> {
    ptr: *mut f32,
    n: usize,
    rows: usize,
    ld: usize,
    _out: PhantomData<&'a mut [f32]>,
}

// SAFETY: a MatOut is a unique view of its elements (like `&mut [f32]`);
// shared references can only write through `rows_shared`, whose contract
// makes the row ranges of concurrent users disjoint.
unsafe impl Send for MatOut<'_> {}
unsafe impl Sync for MatOut<'_> {}

impl<'a> MatOut<'a> {
    /// `n` inputs × `rows` rows of `out`, input b's row at `out[b·ld..]`.
    pub fn new(out: &'a mut [f32], n: usize, rows: usize, ld: usize) -> MatOut<'a> {
        assert!(n <= 1 || rows <= ld, "rows must not overlap the next input's");
        assert!(n == 0 || (n - 1) * ld + rows <= out.len(), "output too short for {n} × {rows}");
        MatOut { ptr: out.as_mut_ptr(), n, rows, ld, _out: PhantomData }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes output (b, r).
    #[inline]
    pub fn set(&mut self, b: usize, r: usize, v: f32) {
        assert!(b < self.n && r < self.rows);
        // SAFETY: b < n and r < rows, so b·ld + r <= (n-1)·ld + rows - 1 <
        // out.len() (checked in `new`); `self` holds the unique borrow.
        unsafe { *self.ptr.add(b * self.ld + r) = v }
    }

    /// Outputs (b, r) for the rows `r` of input b, as a slice.
    #[inline]
    pub fn rows_of(&mut self, b: usize, r: Range<usize>) -> &mut [f32] {
        assert!(b < self.n && r.start <= r.end && r.end <= self.rows);
        // SAFETY: as `set`, for each of the rows (contiguous for one input);
        // the slice borrows `self` mutably.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(b * self.ld + r.start), r.len()) }
    }

    /// Output (b, r).
    #[inline]
    pub fn get(&self, b: usize, r: usize) -> f32 {
        assert!(b < self.n && r < self.rows);
        // SAFETY: as `set`, reading.
        unsafe { *self.ptr.add(b * self.ld + r) }
    }

    /// The view of rows `r` (for every input).
    pub fn sub(&mut self, r: Range<usize>) -> MatOut<'_> {
        assert!(r.start <= r.end && r.end <= self.rows);
        // SAFETY: the new view covers a subset of this one's elements and
        // borrows it mutably for its lifetime.
        MatOut { ptr: unsafe { self.ptr.add(r.start) }, n: self.n, rows: r.len(), ld: self.ld, _out: PhantomData }
    }

    /// The view of rows `r` through a shared reference, for threads.
    ///
    /// # Safety
    /// Views of one `MatOut` in use at the same time must have disjoint row
    /// ranges, and none may be used while the `MatOut` itself is.
    #[cfg(feature = "std")]
    pub(crate) unsafe fn rows_shared(&self, r: Range<usize>) -> MatOut<'a> {
        assert!(r.start <= r.end && r.end <= self.rows);
        // SAFETY: in bounds as `sub`; disjointness is the caller's promise.
        MatOut { ptr: unsafe { self.ptr.add(r.start) }, n: self.n, rows: r.len(), ld: self.ld, _out: PhantomData }
    }
}

/// out(b, r) = w[r]·x_b for every row of `w` and input of `batch`: quantized
/// weights take the integer path when the batch has Q8_0 inputs, as
/// [`crate::matvec`] does.
pub fn matmul(k: &Kernels, w: &Matrix, batch: &Batch, out: &mut MatOut) {
    debug_assert_eq!(out.rows, w.rows);
    debug_assert_eq!(out.n, batch.n);
    debug_assert_eq!(w.cols, batch.cols);
    if out.n == 0 || out.rows == 0 {
        return;
    }
    let d = w.data;
    match (w.dtype, batch.q8.is_some()) {
        (DType::F32, _) => (k.matmul_f32)(d, batch, out),
        (DType::F16, _) => (k.matmul_f16)(d, batch, out),
        (DType::BF16, _) => (k.matmul_bf16)(d, batch, out),
        (DType::Q8_0, true) => (k.matmul_q8_0)(bytemuck::cast_slice(d), batch, out),
        (DType::Q4_0, true) => (k.matmul_q4_0)(bytemuck::cast_slice(d), batch, out),
        (DType::Q8_0, false) => (k.matmul_q8_0_f32)(bytemuck::cast_slice(d), batch, out),
        (DType::Q4_0, false) => (k.matmul_q4_0_f32)(bytemuck::cast_slice(d), batch, out),
    }
}

pub mod scalar {
    //! The specification: every output is the format's one-row scalar dot
    //! product on the plain input.
    use super::*;
    use crate::{f16, f32, q4_0, q8_0};

    fn pairwise<B>(w: &[B], per_row: usize, n: usize, out: &mut MatOut, dot: impl Fn(&[B], usize) -> f32) {
        for r in 0..out.rows {
            let row = &w[r * per_row..(r + 1) * per_row];
            for b in 0..n {
                out.set(b, r, dot(row, b));
            }
        }
    }

    pub fn matmul_f32(w: &[u8], x: &Batch, out: &mut MatOut) {
        pairwise(w, x.cols * 4, x.n, out, |row, b| f32::scalar::dot(row, x.get(b).x))
    }

    pub fn matmul_f16(w: &[u8], x: &Batch, out: &mut MatOut) {
        pairwise(w, x.cols * 2, x.n, out, |row, b| f16::scalar::dot_f16(row, x.get(b).x))
    }

    pub fn matmul_bf16(w: &[u8], x: &Batch, out: &mut MatOut) {
        pairwise(w, x.cols * 2, x.n, out, |row, b| f16::scalar::dot_bf16(row, x.get(b).x))
    }

    pub fn matmul_q8_0_f32(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) {
        pairwise(w, x.cols / QK, x.n, out, |row, b| q8_0::scalar::dot_f32(row, x.get(b).x))
    }

    pub fn matmul_q4_0_f32(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) {
        pairwise(w, x.cols / QK, x.n, out, |row, b| q4_0::scalar::dot_f32(row, x.get(b).x))
    }

    /// Integer path (the batch's Q8_0 inputs).
    pub fn matmul_q8_0(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) {
        let q8 = x.q8.unwrap_or(&[]);
        let nb = x.cols / QK;
        pairwise(w, nb, x.n, out, |row, b| q8_0::scalar::dot_q8_0(row, &q8[b * nb..(b + 1) * nb]))
    }

    pub fn matmul_q4_0(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) {
        let q8 = x.q8.unwrap_or(&[]);
        let nb = x.cols / QK;
        pairwise(w, nb, x.n, out, |row, b| q4_0::scalar::dot_q8_0(row, &q8[b * nb..(b + 1) * nb]))
    }
}

// --- the tiling the SIMD backends share --------------------------------------

/// Rows of weights a float tile converts at a time, at most.
#[allow(dead_code)]
pub(crate) const MAX_TILE_ROWS: usize = 8;
/// Groups of inputs a float tile holds in registers, at most.
#[allow(dead_code)]
pub(crate) const MAX_TILE_GROUPS: usize = 2;
/// Columns of a float product taken at a time: the rows' slice (converted to
/// f32 when they are not) stays in L1 while every group of inputs uses it.
#[allow(dead_code)]
pub(crate) const KC: usize = 256;
/// Groups of inputs whose float accumulators a row tile keeps (64 inputs).
#[allow(dead_code)]
const SUPER: usize = 8;

/// Integer-path tiling: rows in tiles of `rt` (the remainder one at a time),
/// and for each, the input groups in tiles of `gt` (the last of fewer).
/// `tile(rows, rn, panels, gn, res)` computes `rn` rows (`rn·nb` blocks)
/// against `gn` groups (`gn·nb` panels) into `res[(r·gn + g)·LANES + lane]`.
#[allow(dead_code)]
pub(crate) fn int_tiles<B>(
    w: &[B],
    batch: &Batch,
    out: &mut MatOut,
    rt: usize,
    gt: usize,
    mut tile: impl FnMut(&[B], usize, &[PanelQ8], usize, &mut [f32]),
) {
    let nb = batch.cols / QK;
    let (n, rows, groups) = (batch.n, out.rows, Batch::groups(batch.n));
    assert!(w.len() >= rows * nb && batch.panel_q8.len() >= groups * nb, "weights or panels too short");
    assert!(rt * gt <= MAX_TILE_ROWS * MAX_TILE_GROUPS);
    let mut res = [0f32; MAX_TILE_ROWS * MAX_TILE_GROUPS * LANES];
    let mut r = 0;
    while r < rows {
        let rn = if rows - r >= rt { rt } else { 1 };
        let wr = &w[r * nb..(r + rn) * nb];
        let mut g = 0;
        while g < groups {
            let gn = gt.min(groups - g);
            tile(wr, rn, &batch.panel_q8[g * nb..(g + gn) * nb], gn, &mut res);
            for ri in 0..rn {
                for gi in 0..gn {
                    for lane in 0..LANES.min(n - (g + gi) * LANES) {
                        out.set((g + gi) * LANES + lane, r + ri, res[(ri * gn + gi) * LANES + lane]);
                    }
                }
            }
            g += gn;
        }
        r += rn;
    }
}

/// Float-path tiling. Rows in tiles of `rt` (the remainder one at a time);
/// for each, the columns in slices of [`KC`]: `rows(r, rn, k0, kl, buf)`
/// gives the tile's weights for columns `k0..k0 + kl` as little-endian f32
/// bytes, `rn` rows at a stride it returns, either in place (`Some`) or
/// converted into `buf` (`None`: row i at `buf[i·kl..]`). Every group tile
/// of `gt` groups (the remainder one at a time) then accumulates on them:
/// `tile(w, stride, rn, kl, panel, gn, acc, acc_stride)`, with `panel` the
/// groups' panels from column `k0` (a group every `cols·LANES` f32) and
/// `acc[r·acc_stride + g·LANES + lane]` its accumulators, kept across slices.
#[allow(dead_code, clippy::type_complexity)]
pub(crate) fn float_tiles<'x>(
    batch: &Batch,
    out: &mut MatOut,
    rt: usize,
    gt: usize,
    mut rows: impl FnMut(usize, usize, usize, usize, &mut [f32]) -> Option<(&'x [u8], usize)>,
    mut tile: impl FnMut(&[u8], usize, usize, usize, &[f32], usize, &mut [f32], usize),
) {
    let (n, cols, groups) = (batch.n, batch.cols, Batch::groups(batch.n));
    assert!(batch.panel_f32.len() >= groups * cols * LANES, "float panel too short");
    assert!(rt <= MAX_TILE_ROWS && gt <= MAX_TILE_GROUPS);
    let mut acc = [0f32; MAX_TILE_ROWS * SUPER * LANES];
    let mut buf = [0f32; MAX_TILE_ROWS * KC];
    let mut s0 = 0;
    while s0 < groups {
        let sg = SUPER.min(groups - s0);
        let stride = sg * LANES;
        let mut r = 0;
        while r < out.rows {
            let rn = if out.rows - r >= rt { rt } else { 1 };
            acc[..rn * stride].fill(0.0);
            let mut k0 = 0;
            while k0 < cols {
                let kl = KC.min(cols - k0);
                let (w, ws) = match rows(r, rn, k0, kl, &mut buf) {
                    Some(in_place) => in_place,
                    None => (bytemuck::cast_slice(&buf[..rn * kl]), kl * 4),
                };
                let mut g = 0;
                while g < sg {
                    let gn = if sg - g >= gt { gt } else { 1 };
                    let panel = &batch.panel_f32[((s0 + g) * cols + k0) * LANES..];
                    tile(w, ws, rn, kl, panel, gn, &mut acc[g * LANES..], stride);
                    g += gn;
                }
                k0 += kl;
            }
            for gi in 0..sg {
                for lane in 0..LANES.min(n - (s0 + gi) * LANES) {
                    let run = out.rows_of((s0 + gi) * LANES + lane, r..r + rn);
                    for (ri, o) in run.iter_mut().enumerate() {
                        *o = acc[ri * stride + gi * LANES + lane];
                    }
                }
            }
            r += rn;
        }
        s0 += sg;
    }
}

/// The `rows` of [`float_tiles`] for weights that are not f32: rows
/// `r..r + rn`, columns `k0..k0 + kl` of `w` (`cols` per row), converted by
/// `dequant(row slice, out)` into `buf`.
#[allow(dead_code, clippy::too_many_arguments)]
pub(crate) fn convert_rows<B: Pod>(
    w: &[B],
    dt: DType,
    cols: usize,
    r: usize,
    rn: usize,
    k0: usize,
    kl: usize,
    buf: &mut [f32],
    dequant: impl Fn(&[B], &mut [f32]),
) -> Option<(&'static [u8], usize)> {
    let per = |c: usize| c / dt.block_len() * dt.block_bytes() / core::mem::size_of::<B>();
    for ri in 0..rn {
        let start = per((r + ri) * cols + k0);
        dequant(&w[start..start + per(kl)], &mut buf[ri * kl..(ri + 1) * kl]);
    }
    None
}

/// The `rows` of [`float_tiles`] for f32 weights: in place.
#[allow(dead_code)]
pub(crate) fn f32_rows(w: &[u8], cols: usize, r: usize, rn: usize, k0: usize, kl: usize) -> Option<(&[u8], usize)> {
    let start = (r * cols + k0) * 4;
    Some((&w[start..start + ((rn - 1) * cols + kl) * 4], cols * 4))
}

/// The portable dequantization of [`converted_rows`] (any backend may use it).
#[allow(dead_code)]
pub(crate) fn dequant_any<B: Pod>(dt: DType) -> impl Fn(&[B], &mut [f32]) {
    move |w, out| dtype::dequantize(dt, bytemuck::cast_slice(w), out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    pub(crate) fn pseudo(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
            })
            .collect()
    }

    /// out(b, r) of every backend against the scalar specification, for
    /// `rows × cols` weights of every format and `n` inputs, written at a
    /// stride wider than `rows` (the element past each row must stay).
    pub(crate) fn check(rows: usize, cols: usize, n: usize) {
        let wf = pseudo(rows * cols, 1 + rows as u64);
        let x = pseudo(n * cols, 7 + n as u64);
        let q8_len = Batch::q8_len(n, cols);
        let (mut q8, mut pq, mut pf) =
            (vec![BlockQ8_0::ZERO; q8_len], vec![PanelQ8::ZERO; Batch::panel_q8_len(n, cols)], vec![0f32; Batch::panel_f32_len(n, cols)]);
        for dt in DType::ALL {
            let mut bytes = vec![0u8; dt.row_bytes(cols).unwrap() * rows];
            dtype::quantize(dt, &wf, &mut bytes);
            let m = Matrix { dtype: dt, data: &bytes, rows, cols };
            let paths: &[bool] = if dt.is_quantized() { &[true, false] } else { &[false] };
            for &int in paths {
                let ld = rows + 3;
                let run = |k: &Kernels, q8: &mut [BlockQ8_0], pq: &mut [PanelQ8], pf: &mut [f32]| {
                    let batch = Batch::prepare(k, &x, n, int, !int, BatchScratch { q8, panel_q8: pq, panel_f32: pf });
                    let mut got = vec![f32::NAN; n * ld];
                    matmul(k, &m, &batch, &mut MatOut::new(&mut got, n, rows, ld));
                    got
                };
                let want = run(crate::scalar(), &mut q8, &mut pq, &mut pf);
                for k in crate::backends() {
                    let got = run(k, &mut q8, &mut pq, &mut pf);
                    for b in 0..n {
                        for r in 0..ld {
                            let (g, w) = (got[b * ld + r], want[b * ld + r]);
                            if r >= rows {
                                assert!(g.is_nan(), "{} {dt} int={int}: wrote past row {r} of input {b}", k.name);
                                continue;
                            }
                            // The inner sums are exact (integer path) or f32
                            // sums in another order: a few ulps of Σ|w·x|.
                            let scale: f32 = (0..cols).map(|c| (wf[r * cols + c] * x[b * cols + c]).abs()).sum::<f32>() + 1.0;
                            assert!(
                                (g - w).abs() <= 2e-6 * scale * (cols as f32).sqrt(),
                                "{} {dt} int={int} rows={rows} cols={cols} n={n}: out({b}, {r}) = {g}, scalar {w}",
                                k.name
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_backend_equals_the_scalar_specification_on_odd_shapes() {
        // Rows and inputs that are not multiples of the tiles (rows 2..8,
        // groups of 8 inputs, slices of 256 columns), and one of each.
        // Under Miri (~1000x slower, scripts/miri.sh has a time budget):
        // one shape with a row and an input past the tiles.
        let shapes: &[(usize, usize, usize)] =
            if cfg!(miri) { &[(3, 32, 9)] } else { &[(1, 32, 1), (7, 64, 3), (13, 96, 9), (6, 320, 17), (5, 288, 8), (3, 32, 70)] };
        for &(rows, cols, n) in shapes {
            check(rows, cols, n);
        }
    }

    #[test]
    // Too slow for Miri's time budget; the shapes test above runs there.
    #[cfg_attr(miri, ignore)]
    fn outputs_do_not_depend_on_the_rest_of_the_batch() {
        let (rows, cols) = (11, 288);
        let wf = pseudo(rows * cols, 3);
        let x = pseudo(21 * cols, 4);
        for k in crate::backends() {
            for dt in DType::ALL {
                let mut bytes = vec![0u8; dt.row_bytes(cols).unwrap() * rows];
                dtype::quantize(dt, &wf, &mut bytes);
                let m = Matrix { dtype: dt, data: &bytes, rows, cols };
                let one = |xs: &[f32], n: usize| {
                    let mut q8 = vec![BlockQ8_0::ZERO; Batch::q8_len(n, cols)];
                    let mut pq = vec![PanelQ8::ZERO; Batch::panel_q8_len(n, cols)];
                    let mut pf = vec![0f32; Batch::panel_f32_len(n, cols)];
                    let int = dt.is_quantized();
                    let batch = Batch::prepare(k, xs, n, int, !int, BatchScratch { q8: &mut q8, panel_q8: &mut pq, panel_f32: &mut pf });
                    let mut got = vec![0f32; n * rows];
                    matmul(k, &m, &batch, &mut MatOut::new(&mut got, n, rows, rows));
                    got
                };
                let all = one(&x, 21);
                for b in [0, 7, 8, 20] {
                    let alone = one(&x[b * cols..(b + 1) * cols], 1);
                    assert_eq!(&all[b * rows..(b + 1) * rows], &alone[..], "{} {dt}: input {b}", k.name);
                }
            }
        }
    }

    #[test]
    fn panels_hold_the_inputs_interleaved() {
        let (n, cols) = (10, 64);
        let x = pseudo(n * cols, 9);
        let mut q8 = vec![BlockQ8_0::ZERO; Batch::q8_len(n, cols)];
        crate::q8_0::scalar::quantize_row(&x, &mut q8);
        let mut panel = vec![PanelQ8::ZERO; Batch::panel_q8_len(n, cols)];
        pack_q8(&q8, n, 2, &mut panel);
        // Input 9 is lane 1 of group 1; its block 1 is panel 1·2 + 1.
        let (p, b) = (&panel[3], &q8[9 * 2 + 1]);
        assert_eq!(p.d[1], b.scale());
        assert_eq!(p.sum[1], b.qs.iter().map(|&q| q as i32).sum::<i32>());
        assert_eq!(p.qs[5][1], [b.qs[20], b.qs[21], b.qs[22], b.qs[23]]);
        assert_eq!((p.d[2], p.sum[2], p.qs[0][2]), (0.0, 0, [0; 4]), "lanes past the batch are zero");
        let mut pf = vec![f32::NAN; Batch::panel_f32_len(n, cols)];
        pack_f32(&x, n, cols, &mut pf);
        assert_eq!(pf[(cols + 5) * LANES + 1], x[9 * cols + 5]);
        assert_eq!(pf[(cols + 5) * LANES + 2], 0.0);
    }
}
