//! The model engine of the worker: picks WebGPU or the CPU backend, loads checkpoints, streams completions,
//! inspects chunking, and fine-tunes.
//!
//! This is the one place the app names concrete backends. WebGPU (burn's wgpu backend over the browser's WebGPU)
//! is preferred; the CPU backend (burn's Flex, compiled to wasm) takes over when WebGPU is missing, has no adapter,
//! fails its warm-up pass, or fails later (a lost device) — and the page says why.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use burn::backend::wgpu::{graphics::WebGpu, init_setup_async, RuntimeOptions, WgpuDevice};
use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, FloatDType};
use hnet_gpt_model::arch::model::State;
use hnet_gpt_model::eval::inspect::{inspect_chunks_windowed, ChunkReport, WindowCache};
use hnet_gpt_model::eval::score::{document_logprobs_async, token_logprobs_async, NllTotals};
use hnet_gpt_model::generate::complete::{Completion, Prompt};
use hnet_gpt_model::generate::stop::StopRules;
use hnet_gpt_model::generate::GenerateParams;
use hnet_gpt_model::io::checkpoint;
use hnet_gpt_model::io::params::TrainScope;
use hnet_gpt_model::nn::embedding::with_part_bytes;
use hnet_gpt_model::nn::weights::{can_keep_in, keep_in, loading_in};
use hnet_gpt_model::tokenizer::Tokenizer;
use hnet_gpt_model::train::data::{next_batch, DataPosition, Packed};
use hnet_gpt_model::train::optim::{AdamW, ParamGroups};
use hnet_gpt_model::train::step::{train_step, StepOutcome};
use hnet_gpt_model::train::TrainConfig;
use hnet_gpt_model::{Arch, Model, ModelConfig};

use crate::protocol::{BackendChoice, BackendInfo, Speeds, WEBGPU};
use crate::web;

/// The one dispatch over the engine's two backends: `$body` written once, `$m` the model on either.
macro_rules! on_model {
    ($engine:expr, |$m:ident| $body:expr) => {
        match $engine {
            Engine::Gpu($m) => $body,
            Engine::Cpu($m) => $body,
        }
    };
}

/// [`on_model`] for a model being fine-tuned.
macro_rules! on_tuner {
    ($tune:expr, |$t:ident| $body:expr) => {
        match $tune {
            FineTune::Gpu($t) => $body,
            FineTune::Cpu($t) => $body,
        }
    };
}

/// The GPU backend: burn's wgpu backend, WGSL shaders, over the browser's WebGPU.
pub type Gpu = burn::backend::Wgpu;
/// The CPU fallback: burn's pure-Rust backend, compiled to wasm.
pub type Cpu = burn::backend::Flex;

/// A loaded model on one backend.
#[derive(Clone)]
pub enum Engine {
    /// On WebGPU.
    Gpu(Rc<Model<Gpu>>),
    /// On the CPU.
    Cpu(Rc<Model<Cpu>>),
}

thread_local! {
    /// burn's wgpu runtime may be initialised once per page ("A server is still registered" otherwise).
    static GPU_READY: Cell<bool> = const { Cell::new(false) };
    /// Once WebGPU has failed, the page stays on the CPU; this says why.
    static GPU_BROKEN: RefCell<Option<String>> = const { RefCell::new(None) };
}

async fn init_gpu() {
    if !GPU_READY.with(Cell::get) {
        init_setup_async::<WebGpu>(&WgpuDevice::default(), RuntimeOptions::default()).await;
        GPU_READY.with(|r| r.set(true));
    }
}

/// Decoding steps timed, at most, to measure a backend's speed (after the warm-up step, which compiles the shaders).
const SPEED_STEPS: usize = 3;

/// One cached decoding step of one token whose logits are read back, as a completion does.
async fn decode_step<B: Backend>(model: &Model<B>, state: &mut State<B>) -> Result<(), String> {
    let tokens = model.tokens_tensor(&[198]).map_err(|e| e.to_string())?;
    let logits = model.forward_cached(tokens, state, true).await.map_err(|e| e.to_string())?.logits;
    let data = logits.into_data_async().await.map_err(|e| format!("{e:?}"))?;
    let values = data.as_slice::<f32>().map_err(|e| format!("{e:?}"))?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err("the warm-up pass produced non-finite logits".into());
    }
    Ok(())
}

