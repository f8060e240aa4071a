//! x86_64 batched kernels over the panels of the parent module.
//!
//! Integer path, a tile of 1 row × 2 groups (16 outputs): four weight bytes
//! broadcast (`vpbroadcastd` from the block, in place) meet the 32-byte
//! panel words of sixteen inputs, read as memory operands. (Two rows per
//! tile, sharing each input load, measured ~15% slower: LLVM then keeps the
//! input words in registers and spills the tile's sums.)
//! - AVX2, Q4_0: the broadcast's low and high nibbles are the codes of
//!   elements 4j..4j+4 and 16+4j..; `vpmaddubsw` (codes unsigned, inputs
//!   signed) sums pairs into i16, exact for a whole block (|Σ| <= 8·2·15·128
//!   < 2^15), then one `vpmaddwd` by 1s per block, less 8·Σq.
//! - AVX2, Q8_0: `vpmaddubsw(|w|, sign(x, w))`, then `vpmaddwd` by 1s into
//!   i32 per word (two words' i16 sums could overflow). Exact for inputs in
//!   −127..=127, which is what `quantize_q8_0` produces (−128 only comes
//!   with a scale that rounds to 0 in f16, which zeroes the term anyway).
//! - AVX-512 VNNI (`vpdpbusd`, 256-bit with VL): the same tiles with the
//!   products summed straight into i32.
//!
//! Float path, a tile of 6 rows × 2 groups (12 accumulators): one weight
//! broadcast, one FMA per group of eight inputs; F16, BF16 and the quantized
//! formats (without the integer path) are first converted to f32, 256
//! columns of the tile's rows at a time.

use super::{convert_rows, f32_rows, float_tiles, int_tiles, Batch, MatOut, PanelQ8, LANES};
use crate::x86::k2::{f16s, ldbf, ldh};
use crate::{BlockQ4_0, BlockQ8_0, DType, QK};
use core::arch::x86_64::*;

/// Rows of a float tile.
const F_ROWS: usize = 6;
/// Rows of an integer tile.
const I_ROWS: usize = 1;
/// Groups of eight inputs per integer tile.
const I_GROUPS: usize = 2;
/// Groups of eight inputs per float tile.
const GROUPS: usize = 2;

