//! The kernel table: one struct of function pointers per backend, and the one
//! place that chooses among them: at run time under `std`
//! (`is_x86_feature_detected!`, `is_aarch64_feature_detected!`), by
//! `target_feature` at compile time without it.

use crate::matmul::{self, Batch, MatOut};
use crate::{f16, f32, ops, q4_0, q8_0, rope, BlockQ4_0, BlockQ8_0};

/// Every kernel the forward pass calls, for one backend. Weight arguments are
/// bytes (or byte-aligned blocks) so weights are read in place from a file at
/// any alignment. Matvec entries take `out.len()` consecutive rows of `w`.
pub struct Kernels {
    pub name: &'static str,

    /// f32 activations -> Q8_0 blocks, once per matvec input.
    pub quantize_q8_0: fn(&[f32], &mut [BlockQ8_0]),

    pub dot_f32: fn(&[u8], &[f32]) -> f32,
    pub dot_f16: fn(&[u8], &[f32]) -> f32,
    pub dot_bf16: fn(&[u8], &[f32]) -> f32,
    pub dot_q8_0_f32: fn(&[BlockQ8_0], &[f32]) -> f32,
    pub dot_q4_0_f32: fn(&[BlockQ4_0], &[f32]) -> f32,
    pub dot_q8_0_q8_0: fn(&[BlockQ8_0], &[BlockQ8_0]) -> f32,
    pub dot_q4_0_q8_0: fn(&[BlockQ4_0], &[BlockQ8_0]) -> f32,

    pub matvec_f32: fn(&[u8], &[f32], &mut [f32]),
    pub matvec_f16: fn(&[u8], &[f32], &mut [f32]),
    pub matvec_bf16: fn(&[u8], &[f32], &mut [f32]),
    pub matvec_q8_0: fn(&[BlockQ8_0], &[BlockQ8_0], &mut [f32]),
    pub matvec_q4_0: fn(&[BlockQ4_0], &[BlockQ8_0], &mut [f32]),

    /// Batched products (see [`crate::matmul`]): `out.rows()` rows of `w`
    /// against every input of the batch, from its panels.
    pub matmul_f32: fn(&[u8], &Batch, &mut MatOut),
    pub matmul_f16: fn(&[u8], &Batch, &mut MatOut),
    pub matmul_bf16: fn(&[u8], &Batch, &mut MatOut),
    pub matmul_q8_0_f32: fn(&[BlockQ8_0], &Batch, &mut MatOut),
    pub matmul_q4_0_f32: fn(&[BlockQ4_0], &Batch, &mut MatOut),
    pub matmul_q8_0: fn(&[BlockQ8_0], &Batch, &mut MatOut),
    pub matmul_q4_0: fn(&[BlockQ4_0], &Batch, &mut MatOut),

    /// Attention: q·k against an f32 cache, and v accumulation (f32 or f16 cache).
    pub dot_f32_f32: fn(&[f32], &[f32]) -> f32,
    pub axpy_f32: fn(f32, &[f32], &mut [f32]),
    pub axpy_f16: fn(f32, &[u8], &mut [f32]),
    /// One query against a run of cached keys `stride` elements apart:
    /// `scores[t] = scale · q·k_t`, `k_t = keys[t·stride..][..q.len()]`,
    /// for t < `scores.len()` (f32 or f16 cache; the dot of `dot_f32_f32` /
    /// `dot_f16` without a call per key).
    pub scores_f32: fn(&[f32], &[f32], usize, f32, &mut [f32]),
    pub scores_f16: fn(&[f32], &[u8], usize, f32, &mut [f32]),
    /// `out += Σ_t w[t]·v_t`, t ascending, `v_t = values[t·stride..][..out.len()]`:
    /// per element the multiplies and adds of `axpy_*` in the same order.
    pub mix_f32: fn(&[f32], &[f32], usize, &mut [f32]),
    pub mix_f16: fn(&[f32], &[u8], usize, &mut [f32]),

    pub rmsnorm: fn(&mut [f32], &[f32], &[u8], f32),
    pub softmax: fn(&mut [f32]),
    pub swiglu: fn(&mut [f32], &[f32]),
    pub add_bias: fn(&mut [f32], &[u8]),
    pub rope: fn(&mut [f32], usize, &[f32], &[f32]),
}

