//! GPT-2 byte-level BPE through the `tokenizers` crate: exact GPT-2 ids, byte offsets, streaming decode.
//!
//! The tokenizer ships as `public/tokenizer.json`, generated from OpenAI's original `encoder.json` + `vocab.bpe`
//! by [`build_gpt2_tokenizer_json`] (`hnet-gpt make-tokenizer`, see `scripts/make-tokenizer.sh`), never edited by hand.

use std::ops::Range;

use crate::error::ModelError;

/// GPT-2's `<|endoftext|>` id: end of document, and the stop token of generation.
pub const EOS_ID: u32 = 50256;
/// The text of the end-of-text token.
pub const EOS_TEXT: &str = "<|endoftext|>";
/// Identifies the tokenizer a checkpoint was trained with.
pub const TOKENIZER_ID: &str = "gpt2-bpe";

/// One token of an encoded text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Token {
    /// The token id.
    pub id: u32,
    /// Byte span of the token in the original text. Tokens that split one multi-byte character share its span.
    pub span: Range<usize>,
}

/// The GPT-2 tokenizer.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

impl Tokenizer {
    /// Loads a `tokenizer.json`.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        let inner = tokenizers::Tokenizer::from_bytes(bytes).map_err(tok_err)?;
        Ok(Self { inner })
    }

    /// Loads a `tokenizer.json` file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::Tokenizer(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json_bytes(&bytes)
    }

    /// Token ids of `text`. `<|endoftext|>` in the text becomes the special token 50256, as in GPT-2.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        Ok(self.inner.encode(text, false).map_err(tok_err)?.get_ids().to_vec())
    }

    /// Token ids with their byte spans in `text`.
    pub fn encode_with_offsets(&self, text: &str) -> Result<Vec<Token>, ModelError> {
        let enc = self.inner.encode(text, false).map_err(tok_err)?;
        Ok(enc.get_ids().iter().zip(enc.get_offsets()).map(|(&id, &(s, e))| Token { id, span: s..e }).collect())
    }

    /// Text of token ids. Byte sequences that are not valid UTF-8 (a partial character) decode to U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        self.inner.decode(ids, false).map_err(tok_err)
    }

    /// The token's entry in the vocabulary, in GPT-2's byte-level alphabet (`Ġ` is a space).
    pub fn token_str(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Vocabulary size including special tokens (50257 for GPT-2).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Builds GPT-2's `tokenizer.json` from OpenAI's original files (`encoder.json`: token → id; `vocab.bpe`: merges).
///
/// The result matches Hugging Face's `gpt2` tokenizer: byte-level pre-tokenizer with GPT-2's regex and no prefix
/// space, byte-level decoder, offsets that keep leading spaces (so spans tile the text), and `<|endoftext|>` as a
/// special token.
#[cfg(not(target_arch = "wasm32"))]
pub fn build_gpt2_tokenizer_json(encoder_json: &[u8], vocab_bpe: &str) -> Result<String, ModelError> {
    use std::collections::HashMap;
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::AddedToken;

    let vocab: HashMap<String, u32> =
        serde_json::from_slice(encoder_json).map_err(|e| ModelError::Tokenizer(format!("encoder.json: {e}")))?;
    let merges = vocab_bpe
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
        .map(|l| {
            l.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| ModelError::Tokenizer(format!("vocab.bpe: malformed merge line `{l}`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let vocab: tokenizers::models::bpe::Vocab = vocab.into_iter().collect();
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(tok_err)?;
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(Some(ByteLevel::new(true, false, true)));
    tokenizer.add_special_tokens([AddedToken::from(EOS_TEXT, true)]).map_err(tok_err)?;
    tokenizer.to_string(false).map_err(tok_err)
}

/// Turns generated ids into text deltas as they arrive, holding back partial characters and anything that might
/// be the start of a stop string, and stopping at the first stop string (which is not emitted).
pub struct TextStream<'t> {
    tokenizer: &'t Tokenizer,
    ids: Vec<u32>,
    stop_strings: Vec<String>,
    emitted: usize,
    stopped: bool,
}

impl<'t> TextStream<'t> {
    /// A stream that stops at any of `stop_strings` (empty strings are ignored).
    pub fn new(tokenizer: &'t Tokenizer, stop_strings: &[String]) -> Self {
        let stop_strings = stop_strings.iter().filter(|s| !s.is_empty()).cloned().collect();
        Self { tokenizer, ids: Vec::new(), stop_strings, emitted: 0, stopped: false }
    }

    /// True once a stop string has appeared.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Adds a token; returns the text that is now safe to show.
    pub fn push(&mut self, id: u32) -> Result<String, ModelError> {
        if self.stopped {
            return Ok(String::new());
        }
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids)?;
        if let Some(at) = self.stop_strings.iter().filter_map(|s| text.find(s.as_str())).min() {
            self.stopped = true;
            return Ok(self.take(&text, at.max(self.emitted)));
        }
        // Hold back an incomplete character (decoded as U+FFFD) and a suffix that could begin a stop string.
        let base = text.trim_end_matches('\u{FFFD}').len();
        let mut safe = base;
        for stop in &self.stop_strings {
            let prefix_ends: Vec<usize> = stop.char_indices().skip(1).map(|(i, _)| i).collect();
            if let Some(i) = prefix_ends.into_iter().rev().find(|&i| text[..base].ends_with(&stop[..i])) {
                safe = safe.min(base - i);
            }
        }
        Ok(self.take(&text, safe))
    }

    /// The text held back at the end (call when generation ends without a stop string).
    pub fn finish(&mut self) -> Result<String, ModelError> {
        if self.stopped {
            return Ok(String::new());
        }
        let text = self.tokenizer.decode(&self.ids)?;
        Ok(self.take(&text, text.len()))
    }

    fn take(&mut self, text: &str, upto: usize) -> String {
        let mut upto = upto.max(self.emitted);
        while !text.is_char_boundary(upto) {
            upto -= 1;
        }
        let out = text.get(self.emitted..upto).unwrap_or_default().to_string();
        self.emitted = self.emitted.max(upto);
        out
    }
}
