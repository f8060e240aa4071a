//! aarch64 batched kernels over the parent module's panels: a panel word
//! of eight inputs is two 16-byte halves (inputs 0..4, 4..8), one i32 or f32
//! lane per input.
//!
//! - NEON, integer path: four weight bytes duplicated to every lane, `smull`
//!   by a half, pairwise-added into i32 (`sadalp`): each input's sum sits in
//!   two lanes until the block ends, when `addp` joins them. Exact for every i8.
//! - dotprod: `sdot` by element (`vm.4b[lane]`), one instruction per half
//!   and word, straight from a 16-byte load of the weights (four words).
//! - float path: `fmla` by element, from four consecutive weights of a row.
//!
//! Tiles: 4 rows × 1 group (integer), 4 rows × 2 groups (float).

use super::{convert_rows, f32_rows, float_tiles, int_tiles, Batch, MatOut, PanelQ8, LANES};
use crate::aarch64::kn::{f16s, ldbf, ldh};
use crate::{BlockQ4_0, BlockQ8_0, DType, QK};
use core::arch::aarch64::*;

const I_ROWS: usize = 4;
const F_ROWS: usize = 4;
const F_GROUPS: usize = 2;

/// The two halves (inputs 0..4 and 4..8) of a panel word.
#[inline]
#[target_feature(enable = "neon")]
fn word(qs: &[[i8; 4]; LANES]) -> (int8x16_t, int8x16_t) {
    let p = qs.as_ptr().cast::<i8>();
    // SAFETY: `qs` is 32 readable bytes; vld1q_s8 needs alignment 1.
    unsafe { (vld1q_s8(p), vld1q_s8(p.add(16))) }
}

#[inline]
#[target_feature(enable = "neon")]
fn ldf4(x: &[f32], i: usize) -> float32x4_t {
    assert!(i + 4 <= x.len());
    // SAFETY: x[i..i + 4] is in bounds (asserted).
    unsafe { vld1q_f32(x.as_ptr().add(i)) }
}

#[inline]
#[target_feature(enable = "neon")]
fn ldi4(x: &[i32], i: usize) -> int32x4_t {
    assert!(i + 4 <= x.len());
    // SAFETY: x[i..i + 4] is in bounds (asserted).
    unsafe { vld1q_s32(x.as_ptr().add(i)) }
}

/// Sixteen weight bytes (four words).
#[inline]
#[target_feature(enable = "neon")]
fn ld16(q: &[u8]) -> int8x16_t {
    assert!(q.len() >= 16);
    // SAFETY: q[..16] is in bounds (asserted); vld1q_s8 needs alignment 1.
    unsafe { vld1q_s8(q.as_ptr().cast()) }
}

/// Word `L` of `w` in every lane.
#[inline]
#[target_feature(enable = "neon")]
fn dup_word<const L: i32>(w: int8x16_t) -> int8x16_t {
    vreinterpretq_s8_s32(vdupq_laneq_s32::<L>(vreinterpretq_s32_s8(w)))
}

/// The block's weight words as sixteen-byte runs: Q8_0 words 0..4 and
/// 4..8; Q4_0 the codes of words 0..4 (low nibbles) and 4..8 (high).
trait IntWeights {
    fn words(&self) -> [int8x16_t; 2];
    fn scale(&self) -> [u8; 2];
    /// The codes' offset (8 for Q4_0), taken back as offset·Σx.
    const OFFSET: i32;
}

impl IntWeights for BlockQ8_0 {
    #[inline]
    fn words(&self) -> [int8x16_t; 2] {
        let q: &[u8; 32] = bytemuck::cast_ref(&self.qs);
        // SAFETY: NEON is part of every aarch64 target this crate builds the backend for.
        unsafe { [ld16(&q[..16]), ld16(&q[16..])] }
    }
    fn scale(&self) -> [u8; 2] {
        self.d
    }
    const OFFSET: i32 = 0;
}

impl IntWeights for BlockQ4_0 {
    #[inline]
    fn words(&self) -> [int8x16_t; 2] {
        // SAFETY: as for BlockQ8_0.
        unsafe {
            let v = vreinterpretq_u8_s8(ld16(&self.qs));
            [vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), vreinterpretq_s8_u8(vshrq_n_u8::<4>(v))]
        }
    }
    fn scale(&self) -> [u8; 2] {
        self.d
    }
    const OFFSET: i32 = 8;
}