/// A model loaded on one backend and warmed up.
struct Warm<B: Backend> {
    model: Model<B>,
    /// Milliseconds the first step took (it compiles the shaders and proves the device works).
    warmup_ms: f64,
    /// Tokens per second of the [`SPEED_STEPS`] steps after it.
    tokens_per_s: f64,
}

/// What a model is loaded from.
pub enum Weights<'a> {
    /// A checkpoint's bytes (the bundled model, a file, a model saved in this browser).
    Checkpoint(&'a [u8]),
    /// A model already on the CPU backend (converted from the Hub as it downloaded): no second copy is serialised.
    Cpu(Box<Model<Cpu>>),
}

impl Weights<'_> {
    /// The model's config, checked: a bad checkpoint fails here, before any device work.
    fn config(&self) -> Result<ModelConfig, String> {
        match self {
            Weights::Checkpoint(bytes) => Ok(checkpoint::read_info(bytes, "checkpoint").map_err(|e| e.to_string())?.config),
            Weights::Cpu(model) => Ok(model.config.clone()),
        }
    }

    /// The model on the CPU backend (the same tensors, shared, when it is there already).
    fn on_cpu(&self) -> Result<Model<Cpu>, String> {
        match self {
            Weights::Checkpoint(bytes) => checkpoint::from_bytes(bytes, "checkpoint", &Default::default()),
            Weights::Cpu(model) => Ok(model.as_ref().clone()),
        }
        .map_err(|e| e.to_string())
    }

    /// The model on WebGPU, copied tensor by tensor; its token table in parts of at most `binding` bytes, its weight
    /// matrices in f16 where the adapter has `shader-f16` (see [`gpu_dtype`]).
    fn on_gpu(&self, binding: u64) -> Result<Model<Gpu>, String> {
        let device = WgpuDevice::default();
        // Each weight is narrowed as it arrives, so the f32 model is never whole on the device.
        with_part_bytes(binding, || {
            loading_in(gpu_dtype(), || match self {
                Weights::Checkpoint(bytes) => checkpoint::from_bytes(bytes, "checkpoint", &device),
                Weights::Cpu(model) => checkpoint::copy_to(model, &device),
            })
        })
        .map_err(|e| e.to_string())
    }
}

/// How WebGPU keeps a model's weight matrices: in f16 where the adapter has `shader-f16` (half the GPU memory; the
/// layers still compute in f32, see `nn::weights`), in f32 elsewhere.
fn gpu_dtype() -> FloatDType {
    match can_keep_in::<Gpu>(&WgpuDevice::default(), FloatDType::F16) {
        true => FloatDType::F16,
        false => FloatDType::F32,
    }
}

/// How a model on WebGPU keeps its weights, for the status bar: "f16", or "f32" and why.
fn gpu_weights_note(model: &Model<Gpu>) -> String {
    match model.embedding().parts[0].val().dtype() {
        DType::F16 => "f16".to_string(),
        _ if can_keep_in::<Gpu>(&WgpuDevice::default(), FloatDType::F16) => "f32".to_string(),
        _ => "f32 (this adapter has no shader-f16)".to_string(),
    }
}

/// Runs the warm-up step of a loaded model, then measures the decoding speed over up to [`SPEED_STEPS`] steps —
/// fewer when `rival` (another backend's tokens/s) is already more than twice as fast after one: a software adapter
/// can take minutes per step on a large model, and one step settles the race.
async fn warm<B: Backend>(model: Model<B>, rival: Option<f64>) -> Result<Warm<B>, String> {
    let mut state = model.new_state();
    let start = web::now_ms();
    decode_step(&model, &mut state).await?;
    let warmed = web::now_ms();
    let mut tokens_per_s = 0.0;
    for step in 1..=SPEED_STEPS {
        decode_step(&model, &mut state).await?;
        tokens_per_s = step as f64 / ((web::now_ms() - warmed) / 1000.0).max(1e-6);
        if rival.is_some_and(|r| r > 2.0 * tokens_per_s) {
            break;
        }
    }
    Ok(Warm { model, warmup_ms: warmed - start, tokens_per_s })
}

/// Marks WebGPU as unusable for the rest of the session, saying why.
pub fn mark_gpu_broken(reason: String) {
    GPU_BROKEN.with(|b| *b.borrow_mut() = Some(reason));
}

