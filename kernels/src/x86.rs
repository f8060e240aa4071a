//! x86_64 backends: AVX2+FMA+F16C for every kernel, and AVX-512 (F, BW, VL and
//! VNNI) for the quantized dot products and matvecs, where `vpdpbusd` does in
//! one instruction what AVX2 needs three for; the other entries of the AVX-512
//! table are the AVX2 ones (they are bound by memory or by scalar `exp`, and
//! 512-bit forms did not pay for them).
//!
//! Every kernel is a safe `#[target_feature]` function; the table holds safe
//! wrappers (`entry!`) that call it, and a table is handed out only after
//! its features were detected, which is what makes those calls sound. The only
//! other unsafe operations are the unaligned loads and stores, each from a
//! reference that covers the bytes it touches.
//!
//! Integer paths are exact inside a block (i32), so they differ from the
//! scalar reference only in the order the per-block f32 terms are summed.
//! `quantize_q8_0` is bit-identical to the scalar one (ties away from zero, as
//! `roundf`).

use crate::table::entry;
use crate::table::rows_of;
use crate::matmul::{x86 as mm, Batch, MatOut};
use crate::{q8_0, BlockQ4_0, BlockQ8_0, Kernels, QK};
use core::arch::x86_64::*;
use half::{bf16, f16};

fn has_avx2() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ))
    }
}

fn has_avx512() -> bool {
    #[cfg(feature = "std")]
    {
        has_avx2()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(feature = "std"))]
    {
        has_avx2()
            && cfg!(all(
                target_feature = "avx512f",
                target_feature = "avx512bw",
                target_feature = "avx512vl",
                target_feature = "avx512vnni"
            ))
    }
}

/// The AVX2+FMA+F16C backend, if this CPU has it.
pub fn avx2() -> Option<&'static Kernels> {
    has_avx2().then_some(&AVX2)
}

/// The AVX-512 backend (F, BW, VL, VNNI, on top of AVX2+FMA+F16C), if this CPU has it.
pub fn avx512() -> Option<&'static Kernels> {
    has_avx512().then_some(&AVX512)
}

entry!(a2_quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) = k2::quantize_q8_0);
entry!(a2_dot_f32(w: &[u8], x: &[f32]) -> f32 = k2::dot_f32);
entry!(a2_dot_f16(w: &[u8], x: &[f32]) -> f32 = k2::dot_f16);
entry!(a2_dot_bf16(w: &[u8], x: &[f32]) -> f32 = k2::dot_bf16);
entry!(a2_dot_q8_0_f32(w: &[BlockQ8_0], x: &[f32]) -> f32 = k2::dot_q8_0_f32);
entry!(a2_dot_q4_0_f32(w: &[BlockQ4_0], x: &[f32]) -> f32 = k2::dot_q4_0_f32);
entry!(a2_dot_q8_0_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 = k2::dot_q8_0_q8_0);
entry!(a2_dot_q4_0_q8_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 = k2::dot_q4_0_q8_0);
entry!(a2_matvec_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0], out: &mut [f32]) = k2::matvec_q8_0);
entry!(a2_matvec_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0], out: &mut [f32]) = k2::matvec_q4_0);
entry!(a2_dot_f32_f32(a: &[f32], b: &[f32]) -> f32 = k2::dot_f32_f32);
entry!(a2_axpy_f32(a: f32, x: &[f32], y: &mut [f32]) = k2::axpy_f32);
entry!(a2_axpy_f16(a: f32, w: &[u8], y: &mut [f32]) = k2::axpy_f16);
entry!(a2_scores_f32(q: &[f32], keys: &[f32], stride: usize, scale: f32, out: &mut [f32]) = k2::scores_f32);
entry!(a2_scores_f16(q: &[f32], keys: &[u8], stride: usize, scale: f32, out: &mut [f32]) = k2::scores_f16);
entry!(a2_mix_f32(w: &[f32], values: &[f32], stride: usize, out: &mut [f32]) = k2::mix_f32);
entry!(a2_mix_f16(w: &[f32], values: &[u8], stride: usize, out: &mut [f32]) = k2::mix_f16);
entry!(a2_rmsnorm(out: &mut [f32], x: &[f32], w: &[u8], eps: f32) = k2::rmsnorm);
entry!(a2_softmax(x: &mut [f32]) = k2::softmax);
entry!(a2_swiglu(gate: &mut [f32], up: &[f32]) = k2::swiglu);
entry!(a2_add_bias(y: &mut [f32], b: &[u8]) = k2::add_bias);
entry!(a2_rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) = k2::rope);

entry!(a2_matmul_f32(w: &[u8], x: &Batch, out: &mut MatOut) = mm::avx2::matmul_f32);
entry!(a2_matmul_f16(w: &[u8], x: &Batch, out: &mut MatOut) = mm::avx2::matmul_f16);
entry!(a2_matmul_bf16(w: &[u8], x: &Batch, out: &mut MatOut) = mm::avx2::matmul_bf16);
entry!(a2_matmul_q8_0_f32(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) = mm::avx2::matmul_q8_0_f32);
entry!(a2_matmul_q4_0_f32(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) = mm::avx2::matmul_q4_0_f32);
entry!(a2_matmul_q8_0(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) = mm::avx2::matmul_q8_0);
entry!(a2_matmul_q4_0(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) = mm::avx2::matmul_q4_0);

entry!(a5_dot_q8_0_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 = k5::dot_q8_0_q8_0);
entry!(a5_dot_q4_0_q8_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 = k5::dot_q4_0_q8_0);
entry!(a5_matvec_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0], out: &mut [f32]) = k5::matvec_q8_0);
entry!(a5_matvec_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0], out: &mut [f32]) = k5::matvec_q4_0);
entry!(a5_matmul_q8_0(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) = mm::vnni::matmul_q8_0);
entry!(a5_matmul_q4_0(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) = mm::vnni::matmul_q4_0);