/// Kernels common to both tables: AVX2 + FMA + F16C.
macro_rules! common {
    ($feat:literal) => {
        #[inline]
        #[target_feature(enable = $feat)]
        fn ld256(p: &[u8; 32]) -> __m256i {
            // SAFETY: `p` is 32 readable bytes; loadu needs no alignment.
            unsafe { _mm256_loadu_si256(p.as_ptr().cast()) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn word(qs: &[[i8; 4]; LANES]) -> __m256i {
            ld256(bytemuck::cast_ref(qs))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn ldf8(x: &[f32; LANES]) -> __m256 {
            // SAFETY: `x` is 8 readable f32; loadu needs no alignment.
            unsafe { _mm256_loadu_ps(x.as_ptr()) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn ldi8(x: &[i32; LANES]) -> __m256i {
            // SAFETY: `x` is 8 readable i32; loadu needs no alignment.
            unsafe { _mm256_loadu_si256(x.as_ptr().cast()) }
        }

        /// Four weight bytes, broadcast to every i32 lane.
        #[inline]
        #[target_feature(enable = $feat)]
        fn bcast4(q: &[u8]) -> __m256i {
            _mm256_set1_epi32(i32::from_le_bytes([q[0], q[1], q[2], q[3]]))
        }

        /// `R` rows of Q4_0 (`nb` blocks each) × `G` groups into `res`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn q4_tile<const R: usize, const G: usize>(w: &[BlockQ4_0], nb: usize, p: &[PanelQ8], res: &mut [f32]) {
            assert!(w.len() >= R * nb && p.len() >= G * nb && res.len() >= R * G * LANES);
            let m4 = _mm256_set1_epi8(0x0F);
            let mut acc = [[_mm256_setzero_ps(); G]; R];
            for kb in 0..nb {
                let pg: [&PanelQ8; G] = core::array::from_fn(|g| &p[g * nb + kb]);
                let wb: [&BlockQ4_0; R] = core::array::from_fn(|r| &w[r * nb + kb]);
                let mut s = [[_mm256_setzero_si256(); G]; R];
                for j in 0..QK / 8 {
                    let codes: [(__m256i, __m256i); R] = core::array::from_fn(|r| {
                        let q = bcast4(&wb[r].qs[4 * j..]);
                        (_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4))
                    });
                    // Each input word is loaded once and used by every row at once.
                    for g in 0..G {
                        let (xl, xh) = (word(&pg[g].qs[j]), word(&pg[g].qs[j + QK / 8]));
                        for r in 0..R {
                            s[r][g] = q4_step(s[r][g], codes[r].0, xl, codes[r].1, xh);
                        }
                    }
                }
                let sum8: [__m256i; G] = core::array::from_fn(|g| _mm256_slli_epi32::<3>(ldi8(&pg[g].sum)));
                let dx: [__m256; G] = core::array::from_fn(|g| ldf8(&pg[g].d));
                for r in 0..R {
                    let dw = _mm256_set1_ps(f16s(wb[r].d));
                    for g in 0..G {
                        let i = _mm256_sub_epi32(q4_finish(s[r][g]), sum8[g]);
                        acc[r][g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(dw, dx[g]), acc[r][g]);
                    }
                }
            }
            store(&acc, res);
        }

        /// `R` rows of Q8_0 × `G` groups into `res`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn q8_tile<const R: usize, const G: usize>(w: &[BlockQ8_0], nb: usize, p: &[PanelQ8], res: &mut [f32]) {
            assert!(w.len() >= R * nb && p.len() >= G * nb && res.len() >= R * G * LANES);
            let mut acc = [[_mm256_setzero_ps(); G]; R];
            for kb in 0..nb {
                let pg: [&PanelQ8; G] = core::array::from_fn(|g| &p[g * nb + kb]);
                let wb: [&BlockQ8_0; R] = core::array::from_fn(|r| &w[r * nb + kb]);
                let mut s = [[_mm256_setzero_si256(); G]; R];
                for e in 0..QK / 4 {
                    let q: [__m256i; R] = core::array::from_fn(|r| bcast4(bytemuck::cast_slice(&wb[r].qs[4 * e..4 * e + 4])));
                    let aq: [__m256i; R] = core::array::from_fn(|r| _mm256_abs_epi8(q[r]));
                    for g in 0..G {
                        let x = word(&pg[g].qs[e]);
                        for r in 0..R {
                            s[r][g] = q8_step(s[r][g], aq[r], _mm256_sign_epi8(x, q[r]));
                        }
                    }
                }
                let dx: [__m256; G] = core::array::from_fn(|g| ldf8(&pg[g].d));
                for r in 0..R {
                    let dw = _mm256_set1_ps(f16s(wb[r].d));
                    for g in 0..G {
                        acc[r][g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[r][g]), _mm256_mul_ps(dw, dx[g]), acc[r][g]);
                    }
                }
            }
            store(&acc, res);
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn store<const R: usize, const G: usize>(acc: &[[__m256; G]; R], res: &mut [f32]) {
            assert!(res.len() >= R * G * LANES);
            for r in 0..R {
                for g in 0..G {
                    // SAFETY: (r·G + g + 1)·8 <= R·G·8 <= res.len() (asserted).
                    unsafe { _mm256_storeu_ps(res.as_mut_ptr().add((r * G + g) * LANES), acc[r][g]) };
                }
            }
        }

        #[target_feature(enable = $feat)]
        pub(crate) fn matmul_q4_0(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) {
            let nb = x.cols / QK;
            int_tiles(w, x, out, I_ROWS, I_GROUPS, |w, _, p, gn, res| match gn {
                I_GROUPS => q4_tile::<1, I_GROUPS>(w, nb, p, res),
                _ => q4_tile::<1, 1>(w, nb, p, res),
            })
        }

        #[target_feature(enable = $feat)]
        pub(crate) fn matmul_q8_0(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) {
            let nb = x.cols / QK;
            int_tiles(w, x, out, I_ROWS, I_GROUPS, |w, _, p, gn, res| match gn {
                I_GROUPS => q8_tile::<1, I_GROUPS>(w, nb, p, res),
                _ => q8_tile::<1, 1>(w, nb, p, res),
            })
        }
    };
}

/// AVX2 + FMA + F16C.
pub(crate) mod avx2 {
    use super::*;

    common!("avx2,fma,f16c");

    /// Q4_0 step: two words of codes against the inputs, into i16 pairs.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn q4_step(s: __m256i, lo: __m256i, xl: __m256i, hi: __m256i, xh: __m256i) -> __m256i {
        _mm256_add_epi16(s, _mm256_add_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_maddubs_epi16(hi, xh)))
    }

    /// A Q4_0 block's i16 pair sums, into one i32 per input.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn q4_finish(s: __m256i) -> __m256i {
        _mm256_madd_epi16(s, _mm256_set1_epi16(1))
    }

    /// Q8_0 step: |w| · sign(x, w), four products per input into its i32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn q8_step(s: __m256i, aw: __m256i, sx: __m256i) -> __m256i {
        _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1)))
    }

    // --- float path ----------------------------------------------------------

    /// `R` rows (f32 bytes, row stride `ws`) × `G` groups for `kl` columns,
    /// accumulated onto `acc[r·ast + g·8 + lane]`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    fn f32_tile<const R: usize, const G: usize>(w: &[u8], ws: usize, kl: usize, p: &[f32], ps: usize, acc: &mut [f32], ast: usize) {
        assert!(kl > 0 && (R - 1) * ws + kl * 4 <= w.len());
        assert!((G - 1) * ps + kl * LANES <= p.len());
        assert!((R - 1) * ast + G * LANES <= acc.len());
        let (wp, pp, ap) = (w.as_ptr(), p.as_ptr(), acc.as_mut_ptr());
        // SAFETY (every pointer access below): within the bounds asserted above.
        let mut a: [[__m256; G]; R] =
            core::array::from_fn(|r| core::array::from_fn(|g| unsafe { _mm256_loadu_ps(ap.add(r * ast + g * LANES)) }));
        for k in 0..kl {
            let xv: [__m256; G] = core::array::from_fn(|g| unsafe { _mm256_loadu_ps(pp.add(g * ps + k * LANES)) });
            for (r, ar) in a.iter_mut().enumerate() {
                let wv = _mm256_set1_ps(unsafe { wp.add(r * ws + 4 * k).cast::<f32>().read_unaligned() });
                for g in 0..G {
                    ar[g] = _mm256_fmadd_ps(wv, xv[g], ar[g]);
                }
            }
        }
        for (r, ar) in a.iter().enumerate() {
            for (g, v) in ar.iter().enumerate() {
                unsafe { _mm256_storeu_ps(ap.add(r * ast + g * LANES), *v) };
            }
        }
    }

    /// The float tiles of a batch over weights given as f32 rows by `rows`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn float<'x>(x: &Batch, out: &mut MatOut, rows: impl FnMut(usize, usize, usize, usize, &mut [f32]) -> Option<(&'x [u8], usize)>) {
        let ps = x.cols * LANES;
        float_tiles(x, out, F_ROWS, GROUPS, rows, |w, ws, rn, kl, p, gn, acc, ast| match (rn, gn) {
            (F_ROWS, GROUPS) => f32_tile::<F_ROWS, GROUPS>(w, ws, kl, p, ps, acc, ast),
            (F_ROWS, _) => f32_tile::<F_ROWS, 1>(w, ws, kl, p, ps, acc, ast),
            (_, GROUPS) => f32_tile::<1, GROUPS>(w, ws, kl, p, ps, acc, ast),
            _ => f32_tile::<1, 1>(w, ws, kl, p, ps, acc, ast),
        })
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn matmul_f32(w: &[u8], x: &Batch, out: &mut MatOut) {
        let cols = x.cols;
        float(x, out, |r, rn, k0, kl, _| f32_rows(w, cols, r, rn, k0, kl))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn matmul_f16(w: &[u8], x: &Batch, out: &mut MatOut) {
        let cols = x.cols;
        float(x, out, |r, rn, k0, kl, buf| convert_rows(w, DType::F16, cols, r, rn, k0, kl, buf, |w, o| f16_to_f32(w, o)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn matmul_bf16(w: &[u8], x: &Batch, out: &mut MatOut) {
        let cols = x.cols;
        float(x, out, |r, rn, k0, kl, buf| convert_rows(w, DType::BF16, cols, r, rn, k0, kl, buf, |w, o| bf16_to_f32(w, o)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn matmul_q8_0_f32(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) {
        let cols = x.cols;
        float(x, out, |r, rn, k0, kl, buf| convert_rows(w, DType::Q8_0, cols, r, rn, k0, kl, buf, |w, o| q8_0_to_f32(w, o)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn matmul_q4_0_f32(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) {
        let cols = x.cols;
        float(x, out, |r, rn, k0, kl, buf| convert_rows(w, DType::Q4_0, cols, r, rn, k0, kl, buf, |w, o| q4_0_to_f32(w, o)))
    }

    // --- conversions to f32 (exactly the scalar dequantization) ---------------

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn stf(out: &mut [f32], i: usize, v: __m256) {
        assert!(i + 8 <= out.len());
        // SAFETY: out[i..i + 8] is in bounds (asserted); storeu needs no alignment.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(i), v) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn ld128(b: &[u8], i: usize) -> __m128i {
        assert!(i + 16 <= b.len());
        // SAFETY: b[i..i + 16] is in bounds (asserted); loadu needs no alignment.
        unsafe { _mm_loadu_si128(b.as_ptr().add(i).cast()) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn f16_to_f32(w: &[u8], out: &mut [f32]) {
        let mut i = 0;
        while i + 8 <= out.len() {
            stf(out, i, ldh(w, 2 * i));
            i += 8;
        }
        crate::f16::scalar::dequantize_row_f16(&w[2 * i..2 * out.len()], &mut out[i..]);
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn bf16_to_f32(w: &[u8], out: &mut [f32]) {
        let mut i = 0;
        while i + 8 <= out.len() {
            stf(out, i, ldbf(w, 2 * i));
            i += 8;
        }
        crate::f16::scalar::dequantize_row_bf16(&w[2 * i..2 * out.len()], &mut out[i..]);
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn q8_0_to_f32(w: &[BlockQ8_0], out: &mut [f32]) {
        for (b, o) in w.iter().zip(out.chunks_exact_mut(QK)) {
            let d = _mm256_set1_ps(f16s(b.d));
            let q: &[u8; 32] = bytemuck::cast_ref(&b.qs);
            for h in 0..4 {
                // SAFETY: q[8h..8h + 8] is in bounds (h < 4); loadl reads 8 bytes.
                let v = unsafe { _mm_loadl_epi64(q.as_ptr().add(8 * h).cast()) };
                stf(o, 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), d));
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn q4_0_to_f32(w: &[BlockQ4_0], out: &mut [f32]) {
        for (b, o) in w.iter().zip(out.chunks_exact_mut(QK)) {
            let d = _mm256_set1_ps(f16s(b.d));
            let v = ld128(&b.qs, 0);
            let m4 = _mm_set1_epi8(0x0F);
            let eight = _mm_set1_epi8(8);
            let lo = _mm_sub_epi8(_mm_and_si128(v, m4), eight);
            let hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16::<4>(v), m4), eight);
            for (h, c) in [lo, hi].into_iter().enumerate() {
                stf(o, 16 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c)), d));
                stf(o, 16 * h + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(c, c))), d));
            }
        }
    }
}

/// AVX-512 VNNI (with VL, on 256-bit registers): the integer tiles with
/// `vpdpbusd`. The float path is AVX2's.
pub(crate) mod vnni {
    use super::*;

    common!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn q4_step(s: __m256i, lo: __m256i, xl: __m256i, hi: __m256i, xh: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(s, lo, xl), hi, xh)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn q4_finish(s: __m256i) -> __m256i {
        s
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn q8_step(s: __m256i, aw: __m256i, sx: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(s, aw, sx)
    }
}
