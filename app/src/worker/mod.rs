//! The model worker: a dedicated Web Worker (its own wasm, built by trunk from `src/bin/worker.rs`) that owns the
//! tokenizer and the model and does every piece of model work — loading, warm-up, generation, chunking,
//! perplexity, fine-tuning, saving — so that none of it can block the page. The page talks to it only through
//! [`crate::protocol`] messages.
//!
//! Jobs run as async tasks on the worker's one thread. They yield between steps (a token, a training phase), which
//! is when a `Cancel` message gets through; several jobs may interleave at those points, as they did on the page.

mod chunks;
mod engine;
mod hub;
mod tune;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use hnet_gpt_model::generate::complete::Prompt;
use hnet_gpt_model::generate::sampling::SamplingParams;
use hnet_gpt_model::generate::stop::{is_blank, StopRules};
use hnet_gpt_model::generate::GenerateParams;
use hnet_gpt_model::io::checkpoint;
use hnet_gpt_model::tokenizer::{Tokenizer, TokenizerSpec};
use hnet_gpt_model::Model;
use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::spawn_local;

use crate::protocol::{
    BackendChoice, BackendInfo, ChunksView, CompleteSettings, Envelope, JobId, ModelInfo, ModelSource, Reply, Request, Speeds, WorkerState,
};
use crate::web;
use chunks::{ChunkState, Chunked};
use engine::{mark_gpu_broken, Cpu, Engine, Weights};

/// Where the bundled model and tokenizer are served from (trunk copies `public/` into the site; the worker's
/// script sits next to the page, so the same relative URLs work).
pub const TOKENIZER_URL: &str = "public/tokenizer.json";
/// The bundled default model.
pub const MODEL_URL: &str = "public/models/default.safetensors";
/// IndexedDB key of the saved fine-tuned model.
pub const SAVED_KEY: &str = "finetuned";

/// The worker's state: the tokenizer and model once loaded, cancel flags of running jobs.
#[derive(Default)]
struct Worker {
    /// The loaded model's tokenizer.
    tokenizer: RefCell<Option<Rc<Tokenizer>>>,
    /// GPT-2's tokenizer, once fetched.
    gpt2: RefCell<Option<Rc<Tokenizer>>>,
    engine: RefCell<Option<Engine>>,
    /// Where the loaded model came from, and its card.
    model: RefCell<Option<ModelInfo>>,
    saved: Cell<bool>,
    /// The backend the page asked for.
    backend: Cell<BackendChoice>,
    /// The loaded model's decoding speed on each backend, as measured so far.
    speeds: Cell<Speeds>,
    cancels: RefCell<HashMap<JobId, Rc<Cell<bool>>>>,
    chunks: RefCell<ChunkState>,
    /// Counts loaded models: work started for one model must not be kept for the next.
    generation: Cell<u64>,
    /// Completions running: chunking, lower in priority, waits between its windows while any does.
    generating: Rc<Cell<usize>>,
    /// How many jobs of each state are running (the state shown is the latest started that still runs).
    running: RefCell<Vec<(JobId, WorkerState)>>,
}

fn scope() -> web_sys::DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

/// Sends a reply to the page; `data` is transferred (an ArrayBuffer), not copied.
fn post(job: JobId, msg: Reply, data: Option<js_sys::ArrayBuffer>) {
    let envelope = Object::new();
    let _ = Reflect::set(&envelope, &"msg".into(), &Envelope { job, msg }.to_json().into());
    let result = match data {
        Some(buffer) => {
            let _ = Reflect::set(&envelope, &"data".into(), &buffer);
            scope().post_message_with_transfer(&envelope, &js_sys::Array::of1(&buffer))
        }
        None => scope().post_message(&envelope),
    };
    if let Err(e) = result {
        web_sys::console::error_1(&format!("the worker could not post a message: {}", web::js_err(e)).into());
    }
}

