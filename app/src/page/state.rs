//! The playground's shared state: signals the components read, kept current by the worker's replies, and the
//! handle on the worker that does all model work.

use leptos::prelude::*;

use crate::page::client::Client;
use crate::page::components::editor::CodeEditor;
use crate::protocol::{BackendChoice, BackendInfo, JobId, ModelInfo, ModelSource, Reply, Request, WorkerState};
use crate::web;

/// The list of bundled models (one per architecture when several are shipped); the first is the default.
pub const MANIFEST_URL: &str = "public/models/models.json";

/// One entry of `public/models/models.json`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct BundledModel {
    /// `gpt2`, `hnet` or `hybrid`.
    pub arch: String,
    /// What the selector shows.
    pub label: String,
    /// Where the checkpoint is served, relative to the page.
    pub url: String,
    /// What it is and how good it is, for the model card.
    #[serde(default)]
    pub about: Option<String>,
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
    /// Saving or downloading the model.
    Saving,
}

/// Download progress of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileProgress {
    /// "model" or "tokenizer".
    pub file: String,
    /// Bytes so far.
    pub received: usize,
    /// Content length, when known.
    pub total: Option<usize>,
}

/// Shared state, cheap to copy into closures.
/// Where an error is shown: beside the part of the page whose action failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The page as a whole (the worker, the first model): the status bar.
    Page,
    /// The editor's completion controls.
    Completion,
    /// The fine-tuning panel.
    FineTune,
    /// The models panel (Hub, URL, file, the architecture selector).
    Models,
}

#[derive(Clone, Copy)]
pub struct Playground {
    /// The code in the editor.
    pub code: RwSignal<String>,
    /// The editor's first visible line (0-based): the chunk view follows it.
    pub top_line: RwSignal<usize>,
    /// The completion shown as ghost text at the editor's cursor.
    pub ghost: RwSignal<String>,
    /// Bumped to stop the completion in flight (Esc in the editor drops its ghost and stops it).
    pub stop_completion: RwSignal<u64>,
    /// The live code editor, once it has loaded.
    pub editor: StoredValue<Option<CodeEditor>, LocalStorage>,
    /// One-line status.
    pub status: RwSignal<String>,
    /// The last error and where it is shown (beside the action that failed), until the next action.
    pub error: RwSignal<Option<(Place, String)>>,
    /// The backend in use.
    pub backend: RwSignal<Option<BackendInfo>>,
    /// The backend asked for: from `?gpu=`, then the switch.
    pub backend_choice: RwSignal<BackendChoice>,
    /// The loaded model.
    pub model: RwSignal<Option<ModelInfo>>,
    /// The current activity of the page.
    pub busy: RwSignal<Option<Busy>>,
    /// What the worker is doing.
    pub worker: RwSignal<WorkerState>,
    /// Downloads in progress (model, tokenizer).
    pub downloads: RwSignal<Vec<FileProgress>>,
    /// Increments whenever the model changes (views that depend on it recompute).
    pub model_version: RwSignal<u64>,
    client: StoredValue<Option<Client>, LocalStorage>,
}

impl Playground {
    /// Shows `message` as the error at `place`.
    pub fn fail(&self, place: Place, message: impl Into<String>) {
        self.error.set(Some((place, message.into())));
    }

    /// Fresh state with `code` in the editor; starts the worker.
    pub fn new(code: String) -> Self {
        let state = Self {
            code: RwSignal::new(code),
            top_line: RwSignal::new(0),
            ghost: RwSignal::new(String::new()),
            stop_completion: RwSignal::new(0),
            editor: StoredValue::new_local(None),
            status: RwSignal::new("Starting the model worker…".into()),
            error: RwSignal::new(None),
            backend: RwSignal::new(None),
            backend_choice: RwSignal::new(BackendChoice::from_query(web::query_param("gpu").as_deref())),
            model: RwSignal::new(None),
            busy: RwSignal::new(Some(Busy::Loading)),
            worker: RwSignal::new(WorkerState::Starting),
            downloads: RwSignal::new(Vec::new()),
            model_version: RwSignal::new(0),
            client: StoredValue::new_local(None),
        };
        let started = Client::start(
            move |job, reply| state.on_reply(job, reply),
            move |e| {
                state.fail(Place::Page, format!("The model worker failed: {e}"));
                state.status.set("Could not start".into());
                state.busy.set(None);
            },
        );
        match started {
            Ok(client) => state.client.set_value(Some(client)),
            Err(e) => {
                state.fail(Place::Page, format!("Could not start the model worker: {e}"));
                state.status.set("Could not start".into());
                state.busy.set(None);
            }
        }
        state
    }

