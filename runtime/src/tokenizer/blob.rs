//! The tokenizer's byte layout inside a model file, read in place.
//!
//! The blob is one postcard-encoded [`Blob`] (varint integers; a byte field is
//! a varint length and then the bytes, borrowed as they are). The large
//! tables are byte fields of little-endian `u32` rows, read with
//! `from_le_bytes`, so the blob may sit at any alignment:
//!
//! | field          | rows                                   | order                  |
//! | ---            | ---                                    | ---                    |
//! | `token_ends`   | `vocab_size` × u32: end of token i in `token_bytes` (token i starts where i-1 ends) | non-decreasing |
//! | `token_bytes`  | the bytes each id decodes to, concatenated | by id              |
//! | `byte_tokens`  | 256 × u32: the initial id of each byte, `u32::MAX` if none | by byte |
//! | `merges`       | 16-byte rows `(left, right, rank, merged)` | strictly by `(left, right)` |
//! | `vocab_sorted` | u32 ids of the BPE vocabulary          | by token bytes         |
//! | `added`        | 16-byte rows `(id, flags, text_start, text_len)` into `added_text` | strictly by id |
//! | `stop_ids`     | u32 ids that end generation            | as given               |
//!
//! Every field is checked once in [`Tables::parse`], so the encoder's lookups
//! never meet an id outside the vocabulary; they still use checked reads, so a
//! blob that passes the checks but lies cannot make them panic.

// `x % n != 0` rather than `is_multiple_of`: the workspace's MSRV is 1.85.
#![allow(clippy::manual_is_multiple_of)]

use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{Normalizer, PreTokenizer, TokenizerError};

/// The blob format version this module reads and writes.
pub const BLOB_VERSION: u32 = 1;

/// Marks a byte with no initial token in `byte_tokens`.
pub const NO_TOKEN: u32 = u32::MAX;

/// `flags` bits.
pub const FLAG_IGNORE_MERGES: u32 = 1 << 0;
pub const FLAG_ADD_PREFIX_SPACE: u32 = 1 << 1;
pub const FLAG_ADD_BOS: u32 = 1 << 2;
pub const FLAG_FUSE_UNK: u32 = 1 << 3;
const KNOWN_FLAGS: u32 = 0b1111;

/// Added-token row `flags` bits (as in Hugging Face's `AddedToken`).
pub const ADDED_SPECIAL: u32 = 1 << 0;
pub const ADDED_LSTRIP: u32 = 1 << 1;
pub const ADDED_RSTRIP: u32 = 1 << 2;
pub const ADDED_SINGLE_WORD: u32 = 1 << 3;
pub const ADDED_NORMALIZED: u32 = 1 << 4;

pub const MERGE_ROW: usize = 16;
pub const ADDED_ROW: usize = 16;

/// A borrowed byte field: postcard writes it as a length and the bytes, and
/// reads it back without copying.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bytes<'a>(pub &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Borrowed;
        impl<'de> Visitor<'de> for Borrowed {
            type Value = Bytes<'de>;
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                f.write_str("borrowed bytes")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_bytes(Borrowed)
    }
}

/// The top-level record. Field order and enum variant order are the wire
/// format: append, never reorder.
#[derive(Serialize, Deserialize, Debug)]
pub struct Blob<'a> {
    pub version: u32,
    pub vocab_size: u32,
    pub pre_tokenizer: PreTokenizer,
    pub normalizer: Normalizer,
    pub flags: u32,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
    pub unk: Option<u32>,
    #[serde(borrow)]
    pub stop_ids: Bytes<'a>,
    #[serde(borrow)]
    pub token_ends: Bytes<'a>,
    #[serde(borrow)]
    pub token_bytes: Bytes<'a>,
    #[serde(borrow)]
    pub byte_tokens: Bytes<'a>,
    #[serde(borrow)]
    pub merges: Bytes<'a>,
    #[serde(borrow)]
    pub vocab_sorted: Bytes<'a>,
    #[serde(borrow)]
    pub added: Bytes<'a>,
    #[serde(borrow)]
    pub added_text: Bytes<'a>,
    #[serde(borrow)]
    pub chat_template: Option<&'a str>,
}