/// `R` rows × one group of eight inputs into `res`, with `dot4(acc, x, w,
/// word)` the four-product step of one half.
macro_rules! int_tile {
    ($feat:literal, $name:ident, $step:ident, $finish:ident) => {
        #[inline]
        #[target_feature(enable = $feat)]
        fn $name<B: IntWeights, const R: usize>(w: &[B], nb: usize, p: &[PanelQ8], res: &mut [f32]) {
            assert!(w.len() >= R * nb && p.len() >= nb && res.len() >= R * LANES);
            let mut acc = [[vdupq_n_f32(0.0); 2]; R];
            for kb in 0..nb {
                let pg = &p[kb];
                let mut s = [[[vdupq_n_s32(0); 2]; 2]; R];
                for (r, sr) in s.iter_mut().enumerate() {
                    let ww = w[r * nb + kb].words();
                    for (e, wq) in [(0usize, ww[0]), (4, ww[1])] {
                        let x = [word(&pg.qs[e]), word(&pg.qs[e + 1]), word(&pg.qs[e + 2]), word(&pg.qs[e + 3])];
                        $step(sr, x, wq);
                    }
                }
                let dx = [ldf4(&pg.d, 0), ldf4(&pg.d, 4)];
                let off = [ldi4(&pg.sum, 0), ldi4(&pg.sum, 4)];
                for r in 0..R {
                    let dw = f16s(w[r * nb + kb].scale());
                    for h in 0..2 {
                        let i = vmlsq_n_s32($finish(s[r][h]), off[h], B::OFFSET);
                        acc[r][h] = vfmaq_f32(acc[r][h], vcvtq_f32_s32(i), vmulq_n_f32(dx[h], dw));
                    }
                }
            }
            for r in 0..R {
                for h in 0..2 {
                    // SAFETY: (r·8 + 4h + 4) <= R·8 <= res.len() (asserted).
                    unsafe { vst1q_f32(res.as_mut_ptr().add(r * LANES + 4 * h), acc[r][h]) };
                }
            }
        }
    };
}

/// NEON: per half, two i32x4 of pair sums (`[in0 01, in0 23, in1 01, in1 23]`
/// and likewise for inputs 2, 3), joined at the block's end.
#[inline]
#[target_feature(enable = "neon")]
fn neon_step(s: &mut [[int32x4_t; 2]; 2], x: [(int8x16_t, int8x16_t); 4], w: int8x16_t) {
    let ws = [dup_word::<0>(w), dup_word::<1>(w), dup_word::<2>(w), dup_word::<3>(w)];
    for (xj, wj) in x.iter().zip(ws) {
        for (h, xh) in [xj.0, xj.1].into_iter().enumerate() {
            s[h][0] = vpadalq_s16(s[h][0], vmull_s8(vget_low_s8(xh), vget_low_s8(wj)));
            s[h][1] = vpadalq_s16(s[h][1], vmull_high_s8(xh, wj));
        }
    }
}

#[inline]
#[target_feature(enable = "neon")]
fn neon_finish(s: [int32x4_t; 2]) -> int32x4_t {
    vpaddq_s32(s[0], s[1])
}

int_tile!("neon", neon_tile, neon_step, neon_finish);

/// acc + Σ of four products per lane: `a`'s bytes by word `L` of `b`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot<const L: i32>(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: `sdot` only reads and writes the named vector registers; this
    // function is compiled (and called) only with `dotprod` enabled.
    unsafe {
        core::arch::asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.4b[{l}]",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            l = const L,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// dotprod: one i32x4 per half (`s[h][0]`; `s[h][1]` unused).
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot_step(s: &mut [[int32x4_t; 2]; 2], x: [(int8x16_t, int8x16_t); 4], w: int8x16_t) {
    let half = |x: &(int8x16_t, int8x16_t), h: usize| if h == 0 { x.0 } else { x.1 };
    for (h, sh) in s.iter_mut().enumerate() {
        let mut a = sh[0];
        a = sdot::<0>(a, half(&x[0], h), w);
        a = sdot::<1>(a, half(&x[1], h), w);
        a = sdot::<2>(a, half(&x[2], h), w);
        a = sdot::<3>(a, half(&x[3], h), w);
        sh[0] = a;
    }
}

#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot_finish(s: [int32x4_t; 2]) -> int32x4_t {
    s[0]
}

int_tile!("neon,dotprod", sdot_tile, sdot_step, sdot_finish);

/// NEON tables.
pub(crate) mod neon {
    use super::*;