static AVX2: Kernels = Kernels {
    name: "avx2",
    quantize_q8_0: a2_quantize_q8_0,
    dot_f32: a2_dot_f32,
    dot_f16: a2_dot_f16,
    dot_bf16: a2_dot_bf16,
    dot_q8_0_f32: a2_dot_q8_0_f32,
    dot_q4_0_f32: a2_dot_q4_0_f32,
    dot_q8_0_q8_0: a2_dot_q8_0_q8_0,
    dot_q4_0_q8_0: a2_dot_q4_0_q8_0,
    matvec_f32: rows_of!(a2_dot_f32, u8, f32, |n: usize| n * 4),
    matvec_f16: rows_of!(a2_dot_f16, u8, f32, |n: usize| n * 2),
    matvec_bf16: rows_of!(a2_dot_bf16, u8, f32, |n: usize| n * 2),
    matvec_q8_0: a2_matvec_q8_0,
    matvec_q4_0: a2_matvec_q4_0,
    matmul_f32: a2_matmul_f32,
    matmul_f16: a2_matmul_f16,
    matmul_bf16: a2_matmul_bf16,
    matmul_q8_0_f32: a2_matmul_q8_0_f32,
    matmul_q4_0_f32: a2_matmul_q4_0_f32,
    matmul_q8_0: a2_matmul_q8_0,
    matmul_q4_0: a2_matmul_q4_0,
    dot_f32_f32: a2_dot_f32_f32,
    axpy_f32: a2_axpy_f32,
    axpy_f16: a2_axpy_f16,
    scores_f32: a2_scores_f32,
    scores_f16: a2_scores_f16,
    mix_f32: a2_mix_f32,
    mix_f16: a2_mix_f16,
    rmsnorm: a2_rmsnorm,
    softmax: a2_softmax,
    swiglu: a2_swiglu,
    add_bias: a2_add_bias,
    rope: a2_rope,
};

static AVX512: Kernels = Kernels {
    name: "avx512",
    dot_q8_0_q8_0: a5_dot_q8_0_q8_0,
    dot_q4_0_q8_0: a5_dot_q4_0_q8_0,
    matvec_q8_0: a5_matvec_q8_0,
    matvec_q4_0: a5_matvec_q4_0,
    matmul_q8_0: a5_matmul_q8_0,
    matmul_q4_0: a5_matmul_q4_0,
    ..AVX2
};

/// Rows a quantized matvec takes at a time, reusing each activation block.
const ROWS: usize = 8;

/// Software prefetch for the row-blocked matvecs. Decode streams every weight
/// once from DRAM, and the hardware prefetcher alone leaves the core waiting:
/// while a group of rows is computed, the same share of the *next* group is
/// requested, one group (R rows) ahead. Prefetches never fault, so running
/// past the end of the weights is harmless (the address is never read).
#[inline(always)]
fn prefetch_next_group<B>(group: &[B], step: usize, per_step: usize) {
    let base = group.as_ptr().cast::<u8>().wrapping_add(2 * core::mem::size_of_val(group) + step * per_step);
    let mut off = 0;
    while off < per_step {
        // SAFETY: a prefetch is a hint; it does not access memory architecturally.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(off).cast::<i8>()) };
        off += 64;
    }
}

