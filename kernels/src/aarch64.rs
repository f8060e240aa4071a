//! aarch64 backends: NEON, and NEON with the dot-product extension (`sdot`).
//!
//! `vdotq_s32` is still unstable in Rust (`stdarch_neon_dotprod`), so the
//! dotprod backend issues `sdot` by inline `asm!` inside functions compiled
//! with `#[target_feature(enable = "dotprod")]`; it is handed out only when
//! the CPU reports the feature. Likewise `vcvt_f32_f16` needs the unstable
//! `f16` type, so F16 is widened by exact integer arithmetic (`h2f`).
//!
//! Every kernel is a safe `#[target_feature]` function called through a safe
//! wrapper (`entry!`) from a table handed out only after its features were
//! detected. Loads go through `vld1q_u8` (alignment 1), so weights at any
//! byte offset are fine.
//!
//! `quantize_q8_0` is bit-identical to the scalar reference: `fcvtas` rounds
//! to nearest with ties away from zero (as `roundf`) and saturates (as `as`).

use crate::table::entry;
use crate::table::{mix_of, rows_of, scores_of};
use crate::matmul::{aarch64 as mm, Batch, MatOut};
use crate::{BlockQ4_0, BlockQ8_0, Kernels, QK};
use core::arch::aarch64::*;
use half::{bf16, f16};

fn has_neon() -> bool {
    #[cfg(feature = "std")]
    {
        std::arch::is_aarch64_feature_detected!("neon")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "neon")
    }
}

fn has_dotprod() -> bool {
    #[cfg(feature = "std")]
    {
        has_neon() && std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(feature = "std"))]
    {
        has_neon() && cfg!(target_feature = "dotprod")
    }
}

/// The NEON backend, if this CPU has it (every aarch64 CPU that runs Linux does).
pub fn neon() -> Option<&'static Kernels> {
    has_neon().then_some(&NEON)
}

/// The NEON + dot-product (`sdot`, ARMv8.4, optional from v8.2) backend, if this CPU has it.
pub fn dotprod() -> Option<&'static Kernels> {
    has_dotprod().then_some(&DOTPROD)
}

entry!(n_quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) = kn::quantize_q8_0);
entry!(n_dot_f32(w: &[u8], x: &[f32]) -> f32 = kn::dot_f32);
entry!(n_dot_f16(w: &[u8], x: &[f32]) -> f32 = kn::dot_f16);
entry!(n_dot_bf16(w: &[u8], x: &[f32]) -> f32 = kn::dot_bf16);
entry!(n_dot_q8_0_f32(w: &[BlockQ8_0], x: &[f32]) -> f32 = kn::dot_q8_0_f32);
entry!(n_dot_q4_0_f32(w: &[BlockQ4_0], x: &[f32]) -> f32 = kn::dot_q4_0_f32);
entry!(n_dot_q8_0_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 = kn::dot_q8_0_q8_0);
entry!(n_dot_q4_0_q8_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 = kn::dot_q4_0_q8_0);
entry!(n_matvec_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0], out: &mut [f32]) = kn::matvec_q8_0);
entry!(n_matvec_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0], out: &mut [f32]) = kn::matvec_q4_0);
entry!(n_dot_f32_f32(a: &[f32], b: &[f32]) -> f32 = kn::dot_f32_f32);
entry!(n_axpy_f32(a: f32, x: &[f32], y: &mut [f32]) = kn::axpy_f32);
entry!(n_axpy_f16(a: f32, w: &[u8], y: &mut [f32]) = kn::axpy_f16);
entry!(n_rmsnorm(out: &mut [f32], x: &[f32], w: &[u8], eps: f32) = kn::rmsnorm);
entry!(n_softmax(x: &mut [f32]) = kn::softmax);
entry!(n_swiglu(gate: &mut [f32], up: &[f32]) = kn::swiglu);
entry!(n_add_bias(y: &mut [f32], b: &[u8]) = kn::add_bias);
entry!(n_rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) = kn::rope);