/// Why WebGPU cannot run this model, or the adapter it would run on. Every weight must fit one storage-buffer
/// binding, the token table cut into parts that do (Qwen2.5's is 545 MB in f32, a binding 128 MiB by default).
async fn usable_adapter(config: &ModelConfig) -> (Option<web::AdapterInfo>, Option<String>) {
    if let Some(reason) = GPU_BROKEN.with(|b| b.borrow().clone()) {
        return (None, Some(reason));
    }
    let adapter = match web::probe_webgpu().await {
        Ok(adapter) => adapter,
        Err(reason) => return (None, Some(reason)),
    };
    // The model as WebGPU would hold it, built lazily on the CPU (no weights drawn): building refuses a weight that
    // does not fit one binding.
    let unusable = with_part_bytes(binding_limit(&adapter), || checkpoint::init::<Cpu>(config, &Default::default())).err();
    (Some(adapter), unusable.map(|e| e.to_string()))
}

/// The most bytes one buffer binding of `adapter` holds (no limit where the browser does not say).
fn binding_limit(adapter: &web::AdapterInfo) -> u64 {
    adapter.max_binding.map_or(u64::MAX, |b| b as u64)
}

/// "3.1 tokens/s".
fn rate(tokens_per_s: f64) -> String {
    format!("{tokens_per_s:.1} tokens/s")
}

impl Engine {
    /// Loads a checkpoint on the backend `choice` asks for (see [`BackendChoice`]), runs the warm-up step and
    /// measures the decoding speed; `known` holds speeds measured earlier for the same model. A checkpoint that
    /// does not load is an error and nothing changes.
    pub async fn load(weights: Weights<'_>, choice: BackendChoice, known: Speeds) -> Result<(Engine, BackendInfo), String> {
        // Validate on the CPU first: a bad file must fail cleanly before any device work.
        let config = weights.config()?;
        let (adapter, mut unusable) = usable_adapter(&config).await;
        let software = adapter.as_ref().is_some_and(|a| a.fallback);
        let mut speeds = known;
        // A software adapter emulates the GPU on the CPU's threads, usually far slower than the CPU backend: unless
        // WebGPU was asked for by name, the CPU is measured first and WebGPU races it.
        let race = software && unusable.is_none() && choice == BackendChoice::Auto;
        let cpu = match race {
            true => Some(warm(weights.on_cpu()?, None).await?),
            false => None,
        };
        if let Some(cpu) = &cpu {
            speeds.cpu = Some(cpu.tokens_per_s);
        }
        let gpu = if unusable.is_none() && choice != BackendChoice::Cpu {
            init_gpu().await;
            let gpu = match weights.on_gpu(adapter.as_ref().map_or(u64::MAX, binding_limit)) {
                Ok(model) => warm(model, cpu.as_ref().map(|c| c.tokens_per_s)).await,
                Err(e) => Err(e),
            };
            match gpu {
                Ok(warm) => {
                    speeds.webgpu = Some(warm.tokens_per_s);
                    Some(warm)
                }
                Err(e) => {
                    let reason = format!("WebGPU failed its warm-up pass: {e}");
                    mark_gpu_broken(reason.clone());
                    unusable = Some(reason);
                    None
                }
            }
        } else {
            None
        };
        let kept = gpu.as_ref().map(|g| gpu_weights_note(&g.model));
        let backend = |name: &str, reason: Option<String>, warmup_ms: f64, speeds: Speeds, unusable: Option<String>| BackendInfo {
            weights: kept.clone().filter(|_| name == WEBGPU),
            name: name.into(),
            adapter: adapter.as_ref().map(|a| a.name.clone()),
            software,
            reason,
            webgpu_unusable: unusable,
            speeds,
            warmup_ms,
            memory_bytes: memory_bytes(name == WEBGPU),
        };
        let (gpu, cpu) = match (gpu, cpu) {
            (Some(gpu), None) => {
                let info = backend(WEBGPU, None, gpu.warmup_ms, speeds, None);
                return Ok((Engine::Gpu(Rc::new(gpu.model)), info));
            }
            (Some(gpu), Some(cpu)) => (gpu, cpu),
            (None, cpu) => {
                let cpu = match cpu {
                    Some(cpu) => cpu,
                    None => warm(weights.on_cpu()?, None).await?,
                };
                speeds.cpu = Some(cpu.tokens_per_s);
                let reason = unusable.clone().unwrap_or_else(|| "the CPU was chosen on this page".to_string());
                let info = backend("CPU", Some(reason), cpu.warmup_ms, speeds, unusable);
                return Ok((Engine::Cpu(Rc::new(cpu.model)), info));
            }
        };
        let race = format!("the software WebGPU adapter decoded {} and the CPU {}", rate(gpu.tokens_per_s), rate(cpu.tokens_per_s));
        if gpu.tokens_per_s >= cpu.tokens_per_s {
            drop(cpu);
            let info = backend(WEBGPU, Some(format!("{race}, so WebGPU runs the model")), gpu.warmup_ms, speeds, None);
            return Ok((Engine::Gpu(Rc::new(gpu.model)), info));
        }
        drop(gpu);
        let info = backend("CPU", Some(format!("{race}, so the CPU runs the model")), cpu.warmup_ms, speeds, None);
        Ok((Engine::Cpu(Rc::new(cpu.model)), info))
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        on_model!(self, |m| m.num_params())
    }

