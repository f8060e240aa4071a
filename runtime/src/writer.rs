//! The `.aha` writer (std): the only code that writes model files, used by
//! `aha convert` and by the trainer's export, so reader and writer cannot
//! drift apart.
//!
//! The table is planned up front (names, types, shapes, hence every offset),
//! tensors are streamed one at a time (row by row if the caller wishes), and
//! the checksums are patched into the header at the end. Everything goes to a
//! temporary file beside the target, which is fsynced and renamed into place,
//! so a failed or interrupted write never leaves a half-written model.
//!
//! Renaming is for regular files only ([`output_target`]): a symlink is
//! followed (the file it points to is replaced, the link stays), a FIFO or a
//! character device (`/dev/null`, `/dev/stdout`) is written through, and a
//! directory, block device or socket is refused. The trainer's atomic writes
//! use the same rule.

use crate::error::{Error, Result};
use crate::format::{align_up, Config, Header, Provenance, TensorInfo, FORMAT_VERSION, MAGIC};
use aha_kernels::DType;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

/// Where bytes meant for a path end up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputTarget {
    /// A regular file, or no file yet, at this path (symlinks resolved):
    /// written to a temporary file beside it, then renamed over it.
    File(PathBuf),
    /// A FIFO or a character device: written through, never replaced.
    Stream(PathBuf),
}

/// How `path` may be written: see [`OutputTarget`]. Directories, block
/// devices and sockets are refused with a message naming the path.
pub fn output_target(path: &Path) -> Result<OutputTarget> {
    let mut at = path.to_path_buf();
    // As the kernel does, give up on a loop of links after 40 hops.
    for _ in 0..40 {
        let meta = match std::fs::symlink_metadata(&at) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(OutputTarget::File(at)),
            Err(source) => return Err(Error::Io { path: at, source }),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let link = std::fs::read_link(&at).map_err(io_err(&at))?;
            at = match at.parent() {
                Some(dir) if link.is_relative() => dir.join(link),
                _ => link,
            };
            continue;
        }
        if kind.is_file() {
            return Ok(OutputTarget::File(at));
        }
        let refuse = |what: &str| {
            let via = if at == path { String::new() } else { format!(" (where {} points)", path.display()) };
            Err(Error::Invalid(format!("{}{via} is {what}; refusing to write over it (give a file name)", at.display())))
        };
        if kind.is_dir() {
            return refuse("a directory");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if kind.is_fifo() || kind.is_char_device() {
                return Ok(OutputTarget::Stream(at));
            }
            if kind.is_block_device() {
                return refuse("a block device");
            }
            if kind.is_socket() {
                return refuse("a socket");
            }
        }
        return refuse("not a regular file");
    }
    Err(Error::Invalid(format!("{}: too many levels of symbolic links", path.display())))
}

/// The temporary name used while `path` (a regular file) is being written:
/// beside it, so the final rename stays on one file system.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", process_id()));
    path.with_file_name(name)
}

/// This process's id, for temporary names; WASI has no process ids
/// (`std::process::id` panics there), and one instance is one process.
fn process_id() -> u32 {
    #[cfg(target_os = "wasi")]
    return 0;
    #[cfg(not(target_os = "wasi"))]
    return std::process::id();
}

/// A temporary file for output bound for a stream (which cannot be
/// rewound to patch the header): in the system's temporary folder.
fn stream_temp_path() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("aha-{}-{n}.partial", process_id()))
}

/// Makes a rename inside `path`'s folder durable (best effort: not every
/// platform can open a folder).
pub fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Writes `bytes` to `path` by [`output_target`]'s rule: a regular file
/// atomically (temporary file, fsync, rename), a stream directly.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    match output_target(path)? {
        OutputTarget::Stream(at) => {
            let mut f = std::fs::OpenOptions::new().write(true).open(&at).map_err(io_err(&at))?;
            f.write_all(bytes).and_then(|_| f.flush()).map_err(io_err(&at))
        }
        OutputTarget::File(at) => {
            let tmp = temp_path(&at);
            let result = (|| {
                let mut file = File::create(&tmp)?;
                file.write_all(bytes)?;
                file.sync_all()?;
                std::fs::rename(&tmp, &at)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result.map_err(io_err(&at))?;
            sync_parent(&at);
            Ok(())
        }
    }
}