/// Reads little-endian u32 number `i` of `table`; `None` past the end.
#[inline]
pub fn u32_at(table: &[u8], i: usize) -> Option<u32> {
    let start = i.checked_mul(4)?;
    let b = table.get(start..start.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads row `i` of a table of 16-byte rows as four u32s.
#[inline]
pub fn row4(table: &[u8], i: usize) -> Option<[u32; 4]> {
    let start = i.checked_mul(16)?;
    let b = table.get(start..start.checked_add(16)?)?;
    let w = |k: usize| u32::from_le_bytes([b[k], b[k + 1], b[k + 2], b[k + 3]]);
    Some([w(0), w(4), w(8), w(12)])
}

/// The parsed, checked tables: what [`super::Tokenizer`] reads from.
#[derive(Clone, Copy, Debug)]
pub struct Tables<'a> {
    pub vocab_size: u32,
    pub pre_tokenizer: PreTokenizer,
    pub normalizer: Normalizer,
    pub flags: u32,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
    pub unk: Option<u32>,
    pub stop_ids: &'a [u8],
    pub token_ends: &'a [u8],
    pub token_bytes: &'a [u8],
    pub byte_tokens: &'a [u8],
    pub merges: &'a [u8],
    pub vocab_sorted: &'a [u8],
    pub added: &'a [u8],
    pub added_text: &'a [u8],
    pub chat_template: Option<&'a str>,
}

impl<'a> Tables<'a> {
    /// Decodes and checks a blob: every length, every id against the
    /// vocabulary, every sort order the lookups rely on. Linear in the size of
    /// the blob; allocates nothing.
    pub fn parse(blob: &'a [u8]) -> Result<Self, TokenizerError> {
        let (version, _) = postcard::take_from_bytes::<u32>(blob).map_err(|_| TokenizerError::Corrupt("version"))?;
        if version != BLOB_VERSION {
            return Err(TokenizerError::UnsupportedVersion(version));
        }
        let (b, rest) = postcard::take_from_bytes::<Blob<'a>>(blob).map_err(|_| TokenizerError::Corrupt("header"))?;
        if !rest.is_empty() {
            return Err(TokenizerError::Corrupt("trailing bytes after the tokenizer"));
        }
        let t = Tables {
            vocab_size: b.vocab_size,
            pre_tokenizer: b.pre_tokenizer,
            normalizer: b.normalizer,
            flags: b.flags,
            bos: b.bos,
            eos: b.eos,
            pad: b.pad,
            unk: b.unk,
            stop_ids: b.stop_ids.0,
            token_ends: b.token_ends.0,
            token_bytes: b.token_bytes.0,
            byte_tokens: b.byte_tokens.0,
            merges: b.merges.0,
            vocab_sorted: b.vocab_sorted.0,
            added: b.added.0,
            added_text: b.added_text.0,
            chat_template: b.chat_template,
        };
        t.check()?;
        Ok(t)
    }

    fn check(&self) -> Result<(), TokenizerError> {
        use TokenizerError::Corrupt;
        let vocab = self.vocab_size as usize;
        let in_vocab = |id: u32| id < self.vocab_size;
        if self.flags & !KNOWN_FLAGS != 0 {
            return Err(Corrupt("flags"));
        }
        for (id, what) in [(self.bos, "bos"), (self.eos, "eos"), (self.pad, "pad"), (self.unk, "unk")] {
            if id.is_some_and(|id| !in_vocab(id)) {
                return Err(Corrupt(what));
            }
        }
        if self.stop_ids.len() % 4 != 0 || (0..self.stop_ids.len() / 4).any(|i| !u32_at(self.stop_ids, i).is_some_and(in_vocab)) {
            return Err(Corrupt("stop_ids"));
        }

        // token_ends: one end per id, non-decreasing, the last at the end of token_bytes.
        if vocab.checked_mul(4) != Some(self.token_ends.len()) {
            return Err(Corrupt("token_ends length"));
        }
        let mut prev = 0u32;
        for i in 0..vocab {
            let end = u32_at(self.token_ends, i).ok_or(Corrupt("token_ends"))?;
            if end < prev {
                return Err(Corrupt("token_ends order"));
            }
            prev = end;
        }
        if prev as usize != self.token_bytes.len() {
            return Err(Corrupt("token_bytes length"));
        }

        if self.byte_tokens.len() != 256 * 4 {
            return Err(Corrupt("byte_tokens length"));
        }
        for i in 0..256 {
            let id = u32_at(self.byte_tokens, i).ok_or(Corrupt("byte_tokens"))?;
            if id != NO_TOKEN && !in_vocab(id) {
                return Err(Corrupt("byte_tokens"));
            }
        }

        if self.merges.len() % MERGE_ROW != 0 {
            return Err(Corrupt("merges length"));
        }
        let mut prev: Option<(u32, u32)> = None;
        for i in 0..self.merges.len() / MERGE_ROW {
            let [l, r, _rank, merged] = row4(self.merges, i).ok_or(Corrupt("merges"))?;
            if !in_vocab(l) || !in_vocab(r) || !in_vocab(merged) {
                return Err(Corrupt("merges ids"));
            }
            if prev.is_some_and(|p| p >= (l, r)) {
                return Err(Corrupt("merges order"));
            }
            prev = Some((l, r));
        }

        if self.vocab_sorted.len() % 4 != 0 {
            return Err(Corrupt("vocab_sorted length"));
        }
        let mut prev: Option<&[u8]> = None;
        for i in 0..self.vocab_sorted.len() / 4 {
            let id = u32_at(self.vocab_sorted, i).ok_or(Corrupt("vocab_sorted"))?;
            let bytes = self.token_bytes(id).ok_or(Corrupt("vocab_sorted ids"))?;
            if prev.is_some_and(|p| p > bytes) {
                return Err(Corrupt("vocab_sorted order"));
            }
            prev = Some(bytes);
        }

        if self.added.len() % ADDED_ROW != 0 {
            return Err(Corrupt("added length"));
        }
        let mut prev: Option<u32> = None;
        for i in 0..self.added.len() / ADDED_ROW {
            let [id, _flags, start, len] = row4(self.added, i).ok_or(Corrupt("added"))?;
            if !in_vocab(id) || prev.is_some_and(|p| p >= id) {
                return Err(Corrupt("added ids"));
            }
            prev = Some(id);
            // Added tokens are matched against `&str` text, so their content
            // must be non-empty UTF-8 (a partial character could split a str
            // inside a character).
            let text = self.added_text_at(start, len).ok_or(Corrupt("added text range"))?;
            if text.is_empty() || core::str::from_utf8(text).is_err() {
                return Err(Corrupt("added text"));
            }
        }
        Ok(())
    }

    /// The bytes id `id` decodes to.
    #[inline]
    pub fn token_bytes(&self, id: u32) -> Option<&'a [u8]> {
        if id >= self.vocab_size {
            return None;
        }
        let i = id as usize;
        let end = u32_at(self.token_ends, i)? as usize;
        let start = if i == 0 { 0 } else { u32_at(self.token_ends, i - 1)? as usize };
        self.token_bytes.get(start..end)
    }

    /// The initial token of one byte.
    #[inline]
    pub fn byte_token(&self, byte: u8) -> Option<u32> {
        u32_at(self.byte_tokens, byte as usize).filter(|&id| id != NO_TOKEN)
    }

    /// `(rank, merged id)` of the merge of `left` then `right`.
    #[inline]
    pub fn merge(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        let key = (left, right);
        let (mut lo, mut hi) = (0usize, self.merges.len() / MERGE_ROW);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let [l, r, rank, merged] = row4(self.merges, mid)?;
            match (l, r).cmp(&key) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return Some((rank, merged)),
            }
        }
        None
    }

    /// The BPE vocabulary id whose bytes compare equal to the key, found by
    /// binary search; `cmp(token)` orders a token's bytes against the key.
    pub fn vocab_find(&self, mut cmp: impl FnMut(&[u8]) -> core::cmp::Ordering) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.vocab_sorted.len() / 4);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let id = u32_at(self.vocab_sorted, mid)?;
            match cmp(self.token_bytes(id)?) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return Some(id),
            }
        }
        None
    }

    pub fn added_count(&self) -> usize {
        self.added.len() / ADDED_ROW
    }

    fn added_text_at(&self, start: u32, len: u32) -> Option<&'a [u8]> {
        let start = start as usize;
        self.added_text.get(start..start.checked_add(len as usize)?)
    }

    /// Added token number `i` (in id order): `(id, flags, content)`.
    #[inline]
    pub fn added_at(&self, i: usize) -> Option<(u32, u32, &'a str)> {
        let [id, flags, start, len] = row4(self.added, i)?;
        let text = core::str::from_utf8(self.added_text_at(start, len)?).ok()?;
        Some((id, flags, text))
    }

    /// The added-token row of `id`, by binary search.
    pub fn added_by_id(&self, id: u32) -> Option<(u32, u32, &'a str)> {
        let (mut lo, mut hi) = (0usize, self.added_count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let row = self.added_at(mid)?;
            match row.0.cmp(&id) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return Some(row),
            }
        }
        None
    }
}