/// Starts the worker: installs the message handler and tells the page it is ready.
pub fn run() {
    console_error_panic_hook::set_once();
    let worker = Rc::new(Worker::default());
    let handler = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
        let data = event.data();
        let text = Reflect::get(&data, &"msg".into()).ok().and_then(|m| m.as_string()).unwrap_or_default();
        let extra = Reflect::get(&data, &"data".into()).ok().filter(|v| !v.is_undefined());
        match Envelope::<Request>::from_json(&text) {
            Ok(Envelope { job, msg: Request::Cancel(target) }) => {
                if let Some(flag) = worker.cancels.borrow().get(&target) {
                    flag.set(true);
                }
                post(job, Reply::Done(Ok("cancel requested".into())), None);
            }
            Ok(Envelope { job, msg }) => {
                let worker = worker.clone();
                spawn_local(async move {
                    let result = worker.handle(job, msg, extra).await;
                    worker.finish(job);
                    post(job, Reply::Done(result), None);
                });
            }
            Err(e) => web_sys::console::error_1(&e.into()),
        }
    });
    scope().set_onmessage(Some(handler.as_ref().unchecked_ref()));
    handler.forget();
    post(0, Reply::Ready, None);
}

impl Worker {
    /// Marks `job` as running in `state` (the page shows it) and returns its cancel flag.
    fn begin(&self, job: JobId, state: WorkerState) -> Rc<Cell<bool>> {
        self.running.borrow_mut().push((job, state));
        post(0, Reply::State(state), None);
        let flag = Rc::new(Cell::new(false));
        self.cancels.borrow_mut().insert(job, flag.clone());
        flag
    }

    fn finish(&self, job: JobId) {
        self.cancels.borrow_mut().remove(&job);
        let mut running = self.running.borrow_mut();
        let before = running.len();
        running.retain(|(j, _)| *j != job);
        if running.len() != before {
            post(0, Reply::State(running.last().map_or(WorkerState::Idle, |(_, s)| *s)), None);
        }
    }

    fn engine(&self) -> Result<Engine, String> {
        self.engine.borrow().clone().ok_or_else(|| "no model is loaded".to_string())
    }

    fn tokenizer(&self) -> Result<Rc<Tokenizer>, String> {
        self.tokenizer.borrow().clone().ok_or_else(|| "the tokenizer is not loaded".to_string())
    }

