//! wasm32 simd128 batched kernels over the parent module's panels: a panel
//! word of eight inputs is two 16-byte halves (inputs 0..4, 4..8).
//!
//! Integer path: a half widened to i16 (inputs 0, 1 and 2, 3), the four
//! weight bytes widened and repeated, `i32x4.dot_i16x8_s` (exact for every
//! i8): each input's sum sits in two lanes until the block ends, when a
//! pairwise add joins them. Float path: the weight splatted, multiplied and
//! added (simd128 has no fused multiply-add). Tiles of 4 rows × 1 group
//! (integer) and 4 rows × 2 groups (float).

use super::{convert_rows, f32_rows, float_tiles, int_tiles, Batch, MatOut, PanelQ8, LANES};
use crate::wasm::imp::{f16s, ldbf, ldh};
use crate::{BlockQ4_0, BlockQ8_0, DType, QK};
use core::arch::wasm32::*;

const I_ROWS: usize = 4;
const F_ROWS: usize = 4;
const F_GROUPS: usize = 2;

#[inline]
fn ld16(p: &[u8]) -> v128 {
    assert!(p.len() >= 16);
    // SAFETY: p[..16] is in bounds (asserted); v128_load has no alignment requirement.
    unsafe { v128_load(p.as_ptr().cast()) }
}

/// A panel word's halves, each widened to two i16x8 (inputs 0, 1 / 2, 3 of the half).
#[inline]
fn word(qs: &[[i8; 4]; LANES]) -> [[v128; 2]; 2] {
    let b: &[u8; 32] = bytemuck::cast_ref(qs);
    let (a, c) = (ld16(&b[..16]), ld16(&b[16..]));
    [[i16x8_extend_low_i8x16(a), i16x8_extend_high_i8x16(a)], [i16x8_extend_low_i8x16(c), i16x8_extend_high_i8x16(c)]]
}

/// The weights of a block as eight words (elements 4e..4e+4, as i8), and
/// the codes' offset taken back as offset·Σx.
trait IntWeights {
    fn words(&self) -> [u32; 8];
    fn scale(&self) -> [u8; 2];
    const OFFSET: i32;
}

impl IntWeights for BlockQ8_0 {
    #[inline]
    fn words(&self) -> [u32; 8] {
        let q: &[u8; 32] = bytemuck::cast_ref(&self.qs);
        core::array::from_fn(|e| u32::from_le_bytes([q[4 * e], q[4 * e + 1], q[4 * e + 2], q[4 * e + 3]]))
    }
    fn scale(&self) -> [u8; 2] {
        self.d
    }
    const OFFSET: i32 = 0;
}

impl IntWeights for BlockQ4_0 {
    #[inline]
    fn words(&self) -> [u32; 8] {
        // Byte j holds element j (low nibble) and j + 16 (high).
        core::array::from_fn(|e| {
            let w =
                u32::from_le_bytes([self.qs[4 * (e % 4)], self.qs[4 * (e % 4) + 1], self.qs[4 * (e % 4) + 2], self.qs[4 * (e % 4) + 3]]);
            if e < 4 {
                w & 0x0F0F_0F0F
            } else {
                (w >> 4) & 0x0F0F_0F0F
            }
        })
    }
    fn scale(&self) -> [u8; 2] {
        self.d
    }
    const OFFSET: i32 = 8;
}