/// Writes a blob from owned tables (the converter's side of the format).
#[cfg(feature = "alloc")]
pub mod write {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    /// Everything a blob holds, owned; ids are `u32` and tokens raw bytes.
    #[derive(Clone, Debug)]
    pub struct TokenizerTables {
        pub pre_tokenizer: PreTokenizer,
        pub normalizer: Normalizer,
        pub ignore_merges: bool,
        pub add_prefix_space: bool,
        pub add_bos: bool,
        pub fuse_unk: bool,
        pub bos: Option<u32>,
        pub eos: Option<u32>,
        pub pad: Option<u32>,
        pub unk: Option<u32>,
        pub stop_ids: Vec<u32>,
        /// Token `i` decodes to `tokens[i]` (empty for an unused id).
        pub tokens: Vec<Vec<u8>>,
        /// The initial token of each byte.
        pub byte_tokens: [Option<u32>; 256],
        /// `(left, right, merged)` in rank order (rank = index). A repeated
        /// pair keeps its last rank, as Hugging Face's merge map does.
        pub merges: Vec<(u32, u32, u32)>,
        /// Ids in the BPE model's own vocabulary (looked up by bytes when
        /// `ignore_merges` is set, and by [`super::super::Tokenizer::token_id`]).
        pub vocab_ids: Vec<u32>,
        /// `(id, content, flags)` of the added tokens.
        pub added: Vec<(u32, String, u32)>,
        pub chat_template: Option<String>,
    }