    /// Page-wide effects of the worker's replies.
    fn on_reply(&self, _job: JobId, reply: &Reply) {
        match reply {
            Reply::State(s) => self.worker.set(*s),
            Reply::Ready => self.worker.set(WorkerState::Idle),
            Reply::Status(s) => self.status.set(s.clone()),
            Reply::Download { file, received, total } => self.downloads.update(|d| {
                let entry = FileProgress { file: file.clone(), received: *received, total: *total };
                match d.iter_mut().find(|p| p.file == *file) {
                    Some(p) => *p = entry,
                    None => d.push(entry),
                }
            }),
            Reply::Loaded { model, backend } => {
                self.backend.set(Some(backend.clone()));
                self.model.set(Some(model.clone()));
                self.model_version.update(|v| *v += 1);
            }
            Reply::Model(model) => {
                let changed = self.model.with_untracked(|m| {
                    m.as_ref().map(|m| (&m.arch, m.params, &m.source)) != Some((&model.arch, model.params, &model.source))
                });
                self.model.set(Some(model.clone()));
                if changed {
                    self.model_version.update(|v| *v += 1);
                }
            }
            _ => {}
        }
    }

    /// The worker, once started.
    pub fn client(&self) -> Option<Client> {
        self.client.get_value()
    }

    /// Whether a model is loaded.
    pub fn has_model(&self) -> bool {
        self.model.with(Option::is_some)
    }

    /// Loads a model in the worker. On failure the previous model stays and the error is shown; true when it
    /// loaded.
    pub async fn load(&self, source: ModelSource, file: Option<web_sys::File>, place: Place) -> bool {
        let Some(client) = self.client() else { return false };
        let backend = self.backend_choice.get_untracked();
        self.busy.set(Some(Busy::Loading));
        self.downloads.set(Vec::new());
        let result = client.run(Request::Load { source, backend }, file.map(Into::into), |_, _| {}).await;
        self.downloads.set(Vec::new());
        self.busy.set(None);
        match result {
            Ok(note) => {
                self.status.set(note);
                self.error.set(None);
                true
            }
            Err(e) => {
                self.fail(place, e);
                self.status.set(if self.model.with_untracked(Option::is_some) { "Ready".into() } else { "No model loaded".into() });
                false
            }
        }
    }

    /// Moves the loaded model to the backend `choice` asks for (the switch in the status bar); on failure it stays
    /// where it was and the error is shown.
    pub async fn switch_backend(&self, choice: BackendChoice) {
        let Some(client) = self.client() else { return };
        self.busy.set(Some(Busy::Loading));
        let result = client.run(Request::SwitchBackend(choice), None, |_, _| {}).await;
        self.busy.set(None);
        match result {
            Ok(note) => {
                self.backend_choice.set(choice);
                self.status.set(note);
                self.error.set(None);
            }
            Err(e) => {
                self.fail(Place::Page, e);
                self.status.set("Ready".into());
            }
        }
    }
}

/// The Hugging Face Hub the page loads from: `https://huggingface.co`, or `?hub=URL` (a mirror; the tests' local one).
pub fn hub_endpoint() -> String {
    web::query_param("hub").filter(|h| !h.is_empty()).unwrap_or_else(|| "https://huggingface.co".into())
}

/// `3.4M`, `812.5k`, `96`.
pub fn format_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// `6.9 MB`, `812 kB`.
pub fn format_bytes(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.0} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}