/// A tensor the writer will store: its name, format and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    /// One or two dimensions (rows, cols).
    pub shape: Vec<u64>,
}

struct Planned {
    spec: TensorSpec,
    offset: u64,
    len: u64,
    crc: Option<u32>,
}

/// Streams a model file to disk. Create it with the full plan, write each
/// tensor in plan order, then [`ModelWriter::finish`].
pub struct ModelWriter {
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    target: OutputTarget,
    config: Config,
    tokenizer: Option<Vec<u8>>,
    source: String,
    converter: String,
    quantization: String,
    plan: Vec<Planned>,
    next: usize,
    data_start: u64,
    written: u64,
    // The tensor being streamed row by row: its hasher and bytes so far.
    current: Option<(crc32fast::Hasher, u64)>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

impl ModelWriter {
    pub fn create(
        path: &Path,
        config: Config,
        tokenizer: Option<Vec<u8>>,
        provenance: Provenance<'_>,
        tensors: Vec<TensorSpec>,
    ) -> Result<ModelWriter> {
        config.validate()?;
        let mut plan = Vec::with_capacity(tensors.len());
        let mut offset = 0u64;
        for spec in tensors {
            let bad = |why: &str| Error::Invalid(format!("tensor {}: {why}", spec.name));
            let (rows, cols) = match spec.shape.as_slice() {
                [n] => (1, *n),
                [r, c] => (*r, *c),
                _ => return Err(bad("only 1-D and 2-D tensors can be stored")),
            };
            let row_bytes = spec
                .dtype
                .row_bytes(cols as usize)
                .ok_or_else(|| bad(&format!("{} columns are not a whole number of {} blocks", cols, spec.dtype)))?;
            let len = row_bytes as u64 * rows;
            plan.push(Planned { spec, offset, len, crc: None });
            offset = align_up((offset + len) as usize) as u64;
        }
        let target = output_target(path)?;
        let tmp = match &target {
            OutputTarget::File(at) => temp_path(at),
            OutputTarget::Stream(_) => stream_temp_path(),
        };
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut w = ModelWriter {
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            tmp,
            target,
            config,
            tokenizer,
            source: provenance.source.to_string(),
            converter: provenance.converter.to_string(),
            quantization: provenance.quantization.to_string(),
            plan,
            next: 0,
            data_start: 0,
            written: 0,
            current: None,
        };
        // Checksums are fixed-width, so this placeholder header has the final length.
        let header = w.encode_header()?;
        w.data_start = align_up(16 + header.len()) as u64;
        w.write_preamble(&header)?;
        Ok(w)
    }

    fn encode_header(&self) -> Result<Vec<u8>> {
        let mut table = Vec::new();
        for p in &self.plan {
            let (rank, shape) = match p.spec.shape.as_slice() {
                [n] => (1, [*n, 0]),
                [r, c] => (2, [*r, *c]),
                _ => unreachable!("checked in create"),
            };
            let info = TensorInfo {
                name: &p.spec.name,
                dtype: p.spec.dtype as u8,
                rank,
                shape,
                offset: p.offset,
                len: p.len,
                crc32: p.crc.unwrap_or(0).to_le_bytes(),
            };
            table.extend(postcard::to_allocvec(&info).map_err(|e| Error::Invalid(format!("encoding tensor table: {e}")))?);
        }
        let header = Header {
            config: self.config,
            tokenizer: self.tokenizer.as_deref(),
            provenance: Provenance { source: &self.source, converter: &self.converter, quantization: &self.quantization },
            tensor_count: self.plan.len() as u32,
            tensors: &table,
        };
        postcard::to_allocvec(&header).map_err(|e| Error::Invalid(format!("encoding header: {e}")))
    }