entry!(n_matmul_f32(w: &[u8], x: &Batch, out: &mut MatOut) = mm::neon::matmul_f32);
entry!(n_matmul_f16(w: &[u8], x: &Batch, out: &mut MatOut) = mm::neon::matmul_f16);
entry!(n_matmul_bf16(w: &[u8], x: &Batch, out: &mut MatOut) = mm::neon::matmul_bf16);
entry!(n_matmul_q8_0_f32(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) = mm::neon::matmul_q8_0_f32);
entry!(n_matmul_q4_0_f32(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) = mm::neon::matmul_q4_0_f32);
entry!(n_matmul_q8_0(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) = mm::neon::matmul_q8_0);
entry!(n_matmul_q4_0(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) = mm::neon::matmul_q4_0);
entry!(d_matmul_q8_0(w: &[BlockQ8_0], x: &Batch, out: &mut MatOut) = mm::dotprod::matmul_q8_0);
entry!(d_matmul_q4_0(w: &[BlockQ4_0], x: &Batch, out: &mut MatOut) = mm::dotprod::matmul_q4_0);

entry!(d_dot_q8_0_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 = kd::dot_q8_0_q8_0);
entry!(d_dot_q4_0_q8_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 = kd::dot_q4_0_q8_0);
entry!(d_matvec_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0], out: &mut [f32]) = kd::matvec_q8_0);
entry!(d_matvec_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0], out: &mut [f32]) = kd::matvec_q4_0);

static NEON: Kernels = Kernels {
    name: "neon",
    quantize_q8_0: n_quantize_q8_0,
    dot_f32: n_dot_f32,
    dot_f16: n_dot_f16,
    dot_bf16: n_dot_bf16,
    dot_q8_0_f32: n_dot_q8_0_f32,
    dot_q4_0_f32: n_dot_q4_0_f32,
    dot_q8_0_q8_0: n_dot_q8_0_q8_0,
    dot_q4_0_q8_0: n_dot_q4_0_q8_0,
    matvec_f32: rows_of!(n_dot_f32, u8, f32, |n: usize| n * 4),
    matvec_f16: rows_of!(n_dot_f16, u8, f32, |n: usize| n * 2),
    matvec_bf16: rows_of!(n_dot_bf16, u8, f32, |n: usize| n * 2),
    matvec_q8_0: n_matvec_q8_0,
    matvec_q4_0: n_matvec_q4_0,
    matmul_f32: n_matmul_f32,
    matmul_f16: n_matmul_f16,
    matmul_bf16: n_matmul_bf16,
    matmul_q8_0_f32: n_matmul_q8_0_f32,
    matmul_q4_0_f32: n_matmul_q4_0_f32,
    matmul_q8_0: n_matmul_q8_0,
    matmul_q4_0: n_matmul_q4_0,
    dot_f32_f32: n_dot_f32_f32,
    axpy_f32: n_axpy_f32,
    axpy_f16: n_axpy_f16,
    scores_f32: scores_of!(f32, 1, |k, q| n_dot_f32_f32(q, k)),
    scores_f16: scores_of!(u8, 2, n_dot_f16),
    mix_f32: mix_of!(f32, 1, n_axpy_f32),
    mix_f16: mix_of!(u8, 2, n_axpy_f16),
    rmsnorm: n_rmsnorm,
    softmax: n_softmax,
    swiglu: n_swiglu,
    add_bias: n_add_bias,
    rope: n_rope,
};

static DOTPROD: Kernels = Kernels {
    name: "dotprod",
    dot_q8_0_q8_0: d_dot_q8_0_q8_0,
    dot_q4_0_q8_0: d_dot_q4_0_q8_0,
    matvec_q8_0: d_matvec_q8_0,
    matvec_q4_0: d_matvec_q4_0,
    matmul_q8_0: d_matmul_q8_0,
    matmul_q4_0: d_matmul_q4_0,
    ..NEON
};

