//! wasm32 backend: simd128, chosen at compile time (`-C target-feature=+simd128`):
//! a wasm module cannot test for it at run time (an engine without it rejects
//! the whole module), so the kernels exist only in builds that enable it.
//!
//! `quantize_q8_0` is bit-identical to the scalar reference (ties away from
//! zero emulated on `trunc`, saturating conversions as `as i8`); the integer
//! dots widen to i16 and use `i32x4.dot_i16x8_s`, exact for every i8.

use crate::Kernels;

/// The simd128 backend, if this build enables simd128.
pub fn simd128() -> Option<&'static Kernels> {
    #[cfg(target_feature = "simd128")]
    {
        Some(&imp::SIMD128)
    }
    #[cfg(not(target_feature = "simd128"))]
    {
        None
    }
}

#[cfg(target_feature = "simd128")]
pub(crate) mod imp {
    use crate::matmul::wasm as mm;
    use crate::table::{mix_of, rows_of, scores_of};
    use crate::{BlockQ4_0, BlockQ8_0, Kernels, QK};
    use core::arch::wasm32::*;
    use half::{bf16, f16};

    pub(super) static SIMD128: Kernels = Kernels {
        name: "simd128",
        quantize_q8_0,
        dot_f32,
        dot_f16,
        dot_bf16,
        dot_q8_0_f32,
        dot_q4_0_f32,
        dot_q8_0_q8_0,
        dot_q4_0_q8_0,
        matvec_f32: rows_of!(dot_f32, u8, f32, |n: usize| n * 4),
        matvec_f16: rows_of!(dot_f16, u8, f32, |n: usize| n * 2),
        matvec_bf16: rows_of!(dot_bf16, u8, f32, |n: usize| n * 2),
        matvec_q8_0,
        matvec_q4_0,
        matmul_f32: mm::matmul_f32,
        matmul_f16: mm::matmul_f16,
        matmul_bf16: mm::matmul_bf16,
        matmul_q8_0_f32: mm::matmul_q8_0_f32,
        matmul_q4_0_f32: mm::matmul_q4_0_f32,
        matmul_q8_0: mm::matmul_q8_0,
        matmul_q4_0: mm::matmul_q4_0,
        dot_f32_f32,
        axpy_f32,
        axpy_f16,
        scores_f32: scores_of!(f32, 1, |k, q| dot_f32_f32(q, k)),
        scores_f16: scores_of!(u8, 2, dot_f16),
        mix_f32: mix_of!(f32, 1, axpy_f32),
        mix_f16: mix_of!(u8, 2, axpy_f16),
        rmsnorm,
        softmax,
        swiglu,
        add_bias,
        rope,
    };

    const ROWS: usize = 4;