/// `R` rows × one group of eight inputs into `res`.
#[inline]
fn int_tile<B: IntWeights, const R: usize>(w: &[B], nb: usize, p: &[PanelQ8], res: &mut [f32]) {
    assert!(w.len() >= R * nb && p.len() >= nb && res.len() >= R * LANES);
    let mut acc = [[f32x4_splat(0.0); 2]; R];
    for kb in 0..nb {
        let pg = &p[kb];
        // s[r][h][i]: half h, inputs (2i, 2i + 1) of the half, two lanes each.
        let mut s = [[[i32x4_splat(0); 2]; 2]; R];
        for e in 0..QK / 4 {
            let x = word(&pg.qs[e]);
            for (r, sr) in s.iter_mut().enumerate() {
                let wv = i16x8_extend_low_i8x16(u32x4_splat(w[r * nb + kb].words()[e]));
                for h in 0..2 {
                    for i in 0..2 {
                        sr[h][i] = i32x4_add(sr[h][i], i32x4_dot_i16x8(x[h][i], wv));
                    }
                }
            }
        }
        let dx = [ld16(bytemuck::cast_slice(&pg.d[..4])), ld16(bytemuck::cast_slice(&pg.d[4..]))];
        let off = [ld16(bytemuck::cast_slice(&pg.sum[..4])), ld16(bytemuck::cast_slice(&pg.sum[4..]))];
        for r in 0..R {
            let dw = f32x4_splat(f16s(w[r * nb + kb].scale()));
            for h in 0..2 {
                let [a, b] = s[r][h];
                let sum = i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(a, b), i32x4_shuffle::<1, 3, 5, 7>(a, b));
                let i = i32x4_sub(sum, i32x4_mul(off[h], i32x4_splat(B::OFFSET)));
                acc[r][h] = f32x4_add(acc[r][h], f32x4_mul(f32x4_convert_i32x4(i), f32x4_mul(dx[h], dw)));
            }
        }
    }
    for r in 0..R {
        for h in 0..2 {
            // SAFETY: r·8 + 4h + 4 <= R·8 <= res.len() (asserted).
            unsafe { v128_store(res.as_mut_ptr().add(r * LANES + 4 * h).cast(), acc[r][h]) };
        }
    }
}

pub(crate) fn matmul_q8_0(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) {
    let nb = x.cols / QK;
    int_tiles(w, x, out, I_ROWS, 1, |w, rn, p, _, res| match rn {
        I_ROWS => int_tile::<BlockQ8_0, I_ROWS>(w, nb, p, res),
        _ => int_tile::<BlockQ8_0, 1>(w, nb, p, res),
    })
}

pub(crate) fn matmul_q4_0(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) {
    let nb = x.cols / QK;
    int_tiles(w, x, out, I_ROWS, 1, |w, rn, p, _, res| match rn {
        I_ROWS => int_tile::<BlockQ4_0, I_ROWS>(w, nb, p, res),
        _ => int_tile::<BlockQ4_0, 1>(w, nb, p, res),
    })
}

/// `R` rows × `G` groups for `kl` columns onto `acc` (see `float_tiles`).
#[inline]
#[allow(clippy::too_many_arguments)]
fn f32_tile<const R: usize, const G: usize>(w: &[u8], ws: usize, kl: usize, p: &[f32], ps: usize, acc: &mut [f32], ast: usize) {
    assert!(kl > 0 && (R - 1) * ws + kl * 4 <= w.len());
    assert!((G - 1) * ps + kl * LANES <= p.len());
    assert!((R - 1) * ast + G * LANES <= acc.len());
    let (wp, pp, ap) = (w.as_ptr(), p.as_ptr(), acc.as_mut_ptr());
    // SAFETY (every pointer access below): within the bounds asserted above.
    let mut a: [[[v128; 2]; G]; R] = core::array::from_fn(|r| {
        core::array::from_fn(|g| core::array::from_fn(|h| unsafe { v128_load(ap.add(r * ast + g * LANES + 4 * h).cast()) }))
    });
    for k in 0..kl {
        let x: [[v128; 2]; G] =
            core::array::from_fn(|g| core::array::from_fn(|h| unsafe { v128_load(pp.add(g * ps + k * LANES + 4 * h).cast()) }));
        for (r, ar) in a.iter_mut().enumerate() {
            let wv = f32x4_splat(unsafe { wp.add(r * ws + 4 * k).cast::<f32>().read_unaligned() });
            for g in 0..G {
                for h in 0..2 {
                    ar[g][h] = f32x4_add(ar[g][h], f32x4_mul(wv, x[g][h]));
                }
            }
        }
    }
    for (r, ar) in a.iter().enumerate() {
        for (g, ag) in ar.iter().enumerate() {
            for (h, v) in ag.iter().enumerate() {
                unsafe { v128_store(ap.add(r * ast + g * LANES + 4 * h).cast(), *v) };
            }
        }
    }
}

