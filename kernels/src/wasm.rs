//! wasm32 backend: simd128, chosen at compile time (`-C target-feature=+simd128`).
use crate::Kernels;

pub fn simd128() -> Option<&'static Kernels> {
    None
}