    #[target_feature(enable = "neon")]
    pub(crate) fn matmul_q8_0(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) {
        let nb = x.cols / QK;
        int_tiles(w, x, out, I_ROWS, 1, |w, rn, p, _, res| match rn {
            I_ROWS => neon_tile::<BlockQ8_0, I_ROWS>(w, nb, p, res),
            _ => neon_tile::<BlockQ8_0, 1>(w, nb, p, res),
        })
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn matmul_q4_0(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) {
        let nb = x.cols / QK;
        int_tiles(w, x, out, I_ROWS, 1, |w, rn, p, _, res| match rn {
            I_ROWS => neon_tile::<BlockQ4_0, I_ROWS>(w, nb, p, res),
            _ => neon_tile::<BlockQ4_0, 1>(w, nb, p, res),
        })
    }

    /// `R` rows × `G` groups for `kl` columns onto `acc` (see `float_tiles`).
    #[inline]
    #[target_feature(enable = "neon")]
    #[allow(clippy::too_many_arguments)]
    fn f32_tile<const R: usize, const G: usize>(w: &[u8], ws: usize, kl: usize, p: &[f32], ps: usize, acc: &mut [f32], ast: usize) {
        assert!(kl > 0 && (R - 1) * ws + kl * 4 <= w.len());
        assert!((G - 1) * ps + kl * LANES <= p.len());
        assert!((R - 1) * ast + G * LANES <= acc.len());
        let (wp, pp, ap) = (w.as_ptr(), p.as_ptr(), acc.as_mut_ptr());
        // SAFETY (every pointer access below): within the bounds asserted above.
        let mut a: [[[float32x4_t; 2]; G]; R] = core::array::from_fn(|r| {
            core::array::from_fn(|g| core::array::from_fn(|h| unsafe { vld1q_f32(ap.add(r * ast + g * LANES + 4 * h)) }))
        });
        let xk = |k: usize, g: usize, h: usize| unsafe { vld1q_f32(pp.add(g * ps + k * LANES + 4 * h)) };
        let mut k = 0;
        while k + 4 <= kl {
            let wv: [float32x4_t; R] = core::array::from_fn(|r| unsafe { vreinterpretq_f32_u8(vld1q_u8(wp.add(r * ws + 4 * k))) });
            macro_rules! lane {
                ($l:literal) => {
                    for g in 0..G {
                        let (x0, x1) = (xk(k + $l, g, 0), xk(k + $l, g, 1));
                        for r in 0..R {
                            a[r][g][0] = vfmaq_laneq_f32::<$l>(a[r][g][0], x0, wv[r]);
                            a[r][g][1] = vfmaq_laneq_f32::<$l>(a[r][g][1], x1, wv[r]);
                        }
                    }
                };
            }
            lane!(0);
            lane!(1);
            lane!(2);
            lane!(3);
            k += 4;
        }
        while k < kl {
            for r in 0..R {
                let wv = unsafe { wp.add(r * ws + 4 * k).cast::<f32>().read_unaligned() };
                for g in 0..G {
                    a[r][g][0] = vfmaq_n_f32(a[r][g][0], xk(k, g, 0), wv);
                    a[r][g][1] = vfmaq_n_f32(a[r][g][1], xk(k, g, 1), wv);
                }
            }
            k += 1;
        }
        for (r, ar) in a.iter().enumerate() {
            for (g, ag) in ar.iter().enumerate() {
                for (h, v) in ag.iter().enumerate() {
                    unsafe { vst1q_f32(ap.add(r * ast + g * LANES + 4 * h), *v) };
                }
            }
        }
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn float<'x>(x: &Batch, out: &mut MatOut, rows: impl FnMut(usize, usize, usize, usize, &mut [f32]) -> Option<(&'x [u8], usize)>) {
        let ps = x.cols * LANES;
        float_tiles(x, out, F_ROWS, F_GROUPS, rows, |w, ws, rn, kl, p, gn, acc, ast| match (rn, gn) {
            (F_ROWS, F_GROUPS) => f32_tile::<F_ROWS, F_GROUPS>(w, ws, kl, p, ps, acc, ast),
            (F_ROWS, _) => f32_tile::<F_ROWS, 1>(w, ws, kl, p, ps, acc, ast),
            (_, F_GROUPS) => f32_tile::<1, F_GROUPS>(w, ws, kl, p, ps, acc, ast),
            _ => f32_tile::<1, 1>(w, ws, kl, p, ps, acc, ast),
        })
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn matmul_f32(w: &[u8], x: &Batch, out: &mut MatOut) {
        let cols = x.cols;
        float(x, out, |r, rn, k0, kl, _| f32_rows(w, cols, r, rn, k0, kl))
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn matmul_f16(w: &[u8], x: &Batch, out: &mut MatOut) {
        let cols = x.cols;
        float(x, out, |r, rn, k0, kl, buf| {
            convert_rows(w, DType::F16, cols, r, rn, k0, kl, buf, |w, o| {
                halves(w, o, |w, i| ldh(w, i), crate::f16::scalar::dequantize_row_f16)
            })
        })
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn matmul_bf16(w: &[u8], x: &Batch, out: &mut MatOut) {
        let cols = x.cols;
        float(x, out, |r, rn, k0, kl, buf| {
            convert_rows(w, DType::BF16, cols, r, rn, k0, kl, buf, |w, o| {
                halves(w, o, |w, i| ldbf(w, i), crate::f16::scalar::dequantize_row_bf16)
            })
        })
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn matmul_q8_0_f32(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) {
        let cols = x.cols;
        float(x, out, |r, rn, k0, kl, buf| convert_rows(w, DType::Q8_0, cols, r, rn, k0, kl, buf, |w, o| blocks(w, o)))
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn matmul_q4_0_f32(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) {
        let cols = x.cols;
        float(x, out, |r, rn, k0, kl, buf| convert_rows(w, DType::Q4_0, cols, r, rn, k0, kl, buf, |w, o| blocks(w, o)))
    }

    /// F16 or BF16 bytes to f32, eight at a time by `ld` (exact), the
    /// rest by the scalar `tail`.
    #[inline]
    #[target_feature(enable = "neon")]
    fn halves(w: &[u8], out: &mut [f32], ld: impl Fn(&[u8], usize) -> (float32x4_t, float32x4_t), tail: fn(&[u8], &mut [f32])) {
        let mut i = 0;
        while i + 8 <= out.len() {
            let (a, b) = ld(w, 2 * i);
            // SAFETY: out[i..i + 8] is in bounds.
            unsafe {
                vst1q_f32(out.as_mut_ptr().add(i), a);
                vst1q_f32(out.as_mut_ptr().add(i + 4), b);
            }
            i += 8;
        }
        let n = out.len();
        tail(&w[2 * i..2 * n], &mut out[i..]);
    }

    /// Quantized blocks to f32: q·d (Q8_0), (code − 8)·d (Q4_0), exactly the scalar values.
    #[target_feature(enable = "neon")]
    fn blocks<B: IntWeights>(w: &[B], out: &mut [f32]) {
        for (b, o) in w.iter().zip(out.chunks_exact_mut(QK)) {
            let d = f16s(b.scale());
            let words = b.words();
            for (h, q) in words.into_iter().enumerate() {
                let q = vsubq_s8(q, vdupq_n_s8(B::OFFSET as i8));
                let lo = vmovl_s8(vget_low_s8(q));
                let hi = vmovl_high_s8(q);
                let parts = [vmovl_s16(vget_low_s16(lo)), vmovl_high_s16(lo), vmovl_s16(vget_low_s16(hi)), vmovl_high_s16(hi)];
                for (k, p) in parts.into_iter().enumerate() {
                    // SAFETY: o[16h + 4k..+4] is in bounds (h < 2, k < 4, o has 32).
                    unsafe { vst1q_f32(o.as_mut_ptr().add(16 * h + 4 * k), vmulq_n_f32(vcvtq_f32_s32(p), d)) };
                }
            }
        }
    }
}

/// dotprod tables (the float path is NEON's).
pub(crate) mod dotprod {
    use super::*;

    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn matmul_q8_0(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) {
        let nb = x.cols / QK;
        int_tiles(w, x, out, I_ROWS, 1, |w, rn, p, _, res| match rn {
            I_ROWS => sdot_tile::<BlockQ8_0, I_ROWS>(w, nb, p, res),
            _ => sdot_tile::<BlockQ8_0, 1>(w, nb, p, res),
        })
    }

    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn matmul_q4_0(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) {
        let nb = x.cols / QK;
        int_tiles(w, x, out, I_ROWS, 1, |w, rn, p, _, res| match rn {
            I_ROWS => sdot_tile::<BlockQ4_0, I_ROWS>(w, nb, p, res),
            _ => sdot_tile::<BlockQ4_0, 1>(w, nb, p, res),
        })
    }
}
