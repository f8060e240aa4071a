//! Streaming decoding: token bytes in, complete UTF-8 text out.
//!
//! A byte-level token can end inside a multi-byte character, so the decoder
//! holds an incomplete sequence until the next token completes it. Invalid
//! bytes become U+FFFD, one per maximal ill-formed subsequence (Unicode 3.9,
//! "U+FFFD substitution of maximal subparts"), which is what Rust's
//! `String::from_utf8_lossy` and so Hugging Face's byte-level decoder give for
//! the whole sequence at once.

use core::fmt::Write;

use super::{Tokenizer, TokenizerError};

const REPLACEMENT: char = '\u{FFFD}';

/// Decodes token ids one at a time into text; see the module notes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextDecoder {
    /// Continuation bytes the pending character still needs (0: none pending).
    need: u8,
    /// The range the next continuation byte must fall in.
    lo: u8,
    hi: u8,
    /// The pending character's bits so far.
    cp: u32,
}

impl TextDecoder {
    pub const fn new() -> Self {
        TextDecoder { need: 0, lo: 0x80, hi: 0xBF, cp: 0 }
    }

    /// Whether an incomplete character is being held back.
    pub fn is_pending(&self) -> bool {
        self.need != 0
    }

    /// Writes the text that token `id` completes.
    pub fn push<W: Write + ?Sized>(&mut self, tokenizer: &Tokenizer, id: u32, out: &mut W) -> Result<(), TokenizerError> {
        let bytes = tokenizer.token_bytes(id).ok_or(TokenizerError::UnknownToken(id))?;
        self.push_bytes(bytes, out)
    }

    /// Writes the text that `bytes` complete.
    pub fn push_bytes<W: Write + ?Sized>(&mut self, bytes: &[u8], out: &mut W) -> Result<(), TokenizerError> {
        let mut i = 0;
        while self.need != 0 && i < bytes.len() {
            self.step(bytes[i], out)?;
            i += 1;
        }
        let mut chunks = bytes[i..].utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            out.write_str(chunk.valid())?;
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            if chunks.peek().is_some() {
                out.write_char(REPLACEMENT)?;
            } else {
                // At the end: either the start of a character the next token
                // finishes, or plain invalid; the byte machine tells which.
                for &b in invalid {
                    self.step(b, out)?;
                }
            }
        }
        Ok(())
    }

    /// Ends the stream: a character still incomplete becomes U+FFFD.
    pub fn finish<W: Write + ?Sized>(&mut self, out: &mut W) -> Result<(), TokenizerError> {
        if self.need != 0 {
            *self = TextDecoder::new();
            out.write_char(REPLACEMENT)?;
        }
        Ok(())
    }

    /// One byte through the UTF-8 decoder (the well-formed byte sequences of
    /// the Unicode standard, table 3-7).
    fn step<W: Write + ?Sized>(&mut self, b: u8, out: &mut W) -> Result<(), TokenizerError> {
        if self.need != 0 {
            if (self.lo..=self.hi).contains(&b) {
                self.cp = self.cp << 6 | (b & 0x3F) as u32;
                self.need -= 1;
                self.lo = 0x80;
                self.hi = 0xBF;
                if self.need == 0 {
                    out.write_char(char::from_u32(self.cp).unwrap_or(REPLACEMENT))?;
                }
                return Ok(());
            }
            // The pending sequence is cut short: one U+FFFD for it, and `b`
            // starts afresh.
            *self = TextDecoder::new();
            out.write_char(REPLACEMENT)?;
        }
        let (need, bits, lo, hi) = match b {
            0x00..=0x7F => return Ok(out.write_char(b as char)?),
            0xC2..=0xDF => (1, b & 0x1F, 0x80, 0xBF),
            0xE0 => (2, b & 0x0F, 0xA0, 0xBF),
            0xED => (2, b & 0x0F, 0x80, 0x9F),
            0xE1..=0xEF => (2, b & 0x0F, 0x80, 0xBF),
            0xF0 => (3, b & 0x07, 0x90, 0xBF),
            0xF4 => (3, b & 0x07, 0x80, 0x8F),
            0xF1..=0xF3 => (3, b & 0x07, 0x80, 0xBF),
            _ => return Ok(out.write_char(REPLACEMENT)?),
        };
        *self = TextDecoder { need, lo, hi, cp: bits as u32 };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use proptest::prelude::*;
    use std::string::String;
    use std::vec::Vec;

    fn streamed(chunks: &[&[u8]]) -> String {
        let mut d = TextDecoder::new();
        let mut s = String::new();
        for c in chunks {
            d.push_bytes(c, &mut s).unwrap();
        }
        d.finish(&mut s).unwrap();
        s
    }

    #[test]
    fn holds_back_split_characters() {
        let emoji = "😀".as_bytes();
        let mut d = TextDecoder::new();
        let mut s = String::new();
        d.push_bytes(&emoji[..1], &mut s).unwrap();
        d.push_bytes(&emoji[1..3], &mut s).unwrap();
        assert_eq!(s, "");
        assert!(d.is_pending());
        d.push_bytes(&emoji[3..], &mut s).unwrap();
        assert_eq!(s, "😀");
        assert_eq!(streamed(&[b"a\xE4\xB8", b"\xADb"]), "a中b");
        assert_eq!(streamed(&[b"\xE4\xB8"]), "\u{FFFD}");
        assert_eq!(streamed(&[b"\xE0\x80", b"x"]), "\u{FFFD}\u{FFFD}x");
    }

    proptest! {
        #[test]
        fn matches_from_utf8_lossy(bytes in proptest::collection::vec(
            prop_oneof![any::<u8>(), 0x80u8..0xC0, 0xE0u8..0xF5], 0..40),
            cuts in proptest::collection::vec(0usize..40, 0..6)) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= bytes.len()).collect();
            cuts.push(0);
            cuts.push(bytes.len());
            cuts.sort();
            let chunks: Vec<&[u8]> = cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
            prop_assert_eq!(streamed(&chunks), String::from_utf8_lossy(&bytes).into_owned());
        }
    }
}