/// Rows a quantized matvec takes at a time, reusing each activation block.
const ROWS: usize = 4;

/// Runs `f` over groups of `ROWS` rows, then over the remaining rows one at
/// a time; rows past `w`'s end are left untouched, like the scalar `zip`.
#[inline(always)]
fn groups<B>(w: &[B], nb: usize, out: &mut [f32], f: impl FnMut(&[B], &mut [f32])) {
    crate::matvec::row_groups(w, nb, ROWS, out, f)
}

#[inline]
fn read_f32(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// NEON kernels.
pub(crate) mod kn {
    use super::*;

    // --- loads and stores ------------------------------------------------

    /// Bytes `b[i..i + 16]`.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) fn ld(b: &[u8], i: usize) -> uint8x16_t {
        assert!(i + 16 <= b.len());
        // SAFETY: b[i..i + 16] is in bounds (asserted); vld1q_u8 needs alignment 1.
        unsafe { vld1q_u8(b.as_ptr().add(i)) }
    }

    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) fn ldf(x: &[f32], i: usize) -> float32x4_t {
        assert!(i + 4 <= x.len());
        // SAFETY: x[i..i + 4] is in bounds (asserted) and `x` is f32-aligned.
        unsafe { vld1q_f32(x.as_ptr().add(i)) }
    }

    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) fn stf(x: &mut [f32], i: usize, v: float32x4_t) {
        assert!(i + 4 <= x.len());
        // SAFETY: x[i..i + 4] is in bounds (asserted) and `x` is f32-aligned.
        unsafe { vst1q_f32(x.as_mut_ptr().add(i), v) }
    }

    /// Four little-endian f32 from bytes `b[i..i + 16]`.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) fn ldb(b: &[u8], i: usize) -> float32x4_t {
        vreinterpretq_f32_u8(ld(b, i))
    }

    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) fn ld_q8(q: &[i8; 32]) -> (int8x16_t, int8x16_t) {
        // SAFETY: `q` is 32 readable bytes; vld1q_s8 needs alignment 1.
        unsafe { (vld1q_s8(q.as_ptr()), vld1q_s8(q.as_ptr().add(16))) }
    }

    /// The 32 weights (−8..=7) of a Q4_0 block, elements 0..16 and 16..32.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) fn ld_q4(q: &[u8; 16]) -> (int8x16_t, int8x16_t) {
        // SAFETY: `q` is 16 readable bytes; vld1q_u8 needs alignment 1.
        let v = unsafe { vld1q_u8(q.as_ptr()) };
        let eight = vdupq_n_s8(8);
        let lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), eight);
        let hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)), eight);
        (lo, hi)
    }

    // --- conversions -------------------------------------------------------

    /// Four F16 (bits) to f32, exactly, normals, subnormals, ±inf and NaN:
    /// the exponent and mantissa shifted into f32 position are the value
    /// times 2^−112, undone by one exact multiply; inf/NaN get the full
    /// exponent back.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(crate) fn h2f(h: uint16x4_t) -> float32x4_t {
        let w = vmovl_u16(h);
        let sign = vshlq_n_u32::<16>(vandq_u32(w, vdupq_n_u32(0x8000)));
        let em = vandq_u32(w, vdupq_n_u32(0x7FFF));
        let f = vmulq_f32(
            vreinterpretq_f32_u32(vshlq_n_u32::<13>(em)),
            vdupq_n_f32(f32::from_bits(0x7780_0000)),
        ); // 2^112
        let special = vandq_u32(vcgeq_u32(em, vdupq_n_u32(0x7C00)), vdupq_n_u32(0x7F80_0000));
        vreinterpretq_f32_u32(vorrq_u32(
            vorrq_u32(vreinterpretq_u32_f32(f), special),
            sign,
        ))
    }

    /// Eight F16 from bytes `b[i..i + 16]`.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(crate) fn ldh(b: &[u8], i: usize) -> (float32x4_t, float32x4_t) {
        let v = vreinterpretq_u16_u8(ld(b, i));
        (h2f(vget_low_u16(v)), h2f(vget_high_u16(v)))
    }

    /// Eight BF16 from bytes `b[i..i + 16]`.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(crate) fn ldbf(b: &[u8], i: usize) -> (float32x4_t, float32x4_t) {
        let v = vreinterpretq_u16_u8(ld(b, i));
        (
            vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(v))),
            vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_high_u16(v))),
        )
    }

    /// One f16 scale (little-endian bytes) to f32.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(crate) fn f16s(d: [u8; 2]) -> f32 {
        vgetq_lane_f32::<0>(h2f(vdup_n_u16(u16::from_le_bytes(d))))
    }

    /// Four f16 scales to f32 at once.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) fn f16s4(d: [[u8; 2]; 4]) -> float32x4_t {
        let bits = d.map(u16::from_le_bytes);
        let packed = bits[0] as u64
            | (bits[1] as u64) << 16
            | (bits[2] as u64) << 32
            | (bits[3] as u64) << 48;
        h2f(vcreate_u16(packed))
    }

    /// i8 ×16 → four f32x4.
    #[inline]
    #[target_feature(enable = "neon")]
    fn i8_to_f32(q: int8x16_t) -> [float32x4_t; 4] {
        let lo = vmovl_s8(vget_low_s8(q));
        let hi = vmovl_s8(vget_high_s8(q));
        [
            vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))),
            vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo))),
            vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))),
            vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi))),
        ]
    }

    // --- quantization ----------------------------------------------------

    #[target_feature(enable = "neon")]
    pub(super) fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
        for (block, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
            let v: [float32x4_t; 8] = core::array::from_fn(|k| ldf(xs, 4 * k));
            // maxNum ignores NaN, as f32::max in the reference's fold.
            let mut m = vabsq_f32(v[0]);
            for &vk in &v[1..] {
                m = vmaxnmq_f32(m, vabsq_f32(vk));
            }
            let amax = vmaxnmvq_f32(m);
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            block.d = f16::from_f32(d).to_le_bytes();
            // fcvtas: round to nearest, ties away (roundf), saturating, NaN -> 0;
            // the saturating narrows then give exactly `as i8`.
            let q: [int32x4_t; 8] = v.map(|vk| vcvtaq_s32_f32(vmulq_n_f32(vk, id)));
            let n16 = |a: int32x4_t, b: int32x4_t| vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
            let lo = vcombine_s8(vqmovn_s16(n16(q[0], q[1])), vqmovn_s16(n16(q[2], q[3])));
            let hi = vcombine_s8(vqmovn_s16(n16(q[4], q[5])), vqmovn_s16(n16(q[6], q[7])));
            // SAFETY: `block.qs` is 32 writable bytes; vst1q_s8 needs alignment 1.
            unsafe {
                vst1q_s8(block.qs.as_mut_ptr(), lo);
                vst1q_s8(block.qs.as_mut_ptr().add(16), hi);
            }
        }
    }

    // --- float dots ----------------------------------------------------------

    #[target_feature(enable = "neon")]
    pub(super) fn dot_f32(w: &[u8], x: &[f32]) -> f32 {
        let n = x.len().min(w.len() / 4);
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                *acc = vfmaq_f32(*acc, ldb(w, 4 * (i + 4 * k)), ldf(x, i + 4 * k));
            }
            i += 16;
        }
        while i + 4 <= n {
            acc[0] = vfmaq_f32(acc[0], ldb(w, 4 * i), ldf(x, i));
            i += 4;
        }
        let mut s = vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ));
        while i < n {
            s += read_f32(&w[4 * i..]) * x[i];
            i += 1;
        }
        s
    }

    macro_rules! half_dot {
        ($name:ident, $ld:ident, $one:expr) => {
            #[target_feature(enable = "neon")]
            pub(super) fn $name(w: &[u8], x: &[f32]) -> f32 {
                let n = x.len().min(w.len() / 2);
                let mut acc = [vdupq_n_f32(0.0); 4];
                let mut i = 0;
                while i + 16 <= n {
                    for k in 0..2 {
                        let (a, b) = $ld(w, 2 * (i + 8 * k));
                        acc[2 * k] = vfmaq_f32(acc[2 * k], a, ldf(x, i + 8 * k));
                        acc[2 * k + 1] = vfmaq_f32(acc[2 * k + 1], b, ldf(x, i + 8 * k + 4));
                    }
                    i += 16;
                }
                while i + 8 <= n {
                    let (a, b) = $ld(w, 2 * i);
                    acc[0] = vfmaq_f32(acc[0], a, ldf(x, i));
                    acc[1] = vfmaq_f32(acc[1], b, ldf(x, i + 4));
                    i += 8;
                }
                let mut s = vaddvq_f32(vaddq_f32(
                    vaddq_f32(acc[0], acc[1]),
                    vaddq_f32(acc[2], acc[3]),
                ));
                let one: fn(&[u8]) -> f32 = $one;
                while i < n {
                    s += one(&w[2 * i..]) * x[i];
                    i += 1;
                }
                s
            }
        };
    }
    half_dot!(dot_f16, ldh, |b| f16::from_le_bytes([b[0], b[1]]).to_f32());
    half_dot!(dot_bf16, ldbf, |b| bf16::from_le_bytes([b[0], b[1]])
        .to_f32());

    #[target_feature(enable = "neon")]
    pub(super) fn dot_f32_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                *acc = vfmaq_f32(*acc, ldf(a, i + 4 * k), ldf(b, i + 4 * k));
            }
            i += 16;
        }
        while i + 4 <= n {
            acc[0] = vfmaq_f32(acc[0], ldf(a, i), ldf(b, i));
            i += 4;
        }
        let mut s = vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ));
        while i < n {
            s += a[i] * b[i];
            i += 1;
        }
        s
    }

    // --- quantized weights, float activations ----------------------------

    #[target_feature(enable = "neon")]
    fn block_f32(q: (int8x16_t, int8x16_t), xs: &[f32]) -> float32x4_t {
        let mut s = vdupq_n_f32(0.0);
        for (h, qh) in [q.0, q.1].into_iter().enumerate() {
            for (k, f) in i8_to_f32(qh).into_iter().enumerate() {
                s = vfmaq_f32(s, f, ldf(xs, 16 * h + 4 * k));
            }
        }
        s
    }

    #[target_feature(enable = "neon")]
    pub(super) fn dot_q8_0_f32(w: &[BlockQ8_0], x: &[f32]) -> f32 {
        let mut acc = vdupq_n_f32(0.0);
        for (block, xs) in w.iter().zip(x.chunks_exact(QK)) {
            acc = vfmaq_n_f32(acc, block_f32(ld_q8(&block.qs), xs), f16s(block.d));
        }
        vaddvq_f32(acc)
    }

    #[target_feature(enable = "neon")]
    pub(super) fn dot_q4_0_f32(w: &[BlockQ4_0], x: &[f32]) -> f32 {
        let mut acc = vdupq_n_f32(0.0);
        for (block, xs) in w.iter().zip(x.chunks_exact(QK)) {
            acc = vfmaq_n_f32(acc, block_f32(ld_q4(&block.qs), xs), f16s(block.d));
        }
        vaddvq_f32(acc)
    }

    // --- integer paths -----------------------------------------------------

    /// acc + Σ a·b over 16 i8 pairs, into four i32 lanes: `smull` to i16
    /// (exact: |−128·−128| fits), pairwise-add-accumulate to i32.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) fn dot16(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
        vpadalq_s16(acc, vmull_high_s8(a, b))
    }

    /// `R` rows of `nb` blocks against Q8_0 `x`, for any block type whose
    /// weights `$ld` yields as two i8x16 halves, with `$dot` the i8 dot.
    macro_rules! rows_int {
        ($feat:literal, $name:ident, $blk:ty, $ld:path, $dot:path) => {
            #[target_feature(enable = $feat)]
            pub(super) fn $name<const R: usize>(w: &[$blk], x: &[BlockQ8_0], out: &mut [f32]) {
                let nb = x.len();
                let rows: [&[$blk]; R] = core::array::from_fn(|r| &w[r * nb..(r + 1) * nb]);
                let mut acc = [vdupq_n_f32(0.0); R];
                for (b, xb) in x.iter().enumerate() {
                    let (a0, a1) = $crate::aarch64::kn::ld_q8(&xb.qs);
                    let dx = $crate::aarch64::kn::f16s(xb.d);
                    if R == 4 {
                        let d = vmulq_n_f32(
                            $crate::aarch64::kn::f16s4(core::array::from_fn(|r| rows[r % R][b].d)),
                            dx,
                        );
                        let ds = [
                            vgetq_lane_f32::<0>(d),
                            vgetq_lane_f32::<1>(d),
                            vgetq_lane_f32::<2>(d),
                            vgetq_lane_f32::<3>(d),
                        ];
                        for r in 0..R {
                            let (w0, w1) = $ld(&rows[r][b].qs);
                            let s = $dot($dot(vdupq_n_s32(0), w0, a0), w1, a1);
                            acc[r] = vfmaq_n_f32(acc[r], vcvtq_f32_s32(s), ds[r]);
                        }
                    } else {
                        for r in 0..R {
                            let wb = &rows[r][b];
                            let (w0, w1) = $ld(&wb.qs);
                            let s = $dot($dot(vdupq_n_s32(0), w0, a0), w1, a1);
                            acc[r] = vfmaq_n_f32(
                                acc[r],
                                vcvtq_f32_s32(s),
                                $crate::aarch64::kn::f16s(wb.d) * dx,
                            );
                        }
                    }
                }
                for r in 0..R {
                    out[r] = vaddvq_f32(acc[r]);
                }
            }
        };
    }
    pub(super) use rows_int;

    /// The quantized dots and matvecs of one backend, from its `rows_*`.
    macro_rules! int_entries {
        ($feat:literal) => {
            #[target_feature(enable = $feat)]
            pub(super) fn dot_q8_0_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
                let n = w.len().min(x.len());
                let mut out = [0.0];
                rows_q8_0::<1>(&w[..n], &x[..n], &mut out);
                out[0]
            }

            #[target_feature(enable = $feat)]
            pub(super) fn dot_q4_0_q8_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
                let n = w.len().min(x.len());
                let mut out = [0.0];
                rows_q4_0::<1>(&w[..n], &x[..n], &mut out);
                out[0]
            }

            #[target_feature(enable = $feat)]
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

            #[target_feature(enable = $feat)]
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
        };
    }
    pub(super) use int_entries;

    rows_int!("neon", rows_q8_0, BlockQ8_0, ld_q8, dot16);
    rows_int!("neon", rows_q4_0, BlockQ4_0, ld_q4, dot16);
    int_entries!("neon");

    // --- attention and element-wise ops ------------------------------------

    /// y += a·x; multiply then add (no FMA), as the scalar reference: bit-identical.
    #[target_feature(enable = "neon")]
    pub(super) fn axpy_f32(a: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let mut i = 0;
        while i + 4 <= n {
            stf(y, i, vaddq_f32(ldf(y, i), vmulq_n_f32(ldf(x, i), a)));
            i += 4;
        }
        while i < n {
            y[i] += a * x[i];
            i += 1;
        }
    }

    #[target_feature(enable = "neon")]
    pub(super) fn axpy_f16(a: f32, w: &[u8], y: &mut [f32]) {
        let n = y.len().min(w.len() / 2);
        let mut i = 0;
        while i + 8 <= n {
            let (h0, h1) = ldh(w, 2 * i);
            stf(y, i, vaddq_f32(ldf(y, i), vmulq_n_f32(h0, a)));
            stf(y, i + 4, vaddq_f32(ldf(y, i + 4), vmulq_n_f32(h1, a)));
            i += 8;
        }
        while i < n {
            y[i] += a * f16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32();
            i += 1;
        }
    }

    #[target_feature(enable = "neon")]
    pub(super) fn rmsnorm(out: &mut [f32], x: &[f32], w: &[u8], eps: f32) {
        let n = x.len().min(out.len()).min(w.len() / 4);
        let mut acc = [vdupq_n_f32(0.0); 2];
        let mut i = 0;
        while i + 8 <= n {
            acc[0] = vfmaq_f32(acc[0], ldf(x, i), ldf(x, i));
            acc[1] = vfmaq_f32(acc[1], ldf(x, i + 4), ldf(x, i + 4));
            i += 8;
        }
        while i + 4 <= n {
            acc[0] = vfmaq_f32(acc[0], ldf(x, i), ldf(x, i));
            i += 4;
        }
        let mut ss = vaddvq_f32(vaddq_f32(acc[0], acc[1]));
        while i < n {
            ss += x[i] * x[i];
            i += 1;
        }
        let scale = 1.0 / libm::sqrtf(ss / x.len() as f32 + eps);
        let mut i = 0;
        while i + 4 <= n {
            stf(
                out,
                i,
                vmulq_f32(vmulq_n_f32(ldf(x, i), scale), ldb(w, 4 * i)),
            );
            i += 4;
        }
        while i < n {
            out[i] = x[i] * scale * read_f32(&w[4 * i..]);
            i += 1;
        }
    }

    /// exp(x) for four lanes; see the x86 module's `exp` for the method.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) fn exp(x: float32x4_t) -> float32x4_t {
        let hi = vdupq_n_f32(88.722_84);
        let lo = vdupq_n_f32(-87.336_55);
        let over = vcgtq_f32(x, hi);
        let under = vcltq_f32(x, lo);
        let xc = vminq_f32(vmaxq_f32(x, lo), hi);
        let k = vrndnq_f32(vmulq_n_f32(xc, core::f32::consts::LOG2_E));
        let r = vfmsq_f32(xc, k, vdupq_n_f32(0.693_359_4));
        let r = vfmsq_f32(r, k, vdupq_n_f32(-2.121_944_4e-4));
        let mut p = vdupq_n_f32(1.987_569_1e-4);
        p = vfmaq_f32(vdupq_n_f32(1.398_199_9e-3), p, r);
        p = vfmaq_f32(vdupq_n_f32(8.333_452e-3), p, r);
        p = vfmaq_f32(vdupq_n_f32(4.166_579_6e-2), p, r);
        p = vfmaq_f32(vdupq_n_f32(1.666_666_5e-1), p, r);
        p = vfmaq_f32(vdupq_n_f32(0.5), p, r);
        let r2 = vmulq_f32(r, r);
        let e = vaddq_f32(vfmaq_f32(r, p, r2), vdupq_n_f32(1.0));
        let ki = vcvtq_s32_f32(k);
        let k1 = vshrq_n_s32::<1>(ki);
        let k2 = vsubq_s32(ki, k1);
        let bias = vdupq_n_s32(127);
        let p1 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(k1, bias)));
        let p2 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(k2, bias)));
        let y = vmulq_f32(vmulq_f32(e, p1), p2);
        let y = vbslq_f32(over, vdupq_n_f32(f32::INFINITY), y);
        let y = vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), under));
        // NaN in, NaN out.
        vbslq_f32(vceqq_f32(x, x), y, x)
    }

    #[target_feature(enable = "neon")]
    pub(super) fn softmax(x: &mut [f32]) {
        let n = x.len();
        let mut m = vdupq_n_f32(f32::NEG_INFINITY);
        let mut i = 0;
        while i + 4 <= n {
            m = vmaxnmq_f32(m, ldf(x, i));
            i += 4;
        }
        let mut max = vmaxnmvq_f32(m);
        while i < n {
            max = max.max(x[i]);
            i += 1;
        }
        let maxv = vdupq_n_f32(max);
        let mut acc = vdupq_n_f32(0.0);
        let mut i = 0;
        while i + 4 <= n {
            let e = exp(vsubq_f32(ldf(x, i), maxv));
            stf(x, i, e);
            acc = vaddq_f32(acc, e);
            i += 4;
        }
        let mut sum = vaddvq_f32(acc);
        while i < n {
            x[i] = libm::expf(x[i] - max);
            sum += x[i];
            i += 1;
        }
        let inv = 1.0 / sum;
        let mut i = 0;
        while i + 4 <= n {
            stf(x, i, vmulq_n_f32(ldf(x, i), inv));
            i += 4;
        }
        while i < n {
            x[i] *= inv;
            i += 1;
        }
    }

    #[target_feature(enable = "neon")]
    pub(super) fn swiglu(gate: &mut [f32], up: &[f32]) {
        let n = gate.len().min(up.len());
        let one = vdupq_n_f32(1.0);
        let mut i = 0;
        while i + 4 <= n {
            let g = ldf(gate, i);
            let e = exp(vnegq_f32(g));
            stf(
                gate,
                i,
                vmulq_f32(vdivq_f32(g, vaddq_f32(one, e)), ldf(up, i)),
            );
            i += 4;
        }
        while i < n {
            gate[i] = gate[i] / (1.0 + libm::expf(-gate[i])) * up[i];
            i += 1;
        }
    }

    #[target_feature(enable = "neon")]
    pub(super) fn add_bias(y: &mut [f32], b: &[u8]) {
        let n = y.len().min(b.len() / 4);
        let mut i = 0;
        while i + 4 <= n {
            stf(y, i, vaddq_f32(ldf(y, i), ldb(b, 4 * i)));
            i += 4;
        }
        while i < n {
            y[i] += read_f32(&b[4 * i..]);
            i += 1;
        }
    }

    /// Multiply and subtract (no FMA), as the scalar reference: bit-identical.
    #[target_feature(enable = "neon")]
    pub(super) fn rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
        let half = head_dim / 2;
        if half == 0 {
            return;
        }
        let (cos, sin) = (&cos[..half], &sin[..half]);
        for head in x.chunks_exact_mut(head_dim) {
            let (a, b) = head.split_at_mut(half);
            let mut i = 0;
            while i + 4 <= half {
                let (x0, x1) = (ldf(a, i), ldf(b, i));
                let (c, s) = (ldf(cos, i), ldf(sin, i));
                stf(a, i, vsubq_f32(vmulq_f32(x0, c), vmulq_f32(x1, s)));
                stf(b, i, vaddq_f32(vmulq_f32(x1, c), vmulq_f32(x0, s)));
                i += 4;
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

/// NEON + dotprod kernels: the integer paths with `sdot`.
mod kd {
    use super::kn::{int_entries, ld_q4, ld_q8, rows_int};
    use super::*;

    /// acc + Σ a·b over 16 i8 pairs, four per i32 lane (`sdot`).
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: `sdot` only reads and writes the named vector registers;
        // this function is compiled (and called) only with `dotprod` enabled.
        unsafe {
            core::arch::asm!(
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }

    rows_int!("neon,dotprod", rows_q8_0, BlockQ8_0, ld_q8, sdot);
    rows_int!("neon,dotprod", rows_q4_0, BlockQ4_0, ld_q4, sdot);
    int_entries!("neon,dotprod");
}
