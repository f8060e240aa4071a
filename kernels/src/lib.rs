//! aha-kernels: the block formats of aha's model files and the math kernels of
//! its forward pass, `no_std` and allocation-free.
//!
//! Layout, in the spirit of ggml's `quants.c`: one module per format or op,
//! each with a `scalar` reference that is the specification; SIMD backends
//! (`x86`, `aarch64`, `wasm`, and `arm` for Cortex-M's DSP extension) sit
//! beside them and are tested against it. The runtime never calls a backend
//! directly: it asks for a [`Kernels`] table once ([`best`]) and calls
//! through it, so the model code never matches on CPU features, and a bench
//! or test can pick any backend by name ([`backends`]).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

pub mod dtype;
pub mod f16;
pub mod f32;
pub mod matmul;
pub mod matvec;
pub mod ops;
pub mod q4_0;
pub mod q8_0;
pub mod rope;
pub mod table;

#[cfg(feature = "std")]
pub mod pool;

#[cfg(target_arch = "x86_64")]
pub mod x86;
#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
#[cfg(all(target_arch = "arm", feature = "dsp"))]
pub mod arm;

pub use dtype::DType;
pub use matmul::{matmul, Batch, BatchScratch, MatOut, PanelQ8};
pub use matvec::{matvec, Activation, Matrix};
pub use q4_0::BlockQ4_0;
pub use q8_0::BlockQ8_0;
pub use table::{backends, best, scalar, Kernels};

/// Elements per quantization block (Q8_0 and Q4_0), as in ggml.
pub const QK: usize = 32;