    #[inline]
    fn read_f32(b: &[u8]) -> f32 {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    // --- loads and stores ------------------------------------------------

    /// Bytes `b[i..i + 16]`.
    #[inline]
    fn ld(b: &[u8], i: usize) -> v128 {
        assert!(i + 16 <= b.len());
        // SAFETY: b[i..i + 16] is in bounds (asserted); v128_load has no alignment requirement.
        unsafe { v128_load(b.as_ptr().add(i).cast()) }
    }

    #[inline]
    fn ldf(x: &[f32], i: usize) -> v128 {
        assert!(i + 4 <= x.len());
        // SAFETY: x[i..i + 4] is in bounds (asserted); v128_load has no alignment requirement.
        unsafe { v128_load(x.as_ptr().add(i).cast()) }
    }

    #[inline]
    fn stf(x: &mut [f32], i: usize, v: v128) {
        assert!(i + 4 <= x.len());
        // SAFETY: x[i..i + 4] is in bounds (asserted); v128_store has no alignment requirement.
        unsafe { v128_store(x.as_mut_ptr().add(i).cast(), v) }
    }

    #[inline]
    fn ld_q8(q: &[i8; 32]) -> (v128, v128) {
        // SAFETY: `q` is 32 readable bytes; v128_load has no alignment requirement.
        unsafe {
            (
                v128_load(q.as_ptr().cast()),
                v128_load(q.as_ptr().add(16).cast()),
            )
        }
    }

    /// The 32 weights (−8..=7) of a Q4_0 block, elements 0..16 and 16..32.
    #[inline]
    fn ld_q4(q: &[u8; 16]) -> (v128, v128) {
        // SAFETY: `q` is 16 readable bytes; v128_load has no alignment requirement.
        let v = unsafe { v128_load(q.as_ptr().cast()) };
        let eight = i8x16_splat(8);
        (
            i8x16_sub(v128_and(v, u8x16_splat(0x0F)), eight),
            i8x16_sub(u8x16_shr(v, 4), eight),
        )
    }

    #[inline]
    fn hsum(v: v128) -> f32 {
        (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
            + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
    }

    // --- conversions -------------------------------------------------------

    /// Four F16 (the low u16 lanes of `h`, widened) to f32 exactly; see the
    /// aarch64 module's `h2f`.
    #[inline]
    fn h2f(w: v128) -> v128 {
        let sign = i32x4_shl(v128_and(w, u32x4_splat(0x8000)), 16);
        let em = v128_and(w, u32x4_splat(0x7FFF));
        let f = f32x4_mul(i32x4_shl(em, 13), f32x4_splat(f32::from_bits(0x7780_0000)));
        let special = v128_and(u32x4_ge(em, u32x4_splat(0x7C00)), u32x4_splat(0x7F80_0000));
        v128_or(v128_or(f, special), sign)
    }

    #[inline]
    pub(crate) fn ldh(b: &[u8], i: usize) -> (v128, v128) {
        let v = ld(b, i);
        (
            h2f(u32x4_extend_low_u16x8(v)),
            h2f(u32x4_extend_high_u16x8(v)),
        )
    }

    #[inline]
    pub(crate) fn ldbf(b: &[u8], i: usize) -> (v128, v128) {
        let v = ld(b, i);
        (
            i32x4_shl(u32x4_extend_low_u16x8(v), 16),
            i32x4_shl(u32x4_extend_high_u16x8(v), 16),
        )
    }

    #[inline]
    pub(crate) fn f16s(d: [u8; 2]) -> f32 {
        f16::from_le_bytes(d).to_f32()
    }

    // --- quantization ----------------------------------------------------

    fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
        let sign = u32x4_splat(0x8000_0000);
        let half = f32x4_splat(0.5);
        let one = f32x4_splat(1.0);
        for (block, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
            let v: [v128; 8] = core::array::from_fn(|k| ldf(xs, 4 * k));
            // pmax(m, |v|) keeps m when |v| is NaN, as f32::max in the reference's fold.
            let m = v
                .iter()
                .fold(f32x4_splat(0.0), |m, &vk| f32x4_pmax(m, f32x4_abs(vk)));
            let amax = f32x4_extract_lane::<0>(m)
                .max(f32x4_extract_lane::<1>(m))
                .max(f32x4_extract_lane::<2>(m))
                .max(f32x4_extract_lane::<3>(m));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            block.d = f16::from_f32(d).to_le_bytes();
            let idv = f32x4_splat(id);
            let q: [v128; 8] = v.map(|vk| {
                let p = f32x4_mul(vk, idv);
                let t = f32x4_trunc(p);
                let step = v128_and(
                    f32x4_ge(f32x4_abs(f32x4_sub(p, t)), half),
                    v128_or(v128_and(p, sign), one),
                );
                // Saturating, NaN -> 0: `as` semantics.
                i32x4_trunc_sat_f32x4(f32x4_add(t, step))
            });
            let lo = i8x16_narrow_i16x8(
                i16x8_narrow_i32x4(q[0], q[1]),
                i16x8_narrow_i32x4(q[2], q[3]),
            );
            let hi = i8x16_narrow_i16x8(
                i16x8_narrow_i32x4(q[4], q[5]),
                i16x8_narrow_i32x4(q[6], q[7]),
            );
            // SAFETY: `block.qs` is 32 writable bytes; v128_store has no alignment requirement.
            unsafe {
                v128_store(block.qs.as_mut_ptr().cast(), lo);
                v128_store(block.qs.as_mut_ptr().add(16).cast(), hi);
            }
        }
    }

    // --- float dots --------------------------------------------------------

    fn dot_f32(w: &[u8], x: &[f32]) -> f32 {
        let n = x.len().min(w.len() / 4);
        let mut acc = [f32x4_splat(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                *acc = f32x4_add(*acc, f32x4_mul(ld(w, 4 * (i + 4 * k)), ldf(x, i + 4 * k)));
            }
            i += 16;
        }
        while i + 4 <= n {
            acc[0] = f32x4_add(acc[0], f32x4_mul(ld(w, 4 * i), ldf(x, i)));
            i += 4;
        }
        let mut s = hsum(f32x4_add(
            f32x4_add(acc[0], acc[1]),
            f32x4_add(acc[2], acc[3]),
        ));
        while i < n {
            s += read_f32(&w[4 * i..]) * x[i];
            i += 1;
        }
        s
    }

    macro_rules! half_dot {
        ($name:ident, $ld:ident, $one:expr) => {
            fn $name(w: &[u8], x: &[f32]) -> f32 {
                let n = x.len().min(w.len() / 2);
                let mut acc = [f32x4_splat(0.0); 2];
                let mut i = 0;
                while i + 8 <= n {
                    let (a, b) = $ld(w, 2 * i);
                    acc[0] = f32x4_add(acc[0], f32x4_mul(a, ldf(x, i)));
                    acc[1] = f32x4_add(acc[1], f32x4_mul(b, ldf(x, i + 4)));
                    i += 8;
                }
                let mut s = hsum(f32x4_add(acc[0], acc[1]));
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

    fn dot_f32_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = [f32x4_splat(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                *acc = f32x4_add(*acc, f32x4_mul(ldf(a, i + 4 * k), ldf(b, i + 4 * k)));
            }
            i += 16;
        }
        while i + 4 <= n {
            acc[0] = f32x4_add(acc[0], f32x4_mul(ldf(a, i), ldf(b, i)));
            i += 4;
        }
        let mut s = hsum(f32x4_add(
            f32x4_add(acc[0], acc[1]),
            f32x4_add(acc[2], acc[3]),
        ));
        while i < n {
            s += a[i] * b[i];
            i += 1;
        }
        s
    }

    // --- quantized weights ---------------------------------------------------

    /// Σ over 16 i8 (`q`) times 16 f32 (`xs[o..o + 16]`), as four lanes.
    #[inline]
    fn q16_f32(s: v128, q: v128, xs: &[f32], o: usize) -> v128 {
        let lo = i16x8_extend_low_i8x16(q);
        let hi = i16x8_extend_high_i8x16(q);
        let parts = [
            i32x4_extend_low_i16x8(lo),
            i32x4_extend_high_i16x8(lo),
            i32x4_extend_low_i16x8(hi),
            i32x4_extend_high_i16x8(hi),
        ];
        let mut s = s;
        for (k, p) in parts.into_iter().enumerate() {
            s = f32x4_add(s, f32x4_mul(f32x4_convert_i32x4(p), ldf(xs, o + 4 * k)));
        }
        s
    }

    fn dot_q8_0_f32(w: &[BlockQ8_0], x: &[f32]) -> f32 {
        let mut acc = f32x4_splat(0.0);
        for (block, xs) in w.iter().zip(x.chunks_exact(QK)) {
            let (q0, q1) = ld_q8(&block.qs);
            let s = q16_f32(q16_f32(f32x4_splat(0.0), q0, xs, 0), q1, xs, 16);
            acc = f32x4_add(acc, f32x4_mul(s, f32x4_splat(f16s(block.d))));
        }
        hsum(acc)
    }

    fn dot_q4_0_f32(w: &[BlockQ4_0], x: &[f32]) -> f32 {
        let mut acc = f32x4_splat(0.0);
        for (block, xs) in w.iter().zip(x.chunks_exact(QK)) {
            let (q0, q1) = ld_q4(&block.qs);
            let s = q16_f32(q16_f32(f32x4_splat(0.0), q0, xs, 0), q1, xs, 16);
            acc = f32x4_add(acc, f32x4_mul(s, f32x4_splat(f16s(block.d))));
        }
        hsum(acc)
    }

    macro_rules! rows_int {
        ($name:ident, $blk:ty, $ld:ident) => {
            fn $name<const R: usize>(w: &[$blk], x: &[BlockQ8_0], out: &mut [f32]) {
                let nb = x.len();
                let rows: [&[$blk]; R] = core::array::from_fn(|r| &w[r * nb..(r + 1) * nb]);
                let mut acc = [f32x4_splat(0.0); R];
                for (b, xb) in x.iter().enumerate() {
                    let (a0, a1) = ld_q8(&xb.qs);
                    // The activation halves widened once, shared by the rows.
                    let a = [
                        i16x8_extend_low_i8x16(a0),
                        i16x8_extend_high_i8x16(a0),
                        i16x8_extend_low_i8x16(a1),
                        i16x8_extend_high_i8x16(a1),
                    ];
                    let dx = f16s(xb.d);
                    for r in 0..R {
                        let wb = &rows[r][b];
                        let (w0, w1) = $ld(&wb.qs);
                        let s = i32x4_add(
                            i32x4_add(
                                i32x4_dot_i16x8(i16x8_extend_low_i8x16(w0), a[0]),
                                i32x4_dot_i16x8(i16x8_extend_high_i8x16(w0), a[1]),
                            ),
                            i32x4_add(
                                i32x4_dot_i16x8(i16x8_extend_low_i8x16(w1), a[2]),
                                i32x4_dot_i16x8(i16x8_extend_high_i8x16(w1), a[3]),
                            ),
                        );
                        acc[r] = f32x4_add(
                            acc[r],
                            f32x4_mul(f32x4_convert_i32x4(s), f32x4_splat(f16s(wb.d) * dx)),
                        );
                    }
                }
                for r in 0..R {
                    out[r] = hsum(acc[r]);
                }
            }
        };
    }
    rows_int!(rows_q8_0, BlockQ8_0, ld_q8);
    rows_int!(rows_q4_0, BlockQ4_0, ld_q4);

    fn dot_q8_0_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
        let n = w.len().min(x.len());
        let mut out = [0.0];
        rows_q8_0::<1>(&w[..n], &x[..n], &mut out);
        out[0]
    }

    fn dot_q4_0_q8_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
        let n = w.len().min(x.len());
        let mut out = [0.0];
        rows_q4_0::<1>(&w[..n], &x[..n], &mut out);
        out[0]
    }

    /// Groups of `ROWS` rows, then single rows; rows past `w`'s end untouched.
    fn groups<B>(w: &[B], nb: usize, out: &mut [f32], f: impl FnMut(&[B], &mut [f32])) {
        crate::matvec::row_groups(w, nb, ROWS, out, f)
    }

    fn matvec_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0], out: &mut [f32]) {
        groups(w, x.len(), out, |wr, or| {
            if or.len() == ROWS {
                rows_q8_0::<ROWS>(wr, x, or)
            } else {
                rows_q8_0::<1>(wr, x, or)
            }
        });
    }

    fn matvec_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0], out: &mut [f32]) {
        groups(w, x.len(), out, |wr, or| {
            if or.len() == ROWS {
                rows_q4_0::<ROWS>(wr, x, or)
            } else {
                rows_q4_0::<1>(wr, x, or)
            }
        });
    }

    // --- attention and element-wise ops ------------------------------------

    fn axpy_f32(a: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let av = f32x4_splat(a);
        let mut i = 0;
        while i + 4 <= n {
            stf(y, i, f32x4_add(ldf(y, i), f32x4_mul(av, ldf(x, i))));
            i += 4;
        }
        while i < n {
            y[i] += a * x[i];
            i += 1;
        }
    }

    fn axpy_f16(a: f32, w: &[u8], y: &mut [f32]) {
        let n = y.len().min(w.len() / 2);
        let av = f32x4_splat(a);
        let mut i = 0;
        while i + 8 <= n {
            let (h0, h1) = ldh(w, 2 * i);
            stf(y, i, f32x4_add(ldf(y, i), f32x4_mul(av, h0)));
            stf(y, i + 4, f32x4_add(ldf(y, i + 4), f32x4_mul(av, h1)));
            i += 8;
        }
        while i < n {
            y[i] += a * f16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32();
            i += 1;
        }
    }

    fn rmsnorm(out: &mut [f32], x: &[f32], w: &[u8], eps: f32) {
        let n = x.len().min(out.len()).min(w.len() / 4);
        let mut acc = f32x4_splat(0.0);
        let mut i = 0;
        while i + 4 <= n {
            acc = f32x4_add(acc, f32x4_mul(ldf(x, i), ldf(x, i)));
            i += 4;
        }
        let mut ss = hsum(acc);
        while i < n {
            ss += x[i] * x[i];
            i += 1;
        }
        let scale = 1.0 / libm::sqrtf(ss / x.len() as f32 + eps);
        let sv = f32x4_splat(scale);
        let mut i = 0;
        while i + 4 <= n {
            stf(out, i, f32x4_mul(f32x4_mul(ldf(x, i), sv), ld(w, 4 * i)));
            i += 4;
        }
        while i < n {
            out[i] = x[i] * scale * read_f32(&w[4 * i..]);
            i += 1;
        }
    }

    /// exp(x) for four lanes; see the x86 module's `exp` for the method
    /// (without FMA here, which simd128 lacks).
    #[inline]
    fn exp(x: v128) -> v128 {
        let hi = f32x4_splat(88.722_84);
        let lo = f32x4_splat(-87.336_55);
        let over = f32x4_gt(x, hi);
        let under = f32x4_lt(x, lo);
        let xc = f32x4_min(f32x4_max(x, lo), hi);
        let k = f32x4_nearest(f32x4_mul(xc, f32x4_splat(core::f32::consts::LOG2_E)));
        let r = f32x4_sub(xc, f32x4_mul(k, f32x4_splat(0.693_359_4)));
        let r = f32x4_sub(r, f32x4_mul(k, f32x4_splat(-2.121_944_4e-4)));
        let mut p = f32x4_splat(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = f32x4_add(f32x4_mul(p, r), f32x4_splat(c));
        }
        let e = f32x4_add(
            f32x4_add(f32x4_mul(p, f32x4_mul(r, r)), r),
            f32x4_splat(1.0),
        );
        let ki = i32x4_trunc_sat_f32x4(k);
        let k1 = i32x4_shr(ki, 1);
        let k2 = i32x4_sub(ki, k1);
        let bias = i32x4_splat(127);
        let p1 = i32x4_shl(i32x4_add(k1, bias), 23);
        let p2 = i32x4_shl(i32x4_add(k2, bias), 23);
        let y = f32x4_mul(f32x4_mul(e, p1), p2);
        let y = v128_bitselect(f32x4_splat(f32::INFINITY), y, over);
        let y = v128_andnot(y, under);
        // NaN in, NaN out.
        v128_bitselect(y, x, f32x4_eq(x, x))
    }

    fn softmax(x: &mut [f32]) {
        let n = x.len();
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let maxv = f32x4_splat(max);
        let mut acc = f32x4_splat(0.0);
        let mut i = 0;
        while i + 4 <= n {
            let e = exp(f32x4_sub(ldf(x, i), maxv));
            stf(x, i, e);
            acc = f32x4_add(acc, e);
            i += 4;
        }
        let mut sum = hsum(acc);
        while i < n {
            x[i] = libm::expf(x[i] - max);
            sum += x[i];
            i += 1;
        }
        let inv = 1.0 / sum;
        let invv = f32x4_splat(inv);
        let mut i = 0;
        while i + 4 <= n {
            stf(x, i, f32x4_mul(ldf(x, i), invv));
            i += 4;
        }
        while i < n {
            x[i] *= inv;
            i += 1;
        }
    }

    fn swiglu(gate: &mut [f32], up: &[f32]) {
        let n = gate.len().min(up.len());
        let one = f32x4_splat(1.0);
        let mut i = 0;
        while i + 4 <= n {
            let g = ldf(gate, i);
            stf(
                gate,
                i,
                f32x4_mul(f32x4_div(g, f32x4_add(one, exp(f32x4_neg(g)))), ldf(up, i)),
            );
            i += 4;
        }
        while i < n {
            gate[i] = gate[i] / (1.0 + libm::expf(-gate[i])) * up[i];
            i += 1;
        }
    }

    fn add_bias(y: &mut [f32], b: &[u8]) {
        let n = y.len().min(b.len() / 4);
        let mut i = 0;
        while i + 4 <= n {
            stf(y, i, f32x4_add(ldf(y, i), ld(b, 4 * i)));
            i += 4;
        }
        while i < n {
            y[i] += read_f32(&b[4 * i..]);
            i += 1;
        }
    }

    fn rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
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
                stf(a, i, f32x4_sub(f32x4_mul(x0, c), f32x4_mul(x1, s)));
                stf(b, i, f32x4_add(f32x4_mul(x1, c), f32x4_mul(x0, s)));
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