    fn write_preamble(&mut self, header: &[u8]) -> Result<()> {
        let mut pre = Vec::with_capacity(self.data_start as usize);
        pre.extend_from_slice(&MAGIC);
        pre.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        pre.extend_from_slice(&(header.len() as u32).to_le_bytes());
        pre.extend_from_slice(&crc32fast::hash(header).to_le_bytes());
        pre.extend_from_slice(header);
        pre.resize(self.data_start as usize, 0);
        let tmp = self.tmp.clone();
        self.out().write_all(&pre).map_err(io_err(&tmp))
    }

    fn out(&mut self) -> &mut BufWriter<File> {
        self.out.as_mut().expect("the output is open until finish")
    }

    /// The next tensor the writer expects.
    pub fn next_tensor(&self) -> Option<&TensorSpec> {
        self.plan.get(self.next).map(|p| &p.spec)
    }

    fn expect(&self, name: &str) -> Result<&Planned> {
        match self.plan.get(self.next) {
            Some(p) if p.spec.name == name => Ok(p),
            Some(p) => Err(Error::Invalid(format!("tensor {name} written out of order (expected {})", p.spec.name))),
            None => Err(Error::Invalid(format!("tensor {name} is not in the plan"))),
        }
    }

    /// Writes the next rows of the current tensor from f32 values, converting
    /// them to the tensor's format. `values.len()` must be a whole number of rows.
    pub fn write_rows(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let p = self.expect(name)?;
        let cols = *p.spec.shape.last().unwrap_or(&0) as usize;
        let dtype = p.spec.dtype;
        if cols == 0 || !values.len().is_multiple_of(cols) {
            return Err(Error::Invalid(format!("tensor {name}: {} values are not whole rows of {cols}", values.len())));
        }
        let mut bytes = vec![0u8; dtype.row_bytes(values.len()).unwrap_or(0)];
        aha_kernels::dtype::quantize(dtype, values, &mut bytes);
        self.write_raw_rows(name, &bytes)
    }

    /// Writes the next rows of the current tensor as bytes already in its format.
    pub fn write_raw_rows(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let len = self.expect(name)?.len;
        let (mut hasher, done) = self.current.take().unwrap_or_else(|| (crc32fast::Hasher::new(), 0));
        let done = done + bytes.len() as u64;
        if done > len {
            return Err(Error::Invalid(format!("tensor {name}: {done} bytes written, its shape holds {len}")));
        }
        hasher.update(bytes);
        let tmp = self.tmp.clone();
        self.out().write_all(bytes).map_err(io_err(&tmp))?;
        self.written += bytes.len() as u64;
        if done == len {
            let p = &mut self.plan[self.next];
            p.crc = Some(hasher.finalize());
            let end = p.offset + p.len;
            self.next += 1;
            // Pad to where the next tensor starts.
            if let Some(next_offset) = self.plan.get(self.next).map(|n| n.offset) {
                let pad = vec![0u8; (next_offset - end) as usize];
                self.out().write_all(&pad).map_err(io_err(&tmp))?;
            }
        } else {
            self.current = Some((hasher, done));
        }
        Ok(())
    }

    /// Writes a whole tensor from f32 values.
    pub fn write_tensor(&mut self, name: &str, values: &[f32]) -> Result<()> {
        self.write_rows(name, values)?;
        if self.current.is_some() {
            return Err(Error::Invalid(format!("tensor {name}: fewer values than its shape holds")));
        }
        Ok(())
    }

