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

pub mod batch;
pub mod error;
pub mod footprint;
pub mod format;
pub mod generate;
pub mod model;
pub mod sampler;
pub mod session;
pub mod template;
pub mod tokenizer;
#[cfg(feature = "std")]
pub mod convert;
#[cfg(feature = "std")]
pub mod load;
#[cfg(feature = "std")]
pub mod writer;

pub use batch::BatchSession;
pub use error::{Error, Result};
pub use format::{Arch, Config, ModelFile, RopeScaling};
pub use generate::{Event, Finish, GenerateOptions, Generator, Phase};
pub use model::{KvType, MemoryPlan, Model};
pub use sampler::{Sampler, SamplerConfig};
pub use session::Session;
pub use template::Template;
