//! The status bar: activity, the worker's state, backend, adapter (with a badge for software adapters), model.

use leptos::prelude::*;

use crate::page::state::{format_bytes, format_count, Place, Playground};
use crate::protocol::{BackendChoice, ModelInfo, WEBGPU};

/// "hybrid · 3.4M parameters · bundled model".
pub fn describe(m: &ModelInfo) -> String {
    format!("{} · {} parameters · {}", m.arch, format_count(m.params), m.source)
}

/// Status pills and, when relevant, why the CPU runs the model and the last error. `compact` (the embedded widget):
/// one small status line and the error, none of the playground's diagnostics.
#[component]
pub fn StatusBar(state: Playground, #[prop(default = false)] compact: bool) -> impl IntoView {
    let backend = state.backend;
    if compact {
        return view! {
            <p class="muted status-line" role="status" aria-live="polite">
                <span data-testid="status">{move || state.status.get()}</span>
                {move || state.model.get().map(|m| view! { " · " <span data-testid="model">{describe(&m)}</span> })}
            </p>
            <ErrorNote state=state place=Place::Page />
        }
        .into_any();
    }
    view! {
        <div class="status" role="status" aria-live="polite">
            <span class="pill" data-testid="status">{move || state.status.get()}</span>
            <span class="pill" data-testid="worker" title="All model work runs in a Web Worker, off the page's thread">
                {move || format!("Worker: {}", state.worker.get().label())}
            </span>
            <span class="pill" data-testid="backend">
                {move || backend.get().map_or("Backend: …".to_string(), |b| format!("Backend: {}", b.name))}
            </span>
            {move || backend.get().and_then(|b| b.adapter.map(|a| (a, b.software))).map(|(name, software)| view! {
                <span class="pill" data-testid="adapter">{format!("Adapter: {name}")}</span>
                {software.then(|| view! { <span class="pill badge" data-testid="software-adapter" title="A software (fallback) WebGPU adapter: correct, but slow">"software adapter"</span> })}
            })}
            {move || state.model.get().map(|m| view! { <span class="pill" data-testid="model">{describe(&m)}</span> })}
            {move || backend.get().and_then(|b| b.memory_bytes.map(|bytes| (b.is_webgpu(), bytes))).map(|(gpu, bytes)| {
                let (what, title) = if gpu {
                    ("GPU memory", "WebGPU buffers burn's allocator holds for the model, after loading and warm-up")
                } else {
                    ("Worker memory", "The model worker's wasm heap, after loading and warm-up")
                };
                view! { <span class="pill" data-testid="memory" title=title>{format!("{what}: {}", format_bytes(bytes as usize))}</span> }
            })}
            {move || backend.get().and_then(|b| b.weights).map(|w| view! {
                <span class="pill" data-testid="weights" title="How the weight matrices are kept on the GPU: f16 halves their memory where the adapter has shader-f16; the layers still compute in f32">
                    {format!("Weights: {w}")}
                </span>
            })}
        </div>
        <BackendSwitch state=state />
        {move || backend.get().and_then(|b| b.reason.map(|r| (b.name, r))).map(|(name, r)| {
            let on = if name == WEBGPU { "WebGPU".to_string() } else { format!("the {name}") };
            view! { <p class="muted" data-testid="backend-reason">{format!("Running on {on}: {r}")}</p> }
        })}
        <ErrorNote state=state place=Place::Page />
    }
    .into_any()
}

/// The WebGPU / CPU switch, each side with the decoding speed measured for the loaded model ("not measured yet"
/// until it has run there). WebGPU is disabled, saying why, when it cannot run the model.
#[component]
fn BackendSwitch(state: Playground) -> impl IntoView {
    let option = move |choice: BackendChoice, label: &'static str| {
        let info = move || state.backend.get();
        let current = move || info().is_some_and(|b| b.is_webgpu() == (choice == BackendChoice::WebGpu));
        let speed = move || {
            info()
                .and_then(|b| if choice == BackendChoice::WebGpu { b.speeds.webgpu } else { b.speeds.cpu })
                .map_or("not measured yet".to_string(), |s| format!("{s:.1} tokens/s"))
        };
        let unusable = move || info().and_then(|b| b.webgpu_unusable).filter(|_| choice == BackendChoice::WebGpu);
        view! {
            <button
                role="radio"
                class="switch"
                aria-checked=move || current().to_string()
                data-testid=format!("switch-{}", label.to_lowercase())
                title=move || unusable().unwrap_or_default()
                disabled=move || unusable().is_some() || state.busy.get().is_some() || info().is_none()
                on:click=move |_| {
                    if !current() {
                        leptos::task::spawn_local(async move { state.switch_backend(choice).await });
                    }
                }
            >
                {label} " · " <span data-testid="switch-speed">{speed}</span>
            </button>
        }
    };
    view! {
        <div class="backend-switch" role="radiogroup" aria-label="Run the model on" data-testid="backend-switch">
            <span class="muted">"Run on "</span>
            {option(BackendChoice::WebGpu, "WebGPU")}
            {option(BackendChoice::Cpu, "CPU")}
        </div>
    }
}

/// The error, when it belongs at `place`: shown beside the action that failed, dismissable.
#[component]
pub fn ErrorNote(state: Playground, place: Place) -> impl IntoView {
    move || {
        state.error.get().filter(|(at, _)| *at == place).map(|(_, e)| {
            view! {
                <p class="alert" role="alert" data-testid="error" data-place=format!("{place:?}")>{e}
                    <button class="link" on:click=move |_| state.error.set(None) aria-label="Dismiss the error">"×"</button>
                </p>
            }
        })
    }
}