    /// Patches the checksums into the header, syncs, and renames the file
    /// into place (or, for a stream, copies it through).
    pub fn finish(mut self) -> Result<()> {
        if let Some(p) = self.plan.get(self.next) {
            return Err(Error::Invalid(format!("tensor {} was never written", p.spec.name)));
        }
        let header = self.encode_header()?;
        debug_assert_eq!(align_up(16 + header.len()) as u64, self.data_start);
        let tmp = self.tmp.clone();
        self.out().seek(SeekFrom::Start(0)).map_err(io_err(&tmp))?;
        self.write_preamble(&header)?;
        let out = self.out.take().expect("the output is open until finish");
        let file = out.into_inner().map_err(|e| Error::Io { path: self.tmp.clone(), source: e.into_error() })?;
        match &self.target {
            OutputTarget::File(at) => {
                file.sync_all().map_err(io_err(&tmp))?;
                drop(file);
                std::fs::rename(&tmp, at).map_err(io_err(at))?;
                sync_parent(at);
            }
            OutputTarget::Stream(at) => {
                drop(file);
                let mut from = File::open(&tmp).map_err(io_err(&tmp))?;
                let mut to = std::fs::OpenOptions::new().write(true).open(at).map_err(io_err(at))?;
                std::io::copy(&mut from, &mut to).and_then(|_| to.flush()).map_err(io_err(at))?;
            }
        }
        Ok(())
    }
}

impl Drop for ModelWriter {
    fn drop(&mut self) {
        // An unfinished write leaves no partial file behind (finish renamed it away).
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// The tensors of a model with `config`, in the canonical order the runtime
/// reads (embeddings, each layer, final norm, lm_head), every matrix in
/// `dtype` and every vector in f32.
pub fn canonical_specs(config: &Config, dtype: DType) -> Vec<TensorSpec> {
    let (h, i, v) = (config.hidden_size as u64, config.intermediate_size as u64, config.vocab_size as u64);
    let (q, kv) = (config.q_dim() as u64, config.kv_dim() as u64);
    let spec = |name: String, dtype: DType, shape: &[u64]| TensorSpec { name, dtype, shape: shape.to_vec() };
    let mut specs = vec![spec(crate::model::EMBED.to_string(), dtype, &[v, h])];
    for l in 0..config.num_layers {
        let p = |t: &str| format!("model.layers.{l}.{t}");
        specs.push(spec(p("input_layernorm.weight"), DType::F32, &[h]));
        for (proj, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            specs.push(spec(p(&format!("self_attn.{proj}.weight")), dtype, &[rows, h]));
            if config.attention_bias {
                specs.push(spec(p(&format!("self_attn.{proj}.bias")), DType::F32, &[rows]));
            }
        }
        specs.push(spec(p("self_attn.o_proj.weight"), dtype, &[h, q]));
        specs.push(spec(p("post_attention_layernorm.weight"), DType::F32, &[h]));
        specs.push(spec(p("mlp.gate_proj.weight"), dtype, &[i, h]));
        specs.push(spec(p("mlp.up_proj.weight"), dtype, &[i, h]));
        specs.push(spec(p("mlp.down_proj.weight"), dtype, &[h, i]));
    }
    specs.push(spec(crate::model::FINAL_NORM.to_string(), DType::F32, &[h]));
    if !config.tie_embeddings {
        specs.push(spec(crate::model::LM_HEAD.to_string(), dtype, &[v, h]));
    }
    specs
}

/// Writes a model with random weights (seeded): matrices uniform with the
/// standard deviation of a `1/sqrt(fan_in)` init, norms near 1, small biases.
/// For benches and tests at real sizes without a checkpoint.
pub fn write_random_model(path: &Path, config: &Config, dtype: DType, tokenizer: Option<Vec<u8>>, seed: u64) -> Result<()> {
    let specs = canonical_specs(config, dtype);
    let provenance = Provenance { source: "random", converter: concat!("aha ", env!("CARGO_PKG_VERSION")), quantization: dtype.name() };
    let mut w = ModelWriter::create(path, *config, tokenizer, provenance, specs.clone())?;
    let mut rng = crate::sampler::Rng::new(seed);
    let mut row = Vec::new();
    for spec in &specs {
        let cols = *spec.shape.last().unwrap_or(&1) as usize;
        let rows = if spec.shape.len() == 2 { spec.shape[0] as usize } else { 1 };
        let (center, scale) = if spec.name.ends_with("norm.weight") {
            (1.0, 0.2)
        } else if spec.name.ends_with(".bias") {
            (0.0, 0.1)
        } else {
            (0.0, 1.0 / (cols as f32).sqrt())
        };
        // Uniform on [-√3·s, √3·s] has standard deviation s.
        for _ in 0..rows {
            row.clear();
            row.extend((0..cols).map(|_| center + (rng.next_f32() * 2.0 - 1.0) * 1.732 * scale));
            w.write_rows(&spec.name, &row)?;
        }
    }
    w.finish()
}
