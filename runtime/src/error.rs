//! The runtime's one error type. No allocation in the bare build, so errors
//! carry static descriptions, numbers and short fixed-capacity names; under
//! `std` a few variants carry paths and messages from conversion.

use core::fmt;

/// A tensor or field name, kept inline (no allocation).
pub type Name = heapless::String<64>;

/// Copies `s` into a [`Name`], cutting it at the capacity if it is longer.
pub fn name(s: &str) -> Name {
    let mut n = Name::new();
    for c in s.chars() {
        if n.push(c).is_err() {
            break;
        }
    }
    n
}

#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The first bytes are not `AHA\0`: not an aha model file.
    BadMagic,
    /// The file was written by a format version this runtime does not read.
    UnsupportedVersion { found: u32, supported: u32 },
    /// The bytes end before `what` does.
    Truncated { what: &'static str, needed: u64, available: u64 },
    /// A part of the file does not decode (`what` says which).
    Corrupt { what: &'static str },
    /// A stored checksum does not match the bytes (`name` is the tensor, or "header").
    Checksum { name: Name },
    /// The header's hyperparameters are inconsistent or out of range.
    BadConfig { what: &'static str },
    MissingTensor { name: Name },
    /// A tensor's shape disagrees with the hyperparameters.
    TensorShape { name: Name, expected: [u64; 2], found: [u64; 2] },
    /// A tensor's storage format cannot be used where it is (e.g. a quantized norm).
    TensorType { name: Name, dtype: aha_kernels::DType },
    /// A tensor's bytes lie outside the file or disagree with its shape and type.
    TensorBounds { name: Name },
    /// Layers must share one layout (same types and shapes, constant stride).
    NonUniformLayers { name: Name },
    /// The caller's workspace buffer is smaller than the memory plan needs.
    BufferTooSmall { needed: usize, available: usize },
    /// The session's context is full.
    ContextFull { context: usize },
    /// A requested context length is 0 or beyond the model's positions.
    ContextOutOfRange { context: usize, max_position: u32 },
    /// A prompt batch of 0 tokens, or more than the context holds.
    BatchOutOfRange { batch: usize, context: usize },
    /// The allocator could not give a session's buffer.
    OutOfMemory { bytes: u64, context: usize },
    /// A hyperparameter is beyond what the runtime supports.
    ConfigLimit { field: &'static str, value: u64, limit: u64 },
    /// A batch session has no sequence of this index.
    NoSequence { index: usize, sequences: usize },
    TokenOutOfRange { token: u32, vocab: u32 },
    /// The model file carries no tokenizer.
    NoTokenizer,
    /// The tokenizer has more ids than the model has embedding rows.
    TokenizerVocab { tokenizer: u32, model: u32 },
    Tokenizer(crate::tokenizer::TokenizerError),
    /// The sampler's settings are out of range.
    BadSampler { what: &'static str },
    /// An API was called out of order or with an empty input (`what` says which).
    Usage { what: &'static str },
    #[cfg(feature = "std")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    /// An input file (config.json, tokenizer.json, safetensors) is not what
    /// conversion expects; the message names the file and the field.
    #[cfg(feature = "std")]
    Invalid(std::string::String),
}

impl From<crate::tokenizer::TokenizerError> for Error {
    fn from(e: crate::tokenizer::TokenizerError) -> Self {
        Error::Tokenizer(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match self {
            BadMagic => write!(f, "not an aha model file (bad magic; expected \"AHA\\0\")"),
            UnsupportedVersion { found, supported } => {
                write!(f, "model file format version {found} is not supported (this runtime reads version {supported})")
            }
            Truncated { what, needed, available } => {
                write!(f, "model file is truncated: {what} needs {needed} bytes but only {available} are there")
            }
            Corrupt { what } => write!(f, "model file is corrupt: {what}"),
            Checksum { name } => write!(f, "checksum mismatch in {name}: the file is corrupt"),
            BadConfig { what } => write!(f, "invalid model hyperparameters: {what}"),
            MissingTensor { name } => write!(f, "tensor {name} is missing"),
            TensorShape { name, expected, found } => {
                write!(f, "tensor {name} has shape {found:?}, expected {expected:?}")
            }
            TensorType { name, dtype } => write!(f, "tensor {name} cannot be stored as {dtype}"),
            TensorBounds { name } => write!(f, "tensor {name}: data lies outside the file or disagrees with its shape"),
            NonUniformLayers { name } => {
                write!(f, "tensor {name} breaks the uniform layer layout (same types, shapes and stride in every layer)")
            }
            BufferTooSmall { needed, available } => {
                write!(f, "workspace buffer too small: {needed} bytes needed, {available} given")
            }
            ContextFull { context } => write!(f, "context full ({context} tokens)"),
            ContextOutOfRange { context, max_position } => write!(
                f,
                "a context of {context} tokens is out of range: it must be between 1 and the model's {max_position} positions (max_position_embeddings)"
            ),
            BatchOutOfRange { batch, context } => {
                write!(f, "a prompt batch of {batch} tokens is out of range: it must be between 1 and the context ({context})")
            }
            OutOfMemory { bytes, context } => write!(
                f,
                "cannot allocate {bytes} bytes ({:.2} GB) for the KV cache and scratch of a {context}-token context; ask for a shorter context",
                *bytes as f64 / 1e9
            ),
            ConfigLimit { field, value, limit } => {
                write!(f, "invalid model hyperparameters: {field} = {value} is larger than the supported {limit}")
            }
            NoSequence { index, sequences } => {
                write!(f, "sequence {index} does not exist (the batch session holds {sequences})")
            }
            TokenOutOfRange { token, vocab } => write!(f, "token id {token} is out of range (vocabulary {vocab})"),
            NoTokenizer => write!(f, "the model file has no tokenizer"),
            TokenizerVocab { tokenizer, model } => write!(
                f,
                "the tokenizer has {tokenizer} ids but the model's vocabulary has {model}: ids from {model} on have no embedding"
            ),
            Tokenizer(e) => write!(f, "tokenizer: {e}"),
            BadSampler { what } => write!(f, "invalid sampler setting: {what}"),
            Usage { what } => write!(f, "{what}"),
            #[cfg(feature = "std")]
            Io { path, source } => write!(f, "{}: {source}", path.display()),
            #[cfg(feature = "std")]
            Invalid(msg) => f.write_str(msg),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // `Io`'s message already ends with the OS error's text; returning it
        // as the source too would print it twice in a cause chain.
        None
    }
}

pub type Result<T, E = Error> = core::result::Result<T, E>;