    /// Whether the model runs on WebGPU.
    pub fn on_gpu(&self) -> bool {
        matches!(self, Engine::Gpu(_))
    }

    /// Whether the model's token table is held in parts (larger than one buffer binding of the GPU).
    pub fn split_table(&self) -> bool {
        on_model!(self, |m| m.embedding().parts.len() > 1)
    }

    /// The architecture.
    pub fn arch(&self) -> Arch {
        on_model!(self, |m| m.config.arch)
    }

    /// The current weights on the CPU backend: the same tensors when they are there, read back from WebGPU
    /// otherwise (asynchronously: a synchronous read panics in the browser).
    pub async fn on_cpu(&self) -> Result<Model<Cpu>, String> {
        match self {
            Engine::Gpu(m) => checkpoint::to_host_async::<Gpu, Cpu>(m.as_ref(), &Default::default()).await.map_err(|e| e.to_string()),
            Engine::Cpu(m) => Ok(m.as_ref().clone()),
        }
    }

    /// The checkpoint bytes of the current weights (what the CLI loads).
    pub async fn checkpoint_bytes(&self, note: &str) -> Result<Vec<u8>, String> {
        let host = self.on_cpu().await?;
        // Copied to the host, then serialised in a later task: together they made one long task.
        web::yield_now().await;
        checkpoint::to_bytes(&host, &[("source", note)]).map_err(|e| e.to_string())
    }

    /// Streams a completion of `prompt`: `on_text` receives each piece of text as soon as it is safe to show.
    /// Stops early when `cancel` is set. Returns the number of generated tokens.
    pub async fn complete(
        &self,
        tokenizer: &Tokenizer,
        prompt: Prompt<'_>,
        params: GenerateParams,
        rules: &StopRules,
        cancel: Rc<Cell<bool>>,
        on_text: impl FnMut(&str, usize),
    ) -> Result<(String, usize), String> {
        on_model!(self, |m| complete_on(m, tokenizer, prompt, params, rules, cancel, on_text).await)
    }

