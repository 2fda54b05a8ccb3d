//! The model engine of the page: picks WebGPU or the CPU backend, loads checkpoints, streams completions.
//!
//! This is the one place the app names concrete backends. WebGPU (burn's wgpu backend over the browser's WebGPU)
//! is preferred; the CPU backend (burn's Flex, compiled to wasm) takes over when WebGPU is missing, has no
//! adapter, or fails its warm-up pass — and the page says why.

use std::cell::Cell;
use std::rc::Rc;

use burn::backend::wgpu::{graphics::WebGpu, init_setup_async, RuntimeOptions, WgpuDevice};
use burn::module::Module;
use burn::tensor::backend::Backend;
use hnet_gpt_model::checkpoint;
use hnet_gpt_model::generate::{GenerateParams, Generator};
use hnet_gpt_model::tokenizer::{TextStream, Tokenizer};
use hnet_gpt_model::Model;

use crate::web::{self, AdapterInfo};

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

/// Which backend runs the model, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendInfo {
    /// "WebGPU" or "CPU".
    pub name: &'static str,
    /// The WebGPU adapter (when one was found).
    pub adapter: Option<AdapterInfo>,
    /// Why the CPU is used, when it is.
    pub fallback_reason: Option<String>,
    /// Milliseconds the warm-up pass took (shader compilation dominates on first use).
    pub warmup_ms: f64,
}

thread_local! {
    /// burn's wgpu runtime may be initialised once per page ("A server is still registered" otherwise).
    static GPU_READY: Cell<bool> = const { Cell::new(false) };
}

async fn init_gpu() {
    if !GPU_READY.with(Cell::get) {
        init_setup_async::<WebGpu>(&WgpuDevice::default(), RuntimeOptions::default()).await;
        GPU_READY.with(|r| r.set(true));
    }
}

/// One cached forward pass whose result is read back: compiles the shaders and proves the device works.
async fn warm_up<B: Backend>(model: &Model<B>) -> Result<(), String> {
    let mut state = model.new_state();
    let tokens = model.tokens_tensor(&[198]).map_err(|e| e.to_string())?;
    let logits = model.forward_cached(tokens, &mut state, true).await.map_err(|e| e.to_string())?.logits;
    let data = logits.into_data_async().await.map_err(|e| format!("{e:?}"))?;
    let values = data.as_slice::<f32>().map_err(|e| format!("{e:?}"))?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err("the warm-up pass produced non-finite logits".into());
    }
    Ok(())
}

fn load_on<B: Backend>(bytes: &[u8], device: &B::Device) -> Result<Model<B>, String> {
    checkpoint::from_bytes(bytes.to_vec(), "checkpoint", device).map_err(|e| e.to_string())
}

impl Engine {
    /// Loads a checkpoint, on WebGPU unless `force_cpu` or WebGPU fails, and runs the warm-up pass.
    pub async fn load(bytes: &[u8], force_cpu: bool) -> Result<(Engine, BackendInfo), String> {
        let probe = if force_cpu { Err("the CPU backend was requested (?gpu=0)".to_string()) } else { web::probe_webgpu().await };
        let (adapter, reason) = match probe {
            Ok(adapter) => {
                init_gpu().await;
                let model = load_on::<Gpu>(bytes, &WgpuDevice::default())?;
                let start = web::now_ms();
                match warm_up(&model).await {
                    Ok(()) => {
                        let info = BackendInfo { name: "WebGPU", adapter: Some(adapter), fallback_reason: None, warmup_ms: web::now_ms() - start };
                        return Ok((Engine::Gpu(Rc::new(model)), info));
                    }
                    Err(e) => (Some(adapter), format!("WebGPU failed its warm-up pass: {e}")),
                }
            }
            Err(reason) => (None, reason),
        };
        let model = load_on::<Cpu>(bytes, &Default::default())?;
        let start = web::now_ms();
        warm_up(&model).await?;
        let info = BackendInfo { name: "CPU", adapter, fallback_reason: Some(reason), warmup_ms: web::now_ms() - start };
        Ok((Engine::Cpu(Rc::new(model)), info))
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        match self {
            Engine::Gpu(m) => m.num_params(),
            Engine::Cpu(m) => m.num_params(),
        }
    }

    /// The architecture's name.
    pub fn arch(&self) -> String {
        match self {
            Engine::Gpu(m) => m.config.arch.to_string(),
            Engine::Cpu(m) => m.config.arch.to_string(),
        }
    }

    /// Streams a completion of `prompt`: `on_text` receives each piece of text as soon as it is safe to show.
    /// Stops early when `cancel` is set. Returns the number of generated tokens.
    pub async fn complete(
        &self,
        tokenizer: &Tokenizer,
        prompt: &str,
        params: GenerateParams,
        stop_strings: &[String],
        cancel: Rc<Cell<bool>>,
        on_text: impl FnMut(&str, usize),
    ) -> Result<usize, String> {
        match self {
            Engine::Gpu(m) => complete_on(m, tokenizer, prompt, params, stop_strings, cancel, on_text).await,
            Engine::Cpu(m) => complete_on(m, tokenizer, prompt, params, stop_strings, cancel, on_text).await,
        }
    }
}

async fn complete_on<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    prompt: &str,
    params: GenerateParams,
    stop_strings: &[String],
    cancel: Rc<Cell<bool>>,
    mut on_text: impl FnMut(&str, usize),
) -> Result<usize, String> {
    let ids = tokenizer.encode(prompt).map_err(|e| e.to_string())?;
    let mut generator = Generator::new(model, &ids, params).map_err(|e| e.to_string())?;
    let mut stream = TextStream::new(tokenizer, stop_strings);
    let mut count = 0;
    while let Some(token) = generator.next_token_async().await.map_err(|e| e.to_string())? {
        count += 1;
        let delta = stream.push(token).map_err(|e| e.to_string())?;
        on_text(&delta, count);
        if stream.stopped() || cancel.get() {
            generator.stop();
        }
        // Let the page paint the token and handle clicks (Stop) before the next step.
        web::yield_now().await;
    }
    let rest = stream.finish().map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        on_text(&rest, count);
    }
    Ok(count)
}
