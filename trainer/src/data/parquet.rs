//! Parquet rows as JSON objects, through the `parquet` crate's record API
//! (no arrow): row groups and pages are read as the rows are asked for, so
//! a file's size costs no memory beyond the current page. Lists come out as
//! JSON lists and structs as objects (`messages` reads as it does in JSONL).

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// The rows of the Parquet file at `path`, in order; an error in a row is
/// the reason as text (for the caller to place).
#[cfg(feature = "parquet")]
pub fn rows(path: &Path) -> Result<impl Iterator<Item = std::result::Result<Value, String>>> {
    use ::parquet::file::reader::SerializedFileReader;
    let file = std::fs::File::open(path).map_err(crate::error::at(path))?;
    let reader = SerializedFileReader::new(file).map_err(|e| Error::file(path, format!("not a readable Parquet file: {e}")))?;
    Ok(reader.into_iter().map(|row| row.map(|r| r.to_json_value()).map_err(describe)))
}

/// Without the `parquet` feature: a clear refusal.
#[cfg(not(feature = "parquet"))]
pub fn rows(path: &Path) -> Result<std::iter::Empty<std::result::Result<Value, String>>> {
    Err(Error::file(path, "this build of aha reads no Parquet (built without the trainer's `parquet` feature); convert it to JSONL"))
}

#[cfg(feature = "parquet")]
fn describe(e: ::parquet::errors::ParquetError) -> String {
    let text = e.to_string();
    if text.contains("Disabled feature") || text.contains("not supported") || text.contains("codec") {
        format!("{text} (aha reads Parquet compressed with snappy, zstd or gzip, or uncompressed)")
    } else {
        text
    }
}
