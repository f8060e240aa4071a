//! The `.aha` model file: one file holds the hyperparameters, the tokenizer and
//! every weight, read in place from a `&[u8]` (flash, `include_bytes!`, a
//! memory map).
//!
//! ```text
//! offset  size  field
//! 0       4     magic "AHA\0"
//! 4       4     format version (u32 LE)
//! 8       4     header length H (u32 LE)
//! 12      4     CRC-32 of the header bytes (u32 LE)
//! 16      H     postcard-encoded `Header`
//! ...           zero padding to a multiple of 64: the data section starts here
//!               tensor data, each tensor at a multiple of 64 from the data start
//! ```
//!
//! The tensor table is itself a byte string of back-to-back postcard records,
//! decoded on demand, so reading a file allocates nothing. Every length and
//! offset is checked against the slice: any byte string parses to `Ok` or to
//! an [`Error`] that names what is wrong.

use crate::error::{name, Error, Result};
use aha_kernels::DType;
use serde::{Deserialize, Serialize};

pub const MAGIC: [u8; 4] = *b"AHA\0";
pub const FORMAT_VERSION: u32 = 1;
/// Alignment of the data section and of every tensor in it.
pub const ALIGN: usize = 64;
const PREAMBLE: usize = 16;

/// The decoder family. Codes are part of the file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    /// Qwen2: q/k/v biases, GQA, RoPE, RMSNorm, SwiGLU.
    Qwen2,
    /// Llama: as Qwen2 without biases (unless `attention_bias`).
    Llama,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Qwen2 => "qwen2",
            Arch::Llama => "llama",
        }
    }
}

/// How RoPE frequencies are adjusted for long contexts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum RopeScaling {
    None,
    /// Llama 3.1's frequency-dependent scaling (`rope_type: "llama3"`).
    Llama3 { factor: f32, low_freq_factor: f32, high_freq_factor: f32, original_max_position: u32 },
}

/// The largest vocabulary, width or head size the runtime accepts (2^20):
/// every size derived from them stays far from overflow, even on 32 bits.
pub const MAX_DIM: u32 = 1 << 20;

/// Hyperparameters: everything the forward pass needs to know about shapes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub arch: Arch,
    pub vocab_size: u32,
    pub hidden_size: u32,
    pub intermediate_size: u32,
    pub num_layers: u32,
    pub num_heads: u32,
    pub num_kv_heads: u32,
    pub head_dim: u32,
    pub rope_theta: f32,
    pub rope_scaling: RopeScaling,
    pub rms_norm_eps: f32,
    pub max_position: u32,
    pub tie_embeddings: bool,
    pub attention_bias: bool,
}

impl Config {
    /// Checks the hyperparameters are usable (non-zero, heads divide, even head_dim).
    pub fn validate(&self) -> Result<()> {
        let bad = |what| Err(Error::BadConfig { what });
        if self.vocab_size == 0 || self.hidden_size == 0 || self.intermediate_size == 0 || self.num_layers == 0 {
            return bad("vocab_size, hidden_size, intermediate_size and num_layers must be non-zero");
        }
        if self.num_heads == 0 || self.num_kv_heads == 0 || !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return bad("num_heads must be a non-zero multiple of num_kv_heads");
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return bad("head_dim must be even and non-zero");
        }
        if !(self.rope_theta > 0.0 && self.rope_theta.is_finite()) || !(self.rms_norm_eps >= 0.0 && self.rms_norm_eps.is_finite()) {
            return bad("rope_theta must be positive and rms_norm_eps non-negative (both finite)");
        }
        if let RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position } = self.rope_scaling {
            // As transformers' `_validate_llama3_parameters`: the smoothing
            // divides by `high_freq_factor - low_freq_factor`.
            let ok = factor.is_finite()
                && factor >= 1.0
                && low_freq_factor > 0.0
                && high_freq_factor.is_finite()
                && high_freq_factor > low_freq_factor
                && original_max_position > 0;
            if !ok {
                return bad("llama3 rope scaling needs factor >= 1, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0");
            }
        }
        // Keep every derived size far from usize overflow, even on 32-bit targets.
        let limits = [
            ("num_hidden_layers", self.num_layers, crate::model::MAX_LAYERS as u32),
            ("vocab_size", self.vocab_size, MAX_DIM),
            ("hidden_size", self.hidden_size, MAX_DIM),
            ("intermediate_size", self.intermediate_size, MAX_DIM),
            ("head_dim", self.head_dim, MAX_DIM),
            ("num_attention_heads", self.num_heads, 1024),
        ];
        for (field, value, limit) in limits {
            if value > limit {
                return Err(Error::ConfigLimit { field, value: value.into(), limit: limit.into() });
            }
        }
        Ok(())
    }

    /// A ~122M-parameter Qwen2 (768 wide, 12 layers, 12 heads / 2 KV heads,
    /// head dim 64, intermediate 2048, vocab 32000, untied): the shape the
    /// decode benches use, matching the llama.cpp comparison in docs/benchmarks.md.
    pub fn qwen2_122m() -> Config {
        Config {
            arch: Arch::Qwen2,
            vocab_size: 32000,
            hidden_size: 768,
            intermediate_size: 2048,
            num_layers: 12,
            num_heads: 12,
            num_kv_heads: 2,
            head_dim: 64,
            rope_theta: 1_000_000.0,
            rope_scaling: RopeScaling::None,
            rms_norm_eps: 1e-6,
            max_position: 4096,
            tie_embeddings: false,
            attention_bias: true,
        }
    }

    pub fn q_dim(&self) -> usize {
        (self.num_heads * self.head_dim) as usize
    }

    pub fn kv_dim(&self) -> usize {
        (self.num_kv_heads * self.head_dim) as usize
    }
}