    async fn handle(&self, job: JobId, request: Request, extra: Option<JsValue>) -> Result<String, String> {
        match request {
            Request::SwitchBackend(choice) => {
                self.begin(job, WorkerState::Loading);
                self.switch_backend(job, choice).await
            }
            Request::Load { source, backend } => {
                self.backend.set(backend);
                self.begin(job, WorkerState::Loading);
                self.load(job, source, extra).await
            }
            Request::Complete { prompt, suffix, settings } => {
                let cancel = self.begin(job, WorkerState::Generating);
                self.generating.set(self.generating.get() + 1);
                let result = self.complete(job, &prompt, &suffix, settings, cancel).await;
                self.generating.set(self.generating.get() - 1);
                result
            }
            Request::Chunks { text, surprisal, first_line } => {
                let stop = self.begin(job, WorkerState::Chunking);
                let view = self.chunks(job, text, surprisal, first_line, stop).await?;
                if let Some(view) = view {
                    post(job, Reply::Chunks(view), None);
                }
                Ok(String::new())
            }
            Request::FineTune(request) => {
                let cancel = self.begin(job, WorkerState::Training);
                let (engine, tokenizer) = (self.engine()?, self.tokenizer()?);
                let tuned = tune::fine_tune(job, &engine, &tokenizer, request, cancel).await?;
                const TUNED: &str = "fine-tuned here (not saved yet)";
                if engine.on_gpu() && !tuned.on_gpu() {
                    // Tuned on the CPU (a token table in parts): completions go back to WebGPU. Should that fail, the
                    // tuned model stays, on the CPU.
                    drop(engine);
                    let model = tuned.on_cpu().await?;
                    match Engine::load(Weights::Cpu(Box::new(model)), self.backend.get(), self.speeds.get()).await {
                        Ok((engine, backend)) => {
                            self.install(job, engine, backend, TUNED, None);
                        }
                        Err(e) => {
                            let model = Weights::Cpu(Box::new(tuned.on_cpu().await?));
                            let (engine, backend) = Engine::load(model, BackendChoice::Cpu, self.speeds.get()).await?;
                            self.install(job, engine, backend, TUNED, None);
                            return Ok(format!("fine-tuned; it stays on the CPU: moving it back to WebGPU failed ({e})"));
                        }
                    }
                } else {
                    self.set_model(tuned, TUNED, None);
                }
                Ok("fine-tuned".into())
            }
            Request::Save => {
                self.begin(job, WorkerState::Saving);
                let bytes = self.engine()?.checkpoint_bytes("fine-tuned in the HNet-GPT playground").await?;
                web::idb::put(SAVED_KEY, &bytes).await.map_err(|e| format!("Could not save: {e}"))?;
                self.saved.set(true);
                self.describe("fine-tuned here (saved in this browser)");
                Ok("Saved in this browser: it will be restored on reload".into())
            }
            Request::Download => {
                self.begin(job, WorkerState::Saving);
                let bytes = self.engine()?.checkpoint_bytes("fine-tuned in the HNet-GPT playground").await?;
                let buffer = Uint8Array::from(bytes.as_slice()).buffer();
                post(job, Reply::Bytes { filename: "hnet-gpt-finetuned.safetensors".into() }, Some(buffer));
                Ok(String::new())
            }
            Request::Reset => {
                self.begin(job, WorkerState::Loading);
                let _ = web::idb::delete(SAVED_KEY).await;
                self.saved.set(false);
                self.load(job, ModelSource::Bundled, None).await
            }
            Request::HubInfo { repo, revision, endpoint } => {
                let info = hub::info(job, &endpoint, &repo, &revision).await?;
                post(job, Reply::HubInfo(info), None);
                Ok(String::new())
            }
            Request::Cancel(_) => Ok(String::new()),
        }
    }

    /// Loads the tokenizer (once) and a model; on failure the previous model stays loaded.
    async fn load(&self, job: JobId, source: ModelSource, extra: Option<JsValue>) -> Result<String, String> {
        let _ = web::take_cache_warning();
        let progress = |received, total| post(job, Reply::Download { file: "model".into(), received, total }, None);
        let (bytes, label) = match source {
            ModelSource::SavedOrBundled => match web::idb::get(SAVED_KEY).await {
                Ok(Some(bytes)) => {
                    self.saved.set(true);
                    match self.load_bytes(job, bytes, "fine-tuned model restored from this browser").await {
                        Ok(note) => return Ok(note),
                        // A saved model that no longer loads: say so, and fall back to the bundled one.
                        Err(e) => post(job, Reply::Status(format!("{e}; loading the bundled model")), None),
                    }
                    (fetch_model(MODEL_URL, progress).await?, "bundled model".to_string())
                }
                _ => (fetch_model(MODEL_URL, progress).await?, "bundled model".to_string()),
            },
            ModelSource::Bundled => (fetch_model(MODEL_URL, progress).await?, "bundled model".to_string()),
            ModelSource::Url { url, label } => (fetch_model(&url, progress).await?, label),
            ModelSource::Hub { repo, revision, hybrid, endpoint } => {
                let gpt2 = self.gpt2_tokenizer(job).await?;
                let (model, tokenizer) =
                    hub::load(job, &endpoint, &repo, &revision, hybrid, &gpt2).await.map_err(|e| self.load_failed(&repo, e))?;
                let label = if hybrid { format!("{repo} from the Hub + a fresh H-Net encoder") } else { format!("{repo} from the Hub") };
                let source = format!("hf://{repo}@{revision}");
                let mut card = vec![("hub_repo".to_string(), repo.clone()), ("hub_revision".to_string(), revision.clone())];
                card.push(match hybrid {
                    true => ("source".into(), format!("{source} + a fresh H-Net encoder")),
                    false => ("source".into(), source),
                });
                if hybrid {
                    card.push(("decoder_from".into(), repo.clone()));
                }
                let note = self.load_model(job, model, tokenizer, &label, card).await?;
                return Ok(with_cache_warning(note));
            }
            ModelSource::File { name } => {
                let file: web_sys::File = extra.and_then(|v| v.dyn_into().ok()).ok_or("no file came with the request")?;
                let bytes = web::read_file(&file).await?;
                (bytes, format!("local file {name}"))
            }
        };
        let note = self.load_bytes(job, bytes, &label).await?;
        Ok(with_cache_warning(note))
    }

