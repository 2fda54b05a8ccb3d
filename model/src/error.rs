//! Typed errors of the model crate. Binaries wrap them in `anyhow`; the browser shows their messages.

use thiserror::Error;

/// Errors while reading a checkpoint (ours or Hugging Face's). Each names the tensor, field or file at fault.
#[derive(Debug, Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a valid safetensors file (truncated, corrupt, or something else entirely).
    #[error("not a valid safetensors file ({what}): {reason}")]
    Format {
        /// Which file or blob.
        what: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error("tensor `{0}` is missing from the checkpoint")]
    MissingTensor(String),
    /// The checkpoint holds a tensor the model does not have (usually: the config does not match the weights).
    #[error("tensor `{0}` in the checkpoint does not belong to the model its config describes")]
    UnexpectedTensor(String),
    /// A tensor has the wrong shape for the model the config describes.
    #[error("tensor `{name}` has shape {found:?}, the config implies {expected:?}")]
    ShapeMismatch {
        /// The tensor's name in the checkpoint.
        name: String,
        /// What the model expects.
        expected: Vec<usize>,
        /// What the file holds.
        found: Vec<usize>,
    },
    /// A tensor has a dtype we cannot load.
    #[error("tensor `{name}` has unsupported dtype {dtype}")]
    Dtype {
        /// The tensor's name.
        name: String,
        /// Its dtype as the file states it.
        dtype: String,
    },
    /// A config field is missing, malformed, or contradicts the tensors.
    #[error("config field `{field}`: {reason}")]
    Config {
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The checkpoint names an unsupported `model_type` / architecture.
    #[error("unsupported model_type `{0}` (supported: gpt2, gpt_bigcode, llama, qwen2)")]
    UnsupportedModelType(String),
    /// A tensor holds NaN or infinite values.
    #[error("tensor `{name}` holds {count} NaN or infinite values: the model is broken (a diverged run?) and is not loaded")]
    NonFinite {
        /// The tensor's name.
        name: String,
        /// How many values.
        count: usize,
    },
    /// The model would not fit in this machine's memory.
    #[error("{what} needs about {needed_gb:.1} GB of memory ({params} parameters), and this machine has {available_gb:.1} GB available")]
    TooLarge {
        /// What was being built.
        what: String,
        /// Its parameters.
        params: usize,
        /// Estimated need.
        needed_gb: f64,
        /// MemAvailable.
        available_gb: f64,
    },
    /// A weight larger than one buffer of the device the model is built on (a GPU binds at most its largest
    /// storage-buffer binding of a buffer; only a token table is cut into parts that fit, `nn::embedding`).
    #[error(
        "weight `{name}` ({} in f32) does not fit one buffer of this device (at most {}); only a token table is held \
         in parts, so this model runs on the CPU or a device with larger buffers",
        size(*bytes),
        size(*limit)
    )]
    TooLargeForBuffer {
        /// The weight's path.
        name: String,
        /// Its bytes in f32.
        bytes: u64,
        /// The most bytes one buffer of the device holds.
        limit: u64,
    },
    /// Anything else burn-store reported while applying tensors.
    #[error("could not apply the checkpoint: {0}")]
    Apply(String),
}

/// `bytes` for a message: "545 MB", "2.2 GB", "64 KB".
fn size(bytes: u64) -> String {
    match bytes as f64 {
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.0} MB", b / 1e6),
        b => format!("{:.0} KB", b / 1e3),
    }
}

/// Errors from building or running a model.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A configuration that cannot build a model.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// Fill-in-the-middle asked of a model whose tokenizer has no FIM tokens.
    #[error(
        "this model's tokenizer has no fill-in-the-middle tokens (<|fim_prefix|>… or <fim_prefix>…): it completes left to \
         right only; drop the text after the cursor (--suffix)"
    )]
    NoFim,
    /// The prompt has no tokens.
    #[error("the prompt is empty: give at least one token of text")]
    EmptyPrompt,
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary (size {vocab_size})")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// Reading a tensor back from the device failed (e.g. a lost WebGPU device).
    #[error("reading results from the device failed: {0}")]
    Device(String),
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Loading failed.
    #[error(transparent)]
    Load(#[from] LoadError),
}

impl ModelError {
    /// This error of building a model, as an error of loading one: a loading error stays itself, anything else is
    /// the fault of the config `field`.
    pub fn in_config(self, field: &str) -> LoadError {
        match self {
            ModelError::Load(e) => e,
            e => LoadError::Config { field: field.into(), reason: e.to_string() },
        }
    }
}