    fn le(rows: impl IntoIterator<Item = u32>) -> Vec<u8> {
        rows.into_iter().flat_map(u32::to_le_bytes).collect()
    }

    impl TokenizerTables {
        /// Encodes the tables as a blob that [`Tables::parse`] accepts.
        pub fn to_blob(&self) -> Result<Vec<u8>, &'static str> {
            let vocab_size = u32::try_from(self.tokens.len()).map_err(|_| "vocabulary too large")?;
            let in_vocab = |id: u32| id < vocab_size;
            let mut token_ends = Vec::with_capacity(self.tokens.len());
            let mut token_bytes = Vec::new();
            for t in &self.tokens {
                token_bytes.extend_from_slice(t);
                token_ends.push(u32::try_from(token_bytes.len()).map_err(|_| "token bytes exceed 4 GiB")?);
            }

            let mut merges: Vec<([u32; 2], u32, u32)> = Vec::with_capacity(self.merges.len());
            for (rank, &(l, r, m)) in self.merges.iter().enumerate() {
                if !in_vocab(l) || !in_vocab(r) || !in_vocab(m) {
                    return Err("merge id outside the vocabulary");
                }
                merges.push(([l, r], rank as u32, m));
            }
            // Stable sort, then keep the last of each pair (its highest rank).
            merges.sort_by_key(|m| m.0);
            let mut dedup: Vec<([u32; 2], u32, u32)> = Vec::with_capacity(merges.len());
            for m in merges {
                match dedup.last_mut() {
                    Some(last) if last.0 == m.0 => *last = m,
                    _ => dedup.push(m),
                }
            }
            let merges = le(dedup.iter().flat_map(|&([l, r], rank, m)| [l, r, rank, m]));

            let mut vocab_sorted: Vec<u32> = self.vocab_ids.iter().copied().filter(|&id| in_vocab(id)).collect();
            vocab_sorted.sort_by(|&a, &b| self.tokens[a as usize].cmp(&self.tokens[b as usize]).then(a.cmp(&b)));
            vocab_sorted.dedup();

            let mut added: Vec<&(u32, String, u32)> = self.added.iter().filter(|a| !a.1.is_empty()).collect();
            added.sort_by_key(|a| a.0);
            added.dedup_by_key(|a| a.0);
            let mut added_rows = Vec::new();
            let mut added_text = Vec::new();
            for &(id, ref content, flags) in added {
                if !in_vocab(id) {
                    return Err("added token id outside the vocabulary");
                }
                let start = added_text.len() as u32;
                added_text.extend_from_slice(content.as_bytes());
                added_rows.extend([id, flags, start, content.len() as u32]);
            }

            let bit = |on: bool, flag: u32| if on { flag } else { 0 };
            let flags = bit(self.ignore_merges, FLAG_IGNORE_MERGES)
                | bit(self.add_prefix_space, FLAG_ADD_PREFIX_SPACE)
                | bit(self.add_bos, FLAG_ADD_BOS)
                | bit(self.fuse_unk, FLAG_FUSE_UNK);
            let stop_ids = le(self.stop_ids.iter().copied());
            let token_ends = le(token_ends);
            let byte_tokens = le(self.byte_tokens.iter().map(|t| t.unwrap_or(NO_TOKEN)));
            let vocab_sorted = le(vocab_sorted);
            let added_rows = le(added_rows);
            let blob = Blob {
                version: BLOB_VERSION,
                vocab_size,
                pre_tokenizer: self.pre_tokenizer,
                normalizer: self.normalizer,
                flags,
                bos: self.bos,
                eos: self.eos,
                pad: self.pad,
                unk: self.unk,
                stop_ids: Bytes(&stop_ids),
                token_ends: Bytes(&token_ends),
                token_bytes: Bytes(&token_bytes),
                byte_tokens: Bytes(&byte_tokens),
                merges: Bytes(&merges),
                vocab_sorted: Bytes(&vocab_sorted),
                added: Bytes(&added_rows),
                added_text: Bytes(&added_text),
                chat_template: self.chat_template.as_deref(),
            };
            let out = postcard::to_allocvec(&blob).map_err(|_| "postcard encoding failed")?;
            // The writer and the reader must agree; a blob that fails its own
            // checks is a bug here, not in the input.
            Tables::parse(&out).map_err(|_| "the written blob does not pass its own checks")?;
            Ok(out)
        }
    }
}
