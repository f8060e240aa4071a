//! Placeholder: the tokenizer module is being written (byte-level BPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerError {
    Corrupt(&'static str),
}
impl core::fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TokenizerError::Corrupt(w) => write!(f, "corrupt tokenizer: {w}"),
        }
    }
}
