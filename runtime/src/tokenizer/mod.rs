//! The tokenizer: byte-level BPE (Qwen2, Llama 3, GPT-2 families) read in
//! place from a blob stored in the model file, with no allocation.
//!
//! Encoding follows Hugging Face `tokenizers` step by step: added tokens are
//! matched whole in the raw text ([`Tokenizer::encode`]); the text between
//! them is normalized ([`normalize`], NFC when the tokenizer asks for it),
//! split into pre-tokens ([`pretokenize`], the split regex as a hand-written
//! scanner), and each pre-token's UTF-8 bytes are merged by BPE rank
//! ([`bpe`]). Decoding concatenates each token's bytes ([`TextDecoder`]
//! streams them as UTF-8). The blob layout is in [`blob`]; under `std`,
//! [`build_from_json`] writes one from a Hugging Face `tokenizer.json`.

pub mod blob;
mod bpe;
mod decode;
#[cfg(feature = "std")]
mod hf;
pub mod normalize;
pub mod pretokenize;
mod unicode_tables;

#[cfg(feature = "alloc")]
use alloc::{string::String, vec::Vec};
use core::fmt;

use blob::Tables;
pub use decode::TextDecoder;
#[cfg(feature = "std")]
pub use hf::{build_from_json, load_json, TokenizerBuilder};
pub use pretokenize::PreTokenizer;
pub use unicode_tables::UNICODE_VERSION;

/// What went wrong in the tokenizer. Plain data, so it works without alloc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerError {
    /// The blob does not decode, or a field fails its checks (named here).
    Corrupt(&'static str),
    /// The blob was written in a format version this runtime does not read.
    UnsupportedVersion(u32),
    /// The caller's scratch is shorter than this text needs (in `u32` words);
    /// [`Tokenizer::scratch_bound`] gives a size that always suffices.
    ScratchTooSmall { needed: usize, available: usize },
    /// A token id outside the vocabulary.
    UnknownToken(u32),
    /// The token sink is full.
    OutputFull,
    /// The `fmt::Write` the text goes to returned an error.
    Write,
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizerError::Corrupt(what) => write!(f, "corrupt tokenizer data: {what}"),
            TokenizerError::UnsupportedVersion(v) => {
                write!(f, "tokenizer format version {v} is not supported (this runtime reads version {})", blob::BLOB_VERSION)
            }
            TokenizerError::ScratchTooSmall { needed, available } => {
                write!(f, "tokenizer scratch too small: {needed} words needed, {available} given")
            }
            TokenizerError::UnknownToken(id) => write!(f, "token id {id} is not in the vocabulary"),
            TokenizerError::OutputFull => write!(f, "token output buffer is full"),
            TokenizerError::Write => write!(f, "writing decoded text failed"),
        }
    }
}

impl From<fmt::Error> for TokenizerError {
    fn from(_: fmt::Error) -> Self {
        TokenizerError::Write
    }
}

/// Unicode normalization applied before pre-tokenization. Variant order is
/// part of the blob format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Normalizer {
    #[default]
    None,
    Nfc,
}

/// Where [`Tokenizer::encode`] puts token ids.
pub trait TokenSink {
    fn push(&mut self, id: u32) -> Result<(), TokenizerError>;
}

impl<F: FnMut(u32)> TokenSink for F {
    fn push(&mut self, id: u32) -> Result<(), TokenizerError> {
        self(id);
        Ok(())
    }
}

impl<const N: usize> TokenSink for heapless::Vec<u32, N> {
    fn push(&mut self, id: u32) -> Result<(), TokenizerError> {
        heapless::Vec::push(self, id).map_err(|_| TokenizerError::OutputFull)
    }
}

#[cfg(feature = "alloc")]
impl TokenSink for Vec<u32> {
    fn push(&mut self, id: u32) -> Result<(), TokenizerError> {
        Vec::push(self, id);
        Ok(())
    }
}

/// A [`TokenSink`] that fills a caller's slice.
#[derive(Debug)]
pub struct SliceSink<'b> {
    buf: &'b mut [u32],
    len: usize,
}