    /// How the model chunks all of `text`, in windows of its context (`cache` holds the last run's windows).
    /// Returns `Ok(None)` when `stop` was set before it finished; `progress(done, total)` hears of each window.
    /// A gpt2 model has no chunks: the error says so.
    pub async fn chunks(
        &self,
        tokenizer: &Tokenizer,
        text: &str,
        cache: &mut WindowCache,
        stop: Rc<Cell<bool>>,
        generating: Rc<Cell<usize>>,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Option<ChunkReport>, String> {
        if self.arch() == Arch::Gpt2 {
            return Err(format!("This is a {} model: it has no learned chunks to show. Load an hnet or hybrid checkpoint.", self.arch()));
        }
        web::mark("chunks");
        let mut step = |done, total| {
            progress(done, total);
            let (stop, generating) = (stop.clone(), generating.clone());
            async move {
                // Let a newer edit's request (which sets `stop`) get through between windows, and a completion run
                // first: the person waiting for a ghost matters more than the chunk view.
                web::yield_now().await;
                while generating.get() > 0 && !stop.get() {
                    web::sleep_ms(20).await;
                }
                !stop.get()
            }
        };
        let result = on_model!(self, |m| inspect_chunks_windowed(m.as_ref(), tokenizer, text, cache, &mut step).await);
        result.map(|r| r.map(|(report, _)| report)).map_err(|e| format!("Could not compute the chunks: {e}"))
    }

    /// Surprisal of `ids[first..last]`, each token scored with up to half a context before it (the text's first
    /// token after `<|endoftext|>`).
    pub async fn surprisal_range(&self, ids: &[u32], first: usize, last: usize, eos: u32) -> Result<Vec<f32>, String> {
        let n_ctx = on_model!(self, |m| m.n_ctx());
        let begin = first.saturating_sub(n_ctx / 2);
        if begin == 0 {
            let bits = self.surprisal(&ids[..last], eos).await?;
            return Ok(bits[first..].to_vec());
        }
        let lp = on_model!(self, |m| token_logprobs_async(m.as_ref(), &ids[begin..last]).await).map_err(|e| e.to_string())?;
        // lp[j] scores ids[begin + j + 1].
        Ok(lp[first - begin - 1..].iter().map(|l| -l / std::f32::consts::LN_2).collect())
    }

    /// Surprisal (−log₂ p, bits) of every token of `ids` given the ones before, the first after the
    /// end-of-document token `eos`.
    pub async fn surprisal(&self, ids: &[u32], eos: u32) -> Result<Vec<f32>, String> {
        let lp = on_model!(self, |m| document_logprobs_async(m.as_ref(), ids, eos).await).map_err(|e| e.to_string())?;
        Ok(lp.iter().map(|l| -l / std::f32::consts::LN_2).collect())
    }

    /// Perplexity of documents (each after the end-of-document token `eos`).
    pub async fn perplexity(&self, docs: &[Vec<u32>], eos: u32) -> Result<f64, String> {
        web::mark("perplexity");
        let mut totals = NllTotals::default();
        for doc in docs.iter().filter(|d| !d.is_empty()) {
            let lp = on_model!(self, |m| document_logprobs_async(m.as_ref(), doc, eos).await).map_err(|e| e.to_string())?;
            totals.add(&lp, 0);
            web::yield_now().await;
        }
        if totals.tokens == 0 {
            return Err("nothing to score".into());
        }
        Ok(totals.perplexity())
    }
}

async fn complete_on<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    prompt: Prompt<'_>,
    params: GenerateParams,
    rules: &StopRules,
    cancel: Rc<Cell<bool>>,
    mut on_text: impl FnMut(&str, usize),
) -> Result<(String, usize), String> {
    web::mark("complete");
    let mut completion = Completion::new(model, tokenizer, prompt, params, rules).map_err(|e| e.to_string())?;
    while let Some(delta) = completion.step_async().await.map_err(|e| e.to_string())? {
        if !delta.is_empty() {
            on_text(&delta, completion.tokens());
        }
        if cancel.get() {
            completion.cancel();
        }
        // Let the page paint the token and handle clicks (Stop) before the next step.
        web::yield_now().await;
    }
    Ok((completion.text().to_string(), completion.tokens()))
}

/// Fine-tuning settings, resolved.
#[derive(Debug, Clone)]
pub struct TuneSettings {
    /// Optimizer steps.
    pub steps: usize,
    /// Learning rate (constant: short runs need no schedule).
    pub lr: f64,
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// What trains.
    pub scope: TrainScope,
}

impl TuneSettings {
    /// These settings as the library's training config, the one type the CLI trains from: a constant learning rate
    /// (no warmup; a cosine to a floor of 1 × the peak), since a few steps need no schedule; no weight decay, so that
    /// the frozen model's weights stay as they were.
    fn train_config(&self, model: &ModelConfig) -> TrainConfig {
        let mut t = TrainConfig::new(model.clone());
        t.steps = self.steps;
        t.lr = self.lr;
        t.warmup_steps = 0;
        t.min_lr_ratio = 1.0;
        t.batch_size = self.batch;
        t.seq_len = self.seq_len;
        t.adamw.weight_decay = 0.0;
        t
    }
}

/// A model being fine-tuned on one backend.
pub struct Tuner<A: AutodiffBackend> {
    model: Model<A>,
    opt: AdamW<A>,
    data: Packed,
    pos: DataPosition,
    config: TrainConfig,
    step: usize,
}

impl<A: AutodiffBackend> Tuner<A> {
    fn new(model: Model<A>, data: Packed, s: &TuneSettings) -> Result<Self, String> {
        let config = s.train_config(&model.config);
        config.validate().map_err(|e| e.to_string())?;
        let frozen = s.scope.frozen(model.config.arch);
        let opt = AdamW::new(config.adamw.clone(), ParamGroups { lr_multipliers: vec![], frozen });
        Ok(Self { model, opt, data, pos: DataPosition::default(), config, step: 0 })
    }

