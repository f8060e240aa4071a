//! aarch64 backends: NEON, and NEON with the dot-product extension.
use crate::Kernels;

pub fn neon() -> Option<&'static Kernels> {
    None
}

pub fn dotprod() -> Option<&'static Kernels> {
    None
}