/// Where a file came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance<'a> {
    /// The checkpoint it was made from (a path or a model name).
    pub source: &'a str,
    /// The program and version that wrote it.
    pub converter: &'a str,
    /// The requested weight format (`q4_0`, ...), as the user gave it.
    pub quantization: &'a str,
}

/// The postcard-encoded header.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Header<'a> {
    pub config: Config,
    /// The tokenizer blob (see [`crate::tokenizer`]), if the file has one.
    #[serde(borrow)]
    pub tokenizer: Option<&'a [u8]>,
    #[serde(borrow)]
    pub provenance: Provenance<'a>,
    pub tensor_count: u32,
    /// `tensor_count` postcard-encoded [`TensorInfo`] records, back to back.
    #[serde(borrow)]
    pub tensors: &'a [u8],
}

/// One row of the tensor table.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo<'a> {
    /// The Hugging Face parameter name (`model.layers.0.self_attn.q_proj.weight`).
    pub name: &'a str,
    /// [`DType`] code.
    pub dtype: u8,
    /// 1 or 2.
    pub rank: u8,
    /// Dimensions, outermost first (Hugging Face's order: rows, then columns);
    /// a 1-D tensor uses `shape[0]` only.
    pub shape: [u64; 2],
    /// Byte offset from the start of the data section (a multiple of 64).
    pub offset: u64,
    pub len: u64,
    /// CRC-32 of the tensor's bytes, fixed-width so the writer can patch it in place.
    pub crc32: [u8; 4],
}

impl<'a> TensorInfo<'a> {
    pub fn dtype(&self) -> Result<DType> {
        DType::from_code(self.dtype).ok_or(Error::Corrupt { what: "unknown tensor type code" })
    }

    /// (rows, cols): a 1-D tensor of n elements is (1, n).
    pub fn rows_cols(&self) -> (u64, u64) {
        if self.rank == 1 {
            (1, self.shape[0])
        } else {
            (self.shape[0], self.shape[1])
        }
    }

    pub fn elements(&self) -> Option<u64> {
        let (r, c) = self.rows_cols();
        r.checked_mul(c)
    }
}

/// A parsed file: the header plus a borrowed view of the bytes.
#[derive(Clone, Copy, Debug)]
pub struct ModelFile<'a> {
    pub header: Header<'a>,
    pub version: u32,
    /// The data section (every tensor's offset is relative to its start).
    pub data: &'a [u8],
    header_bytes: &'a [u8],
    header_crc: u32,
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

pub fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