#[inline]
fn read_f32(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// AVX2 + FMA + F16C kernels.
pub(crate) mod k2 {
    use super::*;

    // --- loads and stores ------------------------------------------------

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn ldf(x: &[f32], i: usize) -> __m256 {
        assert!(i + 8 <= x.len());
        // SAFETY: x[i..i + 8] is in bounds (asserted); loadu needs no alignment.
        unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn stf(x: &mut [f32], i: usize, v: __m256) {
        assert!(i + 8 <= x.len());
        // SAFETY: x[i..i + 8] is in bounds (asserted); storeu needs no alignment.
        unsafe { _mm256_storeu_ps(x.as_mut_ptr().add(i), v) }
    }

    /// Eight little-endian f32 from bytes `b[i..i + 32]`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn ldb(b: &[u8], i: usize) -> __m256 {
        assert!(i + 32 <= b.len());
        // SAFETY: b[i..i + 32] is in bounds (asserted); loadu needs no alignment.
        unsafe { _mm256_loadu_ps(b.as_ptr().add(i).cast()) }
    }

    /// Bytes `b[i..i + 16]`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn ld128(b: &[u8], i: usize) -> __m128i {
        assert!(i + 16 <= b.len());
        // SAFETY: b[i..i + 16] is in bounds (asserted); loadu needs no alignment.
        unsafe { _mm_loadu_si128(b.as_ptr().add(i).cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn ld_q8(q: &[i8; 32]) -> __m256i {
        // SAFETY: `q` is 32 readable bytes; loadu needs no alignment.
        unsafe { _mm256_loadu_si256(q.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn ld_q8_half(q: &[i8; 32], half: usize) -> __m128i {
        assert!(half < 2);
        // SAFETY: q[16·half..16·half + 16] is in bounds; loadu needs no alignment.
        unsafe { _mm_loadu_si128(q.as_ptr().add(16 * half).cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn ld_q4(q: &[u8; 16]) -> __m128i {
        // SAFETY: `q` is 16 readable bytes; loadu needs no alignment.
        unsafe { _mm_loadu_si128(q.as_ptr().cast()) }
    }

    // --- helpers ---------------------------------------------------------

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hmax(v: __m256) -> f32 {
        let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_max_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// An f16 scale (little-endian bytes) to f32, by F16C.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn f16s(d: [u8; 2]) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(
            _mm_cvtsi32_si128(u16::from_le_bytes(d) as i32),
        ))
    }

    /// d_w·d_x for up to eight rows' f16 scales `dw` (one F16C conversion).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn scales<const R: usize>(dw: [[u8; 2]; R], dx: [u8; 2]) -> __m256 {
        let mut h = [0u16; 8];
        for r in 0..R.min(8) {
            h[r] = u16::from_le_bytes(dw[r]);
        }
        // SAFETY: `h` is 16 readable bytes; loadu needs no alignment.
        let hv = unsafe { _mm_loadu_si128(h.as_ptr().cast()) };
        _mm256_mul_ps(_mm256_cvtph_ps(hv), _mm256_set1_ps(f16s(dx)))
    }

    /// Lane `r` of `v`, broadcast.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn lane(v: __m256, r: usize) -> __m256 {
        _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(r as i32))
    }

    /// The 32 codes (0..=15) of a Q4_0 block, in element order.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn q4_codes(q: &[u8; 16]) -> __m256i {
        let v = ld_q4(q);
        let both = _mm256_set_m128i(_mm_srli_epi16::<4>(v), v);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }

    /// Eight f16 (little-endian bytes `b[i..i + 16]`) to f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn ldh(b: &[u8], i: usize) -> __m256 {
        _mm256_cvtph_ps(ld128(b, i))
    }

    /// Eight bf16 (little-endian bytes `b[i..i + 16]`) to f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn ldbf(b: &[u8], i: usize) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(ld128(b, i))))
    }

    // --- quantization ----------------------------------------------------

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
        let sign = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
        let half = _mm256_set1_ps(0.5);
        let one = _mm256_set1_ps(1.0);
        for (block, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
            let v = [ldf(xs, 0), ldf(xs, 8), ldf(xs, 16), ldf(xs, 24)];
            let m01 = _mm256_max_ps(_mm256_and_ps(v[0], abs), _mm256_and_ps(v[1], abs));
            let m23 = _mm256_max_ps(_mm256_and_ps(v[2], abs), _mm256_and_ps(v[3], abs));
            let amax = hmax(_mm256_max_ps(m01, m23));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            if !id.is_finite() {
                // Only for a subnormal scale: the scalar path's saturating casts.
                q8_0::scalar::quantize_row(xs, core::slice::from_mut(block));
                continue;
            }
            block.d = f16::from_f32(d).to_le_bytes();
            let idv = _mm256_set1_ps(id);
            let mut nan = _mm256_setzero_ps();
            let q = v.map(|v| {
                let p = _mm256_mul_ps(v, idv);
                nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(p, p));
                // roundf: truncate, then step away from zero when |fraction| >= 0.5
                // (the fraction p - trunc(p) is exact).
                let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(p);
                let frac = _mm256_and_ps(_mm256_sub_ps(p, t), abs);
                let step = _mm256_or_ps(_mm256_and_ps(p, sign), one);
                let r = _mm256_add_ps(
                    t,
                    _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, half), step),
                );
                _mm256_cvttps_epi32(r)
            });
            if _mm256_movemask_ps(nan) != 0 {
                // NaN or infinite input: the scalar path's `as i8` semantics.
                q8_0::scalar::quantize_row(xs, core::slice::from_mut(block));
                continue;
            }
            // |r| <= 127 here, so the saturating packs are exact.
            let p16 = _mm256_packs_epi32(q[0], q[1]); // per lane: 0..3 8..11 4..7 12..15 (i32 indices)
            let p16b = _mm256_packs_epi32(q[2], q[3]);
            let p8 = _mm256_packs_epi16(p16, p16b);
            let p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            // SAFETY: `block.qs` is 32 writable bytes; storeu needs no alignment.
            unsafe { _mm256_storeu_si256(block.qs.as_mut_ptr().cast(), p8) };
        }
    }

    // --- float dots --------------------------------------------------------

    /// A dot of `n` weights read by `$ld(w, byte_offset)` (8 at a time,
    /// `$bpe` bytes each) against f32 `x`, scalar tail by `$one`.
    macro_rules! float_dot {
        ($name:ident, $bpe:expr, $ld:ident, $one:expr) => {
            #[target_feature(enable = "avx2,fma,f16c")]
            pub(super) fn $name(w: &[u8], x: &[f32]) -> f32 {
                let n = x.len().min(w.len() / $bpe);
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut i = 0;
                while i + 32 <= n {
                    for k in 0..4 {
                        let j = i + 8 * k;
                        acc[k] = _mm256_fmadd_ps($ld(w, j * $bpe), ldf(x, j), acc[k]);
                    }
                    i += 32;
                }
                while i + 8 <= n {
                    acc[0] = _mm256_fmadd_ps($ld(w, i * $bpe), ldf(x, i), acc[0]);
                    i += 8;
                }
                let acc =
                    _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
                let mut s = hsum(acc);
                let one: fn(&[u8]) -> f32 = $one;
                while i < n {
                    s += one(&w[i * $bpe..]) * x[i];
                    i += 1;
                }
                s
            }
        };
    }
    float_dot!(dot_f32, 4, ldb, read_f32);
    float_dot!(dot_f16, 2, ldh, |b| f16::from_le_bytes([b[0], b[1]])
        .to_f32());
    float_dot!(dot_bf16, 2, ldbf, |b| bf16::from_le_bytes([b[0], b[1]])
        .to_f32());

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_f32_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let j = i + 8 * k;
                *acc = _mm256_fmadd_ps(ldf(a, j), ldf(b, j), *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(ldf(a, i), ldf(b, i), acc[0]);
            i += 8;
        }
        let acc = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut s = hsum(acc);
        while i < n {
            s += a[i] * b[i];
            i += 1;
        }
        s
    }

    // --- quantized weights, float activations ----------------------------

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_q8_0_f32(w: &[BlockQ8_0], x: &[f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (block, xs) in w.iter().zip(x.chunks_exact(QK)) {
            let mut s = _mm256_setzero_ps();
            for h in 0..2 {
                let q = ld_q8_half(&block.qs, h);
                let lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                let hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(q, q)));
                s = _mm256_fmadd_ps(lo, ldf(xs, 16 * h), s);
                s = _mm256_fmadd_ps(hi, ldf(xs, 16 * h + 8), s);
            }
            acc = _mm256_fmadd_ps(s, _mm256_set1_ps(f16s(block.d)), acc);
        }
        hsum(acc)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_q4_0_f32(w: &[BlockQ4_0], x: &[f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let eight = _mm256_set1_epi8(8);
        for (block, xs) in w.iter().zip(x.chunks_exact(QK)) {
            let q = _mm256_sub_epi8(q4_codes(&block.qs), eight);
            let mut s = _mm256_setzero_ps();
            for (h, q) in [_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q)]
                .into_iter()
                .enumerate()
            {
                let lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                let hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(q, q)));
                s = _mm256_fmadd_ps(lo, ldf(xs, 16 * h), s);
                s = _mm256_fmadd_ps(hi, ldf(xs, 16 * h + 8), s);
            }
            acc = _mm256_fmadd_ps(s, _mm256_set1_ps(f16s(block.d)), acc);
        }
        hsum(acc)
    }

    // --- integer paths -----------------------------------------------------

    /// `R` rows of Q8_0 (`w` = R·nb blocks) against Q8_0 `x` (nb blocks).
    /// Sign-extends to i16 and uses `vpmaddwd`: exact for every i8, -128 included.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn rows_q8_0<const R: usize>(w: &[BlockQ8_0], x: &[BlockQ8_0], out: &mut [f32]) {
        let nb = x.len();
        let rows: [&[BlockQ8_0]; R] = core::array::from_fn(|r| &w[r * nb..(r + 1) * nb]);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, xb) in x.iter().enumerate() {
            if R > 1 {
                prefetch_next_group(&w[..R * nb], b, R * core::mem::size_of::<BlockQ8_0>());
            }
            let a0 = _mm256_cvtepi8_epi16(ld_q8_half(&xb.qs, 0));
            let a1 = _mm256_cvtepi8_epi16(ld_q8_half(&xb.qs, 1));
            let d = scales::<R>(core::array::from_fn(|r| rows[r][b].d), xb.d);
            for r in 0..R {
                let wb = &rows[r][b];
                let w0 = _mm256_cvtepi8_epi16(ld_q8_half(&wb.qs, 0));
                let w1 = _mm256_cvtepi8_epi16(ld_q8_half(&wb.qs, 1));
                let s = _mm256_add_epi32(_mm256_madd_epi16(w0, a0), _mm256_madd_epi16(w1, a1));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), lane(d, r), acc[r]);
            }
        }
        for r in 0..R {
            out[r] = hsum(acc[r]);
        }
    }

    /// `R` rows of Q4_0 against Q8_0 `x`, two blocks per step: `vpmaddubsw`
    /// of the unsigned codes, less `vpmaddubsw` of 8s (shared by the rows), so
    /// any i8 activation is exact.
    ///
    /// The weight nibbles are never shuffled across lanes: [qs_a | qs_b] is
    /// loaded as it lies, its low nibbles being elements 0..16 of each block
    /// and its high nibbles elements 16..32, and it is the *activations* that
    /// are rearranged to match ([x_a[..16] | x_b[..16]] and [x_a[16..] |
    /// x_b[16..]]), once per step for all the rows. The rows' f16 scales are
    /// converted together, eight per `vcvtph2ps`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn rows_q4_0<const R: usize>(w: &[BlockQ4_0], x: &[BlockQ8_0], out: &mut [f32]) {
        const { assert!(R <= 8) };
        let nb = x.len();
        let w = &w[..R * nb];
        let wp = w.as_ptr();
        let m4 = _mm256_set1_epi8(0x0F);
        let eight = _mm256_set1_epi8(8);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        // Lane sources of a row's [a ×4 | b ×4] in `d` below; opaque, or LLVM
        // splits each constant vpermps into two shuffles.
        let pick: [__m256i; 4] = core::array::from_fn(|i| {
            let i = 2 * i as i32;
            core::hint::black_box(_mm256_setr_epi32(i, i, i, i, i + 1, i + 1, i + 1, i + 1))
        });
        let mut b = 0;
        while b + 2 <= nb {
            if R > 1 {
                prefetch_next_group(w, b / 2, 2 * R * core::mem::size_of::<BlockQ4_0>());
            }
            // SAFETY: r < R and b + 1 < nb, so blocks r·nb + b and r·nb + b + 1
            // (the 36 bytes from p[r]) are inside `w`.
            let p: [*const u8; R] =
                core::array::from_fn(|r| unsafe { wp.add(r * nb + b).cast::<u8>() });
            let (xa, xb) = (ld_q8(&x[b].qs), ld_q8(&x[b + 1].qs));
            let xlo = _mm256_permute2x128_si256::<0x20>(xa, xb);
            let xhi = _mm256_permute2x128_si256::<0x31>(xa, xb);
            let x8 = _mm256_add_epi16(
                _mm256_maddubs_epi16(eight, xlo),
                _mm256_maddubs_epi16(eight, xhi),
            );
            // The rows' f16 scales as one [d_a, d_b] i32 lane per row: d_a is
            // the low half of bytes 0..4 from p[r], d_b the high half of 16..20.
            let dwords = |off: usize| -> [i32; 8] {
                core::array::from_fn(|r| {
                    if r < R {
                        // SAFETY: off is 0 or 16: the 4 bytes lie in the 36 from p[r].
                        unsafe { p[r].add(off).cast::<i32>().read_unaligned() }
                    } else {
                        0
                    }
                })
            };
            let (da, db) = (dwords(0), dwords(16));
            // SAFETY: `da` and `db` are 32 readable bytes each; loadu needs no alignment.
            let dd = unsafe {
                _mm256_blend_epi16::<0xAA>(
                    _mm256_loadu_si256(da.as_ptr().cast()),
                    _mm256_loadu_si256(db.as_ptr().cast()),
                )
            };
            // d·d_x as [a, b] pairs, rows 0..4 then rows 4..8.
            let (dxa, dxb) = (f16s(x[b].d), f16s(x[b + 1].d));
            let dx = _mm256_setr_ps(dxa, dxb, dxa, dxb, dxa, dxb, dxa, dxb);
            let d = [
                _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(dd)), dx),
                _mm256_mul_ps(_mm256_cvtph_ps(_mm256_extracti128_si256::<1>(dd)), dx),
            ];
            for r in 0..R {
                // SAFETY: bytes 2..18 and 20..36 from p[r] are the two blocks' qs.
                let q = unsafe { _mm256_loadu2_m128i(p[r].add(20).cast(), p[r].add(2).cast()) };
                let lo = _mm256_and_si256(q, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
                let p =
                    _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi));
                let s = _mm256_madd_epi16(_mm256_sub_epi16(p, x8), ones);
                let dr = _mm256_permutevar8x32_ps(d[r / 4], pick[r % 4]);
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dr, acc[r]);
            }
            b += 2;
        }
        if b < nb {
            // An odd last block, in element order.
            let xb = &x[b];
            let a = ld_q8(&xb.qs);
            let a8 = _mm256_maddubs_epi16(eight, a);
            let d = scales::<R>(core::array::from_fn(|r| w[r * nb + b].d), xb.d);
            for r in 0..R {
                let p = _mm256_sub_epi16(_mm256_maddubs_epi16(q4_codes(&w[r * nb + b].qs), a), a8);
                let s = _mm256_madd_epi16(p, ones);
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), lane(d, r), acc[r]);
            }
        }
        for r in 0..R {
            out[r] = hsum(acc[r]);
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_q8_0_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
        let n = w.len().min(x.len());
        let mut out = [0.0];
        rows_q8_0::<1>(&w[..n], &x[..n], &mut out);
        out[0]
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_q4_0_q8_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
        let n = w.len().min(x.len());
        let mut out = [0.0];
        rows_q4_0::<1>(&w[..n], &x[..n], &mut out);
        out[0]
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn matvec_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0], out: &mut [f32]) {
        let f = |wr: &[BlockQ8_0], or: &mut [f32]| {
            if or.len() == ROWS {
                rows_q8_0::<ROWS>(wr, x, or)
            } else {
                rows_q8_0::<1>(wr, x, or)
            }
        };
        groups(w, x.len(), out, f);
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn matvec_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0], out: &mut [f32]) {
        let f = |wr: &[BlockQ4_0], or: &mut [f32]| {
            if or.len() == ROWS {
                rows_q4_0::<ROWS>(wr, x, or)
            } else {
                rows_q4_0::<1>(wr, x, or)
            }
        };
        groups(w, x.len(), out, f);
    }

    // --- attention and element-wise ops ------------------------------------

    /// y += a·x; multiply then add (no FMA), as the scalar reference, so the
    /// results are bit-identical.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn axpy_f32(a: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let av = _mm256_set1_ps(a);
        let mut i = 0;
        while i + 8 <= n {
            stf(y, i, _mm256_add_ps(ldf(y, i), _mm256_mul_ps(av, ldf(x, i))));
            i += 8;
        }
        while i < n {
            y[i] += a * x[i];
            i += 1;
        }
    }

    /// `scores[t] = scale · q·k_t`: `dot_f32_f32` inlined, no call per key.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn scores_f32(q: &[f32], keys: &[f32], stride: usize, scale: f32, out: &mut [f32]) {
        let hd = q.len();
        for (t, o) in out.iter_mut().enumerate() {
            *o = scale * dot_f32_f32(q, &keys[t * stride..t * stride + hd]);
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn scores_f16(q: &[f32], keys: &[u8], stride: usize, scale: f32, out: &mut [f32]) {
        let hd = q.len();
        for (t, o) in out.iter_mut().enumerate() {
            *o = scale * dot_f16(&keys[2 * t * stride..2 * (t * stride + hd)], q);
        }
    }

    /// `out += Σ_t w[t]·v_t` with 32 (then 8) lanes of `out` held in
    /// registers across every t: per element the multiply-then-add of
    /// `axpy_*`, t ascending, so the sums are bit-identical to a loop of
    /// axpys; `$ld(values, i·$per)` loads the 8 values from element i
    /// (`$per` bytes or f32 to an element), `$one(values, i)` one of them.
    macro_rules! mix {
        ($name:ident, $ty:ty, $ld:ident, $per:expr, $one:expr) => {
            #[target_feature(enable = "avx2,fma,f16c")]
            pub(super) fn $name(w: &[f32], values: &[$ty], stride: usize, out: &mut [f32]) {
                let hd = out.len();
                let mut c = 0;
                while c + 32 <= hd {
                    let mut acc = [ldf(out, c), ldf(out, c + 8), ldf(out, c + 16), ldf(out, c + 24)];
                    for (t, &a) in w.iter().enumerate() {
                        let av = _mm256_set1_ps(a);
                        for (k, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm256_add_ps(*acc, _mm256_mul_ps(av, $ld(values, (t * stride + c + 8 * k) * $per)));
                        }
                    }
                    for (k, acc) in acc.iter().enumerate() {
                        stf(out, c + 8 * k, *acc);
                    }
                    c += 32;
                }
                while c + 8 <= hd {
                    let mut acc = ldf(out, c);
                    for (t, &a) in w.iter().enumerate() {
                        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(a), $ld(values, (t * stride + c) * $per)));
                    }
                    stf(out, c, acc);
                    c += 8;
                }
                let one: fn(&[$ty], usize) -> f32 = $one;
                while c < hd {
                    let mut s = out[c];
                    for (t, &a) in w.iter().enumerate() {
                        s += a * one(values, t * stride + c);
                    }
                    out[c] = s;
                    c += 1;
                }
            }
        };
    }
    mix!(mix_f32, f32, ldf, 1, |v, i| v[i]);
    mix!(mix_f16, u8, ldh, 2, |v, i| f16::from_le_bytes([v[2 * i], v[2 * i + 1]]).to_f32());

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn axpy_f16(a: f32, w: &[u8], y: &mut [f32]) {
        let n = y.len().min(w.len() / 2);
        let av = _mm256_set1_ps(a);
        let mut i = 0;
        while i + 8 <= n {
            stf(
                y,
                i,
                _mm256_add_ps(ldf(y, i), _mm256_mul_ps(av, ldh(w, 2 * i))),
            );
            i += 8;
        }
        while i < n {
            y[i] += a * f16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32();
            i += 1;
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn rmsnorm(out: &mut [f32], x: &[f32], w: &[u8], eps: f32) {
        let n = x.len().min(out.len()).min(w.len() / 4);
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i + 16 <= n {
            acc[0] = _mm256_fmadd_ps(ldf(x, i), ldf(x, i), acc[0]);
            acc[1] = _mm256_fmadd_ps(ldf(x, i + 8), ldf(x, i + 8), acc[1]);
            i += 16;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(ldf(x, i), ldf(x, i), acc[0]);
            i += 8;
        }
        let mut ss = hsum(_mm256_add_ps(acc[0], acc[1]));
        while i < n {
            ss += x[i] * x[i];
            i += 1;
        }
        let scale = 1.0 / libm::sqrtf(ss / x.len() as f32 + eps);
        let sv = _mm256_set1_ps(scale);
        let mut i = 0;
        while i + 8 <= n {
            stf(
                out,
                i,
                _mm256_mul_ps(_mm256_mul_ps(ldf(x, i), sv), ldb(w, 4 * i)),
            );
            i += 8;
        }
        while i < n {
            out[i] = x[i] * scale * read_f32(&w[4 * i..]);
            i += 1;
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn softmax(x: &mut [f32]) {
        let n = x.len();
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i + 8 <= n {
            m = _mm256_max_ps(m, ldf(x, i));
            i += 8;
        }
        let mut max = hmax(m);
        while i < n {
            max = max.max(x[i]);
            i += 1;
        }
        let mut acc = _mm256_setzero_ps();
        let maxv = _mm256_set1_ps(max);
        let mut i = 0;
        while i + 8 <= n {
            let e = exp(_mm256_sub_ps(ldf(x, i), maxv));
            stf(x, i, e);
            acc = _mm256_add_ps(acc, e);
            i += 8;
        }
        let mut sum = hsum(acc);
        while i < n {
            x[i] = libm::expf(x[i] - max);
            sum += x[i];
            i += 1;
        }
        let inv = _mm256_set1_ps(1.0 / sum);
        let mut i = 0;
        while i + 8 <= n {
            stf(x, i, _mm256_mul_ps(ldf(x, i), inv));
            i += 8;
        }
        let inv = 1.0 / sum;
        while i < n {
            x[i] *= inv;
            i += 1;
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn swiglu(gate: &mut [f32], up: &[f32]) {
        let n = gate.len().min(up.len());
        let one = _mm256_set1_ps(1.0);
        let neg = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
        let mut i = 0;
        while i + 8 <= n {
            let g = ldf(gate, i);
            let e = exp(_mm256_xor_ps(g, neg));
            stf(
                gate,
                i,
                _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), ldf(up, i)),
            );
            i += 8;
        }
        while i < n {
            gate[i] = gate[i] / (1.0 + libm::expf(-gate[i])) * up[i];
            i += 1;
        }
    }

    /// exp(x) for eight lanes, to within ~1 ulp of `libm::expf` on [-87.3, 88.7]:
    /// x = k·ln2 + r (Cody–Waite, |r| <= ln2/2), e^r by a degree-6 polynomial
    /// (the minimax fit of Cephes' `expf`), times 2^k built in the exponent
    /// field. Overflow gives +inf, underflow 0 (subnormal results flush to 0).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn exp(x: __m256) -> __m256 {
        let hi = _mm256_set1_ps(88.722_84);
        let lo = _mm256_set1_ps(-87.336_55);
        let over = _mm256_cmp_ps::<_CMP_GT_OQ>(x, hi);
        let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, lo);
        let xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
        let k = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(xc, _mm256_set1_ps(core::f32::consts::LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693_359_4), xc);
        let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.398_199_9e-3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.333_452e-3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.166_579_6e-2));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.666_666_5e-1));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5));
        let r2 = _mm256_mul_ps(r, r);
        let e = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
        // 2^k with k in [-126, 128]: split as 2^(k/2)·2^(k - k/2) so k = 128 does not overflow the field.
        let ki = _mm256_cvtps_epi32(k);
        let k1 = _mm256_srai_epi32::<1>(ki);
        let k2 = _mm256_sub_epi32(ki, k1);
        let bias = _mm256_set1_epi32(127);
        let p1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(k1, bias)));
        let p2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(k2, bias)));
        let y = _mm256_mul_ps(_mm256_mul_ps(e, p1), p2);
        let y = _mm256_blendv_ps(y, _mm256_set1_ps(f32::INFINITY), over);
        let y = _mm256_andnot_ps(under, y);
        // NaN in, NaN out.
        _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn add_bias(y: &mut [f32], b: &[u8]) {
        let n = y.len().min(b.len() / 4);
        let mut i = 0;
        while i + 8 <= n {
            stf(y, i, _mm256_add_ps(ldf(y, i), ldb(b, 4 * i)));
            i += 8;
        }
        while i < n {
            y[i] += read_f32(&b[4 * i..]);
            i += 1;
        }
    }

    /// Multiply and subtract (no FMA), as the scalar reference: bit-identical.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
        let half = head_dim / 2;
        if half == 0 {
            return;
        }
        let (cos, sin) = (&cos[..half], &sin[..half]);
        for head in x.chunks_exact_mut(head_dim) {
            let (a, b) = head.split_at_mut(half);
            let mut i = 0;
            while i + 8 <= half {
                let (x0, x1) = (ldf(a, i), ldf(b, i));
                let (c, s) = (ldf(cos, i), ldf(sin, i));
                stf(
                    a,
                    i,
                    _mm256_sub_ps(_mm256_mul_ps(x0, c), _mm256_mul_ps(x1, s)),
                );
                stf(
                    b,
                    i,
                    _mm256_add_ps(_mm256_mul_ps(x1, c), _mm256_mul_ps(x0, s)),
                );
                i += 8;
            }
            while i < half {
                let (x0, x1) = (a[i], b[i]);
                a[i] = x0 * cos[i] - x1 * sin[i];
                b[i] = x1 * cos[i] + x0 * sin[i];
                i += 1;
            }
        }
    }
}