impl<'b> SliceSink<'b> {
    pub fn new(buf: &'b mut [u32]) -> Self {
        SliceSink { buf, len: 0 }
    }
    /// The ids written so far.
    pub fn ids(&self) -> &[u32] {
        &self.buf[..self.len]
    }
}

impl TokenSink for SliceSink<'_> {
    fn push(&mut self, id: u32) -> Result<(), TokenizerError> {
        let slot = self.buf.get_mut(self.len).ok_or(TokenizerError::OutputFull)?;
        *slot = id;
        self.len += 1;
        Ok(())
    }
}

/// The encoder's working memory: a caller's slice (fixed) or, with alloc, a
/// vector that grows.
trait Workspace {
    fn at_least(&mut self, len: usize) -> Result<&mut [u32], TokenizerError>;
}

impl Workspace for [u32] {
    fn at_least(&mut self, len: usize) -> Result<&mut [u32], TokenizerError> {
        if self.len() < len {
            return Err(TokenizerError::ScratchTooSmall { needed: len, available: self.len() });
        }
        Ok(self)
    }
}

#[cfg(feature = "alloc")]
impl Workspace for Vec<u32> {
    fn at_least(&mut self, len: usize) -> Result<&mut [u32], TokenizerError> {
        if self.len() < len {
            self.resize(len, 0);
        }
        Ok(self)
    }
}

/// An added token (special or not), as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddedToken<'a> {
    pub id: u32,
    pub content: &'a str,
    pub special: bool,
    /// Swallows the whitespace before it when matched.
    pub lstrip: bool,
    /// Swallows the whitespace after it when matched.
    pub rstrip: bool,
    /// Matches only when no word character touches it.
    pub single_word: bool,
    pub normalized: bool,
}

impl<'a> AddedToken<'a> {
    fn from_row((id, flags, content): (u32, u32, &'a str)) -> Self {
        AddedToken {
            id,
            content,
            special: flags & blob::ADDED_SPECIAL != 0,
            lstrip: flags & blob::ADDED_LSTRIP != 0,
            rstrip: flags & blob::ADDED_RSTRIP != 0,
            single_word: flags & blob::ADDED_SINGLE_WORD != 0,
            normalized: flags & blob::ADDED_NORMALIZED != 0,
        }
    }
}

/// A byte-level BPE tokenizer borrowed from a blob; see the module notes.
#[derive(Clone, Copy, Debug)]
pub struct Tokenizer<'a> {
    t: Tables<'a>,
    /// Bit b set: some added token starts with byte b.
    added_first_bytes: [u64; 4],
}

const REPLACEMENT: char = '\u{FFFD}';

impl<'a> Tokenizer<'a> {
    /// Reads a tokenizer blob in place. Any bytes give `Ok` or an error, never
    /// a panic; nothing is allocated or copied.
    pub fn parse(blob: &'a [u8]) -> Result<Self, TokenizerError> {
        let t = Tables::parse(blob)?;
        let mut added_first_bytes = [0u64; 4];
        for i in 0..t.added_count() {
            if let Some(&b) = t.added_at(i).and_then(|(_, _, text)| text.as_bytes().first()) {
                added_first_bytes[(b >> 6) as usize] |= 1 << (b & 63);
            }
        }
        Ok(Tokenizer { t, added_first_bytes })
    }

    /// Number of token ids (the largest id plus one).
    pub fn vocab_size(&self) -> u32 {
        self.t.vocab_size
    }

