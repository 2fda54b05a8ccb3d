//! The messages between the page and the model worker.
//!
//! The page (main thread) never touches the model: it sends a [`Request`] with a job number, and the worker
//! answers with [`Reply`]s for that job — streamed tokens, progress, results — ending with exactly one
//! [`Reply::Done`]. Messages travel as JSON text (serde) inside a small envelope object `{ msg, data }`, where
//! `data` carries what JSON should not: a picked `File` (page → worker) or checkpoint bytes (worker → page,
//! transferred, not copied). These types hold plain data only, so the page's wasm never links burn.

use hnet_gpt_model::eval::inspect::InspectedToken;
use serde::{Deserialize, Serialize};

/// A job number, chosen by the page; replies name the job they belong to.
pub type JobId = u64;

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelSource {
    /// The fine-tuned model saved in this browser (IndexedDB) if there is one, else the bundled default.
    SavedOrBundled,
    /// The bundled default model.
    Bundled,
    /// A checkpoint at a URL (fetched with progress, cached by the Cache API). `label` is what the page calls it.
    Url {
        /// Where to fetch it.
        url: String,
        /// How the status line names it ("bundled gpt2 model", "model from https://…").
        label: String,
    },
    /// A checkpoint file the user picked; the `File` travels in the envelope's `data`.
    File {
        /// The file's name.
        name: String,
    },
    /// A GPT-2-architecture model from the Hugging Face Hub (`config.json`, safetensors, `tokenizer.json`, fetched
    /// from `{endpoint}/{repo}/resolve/{revision}/…` with progress and kept in the Cache API), converted in the
    /// worker; with `hybrid`, a fresh H-Net encoder is put in front of it ("GPT-2 + H-Net encoder").
    Hub {
        /// `gpt2`, `OWNER/REPO`.
        repo: String,
        /// A branch, tag or commit.
        revision: String,
        /// Build the hybrid around it.
        hybrid: bool,
        /// The Hub's address (`https://huggingface.co`, or a mirror).
        endpoint: String,
    },
}

/// What a Hub model will cost to load, asked before downloading its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubInfo {
    /// Parameters, from its `config.json`.
    pub params: usize,
    /// Bytes of f32 weights in memory (the download may be half of it when stored as f16).
    pub f32_bytes: usize,
    /// Layers × width, vocabulary.
    pub shape: String,
}

/// Sampling and length settings of a completion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompleteSettings {
    /// Softmax temperature; 0 is greedy.
    pub temperature: f32,
    /// Keep the k most likely tokens (0: all).
    pub top_k: usize,
    /// Nucleus sampling mass.
    pub top_p: f32,
    /// New tokens at most.
    pub max_tokens: usize,
    /// Sampler seed.
    pub seed: u64,
    /// How much to write: the line, the block, or up to `max_tokens`.
    pub scope: hnet_gpt_model::generate::stop::Scope,
}

/// What fine-tuning trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// The H-Net encoder and fusion, GPT-2 frozen (the whole model for gpt2 and hnet).
    EncoderAndFusion,
    /// Every parameter.
    Everything,
}

/// Fine-tuning settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneRequest {
    /// The snippets to train on (the worker tokenizes them and holds the last fifth back).
    pub snippets: Vec<String>,
    /// Optimizer steps.
    pub steps: usize,
    /// Learning rate (constant: short runs need no schedule).
    pub lr: f64,
    /// Sequences per step.
    pub batch: usize,
    /// What trains.
    pub scope: Scope,
}

/// Page → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Load a model (and, the first time, the tokenizer) on the chosen backend.
    Load {
        /// Where from.
        source: ModelSource,
        /// Which backend runs it.
        backend: BackendChoice,
    },
    /// Move the loaded model (its current weights, fine-tuned or not) to another backend; replies
    /// [`Reply::Loaded`]. On failure the model stays where it was.
    SwitchBackend(BackendChoice),
    /// Stream a completion of `prompt` (the middle between `prompt` and `suffix` when the model has FIM tokens).
    Complete {
        /// The text before the cursor.
        prompt: String,
        /// The text after the cursor: used by a model with fill-in-the-middle tokens, ignored by others.
        #[serde(default)]
        suffix: String,
        /// How to sample.
        settings: CompleteSettings,
    },
    /// How the model chunks `text` (all of it, in windows of the context), with Python statement starts and
    /// optional per-token surprisal; the reply shows the lines from `first_line` on (a bounded slice, so a
    /// 5,000-line paste draws quickly). Asking again for the same text only re-slices.
    Chunks {
        /// The text.
        text: String,
        /// Also compute −log₂ p of every shown token.
        surprisal: bool,
        /// The first line (0-based) to show.
        first_line: usize,
    },
    /// Fine-tune the loaded model.
    FineTune(TuneRequest),
    /// Save the loaded model in this browser (IndexedDB).
    Save,
    /// Send the loaded model's checkpoint bytes (for a download).
    Download,
    /// Forget the saved model and load the bundled one.
    Reset,
    /// Read a Hub model's `config.json` and say what it will cost ([`Reply::HubInfo`]).
    HubInfo {
        /// `gpt2`, `OWNER/REPO`.
        repo: String,
        /// A branch, tag or commit.
        revision: String,
        /// The Hub's address.
        endpoint: String,
    },
    /// Stop a running job at its next step.
    Cancel(JobId),
}