    async fn load_bytes(&self, job: JobId, bytes: Vec<u8>, source: &str) -> Result<String, String> {
        post(job, Reply::Status(format!("Loading {source}…")), None);
        let fail = |e: String| self.load_failed(source, e);
        let info = checkpoint::read_info(&bytes, "checkpoint").map_err(|e| fail(e.to_string()))?;
        let card: Vec<(String, String)> = info.metadata.into_iter().filter(|(k, _)| !matches!(k.as_str(), "format" | "config")).collect();
        // The model's own tokenizer: embedded in the checkpoint, or GPT-2's (fetched once, served with the page).
        let tokenizer = match &info.tokenizer {
            TokenizerSpec::Gpt2Bpe => self.gpt2_tokenizer(job).await?,
            TokenizerSpec::Embedded(json) => Rc::new(Tokenizer::from_json_bytes(json.as_bytes()).map_err(|e| fail(e.to_string()))?),
        };
        self.start(job, Weights::Checkpoint(&bytes), tokenizer, info.config.vocab_size(), source, card).await
    }

    /// Loads a model converted here (from the Hub) with its tokenizer (parsed as it was converted), with `card`
    /// saying where it came from.
    async fn load_model(
        &self,
        job: JobId,
        model: Model<Cpu>,
        tokenizer: Tokenizer,
        source: &str,
        mut card: Vec<(String, String)>,
    ) -> Result<String, String> {
        card.push(("tokenizer".into(), model.tokenizer.id().to_string()));
        let vocab = model.config.vocab_size();
        self.start(job, Weights::Cpu(Box::new(model)), Rc::new(tokenizer), vocab, source, card).await
    }

    /// "Could not load WHAT: E.", and " The previous model is still loaded." when there is one.
    fn load_failed(&self, what: &str, e: impl std::fmt::Display) -> String {
        let kept = if self.engine.borrow().is_some() { " The previous model is still loaded." } else { "" };
        format!("Could not load {what}: {e}.{kept}")
    }

    /// Loads `weights` with their tokenizer (checked against the `vocab` size), warms them up on the chosen backend
    /// and installs them.
    async fn start(
        &self,
        job: JobId,
        weights: Weights<'_>,
        tokenizer: Rc<Tokenizer>,
        vocab: usize,
        source: &str,
        mut card: Vec<(String, String)>,
    ) -> Result<String, String> {
        let fail = |e: String| self.load_failed(source, e);
        tokenizer.check_fits(vocab).map_err(|e| fail(e.to_string()))?;
        card.sort();
        let (engine, backend) = Engine::load(weights, self.backend.get(), Speeds::default()).await.map_err(fail)?;
        *self.tokenizer.borrow_mut() = Some(tokenizer);
        Ok(self.install(job, engine, backend, source, Some(card)))
    }

    /// Moves the loaded model, with its current weights, to the backend `choice` asks for. On failure it stays
    /// where it was.
    async fn switch_backend(&self, job: JobId, choice: BackendChoice) -> Result<String, String> {
        let engine = self.engine()?;
        let source = self.model.borrow().as_ref().map(|m| m.source.clone()).unwrap_or_default();
        let target = if choice == BackendChoice::Cpu { "the CPU" } else { "WebGPU" };
        post(job, Reply::Status(format!("Moving the model to {target}…")), None);
        let model = engine.on_cpu().await?;
        drop(engine);
        let (engine, backend) = Engine::load(Weights::Cpu(Box::new(model)), choice, self.speeds.get())
            .await
            .map_err(|e| format!("Could not move the model to {target}: {e}. It stays where it was."))?;
        self.backend.set(choice);
        Ok(self.install(job, engine, backend, &source, None))
    }