#[inline]
fn float<'x>(x: &Batch, out: &mut MatOut, rows: impl FnMut(usize, usize, usize, usize, &mut [f32]) -> Option<(&'x [u8], usize)>) {
    let ps = x.cols * LANES;
    float_tiles(x, out, F_ROWS, F_GROUPS, rows, |w, ws, rn, kl, p, gn, acc, ast| match (rn, gn) {
        (F_ROWS, F_GROUPS) => f32_tile::<F_ROWS, F_GROUPS>(w, ws, kl, p, ps, acc, ast),
        (F_ROWS, _) => f32_tile::<F_ROWS, 1>(w, ws, kl, p, ps, acc, ast),
        (_, F_GROUPS) => f32_tile::<1, F_GROUPS>(w, ws, kl, p, ps, acc, ast),
        _ => f32_tile::<1, 1>(w, ws, kl, p, ps, acc, ast),
    })
}

pub(crate) fn matmul_f32(w: &[u8], x: &Batch, out: &mut MatOut) {
    let cols = x.cols;
    float(x, out, |r, rn, k0, kl, _| f32_rows(w, cols, r, rn, k0, kl))
}

pub(crate) fn matmul_f16(w: &[u8], x: &Batch, out: &mut MatOut) {
    let cols = x.cols;
    float(x, out, |r, rn, k0, kl, buf| {
        convert_rows(w, DType::F16, cols, r, rn, k0, kl, buf, |w, o| halves(w, o, ldh, crate::f16::scalar::dequantize_row_f16))
    })
}

pub(crate) fn matmul_bf16(w: &[u8], x: &Batch, out: &mut MatOut) {
    let cols = x.cols;
    float(x, out, |r, rn, k0, kl, buf| {
        convert_rows(w, DType::BF16, cols, r, rn, k0, kl, buf, |w, o| halves(w, o, ldbf, crate::f16::scalar::dequantize_row_bf16))
    })
}

pub(crate) fn matmul_q8_0_f32(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) {
    let cols = x.cols;
    float(x, out, |r, rn, k0, kl, buf| convert_rows(w, DType::Q8_0, cols, r, rn, k0, kl, buf, |w, o| blocks(w, o)))
}

pub(crate) fn matmul_q4_0_f32(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) {
    let cols = x.cols;
    float(x, out, |r, rn, k0, kl, buf| convert_rows(w, DType::Q4_0, cols, r, rn, k0, kl, buf, |w, o| blocks(w, o)))
}

/// F16 or BF16 bytes to f32, eight at a time by `ld` (exact), the rest by `tail`.
fn halves(w: &[u8], out: &mut [f32], ld: fn(&[u8], usize) -> (v128, v128), tail: fn(&[u8], &mut [f32])) {
    let mut i = 0;
    while i + 8 <= out.len() {
        let (a, b) = ld(w, 2 * i);
        // SAFETY: out[i..i + 8] is in bounds.
        unsafe {
            v128_store(out.as_mut_ptr().add(i).cast(), a);
            v128_store(out.as_mut_ptr().add(i + 4).cast(), b);
        }
        i += 8;
    }
    let n = out.len();
    tail(&w[2 * i..2 * n], &mut out[i..]);
}

/// Quantized blocks to f32, exactly the scalar values.
fn blocks<B: IntWeights>(w: &[B], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK)) {
        let d = f32x4_splat(f16s(b.scale()));
        for (e, word) in b.words().into_iter().enumerate() {
            let q = i32x4_extend_low_i16x8(i16x8_extend_low_i8x16(u32x4_splat(word)));
            let v = f32x4_mul(f32x4_convert_i32x4(i32x4_sub(q, i32x4_splat(B::OFFSET))), d);
            // SAFETY: o[4e..4e + 4] is in bounds (e < 8, o has 32).
            unsafe { v128_store(o.as_mut_ptr().add(4 * e).cast(), v) };
        }
    }
}
