//! Model bytes from disk (std): memory-mapped, so a model loads instantly and
//! its pages are shared between processes; read into memory as a fallback.

use crate::error::{Error, Result};
use std::path::Path;
use std::vec::Vec;

/// The bytes of a model file, mapped or read.
pub enum ModelBytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl ModelBytes {
    /// Maps `path` read-only (falls back to reading it if mapping fails).
    pub fn open(path: &Path) -> Result<ModelBytes> {
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process; like every
        // memory-mapped reader we rely on the file not being truncated while
        // mapped (the parser checks lengths only once).
        match unsafe { memmap2::Mmap::map(&file) } {
            Ok(map) => Ok(ModelBytes::Mapped(map)),
            Err(_) => std::fs::read(path).map(ModelBytes::Owned).map_err(io),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            ModelBytes::Mapped(m) => m,
            ModelBytes::Owned(v) => v,
        }
    }
}
