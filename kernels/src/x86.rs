//! x86_64 backends: AVX2+FMA (+F16C), and AVX-512 (with VNNI where present).
use crate::Kernels;

/// The AVX2+FMA backend, if this CPU has it.
pub fn avx2() -> Option<&'static Kernels> {
    None
}

/// The AVX-512 backend, if this CPU has it.
pub fn avx512() -> Option<&'static Kernels> {
    None
}