    /// The bytes token `id` decodes to (empty for an id no token uses);
    /// `None` outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Option<&'a [u8]> {
        self.t.token_bytes(id)
    }

    /// The id of an added token with exactly this content (`<|im_end|>`,
    /// `<think>`, ...), or else of the vocabulary token that decodes to these
    /// bytes.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.added_tokens()
            .find(|a| a.content == text)
            .map(|a| a.id)
            .or_else(|| self.t.vocab_find(|tok| tok.cmp(text.as_bytes())))
    }

    /// Whether `id` is a special added token (`<|endoftext|>`, `<|im_start|>`, ...).
    pub fn is_special(&self, id: u32) -> bool {
        self.t.added_by_id(id).is_some_and(|row| row.1 & blob::ADDED_SPECIAL != 0)
    }

    /// The added token with this id.
    pub fn added_token(&self, id: u32) -> Option<AddedToken<'a>> {
        self.t.added_by_id(id).map(AddedToken::from_row)
    }

    /// The added tokens, in id order.
    pub fn added_tokens(&self) -> impl Iterator<Item = AddedToken<'a>> + 'a {
        let t = self.t;
        (0..t.added_count()).filter_map(move |i| t.added_at(i)).map(AddedToken::from_row)
    }

    pub fn bos(&self) -> Option<u32> {
        self.t.bos
    }
    pub fn eos(&self) -> Option<u32> {
        self.t.eos
    }
    pub fn pad(&self) -> Option<u32> {
        self.t.pad
    }
    pub fn unk(&self) -> Option<u32> {
        self.t.unk
    }

    /// Whether Hugging Face would put [`Self::bos`] before the encoded text
    /// (its post-processor or `add_bos_token`). [`Self::encode`] never adds it.
    pub fn add_bos(&self) -> bool {
        self.t.flags & blob::FLAG_ADD_BOS != 0
    }

    /// Ids that end generation (from `generation_config.json` and the eos token).
    pub fn stop_ids(&self) -> impl Iterator<Item = u32> + 'a {
        let s = self.t.stop_ids;
        (0..s.len() / 4).filter_map(move |i| blob::u32_at(s, i))
    }

    /// The Jinja chat template from `tokenizer_config.json`, if it was given.
    pub fn chat_template(&self) -> Option<&'a str> {
        self.t.chat_template
    }

    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.t.pre_tokenizer
    }

    pub fn normalizer(&self) -> Normalizer {
        self.t.normalizer
    }

    /// `(rank, merged id)` of the BPE merge of `left` then `right`.
    pub fn merge(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        self.t.merge(left, right)
    }

    /// A scratch length (in `u32` words) that [`Self::encode`] never finds too
    /// small for a text of `text_len` bytes. Far less does for ordinary text:
    /// 2 words per byte of the longest pre-token, plus, for text that is not
    /// already NFC under an NFC tokenizer, one word per code point of its
    /// canonical decomposition.
    pub const fn scratch_bound(text_len: usize) -> usize {
        // Decomposition: at most 1.5 code points per UTF-8 byte; NFC output:
        // at most 3 bytes per input byte; BPE: 2 words per piece byte (+1 for
        // a prefix space).
        text_len.saturating_mul(8).saturating_add(8)
    }

    /// Encodes `text` and sends the ids to `sink`; returns how many. `scratch`
    /// holds the BPE working set (see [`Self::scratch_bound`]); a pre-token too
    /// long for it gives [`TokenizerError::ScratchTooSmall`] (after the ids
    /// of the text before it were sent). No bos is added (see [`Self::add_bos`]).
    pub fn encode<S: TokenSink + ?Sized>(&self, text: &str, scratch: &mut [u32], sink: &mut S) -> Result<usize, TokenizerError> {
        self.encode_with(text, scratch, sink)
    }

    /// [`Self::encode`] into a new vector, with scratch that grows as needed.
    #[cfg(feature = "alloc")]
    pub fn encode_to_vec(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::new();
        let mut scratch: Vec<u32> = Vec::new();
        self.encode_with(text, &mut scratch, &mut ids)?;
        Ok(ids)
    }

    /// Writes the text of `ids` to `out` (special tokens included), with
    /// invalid UTF-8 as U+FFFD.
    pub fn decode<W: fmt::Write + ?Sized>(&self, ids: &[u32], out: &mut W) -> Result<(), TokenizerError> {
        let mut d = TextDecoder::new();
        for &id in ids {
            d.push(self, id, out)?;
        }
        d.finish(out)
    }

    /// [`Self::decode`] into a new string.
    #[cfg(feature = "alloc")]
    pub fn decode_to_string(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let mut s = String::new();
        self.decode(ids, &mut s)?;
        Ok(s)
    }

    /// Splits `text` at added tokens and encodes the pieces between them.
    fn encode_with<W: Workspace + ?Sized, S: TokenSink + ?Sized>(&self, text: &str, ws: &mut W, sink: &mut S) -> Result<usize, TokenizerError> {
        let mut count = 0usize;
        let mut done = 0usize; // text before this is encoded
        let mut from = 0usize; // where the next added-token search starts
        while let Some(m) = self.find_added(text, from, done) {
            self.encode_segment(text.get(done..m.start).unwrap_or(""), ws, sink, &mut count)?;
            sink.push(m.id)?;
            count += 1;
            done = m.end;
            from = m.end;
        }
        self.encode_segment(text.get(done..).unwrap_or(""), ws, sink, &mut count)?;
        Ok(count)
    }

    /// The next added token at or after byte `from`, as Hugging Face's
    /// `AddedVocabulary::find_matches` finds it: leftmost, then longest; a
    /// `single_word` token touching a word character is skipped; `lstrip` /
    /// `rstrip` widen the match over whitespace (never back before `floor`).
    /// Differences: all added tokens are matched in the raw text (HF matches
    /// `normalized` ones in the normalized text, which differs only where the
    /// text around them is not NFC), and "word character" is
    /// `char::is_alphanumeric() || '_'` (HF: the regex `\w`).
    fn find_added(&self, text: &str, from: usize, floor: usize) -> Option<AddedMatch> {
        if self.t.added_count() == 0 {
            return None;
        }
        let bytes = text.as_bytes();
        let mut i = from;
        while i < bytes.len() {
            let b = bytes[i];
            if self.added_first_bytes[(b >> 6) as usize] & (1 << (b & 63)) == 0 {
                i += 1;
                continue;
            }
            let rest = &bytes[i..];
            let mut best: Option<(usize, u32, u32)> = None;
            for k in 0..self.t.added_count() {
                let Some((id, flags, content)) = self.t.added_at(k) else { continue };
                if rest.starts_with(content.as_bytes()) && best.is_none_or(|(len, _, _)| content.len() > len) {
                    best = Some((content.len(), id, flags));
                }
            }
            let Some((len, id, flags)) = best else {
                i += 1;
                continue;
            };
            // A match starts at a character boundary: the content is UTF-8, so
            // its first byte is not a continuation byte.
            let (mut start, mut end) = (i, i + len);
            let before = text.get(..start).and_then(|s| s.chars().next_back());
            let after = text.get(end..).and_then(|s| s.chars().next());
            let is_word = |c: char| c.is_alphanumeric() || c == '_';
            if flags & blob::ADDED_SINGLE_WORD != 0 && (before.is_some_and(is_word) || after.is_some_and(is_word)) {
                i = end;
                continue;
            }
            if flags & blob::ADDED_LSTRIP != 0 {
                let head = text.get(..start).unwrap_or("");
                start = head.trim_end_matches(char::is_whitespace).len().max(floor);
            }
            if flags & blob::ADDED_RSTRIP != 0 {
                let tail = text.get(end..).unwrap_or("");
                end += tail.len() - tail.trim_start_matches(char::is_whitespace).len();
            }
            return Some(AddedMatch { start, end, id });
        }
        None
    }

    /// Normalizes, pre-tokenizes and BPE-encodes text that holds no added token.
    fn encode_segment<W: Workspace + ?Sized, S: TokenSink + ?Sized>(
        &self,
        segment: &str,
        ws: &mut W,
        sink: &mut S,
        count: &mut usize,
    ) -> Result<(), TokenizerError> {
        if segment.is_empty() {
            return Ok(());
        }
        // GPT-2's `add_prefix_space`: a space before each segment that lacks one.
        let prefix_space = self.t.flags & blob::FLAG_ADD_PREFIX_SPACE != 0 && !segment.starts_with(' ');
        let prefix = core::iter::repeat_n(' ', prefix_space as usize);
        if self.t.normalizer == Normalizer::Nfc && !normalize::is_nfc_quick(segment) {
            // Normalize into the front of the scratch, as code points.
            let decomposed = normalize::decomposed_len(segment);
            let buf = ws.at_least(decomposed)?;
            let n = normalize::nfc_into(segment, &mut buf[..decomposed]).map_err(|needed| TokenizerError::ScratchTooSmall { needed, available: decomposed })?;
            let longest = self.longest_piece(prefix.clone().chain(code_points(&buf[..n])));
            let buf = ws.at_least(n.saturating_add(longest.saturating_mul(2)))?;
            let (normalized, work) = buf.split_at_mut(n);
            self.encode_pieces(prefix.chain(code_points(normalized)), work, sink, count)
        } else {
            let chars = prefix.chain(segment.chars());
            let longest = self.longest_piece(chars.clone());
            let work = ws.at_least(longest.saturating_mul(2))?;
            self.encode_pieces(chars, work, sink, count)
        }
    }

    /// The length in bytes of the longest pre-token of `chars`.
    fn longest_piece<I: Iterator<Item = char> + Clone>(&self, mut chars: I) -> usize {
        let mut longest = 0;
        loop {
            let n = pretokenize::next_piece(self.t.pre_tokenizer, &chars);
            if n == 0 {
                return longest;
            }
            let bytes: usize = chars.by_ref().take(n).map(char::len_utf8).sum();
            longest = longest.max(bytes);
        }
    }

    /// Splits `chars` into pre-tokens and encodes each. `work` holds two words
    /// per byte of the longest pre-token: its initial ids, and its bytes, then
    /// the pair ranks.
    fn encode_pieces<I: Iterator<Item = char> + Clone, S: TokenSink + ?Sized>(
        &self,
        mut chars: I,
        work: &mut [u32],
        sink: &mut S,
        count: &mut usize,
    ) -> Result<(), TokenizerError> {
        let half = work.len() / 2;
        let (ids, rest) = work.split_at_mut(half);
        let bytes = &mut rest[..half];
        loop {
            let n = pretokenize::next_piece(self.t.pre_tokenizer, &chars);
            if n == 0 {
                return Ok(());
            }
            let mut len = 0usize;
            for c in chars.by_ref().take(n) {
                let mut utf8 = [0u8; 4];
                for &b in c.encode_utf8(&mut utf8).as_bytes() {
                    let slot = bytes.get_mut(len).ok_or(TokenizerError::ScratchTooSmall { needed: 2 * (len + 1), available: 2 * half })?;
                    *slot = b as u32;
                    len += 1;
                }
            }
            let piece = &mut bytes[..len];
            // Llama 3's `ignore_merges`: a pre-token that is itself in the
            // vocabulary is one token, whatever the merges would make of it.
            if self.t.flags & blob::FLAG_IGNORE_MERGES != 0 {
                if let Some(id) = self.t.vocab_find(|tok| tok.iter().copied().cmp(piece.iter().map(|&b| b as u8))) {
                    sink.push(id)?;
                    *count += 1;
                    continue;
                }
            }
            // Initial symbols: one token per byte. A byte with no token
            // becomes `unk` (consecutive ones fused if `fuse_unk`), or is
            // dropped when there is no `unk`, as in HF's BPE.
            let fuse = self.t.flags & blob::FLAG_FUSE_UNK != 0;
            let mut k = 0usize;
            let mut last_unk = false;
            for &b in piece.iter() {
                let id = match self.t.byte_token(b as u8) {
                    Some(id) => {
                        last_unk = false;
                        id
                    }
                    None => match self.t.unk {
                        Some(_) if fuse && last_unk => continue,
                        Some(unk) => {
                            last_unk = true;
                            unk
                        }
                        None => continue,
                    },
                };
                ids[k] = id;
                k += 1;
            }
            let merged = bpe::merge(&self.t, &mut ids[..k], &mut piece[..k]);
            for &id in &ids[..merged] {
                sink.push(id)?;
                *count += 1;
            }
        }
    }
}

/// Normalized text (code points in the scratch) as characters.
fn code_points(buf: &[u32]) -> impl Iterator<Item = char> + Clone + '_ {
    buf.iter().map(|&c| char::from_u32(c).unwrap_or(REPLACEMENT))
}

struct AddedMatch {
    start: usize,
    end: usize,
    id: u32,
}