/// [`BackendInfo::name`] of the WebGPU backend.
pub const WEBGPU: &str = "WebGPU";

/// Which backend should run the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BackendChoice {
    /// WebGPU on a hardware adapter; with a software adapter (SwiftShader, WARP), whichever of WebGPU and the CPU
    /// decodes faster at warm-up; the CPU when WebGPU is missing or fails.
    #[default]
    Auto,
    /// WebGPU whenever it works (`?gpu=1`, or the switch).
    WebGpu,
    /// The CPU (`?gpu=0`, or the switch).
    Cpu,
}

impl BackendChoice {
    /// The choice a page's `?gpu=` asks for: `0` the CPU, `1` WebGPU, anything else (or nothing) automatic.
    pub fn from_query(value: Option<&str>) -> BackendChoice {
        match value {
            Some("0") => BackendChoice::Cpu,
            Some("1") => BackendChoice::WebGpu,
            _ => BackendChoice::Auto,
        }
    }
}

/// Decoding speed of the loaded model on each backend, in tokens per second, as measured at warm-up (a few cached
/// decoding steps, each read back as a completion reads it). None: not measured for this model yet.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Speeds {
    /// On WebGPU.
    pub webgpu: Option<f64>,
    /// On the CPU.
    pub cpu: Option<f64>,
}

/// The backend the worker runs the model on, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// [`WEBGPU`] or "CPU".
    pub name: String,
    /// The WebGPU adapter's description, when one was found.
    pub adapter: Option<String>,
    /// Whether that adapter is a software ("fallback") one such as SwiftShader.
    pub software: bool,
    /// Why this backend runs the model, when it was not simply the first choice (the CPU as a fallback, the
    /// outcome of a software adapter's race, a choice made on the page).
    pub reason: Option<String>,
    /// Why WebGPU cannot run this model, when it cannot (no adapter, a failed warm-up, a buffer limit).
    pub webgpu_unusable: Option<String>,
    /// The measured speed on each backend.
    pub speeds: Speeds,
    /// Milliseconds the warm-up pass took.
    pub warmup_ms: f64,
    /// Memory the backend holds once the model is loaded and warmed up, in bytes (see `Reply::Step`).
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// On WebGPU, how the weights are kept: "f16" where the adapter has `shader-f16`, else "f32" and why.
    #[serde(default)]
    pub weights: Option<String>,
}

impl BackendInfo {
    /// Whether the model runs on WebGPU (its memory is GPU memory; on the CPU it is the worker's wasm heap).
    pub fn is_webgpu(&self) -> bool {
        self.name == WEBGPU
    }
}

/// The loaded model, as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `gpt2`, `hnet` or `hybrid`.
    pub arch: String,
    /// Number of parameters.
    pub params: usize,
    /// Where it came from ("bundled model", "fine-tuned here (saved in this browser)", …).
    pub source: String,
    /// Whether a fine-tuned model is saved in this browser.
    pub saved: bool,
    /// The checkpoint's provenance metadata (`source`, `trained_on`, …), for the model card.
    pub card: Vec<(String, String)>,
}

/// One token of the chunk view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkToken {
    /// The token, its byte span in the text (tokens tile it; see [`ChunksView::text`]) and its chunk.
    #[serde(flatten)]
    pub token: InspectedToken,
    /// −log₂ p of the token given the ones before, when asked for.
    pub surprisal: Option<f32>,
    /// Whether a Python statement starts inside this token (None when the text does not parse).
    pub statement: Option<bool>,
}