    /// One step — the library's, the same the CLI trains with — yielding to the page between its phases; returns
    /// the loss before the update (None when the step was skipped for a non-finite loss or gradient).
    async fn step(&mut self) -> Result<Option<f64>, String> {
        let idx = next_batch(self.data.len(), 0, &mut self.pos, self.config.batch_size);
        let mut phase = |name: &'static str| async move {
            web::mark(&format!("train: {name}"));
            web::yield_now().await;
        };
        let (model, outcome) = train_step(
            self.model.clone(),
            &mut self.opt,
            &self.data,
            &[idx],
            self.config.lr_at(self.step),
            self.config.objective(),
            &mut phase,
        )
        .await
        .map_err(|e| e.to_string())?;
        self.model = model;
        self.step += 1;
        web::mark("train: step done");
        Ok(match outcome {
            StepOutcome::Applied { loss, .. } => Some(loss),
            StepOutcome::Skipped(_) => None,
        })
    }
}

/// Fine-tuning on the engine's backend.
pub enum FineTune {
    /// On WebGPU.
    Gpu(Box<Tuner<Autodiff<Gpu>>>),
    /// On the CPU.
    Cpu(Box<Tuner<Autodiff<Cpu>>>),
}

impl FineTune {
    /// Prepares fine-tuning of the engine's model on `data`: the same tensors, taken into autodiff (the engine
    /// keeps its weights; a step makes new ones).
    pub async fn start(engine: &Engine, data: Packed, s: &TuneSettings) -> Result<Self, String> {
        web::mark("fine-tune: start");
        let tuner = match engine {
            // A token table held in parts (larger than one buffer binding) would be joined by the loss, and a
            // batch's logits over its vocabulary are as large: such a model fine-tunes on the CPU.
            Engine::Gpu(_) if engine.split_table() => {
                FineTune::Cpu(Box::new(Tuner::new(Model::trainable(engine.on_cpu().await?), data, s)?))
            }
            // Weights kept in f16 train in f32 (an optimizer's small steps vanish in f16's rounding); the tuned model
            // is narrowed again when it is done.
            Engine::Gpu(m) => {
                let model = keep_in(m.as_ref().clone(), FloatDType::F32);
                FineTune::Gpu(Box::new(Tuner::new(Model::trainable(model), data, s)?))
            }
            Engine::Cpu(m) => FineTune::Cpu(Box::new(Tuner::new(Model::trainable(m.as_ref().clone()), data, s)?)),
        };
        web::yield_now().await;
        Ok(tuner)
    }

    /// One optimizer step.
    pub async fn step(&mut self) -> Result<Option<f64>, String> {
        on_tuner!(self, |t| t.step().await)
    }

    /// Memory the backend holds now, in bytes (see [`memory_bytes`]).
    pub fn memory_bytes(&self) -> Option<u64> {
        memory_bytes(self.on_gpu())
    }

    /// Whether it runs on WebGPU.
    pub fn on_gpu(&self) -> bool {
        matches!(self, FineTune::Gpu(_))
    }

    /// The tuned model, ready for inference.
    pub fn finish(self) -> Engine {
        match self {
            FineTune::Gpu(t) => Engine::Gpu(Rc::new(keep_in(t.model.valid(), gpu_dtype()))),
            FineTune::Cpu(t) => Engine::Cpu(Rc::new(t.model.valid())),
        }
    }
}

/// Memory a backend holds, in bytes. WebGPU: what burn's allocator has reserved on the device (its pools keep freed
/// buffers for reuse, so this is the high-water mark the device must provide). CPU: the worker's wasm memory, which
/// holds the model and every tensor and only ever grows.
pub fn memory_bytes(gpu: bool) -> Option<u64> {
    use cubecl::Runtime;
    use wasm_bindgen::JsCast;
    if gpu {
        let client = burn::backend::wgpu::WgpuRuntime::client(&WgpuDevice::default());
        client.memory_usage().ok().map(|m| m.bytes_reserved)
    } else {
        let memory = wasm_bindgen::memory().dyn_into::<js_sys::WebAssembly::Memory>().ok()?;
        memory.buffer().dyn_into::<js_sys::ArrayBuffer>().ok().map(|b| b.byte_length() as u64)
    }
}