    /// Installs a loaded engine, tells the page, and returns the status line.
    fn install(&self, job: JobId, engine: Engine, backend: BackendInfo, source: &str, card: Option<Vec<(String, String)>>) -> String {
        self.speeds.set(backend.speeds);
        let warmup = backend.warmup_ms;
        let model = self.set_model(engine, source, card);
        post(job, Reply::Loaded { model, backend }, None);
        match warmup {
            ms if ms < 1000.0 => format!("Ready (warm-up {ms:.0} ms)"),
            ms => format!("Ready (warm-up {:.1} s)", ms / 1000.0),
        }
    }

    /// GPT-2's tokenizer, fetched the first time it is needed.
    async fn gpt2_tokenizer(&self, job: JobId) -> Result<Rc<Tokenizer>, String> {
        if let Some(t) = self.gpt2.borrow().clone() {
            return Ok(t);
        }
        post(job, Reply::Status("Loading the tokenizer…".into()), None);
        let bytes = web::fetch_progress(TOKENIZER_URL, false, web::Bounds::METADATA, |received, total| {
            post(job, Reply::Download { file: "tokenizer".into(), received, total }, None)
        })
        .await
        .map_err(|e| format!("Could not load the tokenizer: {e}"))?;
        let tokenizer = Rc::new(Tokenizer::from_json_bytes(&bytes).map_err(|e| format!("Could not load the tokenizer: {e}"))?);
        *self.gpt2.borrow_mut() = Some(tokenizer.clone());
        Ok(tokenizer)
    }

    /// Installs a model and returns its description (the card is kept from the last load unless given).
    fn set_model(&self, engine: Engine, source: &str, card: Option<Vec<(String, String)>>) -> ModelInfo {
        let card = card.or_else(|| self.model.borrow().as_ref().map(|m| m.card.clone())).unwrap_or_default();
        let info = ModelInfo {
            arch: engine.arch().to_string(),
            params: engine.num_params(),
            source: source.into(),
            saved: self.saved.get(),
            card,
        };
        *self.engine.borrow_mut() = Some(engine);
        // Chunks and cached windows belong to the model that computed them.
        self.generation.set(self.generation.get() + 1);
        *self.chunks.borrow_mut() = ChunkState::default();
        *self.model.borrow_mut() = Some(info.clone());
        post(0, Reply::Model(info.clone()), None);
        info
    }

    /// Renames the loaded model's source (after a save) and tells the page.
    fn describe(&self, source: &str) {
        let mut model = self.model.borrow_mut();
        if let Some(m) = model.as_mut() {
            m.source = source.into();
            m.saved = self.saved.get();
            post(0, Reply::Model(m.clone()), None);
        }
    }

    /// Chunks `text` (or reuses the last result when the text is the same) and slices it from `first_line`.
    /// A newer chunk request stops this one between windows; then nothing is sent.
    async fn chunks(
        &self,
        job: JobId,
        text: String,
        surprisal: bool,
        first_line: usize,
        stop: Rc<Cell<bool>>,
    ) -> Result<Option<Result<ChunksView, String>>, String> {
        if text.trim().is_empty() {
            return Ok(Some(Err("Type some code to see how the model chunks it.".into())));
        }
        let (engine, tokenizer) = (self.engine()?, self.tokenizer()?);
        let generation = self.generation.get();
        if let Some(previous) = self.chunks.borrow_mut().running.replace(stop.clone()) {
            previous.set(true);
        }
        let last = self.chunks.borrow().last.clone().filter(|c| c.text == text && c.model == generation);
        let chunked = match last {
            Some(c) => c,
            None => {
                let mut cache = std::mem::take(&mut self.chunks.borrow_mut().cache);
                let result = engine
                    .chunks(&tokenizer, &text, &mut cache, stop.clone(), self.generating.clone(), |done, total| {
                        if total > 1 {
                            post(job, Reply::Progress(format!("Chunking: window {done} of {total}")), None);
                        }
                    })
                    .await;
                // A model loaded meanwhile: these windows and this result belong to the old one.
                if self.generation.get() != generation {
                    return Ok(None);
                }
                self.chunks.borrow_mut().cache = cache;
                match result {
                    Ok(Some(report)) => {
                        let c = Rc::new(Chunked::new(generation, text, report));
                        self.chunks.borrow_mut().last = Some(c.clone());
                        c
                    }
                    Ok(None) => return Ok(None),
                    Err(message) => return Ok(Some(Err(message))),
                }
            }
        };
        let mut view = chunked.view(first_line, None);
        if surprisal {
            let ids: Vec<u32> = chunked.report.tokens.iter().map(|t| t.id).collect();
            let bits = engine.surprisal_range(&ids, view.first_token, view.first_token + view.tokens.len(), tokenizer.eos_id()).await?;
            view = chunked.view(first_line, Some(&bits));
        }
        if stop.get() {
            return Ok(None);
        }
        Ok(Some(Ok(view)))
    }