/// A safe table entry calling a `#[target_feature]` kernel (the x86_64 and
/// aarch64 backends).
#[allow(unused_macros)]
macro_rules! entry {
    ($name:ident($($a:ident: $t:ty),*) $(-> $r:ty)? = $inner:path) => {
        fn $name($($a: $t),*) $(-> $r)? {
            // SAFETY: entries are private to their backend module and reachable
            // only through its table statics, which the module hands out (e.g.
            // `avx2()`, `neon()`) only after checking that the CPU has every
            // feature the kernel's `#[target_feature]` enables.
            unsafe { $inner($($a),*) }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use entry;

/// Row-by-row matvec from a one-row dot: the scalar backend's matvec, and a
/// fallback any backend may use.
macro_rules! rows_of {
    ($dot:path, $wty:ty, $xty:ty, $row_len:expr) => {{
        fn mv(w: &[$wty], x: &[$xty], out: &mut [f32]) {
            let n = $row_len(x.len());
            for (o, row) in out.iter_mut().zip(w.chunks_exact(n)) {
                *o = $dot(row, x);
            }
        }
        mv
    }};
}
// Used by the SIMD backends; unused on targets that have none.
#[allow(unused_imports)]
pub(crate) use rows_of;

/// `scores_*` from a one-key dot `$dot(key, q)` over `$ty` elements
/// (`$per` of them to a value: 1 for f32, 2 bytes for f16).
macro_rules! scores_of {
    ($ty:ty, $per:expr, $dot:expr) => {{
        fn scores(q: &[f32], keys: &[$ty], stride: usize, scale: f32, out: &mut [f32]) {
            let dot: fn(&[$ty], &[f32]) -> f32 = $dot;
            let len = q.len() * $per;
            for (t, o) in out.iter_mut().enumerate() {
                let at = t * stride * $per;
                *o = scale * dot(&keys[at..at + len], q);
            }
        }
        scores
    }};
}
#[allow(unused_imports)]
pub(crate) use scores_of;

/// `mix_*` from a one-row `$axpy(a, value row, out)`.
macro_rules! mix_of {
    ($ty:ty, $per:expr, $axpy:expr) => {{
        fn mix(w: &[f32], values: &[$ty], stride: usize, out: &mut [f32]) {
            let axpy: fn(f32, &[$ty], &mut [f32]) = $axpy;
            let len = out.len() * $per;
            for (t, &a) in w.iter().enumerate() {
                let at = t * stride * $per;
                axpy(a, &values[at..at + len], out);
            }
        }
        mix
    }};
}
#[allow(unused_imports)]
pub(crate) use mix_of;

pub(crate) static SCALAR: Kernels = Kernels {
    name: "scalar",
    quantize_q8_0: q8_0::scalar::quantize_row,
    dot_f32: f32::scalar::dot,
    dot_f16: f16::scalar::dot_f16,
    dot_bf16: f16::scalar::dot_bf16,
    dot_q8_0_f32: q8_0::scalar::dot_f32,
    dot_q4_0_f32: q4_0::scalar::dot_f32,
    dot_q8_0_q8_0: q8_0::scalar::dot_q8_0,
    dot_q4_0_q8_0: q4_0::scalar::dot_q8_0,
    matvec_f32: rows_of!(f32::scalar::dot, u8, f32, |n: usize| n * 4),
    matvec_f16: rows_of!(f16::scalar::dot_f16, u8, f32, |n: usize| n * 2),
    matvec_bf16: rows_of!(f16::scalar::dot_bf16, u8, f32, |n: usize| n * 2),
    matvec_q8_0: rows_of!(q8_0::scalar::dot_q8_0, BlockQ8_0, BlockQ8_0, |n: usize| n),
    matvec_q4_0: rows_of!(q4_0::scalar::dot_q8_0, BlockQ4_0, BlockQ8_0, |n: usize| n),
    matmul_f32: matmul::scalar::matmul_f32,
    matmul_f16: matmul::scalar::matmul_f16,
    matmul_bf16: matmul::scalar::matmul_bf16,
    matmul_q8_0_f32: matmul::scalar::matmul_q8_0_f32,
    matmul_q4_0_f32: matmul::scalar::matmul_q4_0_f32,
    matmul_q8_0: matmul::scalar::matmul_q8_0,
    matmul_q4_0: matmul::scalar::matmul_q4_0,
    dot_f32_f32: f32::scalar::dot_f32,
    axpy_f32: f32::scalar::axpy,
    axpy_f16: f16::scalar::axpy_f16,
    scores_f32: scores_of!(f32, 1, |k, q| f32::scalar::dot_f32(q, k)),
    scores_f16: scores_of!(u8, 2, f16::scalar::dot_f16),
    mix_f32: mix_of!(f32, 1, f32::scalar::axpy),
    mix_f16: mix_of!(u8, 2, f16::scalar::axpy_f16),
    rmsnorm: ops::scalar::rmsnorm,
    softmax: ops::scalar::softmax,
    swiglu: ops::scalar::swiglu,
    add_bias: ops::scalar::add_bias,
    rope: rope::scalar::apply,
};

/// The scalar reference backend: the specification every other backend is
/// tested against.
pub fn scalar() -> &'static Kernels {
    &SCALAR
}

/// The SIMD backends this CPU can run, fastest last.
fn simd() -> [Option<&'static Kernels>; 2] {
    #[cfg(target_arch = "x86_64")]
    return [crate::x86::avx2(), crate::x86::avx512()];
    #[cfg(target_arch = "aarch64")]
    return [crate::aarch64::neon(), crate::aarch64::dotprod()];
    #[cfg(target_arch = "wasm32")]
    return [crate::wasm::simd128(), None];
    #[cfg(all(target_arch = "arm", feature = "dsp"))]
    return [crate::arm::dsp(), None];
    #[allow(unreachable_code)]
    [None, None]
}

/// Every backend this CPU can run, the scalar one first and the fastest last.
pub fn backends() -> impl Iterator<Item = &'static Kernels> {
    core::iter::once(scalar()).chain(simd().into_iter().flatten())
}

/// The backend by name (`scalar`, `avx2`, `avx512`, `neon`, `dotprod`, `simd128`, `dsp`),
/// if this CPU can run it.
pub fn by_name(name: &str) -> Option<&'static Kernels> {
    backends().find(|k| k.name == name)
}

/// The fastest backend this CPU can run. Chosen once per process under `std`.
pub fn best() -> &'static Kernels {
    #[cfg(feature = "std")]
    {
        static BEST: std::sync::OnceLock<&'static Kernels> = std::sync::OnceLock::new();
        BEST.get_or_init(|| backends().last().unwrap_or(&SCALAR))
    }
    #[cfg(not(feature = "std"))]
    {
        backends().last().unwrap_or(&SCALAR)
    }
}