impl<'a> ModelFile<'a> {
    /// Parses the preamble, the header (checking its CRC) and every tensor
    /// record (type, shape, bounds). Tensor data checksums are checked by
    /// [`ModelFile::verify`], which reads every byte.
    pub fn parse(bytes: &'a [u8]) -> Result<ModelFile<'a>> {
        if bytes.len() < PREAMBLE {
            if bytes.len() >= 4 && bytes[..4] != MAGIC {
                return Err(Error::BadMagic);
            }
            return Err(Error::Truncated { what: "the preamble", needed: PREAMBLE as u64, available: bytes.len() as u64 });
        }
        if bytes[..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = read_u32(bytes, 4);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
        }
        let header_len = read_u32(bytes, 8) as usize;
        let header_crc = read_u32(bytes, 12);
        let header_end = PREAMBLE.checked_add(header_len).ok_or(Error::Corrupt { what: "header length" })?;
        if header_end > bytes.len() {
            return Err(Error::Truncated { what: "the header", needed: header_end as u64, available: bytes.len() as u64 });
        }
        let header_bytes = &bytes[PREAMBLE..header_end];
        if crc32fast::hash(header_bytes) != header_crc {
            return Err(Error::Checksum { name: name("header") });
        }
        let header: Header<'a> =
            postcard::from_bytes(header_bytes).map_err(|_| Error::Corrupt { what: "the header does not decode" })?;
        header.config.validate()?;
        let data_start = align_up(header_end);
        let data = bytes.get(data_start..).unwrap_or(&[]);
        let file = ModelFile { header, version, data, header_bytes, header_crc };
        let mut count = 0u32;
        for info in file.tensors() {
            file.check_bounds(&info?)?;
            count += 1;
        }
        if count != header.tensor_count {
            return Err(Error::Corrupt { what: "tensor count disagrees with the tensor table" });
        }
        Ok(file)
    }

    pub fn config(&self) -> &Config {
        &self.header.config
    }

    /// The tensor table, decoded record by record.
    pub fn tensors(&self) -> Tensors<'a> {
        Tensors { rest: self.header.tensors, left: self.header.tensor_count }
    }

    pub fn find(&self, tensor: &str) -> Result<TensorInfo<'a>> {
        for info in self.tensors() {
            let info = info?;
            if info.name == tensor {
                return Ok(info);
            }
        }
        Err(Error::MissingTensor { name: name(tensor) })
    }

    /// The bytes of a tensor (bounds were checked by `parse`).
    pub fn tensor_bytes(&self, info: &TensorInfo<'a>) -> Result<&'a [u8]> {
        let start = usize::try_from(info.offset).map_err(|_| Error::TensorBounds { name: name(info.name) })?;
        let len = usize::try_from(info.len).map_err(|_| Error::TensorBounds { name: name(info.name) })?;
        start
            .checked_add(len)
            .and_then(|end| self.data.get(start..end))
            .ok_or(Error::TensorBounds { name: name(info.name) })
    }

    fn check_bounds(&self, info: &TensorInfo<'a>) -> Result<()> {
        let dtype = info.dtype()?;
        let bad = || Error::TensorBounds { name: name(info.name) };
        if !(info.rank == 1 || info.rank == 2) || !info.offset.is_multiple_of(ALIGN as u64) {
            return Err(bad());
        }
        let (rows, cols) = info.rows_cols();
        let row_bytes = usize::try_from(cols).ok().and_then(|c| dtype.row_bytes(c)).ok_or_else(bad)?;
        let expected = (row_bytes as u64).checked_mul(rows).ok_or_else(bad)?;
        if expected != info.len {
            return Err(bad());
        }
        self.tensor_bytes(info).map(|_| ())
    }

    /// Reads every tensor and checks its CRC-32; the first mismatch is
    /// reported by name.
    pub fn verify(&self) -> Result<()> {
        for info in self.tensors() {
            let info = info?;
            if crc32fast::hash(self.tensor_bytes(&info)?) != u32::from_le_bytes(info.crc32) {
                return Err(Error::Checksum { name: name(info.name) });
            }
        }
        Ok(())
    }

    /// Total bytes of tensor data.
    pub fn weight_bytes(&self) -> u64 {
        self.tensors().filter_map(|t| t.ok()).map(|t| t.len).sum()
    }

    pub fn header_crc(&self) -> u32 {
        self.header_crc
    }

    pub fn header_len(&self) -> usize {
        self.header_bytes.len()
    }
}

/// Iterator over the tensor table.
#[derive(Clone)]
pub struct Tensors<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Iterator for Tensors<'a> {
    type Item = Result<TensorInfo<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match postcard::take_from_bytes::<TensorInfo<'a>>(self.rest) {
            Ok((info, rest)) => {
                self.rest = rest;
                Some(Ok(info))
            }
            Err(_) => {
                self.left = 0;
                Some(Err(Error::Corrupt { what: "a tensor table record does not decode" }))
            }
        }
    }
}