    async fn complete(
        &self,
        job: JobId,
        prompt: &str,
        suffix: &str,
        s: CompleteSettings,
        cancel: Rc<Cell<bool>>,
    ) -> Result<String, String> {
        if prompt.trim().is_empty() {
            return Err("Type or paste some code first: the prompt is empty.".into());
        }
        let (engine, tokenizer) = (self.engine()?, self.tokenizer()?);
        let params = GenerateParams {
            sampling: SamplingParams {
                temperature: s.temperature.max(0.0),
                top_k: s.top_k,
                top_p: s.top_p.clamp(0.01, 1.0),
                repetition_penalty: 1.1,
                repetition_window: Some(64),
            },
            max_new_tokens: s.max_tokens.clamp(1, 512),
            seed: s.seed,
            stop_tokens: tokenizer.stop_tokens(),
        };
        // Fill-in-the-middle when the model has the tokens for it and there is text after the cursor.
        let prompt = match tokenizer.fim() {
            Some(_) if !suffix.trim().is_empty() => Prompt::Middle { prefix: prompt, suffix },
            _ => Prompt::Text(prompt),
        };
        let rules = StopRules { scope: s.scope, strings: Vec::new() };
        let result = engine
            .complete(&tokenizer, prompt, params, &rules, cancel, |delta, tokens| {
                post(job, Reply::Text { delta: delta.to_string(), tokens }, None)
            })
            .await;
        match result {
            Ok((text, n)) if is_blank(&text) => Ok(format!("no completion: only whitespace in {n} tokens")),
            Ok((_, n)) => Ok(format!("{n} tokens")),
            Err(e) if engine.on_gpu() => {
                // A lost or broken WebGPU device: move the model to the CPU and say so. The weights are read back
                // first; when the device is gone they cannot be, and the bundled model is loaded instead.
                mark_gpu_broken(format!("WebGPU failed while generating ({e})"));
                if self.switch_backend(job, BackendChoice::Cpu).await.is_err() {
                    let bytes = fetch_model(MODEL_URL, |_, _| {}).await?;
                    self.load_bytes(job, bytes, "bundled model on the CPU (the WebGPU weights were lost)").await?;
                }
                Err(format!("WebGPU failed while generating ({e}); the model moved to the CPU."))
            }
            Err(e) => Err(e),
        }
    }
}

/// A load's status line, with why its download was not kept for the next visit (a full storage quota) if it was not.
fn with_cache_warning(note: String) -> String {
    match web::take_cache_warning() {
        Some(warning) => format!("{note} · {warning}"),
        None => note,
    }
}

/// Fetches a checkpoint with progress; other sites' files go through the Cache API, this site's do not.
async fn fetch_model(url: &str, progress: impl FnMut(usize, Option<usize>)) -> Result<Vec<u8>, String> {
    let cached = url != MODEL_URL && !url.starts_with("public/");
    web::fetch_progress(url, cached, web::Bounds::WEIGHTS, progress).await.map_err(|e| format!("Could not load the model: {e}"))
}