/// Runs `f` over groups of `ROWS` rows (`ROWS·nb` blocks and `ROWS` outputs),
/// then over the remaining rows one at a time. Rows past `w`'s end are left
/// untouched, like the scalar reference's `zip`.
#[inline(always)]
fn groups<B>(w: &[B], nb: usize, out: &mut [f32], f: impl FnMut(&[B], &mut [f32])) {
    crate::matvec::row_groups(w, nb, ROWS, out, f)
}

/// AVX-512 kernels: `vpdpbusd` (u8 × i8, four products summed into i32 lanes)
/// over two blocks per 512-bit register (Q4_0: four, see its section). Both
/// formats are made unsigned (Q8_0: w + 128, Q4_0: the codes) and the offset
/// is taken back by seeding the accumulator with −offset·Σx, computed once
/// per activation block and shared by the rows: exact for every i8 on either
/// side.
mod k5 {
    use super::k2::{f16s, hsum, ld_q8};
    use super::*;

    /// The i8 of two Q8_0 blocks in one register.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn ld2_q8(a: &BlockQ8_0, b: &BlockQ8_0) -> __m512i {
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(ld_q8(&a.qs)), ld_q8(&b.qs))
    }

    /// The i8 of two Q8_0 blocks made unsigned (+128).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn ld2_q8u(a: &BlockQ8_0, b: &BlockQ8_0) -> __m512i {
        _mm512_xor_si512(ld2_q8(a, b), _mm512_set1_epi8(i8::MIN))
    }

    /// [s0 ×8, s1 ×8]: the two blocks' combined scales, per 256-bit half.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn scales2(d0: [u8; 2], d1: [u8; 2], x: __m128) -> __m512 {
        let h = _mm_cvtsi32_si128(
            (u16::from_le_bytes(d0) as u32 | (u16::from_le_bytes(d1) as u32) << 16) as i32,
        );
        let s = _mm_mul_ps(_mm_cvtph_ps(h), x);
        _mm512_permutexvar_ps(
            _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
            _mm512_castps128_ps512(s),
        )
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn xscales2(a: &BlockQ8_0, b: &BlockQ8_0) -> __m128 {
        let h = _mm_cvtsi32_si128(
            (u16::from_le_bytes(a.d) as u32 | (u16::from_le_bytes(b.d) as u32) << 16) as i32,
        );
        _mm_cvtph_ps(h)
    }

    /// `R` rows against `x`, two blocks per step; `$load` gives the weights
    /// made unsigned, `$off` the byte the activation sum is weighted by.
    macro_rules! rows_vnni {
        ($name:ident, $blk:ty, $load:ident, $off:expr) => {
            #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
            pub(super) fn $name<const R: usize>(w: &[$blk], x: &[BlockQ8_0], out: &mut [f32]) {
                let nb = x.len();
                let rows: [&[$blk]; R] = core::array::from_fn(|r| &w[r * nb..(r + 1) * nb]);
                let off = _mm512_set1_epi8($off as i8);
                let mut acc = [_mm512_setzero_ps(); R];
                let mut b = 0;
                while b + 2 <= nb {
                    if R > 1 {
                        prefetch_next_group(&w[..R * nb], b / 2, 2 * R * core::mem::size_of::<$blk>());
                    }
                    let a = ld2_q8(&x[b], &x[b + 1]);
                    let seed = _mm512_sub_epi32(
                        _mm512_setzero_si512(),
                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, a),
                    );
                    let dx = xscales2(&x[b], &x[b + 1]);
                    for r in 0..R {
                        let (w0, w1) = (&rows[r][b], &rows[r][b + 1]);
                        let s = _mm512_dpbusd_epi32(seed, $load(w0, w1), a);
                        acc[r] =
                            _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scales2(w0.d, w1.d, dx), acc[r]);
                    }
                    b += 2;
                }
                let mut acc: [__m256; R] = core::array::from_fn(|r| {
                    _mm256_add_ps(
                        _mm512_castps512_ps256(acc[r]),
                        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc[r]))),
                    )
                });
                if b < nb {
                    // An odd last block: the same, in 256 bits.
                    let a = ld_q8(&x[b].qs);
                    let off = _mm512_castsi512_si256(off);
                    let seed = _mm256_sub_epi32(
                        _mm256_setzero_si256(),
                        _mm256_dpbusd_epi32(_mm256_setzero_si256(), off, a),
                    );
                    let dx = f16s(x[b].d);
                    for r in 0..R {
                        let wb = &rows[r][b];
                        let q = _mm512_castsi512_si256($load(wb, wb));
                        let s = _mm256_dpbusd_epi32(seed, q, a);
                        acc[r] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(s),
                            _mm256_set1_ps(f16s(wb.d) * dx),
                            acc[r],
                        );
                    }
                }
                for r in 0..R {
                    out[r] = hsum(acc[r]);
                }
            }
        };
    }
    rows_vnni!(rows_q8_0, BlockQ8_0, ld2_q8u, 0x80u8);

    // --- Q4_0: four blocks per step, nibbles never shuffled across lanes ---
    //
    // Four consecutive Q4_0 blocks of a row are a 72-byte run, read as bytes
    // 0..64 and 56..72. Every `d` and every `qs` starts at an even offset
    // (18k, 18k + 2), so word permutes suffice: one `vpermt2w` packs
    // [qs0|qs1|qs2|qs3] (one block per 128-bit lane) and the `d`s are picked
    // out by `vpermw`. A lane's low nibbles are its block's elements 0..16 and
    // its high nibbles elements 16..32, so it is the *activations* that are
    // rearranged to match, once per step for all the rows.

    const _: () = assert!(core::mem::size_of::<BlockQ4_0>() == 18);

    /// `vpermt2w` sources that gather the four `qs` of a run into one lane
    /// each: words of bytes 0..64, then (32 +) words of bytes 56..72.
    static Q4_QS_WORDS: [u16; 32] = {
        let mut t = [0; 32];
        let mut i = 0;
        while i < 32 {
            let o = 18 * (i / 8) + 2 + 2 * (i % 8); // byte offset in the run
            t[i] = (if i < 24 { o / 2 } else { 32 + (o - 56) / 2 }) as u16;
            i += 1;
        }
        t
    };

    /// The activation side of a step of (up to) four blocks, shared by the
    /// rows: elements 0..16 (`lo`) and 16..32 (`hi`) of each block, one
    /// 128-bit lane per block as the weights' nibbles; −8·Σx per i32 lane
    /// (`seed`, taking back the codes' offset exactly); [d_x0..d_x3] ×4.
    /// Blocks past `x.len()` are zero, so they add nothing.
    struct Q4Step {
        lo: __m512i,
        hi: __m512i,
        seed: __m512i,
        dx: __m512,
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn q4_step(x: &[BlockQ8_0]) -> Q4Step {
        let mut q = [_mm256_setzero_si256(); 4];
        let mut h = 0u64;
        for (k, xb) in x.iter().take(4).enumerate() {
            q[k] = ld_q8(&xb.qs);
            h |= (u16::from_le_bytes(xb.d) as u64) << (16 * k);
        }
        let z01 = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(q[0]), q[1]); // [x0 lo, x0 hi, x1 lo, x1 hi]
        let z23 = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(q[2]), q[3]);
        let lo = _mm512_shuffle_i64x2::<0b10_00_10_00>(z01, z23);
        let hi = _mm512_shuffle_i64x2::<0b11_01_11_01>(z01, z23);
        let eight = _mm512_set1_epi8(8);
        let sum8 = _mm512_dpbusd_epi32(
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, lo),
            eight,
            hi,
        );
        let dx = _mm512_broadcast_f32x4(_mm_cvtph_ps(_mm_cvtsi64_si128(h as i64)));
        Q4Step {
            lo,
            hi,
            seed: _mm512_sub_epi32(_mm512_setzero_si512(), sum8),
            dx,
        }
    }

    /// Index vectors for [`q4_rows`], built once per call.
    struct Q4Idx {
        /// [`Q4_QS_WORDS`].
        qs: __m512i,
        /// Words 0, 9, 18, 27 of a run (its four `d`), repeated.
        d: __m512i,
        /// Lanes 4k..4k + 4 of a vector, each repeated four times.
        pick: [__m512i; 4],
    }

    impl Q4Idx {
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        fn new() -> Self {
            Q4Idx {
                // SAFETY: the static is 64 readable bytes; loadu needs no alignment.
                qs: unsafe { _mm512_loadu_si512(Q4_QS_WORDS.as_ptr().cast()) },
                d: _mm512_set1_epi64(0x001b_0012_0009_0000),
                pick: core::array::from_fn(|k| {
                    let k = 4 * k as i32;
                    let (a, b, c, d) = (k, k + 1, k + 2, k + 3);
                    _mm512_setr_epi32(a, a, a, a, b, b, b, b, c, c, c, c, d, d, d, d)
                }),
            }
        }
    }

    /// `acc[r]` += row r's run · `x`, where `z[r]` is the run's bytes 0..64
    /// and (low 128 bits) 56..72.
    ///
    /// The scales of all the rows are converted together: row r's four `d`
    /// go to words 4r..4r + 4 of one register (merge-masked `vpermw`), two
    /// `vcvtph2ps` and products with d_x give rows 0..4 and 4..8, and a row
    /// then takes its [s0 ×4, s1 ×4, s2 ×4, s3 ×4] with one `vpermps`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn q4_rows<const R: usize>(
        z: &[(__m512i, __m512i); R],
        x: &Q4Step,
        idx: &Q4Idx,
        acc: &mut [__m512; R],
    ) {
        const { assert!(R <= 8) };
        let mut dw = _mm512_setzero_si512();
        for (r, &(z0, _)) in z.iter().enumerate() {
            dw = _mm512_mask_permutexvar_epi16(dw, 0xF << (4 * r), idx.d, z0);
        }
        let s = [
            _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(dw)), x.dx),
            _mm512_mul_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64::<1>(dw)), x.dx),
        ];
        let m4 = _mm512_set1_epi8(0x0F);
        for r in 0..R {
            let qs = _mm512_permutex2var_epi16(z[r].0, idx.qs, z[r].1);
            let lo = _mm512_and_si512(qs, m4);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(qs), m4);
            let dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(x.seed, lo, x.lo), hi, x.hi);
            let scale = _mm512_permutexvar_ps(idx.pick[r % 4], s[r / 4]);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[r]);
        }
    }

    /// `R` rows of Q4_0 against `x`, four blocks per step (see above); a last
    /// step of one to three blocks reads the same way with masked loads.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) fn rows_q4_0<const R: usize>(w: &[BlockQ4_0], x: &[BlockQ8_0], out: &mut [f32]) {
        const B: usize = core::mem::size_of::<BlockQ4_0>();
        let nb = x.len();
        let w = &w[..R * nb];
        let wp = w.as_ptr().cast::<u8>();
        let idx = Q4Idx::new();
        let mut acc = [_mm512_setzero_ps(); R];
        let mut b = 0;
        while b + 4 <= nb {
            if R > 1 {
                prefetch_next_group(w, b / 4, 4 * R * B);
            }
            // SAFETY: r < R and b + 4 <= nb, so the run's 72 bytes (blocks
            // r·nb + b .. + 4) lie inside `w`; loadu needs no alignment.
            let z = core::array::from_fn(|r| unsafe {
                let p = wp.add((r * nb + b) * B);
                let tail = _mm_loadu_si128(p.add(56).cast());
                (_mm512_loadu_si512(p.cast()), _mm512_castsi128_si512(tail))
            });
            q4_rows::<R>(&z, &q4_step(&x[b..b + 4]), &idx, &mut acc);
            b += 4;
        }
        if b < nb {
            // One to three blocks (n < 56 bytes) left: the bytes past them
            // load as zeros (codes 0, scales 0; their activations are zero too).
            let n = (nb - b) * B;
            // SAFETY: only the n bytes of blocks r·nb + b .. r·nb + nb, inside
            // `w`, are enabled; masked-off bytes are not accessed (a masked
            // load does not fault on them).
            let z = core::array::from_fn(|r| unsafe {
                let p = wp.add((r * nb + b) * B);
                (
                    _mm512_maskz_loadu_epi8((1u64 << n) - 1, p.cast()),
                    _mm512_setzero_si512(),
                )
            });
            q4_rows::<R>(&z, &q4_step(&x[b..]), &idx, &mut acc);
        }
        for r in 0..R {
            out[r] = _mm512_reduce_add_ps(acc[r]);
        }
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) fn dot_q8_0_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
        let n = w.len().min(x.len());
        let mut out = [0.0];
        rows_q8_0::<1>(&w[..n], &x[..n], &mut out);
        out[0]
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) fn dot_q4_0_q8_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
        let n = w.len().min(x.len());
        let mut out = [0.0];
        rows_q4_0::<1>(&w[..n], &x[..n], &mut out);
        out[0]
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) fn matvec_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0], out: &mut [f32]) {
        let f = |wr: &[BlockQ8_0], or: &mut [f32]| {
            if or.len() == ROWS {
                rows_q8_0::<ROWS>(wr, x, or)
            } else {
                rows_q8_0::<1>(wr, x, or)
            }
        };
        groups(w, x.len(), out, f);
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) fn matvec_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0], out: &mut [f32]) {
        let f = |wr: &[BlockQ4_0], or: &mut [f32]| {
            if or.len() == ROWS {
                rows_q4_0::<ROWS>(wr, x, or)
            } else {
                rows_q4_0::<1>(wr, x, or)
            }
        };
        groups(w, x.len(), out, f);
    }
}
