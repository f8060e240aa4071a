//! Reading JSONL: one JSON object per line, blank lines skipped, every
//! error naming the file and the line. Streamed line by line, so a file's
//! size costs no memory beyond its longest line.
//!
//! A file that another process is still appending to (a live run's
//! `metrics.jsonl`) can end in a half-written line; [`Tail::SkipIncomplete`]
//! reads what is complete and leaves that line for the next read. Only
//! `std`, `serde_json` and this crate's error, so the fuzz targets compile it
//! without the rest of the trainer.

use std::io::BufRead;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// What to do with a last line that has no newline and does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// An error, like any other bad line.
    Strict,
    /// Skipped: it is being written (a complete last line without a newline
    /// still counts).
    SkipIncomplete,
}

/// Hands each non-blank line of `reader` (1-based line number, text) to
/// `each`; an `Err` from it becomes [`Error::Line`] at `path`. Lines that are
/// not UTF-8 are errors too.
pub fn read_lines<R: BufRead>(
    mut reader: R,
    path: &Path,
    tail: Tail,
    mut each: impl FnMut(usize, &str) -> std::result::Result<(), String>,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| Error::Line {
            path: path.to_path_buf(),
            line: line + 1,
            message: format!("cannot read: {e}"),
        })?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        let complete = buf.last() == Some(&b'\n');
        let error = |message: String| Error::Line { path: path.to_path_buf(), line, message };
        let result = match std::str::from_utf8(&buf) {
            Ok(text) if text.trim().is_empty() => Ok(()),
            Ok(text) => each(line, text.trim_end_matches(['\n', '\r'])),
            Err(e) => Err(format!("not UTF-8 (byte {} of the line)", e.valid_up_to() + 1)),
        };
        match result {
            Ok(()) => {}
            Err(_) if !complete && tail == Tail::SkipIncomplete => return Ok(()),
            Err(message) => return Err(error(message)),
        }
    }
}

/// A line as a JSON object. Python's bare `NaN`, `Infinity` and
/// `-Infinity` (not JSON, but what `json.dumps` writes) read as `null`.
pub fn object(line: &str) -> std::result::Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_str(&non_finite_to_null(line)).map_err(|e| format!("not JSON: {e}"))?;
    match value {
        Value::Object(fields) => Ok(fields),
        other => Err(format!("expected a JSON object, found {}", aha_runtime::convert::json_kind(&other))),
    }
}

/// Every object of a JSONL file, with its line number.
pub fn read_objects(path: &Path, tail: Tail) -> Result<Vec<(usize, Map<String, Value>)>> {
    let file = std::fs::File::open(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let mut out = Vec::new();
    read_lines(std::io::BufReader::new(file), path, tail, |line, text| {
        out.push((line, object(text)?));
        Ok(())
    })?;
    Ok(out)
}

/// Replaces the bare `NaN`, `Infinity` and `-Infinity` tokens that Python's
/// `json` writes (outside strings) by `null`, so that the line parses.
pub fn non_finite_to_null(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains("NaN") && !line.contains("Infinity") {
        return line.into();
    }
    let mut out = String::with_capacity(line.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if let Some(token) = ["-Infinity", "Infinity", "-NaN", "NaN"].iter().find(|t| rest.starts_with(**t)) {
            out.push_str("null");
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8], tail: Tail) -> Result<Vec<(usize, String)>> {
        let mut got = Vec::new();
        read_lines(text, Path::new("m.jsonl"), tail, |n, l| {
            object(l)?;
            got.push((n, l.to_string()));
            Ok(())
        })?;
        Ok(got)
    }

    #[test]
    fn a_half_written_last_line_is_left_for_later_only_when_asked() {
        let text = b"{\"step\": 1}\n\n{\"step\": 2}\n{\"step\": 3, \"lo";
        let got = lines(text, Tail::SkipIncomplete).unwrap();
        assert_eq!(got.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 3]);
        let e = lines(text, Tail::Strict).unwrap_err().to_string();
        assert!(e.starts_with("m.jsonl:4: not JSON"), "{e}");
        // A complete last line without a newline is read; a bad complete line is an error either way.
        assert_eq!(lines(b"{\"a\": 1}\n{\"b\": 2}", Tail::SkipIncomplete).unwrap().len(), 2);
        let e = lines(b"{\"a\": 1}\n{\"b\": \n{\"c\": 3}", Tail::SkipIncomplete).unwrap_err().to_string();
        assert!(e.starts_with("m.jsonl:2:"), "{e}");
    }

    #[test]
    fn errors_name_the_line_and_what_is_wrong() {
        let e = lines(b"{\"a\": 1}\n[1, 2]\n", Tail::Strict).unwrap_err().to_string();
        assert_eq!(e, "m.jsonl:2: expected a JSON object, found an array");
        let e = lines(b"{\"a\": 1}\r\n{\"\xff\": 1}\n", Tail::Strict).unwrap_err().to_string();
        assert!(e.starts_with("m.jsonl:2: not UTF-8"), "{e}");
    }

    #[test]
    fn python_non_finite_numbers_read_as_null() {
        assert_eq!(non_finite_to_null("{\"a\": 1}"), "{\"a\": 1}");
        assert_eq!(
            non_finite_to_null("{\"NaN\": NaN, \"b\": [-Infinity,Infinity], \"c\": \"x\\\" NaN\"}"),
            "{\"NaN\": null, \"b\": [null,null], \"c\": \"x\\\" NaN\"}"
        );
        assert_eq!(object("{\"loss\": NaN}").unwrap()["loss"], Value::Null);
    }
}
