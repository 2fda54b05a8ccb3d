//! The playground's shared state: signals the components read, and the model (kept out of the reactive system,
//! because burn models are neither `Send` nor cheap to compare).

use std::rc::Rc;

use hnet_gpt_model::io::tokenizer::Tokenizer;
use leptos::prelude::*;

use crate::engine::{BackendInfo, Engine};

/// Where the bundled model and tokenizer are served from (trunk copies `public/` into the site).
pub const TOKENIZER_URL: &str = "public/tokenizer.json";
/// The bundled default model.
pub const MODEL_URL: &str = "public/models/default.safetensors";
/// The list of bundled models (one per architecture when several are shipped); the first is the default.
pub const MANIFEST_URL: &str = "public/models/models.json";
/// IndexedDB key of the saved fine-tuned model.
pub const SAVED_KEY: &str = "finetuned";

/// One entry of `public/models/models.json`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct BundledModel {
    /// `gpt2`, `hnet` or `hybrid`.
    pub arch: String,
    /// What the selector shows.
    pub label: String,
    /// Where the checkpoint is served, relative to the page.
    pub url: String,
}

/// The bundled models' manifest.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Manifest {
    /// The models, default first.
    pub models: Vec<BundledModel>,
}

/// What the page is busy with (controls that would interfere are disabled meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Loading a model.
    Loading,
    /// Generating a completion.
    Generating,
    /// Fine-tuning.
    Training,
}

/// Shared state, cheap to copy into closures.
#[derive(Clone, Copy)]
pub struct Playground {
    /// The code in the editor.
    pub code: RwSignal<String>,
    /// One-line status.
    pub status: RwSignal<String>,
    /// The last error, shown until the next action.
    pub error: RwSignal<Option<String>>,
    /// The backend in use.
    pub backend: RwSignal<Option<BackendInfo>>,
    /// "hybrid · 3.4M parameters · bundled model".
    pub model_desc: RwSignal<String>,
    /// The current activity.
    pub busy: RwSignal<Option<Busy>>,
    /// Increments whenever the model changes (views that depend on it recompute).
    pub model_version: RwSignal<u64>,
    /// Whether a fine-tuned model is saved in this browser.
    pub saved: RwSignal<bool>,
    engine: StoredValue<Option<Engine>, LocalStorage>,
    tokenizer: StoredValue<Option<Rc<Tokenizer>>, LocalStorage>,
}

impl Playground {
    /// Fresh state with `code` in the editor.
    pub fn new(code: String) -> Self {
        Self {
            code: RwSignal::new(code),
            status: RwSignal::new("Loading the model…".into()),
            error: RwSignal::new(None),
            backend: RwSignal::new(None),
            model_desc: RwSignal::new(String::new()),
            busy: RwSignal::new(Some(Busy::Loading)),
            model_version: RwSignal::new(0),
            saved: RwSignal::new(false),
            engine: StoredValue::new_local(None),
            tokenizer: StoredValue::new_local(None),
        }
    }

    /// The current model, once loaded.
    pub fn engine(&self) -> Option<Engine> {
        self.engine.get_value()
    }

    /// The tokenizer, once loaded.
    pub fn tokenizer(&self) -> Option<Rc<Tokenizer>> {
        self.tokenizer.get_value()
    }

    /// Sets the tokenizer.
    pub fn set_tokenizer(&self, t: Tokenizer) {
        self.tokenizer.set_value(Some(Rc::new(t)));
    }

    /// Replaces the model with one that is already loaded (e.g. after fine-tuning).
    pub fn set_engine(&self, engine: Engine, source: &str) {
        self.model_desc.set(format!("{} · {} parameters · {source}", engine.arch(), format_count(engine.num_params())));
        self.engine.set_value(Some(engine));
        self.model_version.update(|v| *v += 1);
    }

    /// Loads checkpoint bytes. On failure the previous model stays and the error is shown.
    pub async fn load_bytes(&self, bytes: &[u8], source: &str) -> bool {
        let force_cpu = crate::web::query_param("gpu").as_deref() == Some("0");
        self.busy.set(Some(Busy::Loading));
        self.status.set(format!("Loading {source}…"));
        let ok = match Engine::load(bytes, force_cpu).await {
            Ok((engine, info)) => {
                self.status.set(format!("Ready (warm-up {:.1} s)", info.warmup_ms / 1000.0));
                self.backend.set(Some(info));
                self.set_engine(engine, source);
                self.error.set(None);
                true
            }
            Err(e) => {
                let kept = if self.engine().is_some() { " The previous model is still loaded." } else { "" };
                self.error.set(Some(format!("Could not load {source}: {e}.{kept}")));
                self.status.set(if self.engine().is_some() { "Ready".into() } else { "No model loaded".into() });
                false
            }
        };
        self.busy.set(None);
        ok
    }
}

/// `3.4M`, `812.5k`, `96`.
pub fn format_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}
