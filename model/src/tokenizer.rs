//! Tokenizers through the `tokenizers` crate: GPT-2's byte-level BPE by default (exact GPT-2 ids), or the
//! `tokenizer.json` a model came with (a code model from the Hub with its own BPE); byte offsets; streaming decode.
//!
//! GPT-2's tokenizer ships as `public/tokenizer.json`, generated from OpenAI's original `encoder.json` +
//! `vocab.bpe` by [`build_gpt2_tokenizer_json`] (`scripts/make-tokenizer.sh`), never edited by hand.
//!
//! **Tokenizers travel with the model.** A checkpoint records its tokenizer ([`TokenizerSpec`]): GPT-2's,
//! referred to by its id (it is built into the CLI and served with the page), or any other, embedded as
//! `tokenizer.json` text in the checkpoint's metadata, so a checkpoint is always self-sufficient.

use std::ops::Range;
use std::sync::Arc;

use crate::error::ModelError;

/// GPT-2's `<|endoftext|>` id: end of document, and the stop token of generation.
pub const EOS_ID: u32 = 50256;
/// The text of the end-of-text token.
pub const EOS_TEXT: &str = "<|endoftext|>";
/// Identifies GPT-2's tokenizer in a checkpoint's metadata.
pub const TOKENIZER_ID: &str = "gpt2-bpe";
/// Identifies a tokenizer embedded in the checkpoint (its JSON under [`TOKENIZER_JSON_KEY`]).
pub const EMBEDDED_ID: &str = "embedded";
/// The metadata key of an embedded `tokenizer.json`.
pub const TOKENIZER_JSON_KEY: &str = "tokenizer.json";
/// End-of-document tokens, in the order they are looked for (GPT-2 style first).
const EOS_CANDIDATES: [&str; 3] = [EOS_TEXT, "</s>", "<eos>"];
/// Fill-in-the-middle tokens as the families spell them: prefix, suffix, middle (Qwen2.5-Coder; StarCoder and
/// SmolLM2; SantaCoder).
const FIM_NAMES: [[&str; 3]; 3] = [
    ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"],
    ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"],
    ["<fim-prefix>", "<fim-suffix>", "<fim-middle>"],
];
/// Tokens after which nothing of a completion follows, beside end-of-document: a chat turn's end and the
/// fill-in-the-middle and repository markers (Qwen2.5-Coder's examples stop on these; a model that emits one has
/// left the text it was completing).
const STOP_NAMES: [&str; 20] = [
    EOS_TEXT,
    "</s>",
    "<eos>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    "<fim_pad>",
    "<file_sep>",
    "<filename>",
    "<fim-prefix>",
    "<fim-suffix>",
    "<fim-middle>",
    "<fim-pad>",
];

/// A tokenizer's fill-in-the-middle tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fim {
    /// Before the text ahead of the cursor.
    pub prefix: u32,
    /// Before the text after the cursor.
    pub suffix: u32,
    /// After both: the model writes the middle from here.
    pub middle: u32,
}

/// Which tokenizer a model uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TokenizerSpec {
    /// GPT-2's byte-level BPE (the default).
    #[default]
    Gpt2Bpe,
    /// Another tokenizer, as `tokenizer.json` text.
    Embedded(Arc<str>),
}

