//! aha-runtime: runs aha's students from one `.aha` model file, `no_std`, with
//! no allocator required.
//!
//! Read in the order data flows (as llama2.c's `run.c`): [`format`] (the file)
//! -> [`model`] (typed weight views, hyperparameters, memory plan) ->
//! [`session`] (KV cache and scratch in the caller's buffer; the forward pass)
//! -> [`tokenizer`] -> [`sampler`] -> [`generate`].
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod error;
pub mod tokenizer;

pub use error::{Error, Result};