/// How the model chunks a text: statistics over all of it, tokens of a slice of lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunksView {
    /// The shown slice of the text (whole lines).
    pub text: String,
    /// Byte offset of the slice in the text (token spans are relative to the whole text).
    pub offset: usize,
    /// The slice's first line (0-based).
    pub first_line: usize,
    /// Lines in the slice.
    pub shown_lines: usize,
    /// Lines in the whole text.
    pub total_lines: usize,
    /// Index of the slice's first token in the whole text.
    pub first_token: usize,
    /// Tokens in the whole text.
    pub total_tokens: usize,
    /// The slice's tokens, each with its chunk.
    pub tokens: Vec<ChunkToken>,
    /// Number of chunks.
    pub n_chunks: usize,
    /// Mean chunk length in tokens.
    pub mean_chunk_tokens: f64,
    /// Mean chunk length in bytes.
    pub mean_chunk_bytes: f64,
    /// Whether the text parses as Python (statement starts are only shown when it does).
    pub parses: bool,
    /// Said when only part of the text is shown.
    pub note: Option<String>,
}

/// What the worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerState {
    /// The worker script is loading.
    Starting,
    /// Nothing running.
    Idle,
    /// Loading a model.
    Loading,
    /// Generating.
    Generating,
    /// Computing chunks.
    Chunking,
    /// Fine-tuning.
    Training,
    /// Serialising the model (save, download).
    Saving,
}

impl WorkerState {
    /// How the page names it.
    pub fn label(self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Idle => "idle",
            WorkerState::Loading => "loading a model",
            WorkerState::Generating => "generating",
            WorkerState::Chunking => "chunking",
            WorkerState::Training => "fine-tuning",
            WorkerState::Saving => "saving",
        }
    }
}

/// Worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// The worker is running and takes requests (sent once, unprompted, with job 0).
    Ready,
    /// What the worker is busy with (job 0; sent whenever it changes).
    State(WorkerState),
    /// A line for the status bar.
    Status(String),
    /// Download progress of a file: bytes received and, when known, the total.
    Download {
        /// Which file ("model", "tokenizer").
        file: String,
        /// Bytes so far.
        received: usize,
        /// Content length, when the server said.
        total: Option<usize>,
    },
    /// A model is loaded and ready.
    Loaded {
        /// The model.
        model: ModelInfo,
        /// The backend.
        backend: BackendInfo,
    },
    /// The model description changed (fine-tuned, saved).
    Model(ModelInfo),
    /// Streamed completion text.
    Text {
        /// Text to append.
        delta: String,
        /// Tokens generated so far.
        tokens: usize,
    },
    /// The chunk view of a text (None for gpt2, which has no chunks; the string says so).
    Chunks(Result<ChunksView, String>),
    /// Held-back perplexity before (and, at the end, after) fine-tuning.
    Perplexity {
        /// Before training.
        before: f64,
        /// After training.
        after: Option<f64>,
    },
    /// One fine-tuning step.
    Step {
        /// Step number (1-based).
        step: usize,
        /// Steps planned.
        steps: usize,
        /// Loss before the update (None when the step was skipped for a non-finite loss or gradient).
        loss: Option<f64>,
        /// Training tokens per second so far.
        tokens_per_s: f64,
        /// Seconds left, estimated.
        eta_s: f64,
        /// Milliseconds the step took.
        step_ms: f64,
        /// Memory the model's backend holds after the step, in bytes: WebGPU buffers reserved by burn's allocator,
        /// or the worker's whole wasm heap on the CPU (None when it cannot be read).
        memory_bytes: Option<u64>,
        /// Whether the step ran on WebGPU (a model on WebGPU whose token table is in parts fine-tunes on the CPU).
        on_gpu: bool,
    },
    /// Progress text of a longer job.
    Progress(String),
    /// The answer to [`Request::HubInfo`].
    HubInfo(HubInfo),
    /// Checkpoint bytes follow in the envelope's `data` (an ArrayBuffer).
    Bytes {
        /// A file name for the download.
        filename: String,
    },
    /// The job ended: `Ok` with a note, or the error to show.
    Done(Result<String, String>),
}

/// An envelope's JSON text: the job and the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// The job the message belongs to (0: none).
    pub job: JobId,
    /// The message.
    pub msg: T,
}

impl<T: Serialize> Envelope<T> {
    /// The JSON text (serialising these plain types cannot fail).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl<T: for<'de> Deserialize<'de>> Envelope<T> {
    /// Parses an envelope's JSON text.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("a malformed message between the page and the worker: {e}"))
    }
}