impl TokenizerSpec {
    /// The id written into checkpoints.
    pub fn id(&self) -> &'static str {
        match self {
            TokenizerSpec::Gpt2Bpe => TOKENIZER_ID,
            TokenizerSpec::Embedded(_) => EMBEDDED_ID,
        }
    }

    /// The spec a checkpoint's metadata describes.
    pub fn from_metadata(id: &str, json: Option<&str>) -> Result<Self, ModelError> {
        match (id, json) {
            (TOKENIZER_ID, _) => Ok(TokenizerSpec::Gpt2Bpe),
            (EMBEDDED_ID, Some(json)) => Ok(TokenizerSpec::Embedded(json.into())),
            (EMBEDDED_ID, None) => {
                Err(ModelError::Tokenizer(format!("the checkpoint says its tokenizer is embedded, but has no `{TOKENIZER_JSON_KEY}`")))
            }
            (other, _) => Err(ModelError::Tokenizer(format!("unknown tokenizer `{other}` (expected `{TOKENIZER_ID}` or `{EMBEDDED_ID}`)"))),
        }
    }

    /// The spec for `tokenizer.json` text: GPT-2's id when it is GPT-2's tokenizer (the same vocabulary, merges and
    /// ids), otherwise embedded.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn for_json(json: &str) -> Result<Self, ModelError> {
        Self::for_json_with(json, &Tokenizer::gpt2()?)
    }

    /// [`TokenizerSpec::for_json`] against a given copy of GPT-2's tokenizer (the browser fetches its own).
    pub fn for_json_with(json: &str, ours: &Tokenizer) -> Result<Self, ModelError> {
        Self::for_parsed(json, &Tokenizer::from_json_bytes(json.as_bytes())?, ours)
    }

    /// [`for_json_with`](Self::for_json_with) for a `tokenizer.json` already parsed as `theirs`.
    pub fn for_parsed(json: &str, theirs: &Tokenizer, ours: &Tokenizer) -> Result<Self, ModelError> {
        let probe = "def f(x):\n    return x + 1  # <|endoftext|> héllo\n\t\tpass";
        let same = theirs.vocab_size() == ours.vocab_size()
            && theirs.inner.get_vocab(true) == ours.inner.get_vocab(true)
            && theirs.encode(probe)? == ours.encode(probe)?;
        Ok(if same { TokenizerSpec::Gpt2Bpe } else { TokenizerSpec::Embedded(json.into()) })
    }

    /// Loads the tokenizer (GPT-2's from the copy built into the binary).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(&self) -> Result<Tokenizer, ModelError> {
        match self {
            TokenizerSpec::Gpt2Bpe => Tokenizer::gpt2(),
            TokenizerSpec::Embedded(json) => Tokenizer::from_json_bytes(json.as_bytes()),
        }
    }
}

impl std::fmt::Display for TokenizerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenizerSpec::Gpt2Bpe => write!(f, "{TOKENIZER_ID} (GPT-2's byte-level BPE)"),
            TokenizerSpec::Embedded(json) => write!(f, "{EMBEDDED_ID} (the model's own tokenizer.json, {} bytes)", json.len()),
        }
    }
}

/// One token of an encoded text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Token {
    /// The token id.
    pub id: u32,
    /// Byte span of the token in the original text. Tokens that split one multi-byte character share its span.
    pub span: Range<usize>,
}

/// A tokenizer: GPT-2's or a model's own.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    eos: u32,
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

/// GPT-2's tokenizer, built into native binaries so they work from any directory.
#[cfg(not(target_arch = "wasm32"))]
const GPT2_TOKENIZER_JSON: &[u8] = include_bytes!("../../public/tokenizer.json");

