//! Writes that never leave a half-written file: a temporary file beside the
//! target is written, fsynced and renamed into place. The rule for what may
//! be renamed over (regular files only; symlinks followed, FIFOs and
//! character devices written through, directories refused) is the
//! runtime writer's, [`aha_runtime::writer::output_target`].

use std::path::{Path, PathBuf};

use crate::error::Result;

/// The temporary name used while `path` is being written.
pub fn temp_path(path: &Path) -> PathBuf {
    aha_runtime::writer::temp_path(path)
}

/// Writes `bytes` to `path` atomically (a stream such as a FIFO directly).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(aha_runtime::writer::write_file(path, bytes)?)
}

/// Makes a rename inside `path`'s directory durable (best effort: not every
/// platform can open a directory).
pub fn sync_dir(path: &Path) {
    aha_runtime::writer::sync_parent(path)
}