impl Tokenizer {
    /// Loads a `tokenizer.json`. It must have an end-of-document token (`<|endoftext|>`, `</s>` or `<eos>`).
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        let inner = tokenizers::Tokenizer::from_bytes(bytes).map_err(tok_err)?;
        let eos = EOS_CANDIDATES.iter().find_map(|t| inner.token_to_id(t)).ok_or_else(|| {
            ModelError::Tokenizer(format!("the tokenizer has no end-of-document token (one of {})", EOS_CANDIDATES.join(", ")))
        })?;
        Ok(Self { inner, eos })
    }

    /// GPT-2's tokenizer.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn gpt2() -> Result<Self, ModelError> {
        Self::from_json_bytes(GPT2_TOKENIZER_JSON)
    }

    /// Loads a `tokenizer.json` file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_file(path: &std::path::Path) -> Result<Self, ModelError> {
        let bytes = crate::util::files::read_regular(path, crate::util::files::MAX_JSON_BYTES)
            .map_err(|e| ModelError::Tokenizer(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json_bytes(&bytes)
    }

    /// The end-of-document token: the separator between documents and the stop token of generation (GPT-2's
    /// `<|endoftext|>` is 50256).
    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// Token ids of `text`. `<|endoftext|>` in the text becomes the special token, as in GPT-2.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        Ok(self.inner.encode(text, false).map_err(tok_err)?.get_ids().to_vec())
    }

    /// Token ids with their byte spans in `text`.
    pub fn encode_with_offsets(&self, text: &str) -> Result<Vec<Token>, ModelError> {
        let enc = self.inner.encode(text, false).map_err(tok_err)?;
        Ok(enc.get_ids().iter().zip(enc.get_offsets()).map(|(&id, &(s, e))| Token { id, span: s..e }).collect())
    }

    /// The fill-in-the-middle tokens, found by their names in the vocabulary (not by the model's name), when the
    /// tokenizer has them.
    pub fn fim(&self) -> Option<Fim> {
        FIM_NAMES.iter().find_map(|[p, s, m]| {
            Some(Fim { prefix: self.inner.token_to_id(p)?, suffix: self.inner.token_to_id(s)?, middle: self.inner.token_to_id(m)? })
        })
    }

    /// The prompt that asks for the text between `prefix` and `suffix`, in the families' prefix-suffix-middle order:
    /// `<fim_prefix>` prefix `<fim_suffix>` suffix `<fim_middle>` — the same ids the tokenizer gives that text
    /// with the tokens spelled out. An error when the tokenizer has no such tokens.
    pub fn fim_prompt(&self, prefix: &str, suffix: &str) -> Result<Vec<u32>, ModelError> {
        self.fim_prompt_within(prefix, suffix, usize::MAX)
    }

    /// [`fim_prompt`](Self::fim_prompt) in at most `budget` tokens (a model's context less room for the middle):
    /// the suffix keeps its start (up to a quarter of the budget, what follows the cursor most closely), the prefix
    /// its end, each cut at a token.
    pub fn fim_prompt_within(&self, prefix: &str, suffix: &str, budget: usize) -> Result<Vec<u32>, ModelError> {
        let fim = self.fim().ok_or(ModelError::NoFim)?;
        let (prefix, suffix) = (self.encode(prefix)?, self.encode(suffix)?);
        let room = budget.saturating_sub(3);
        let suffix = &suffix[..suffix.len().min((room / 4).max(room.saturating_sub(prefix.len())))];
        let prefix = &prefix[prefix.len() - prefix.len().min(room - suffix.len())..];
        let mut ids = Vec::with_capacity(prefix.len() + suffix.len() + 3);
        ids.push(fim.prefix);
        ids.extend(prefix);
        ids.push(fim.suffix);
        ids.extend(suffix);
        ids.push(fim.middle);
        Ok(ids)
    }

    /// The tokens that end a completion: end-of-document, and the family's chat-end, fill-in-the-middle and
    /// repository markers that its vocabulary has.
    pub fn stop_tokens(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = STOP_NAMES.iter().filter_map(|t| self.inner.token_to_id(t)).collect();
        ids.push(self.eos);
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Text of token ids. Byte sequences that are not valid UTF-8 (a partial character) decode to U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        self.inner.decode(ids, false).map_err(tok_err)
    }

    /// The token's entry in the vocabulary, in GPT-2's byte-level alphabet (`Ġ` is a space).
    pub fn token_str(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// A hash of the vocabulary (every id's token string, in id order): two tokenizers with the same fingerprint
    /// give the same ids their tokens, so data tokenised by one trains a model of the other.
    pub fn fingerprint(&self) -> String {
        let mut bytes = Vec::new();
        for id in 0..self.vocab_size() as u32 {
            bytes.extend_from_slice(self.inner.id_to_token(id).unwrap_or_default().as_bytes());
            bytes.push(0);
        }
        format!("{:016x}", crate::util::hash::fnv1a(&bytes))
    }

    /// Vocabulary size including special tokens (50257 for GPT-2).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Checks that this tokenizer fits a model of `vocab_size` tokens: every id it can produce has a row.
    pub fn check_fits(&self, vocab_size: usize) -> Result<(), ModelError> {
        if self.vocab_size() > vocab_size {
            return Err(ModelError::Tokenizer(format!(
                "the tokenizer has {} tokens but the model only {vocab_size}: they do not belong together",
                self.vocab_size()
            )));
        }
        Ok(())
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

/// Trains a byte-level BPE of `vocab_size` entries (end-of-text included) on `texts`, in GPT-2's form: the same
/// pre-tokenizer regex, byte alphabet and decoder, `<|endoftext|>` as its one special token (id 0). Trained on
/// code, its merges include runs of spaces and newline-plus-indentation, which GPT-2's vocabulary spends one token
/// per space on. Returns the `tokenizer.json` text.
#[cfg(not(target_arch = "wasm32"))]
pub fn train_bpe<I>(texts: I, vocab_size: usize) -> Result<String, ModelError>
where
    I: Iterator<Item = String> + Send,
{
    use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::{AddedToken, TokenizerBuilder};

    // 256 byte tokens + the special token + at least one merge.
    if !(258..=1 << 20).contains(&vocab_size) {
        return Err(ModelError::Tokenizer(format!("a BPE vocabulary needs 258 to 1048576 entries, not {vocab_size}")));
    }
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(EOS_TEXT, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(Some(ByteLevel::new(true, false, true)))
        .with_normalizer(None::<tokenizers::NormalizerWrapper>)
        .build()
        .map_err(tok_err)?;
    tokenizer.train(&mut trainer, texts).map_err(tok_err)?;
    let mut tokenizer: tokenizers::Tokenizer = tokenizer.into();
    tokenizer.add_special_tokens([AddedToken::from(EOS_TEXT, true)]).map_err(tok_err)?;
    tokenizer.to_string(false).map_err(tok_err)
}
