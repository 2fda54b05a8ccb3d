//! The status bar: activity, backend, adapter (with a badge for software adapters), model.

use leptos::prelude::*;

use crate::state::Playground;

/// Status pills and, when relevant, why the CPU runs the model and the last error.
#[component]
pub fn StatusBar(state: Playground) -> impl IntoView {
    let backend = state.backend;
    view! {
        <div class="status" role="status" aria-live="polite">
            <span class="pill" data-testid="status">{move || state.status.get()}</span>
            <span class="pill" data-testid="backend">
                {move || backend.get().map_or("Backend: …".to_string(), |b| format!("Backend: {}", b.name))}
            </span>
            {move || backend.get().and_then(|b| b.adapter).map(|a| view! {
                <span class="pill" data-testid="adapter">{format!("Adapter: {}", a.name)}</span>
                {a.fallback.then(|| view! { <span class="pill badge" data-testid="software-adapter" title="A software (fallback) WebGPU adapter: correct, but slow">"software adapter"</span> })}
            })}
            {move || (!state.model_desc.get().is_empty()).then(|| view! { <span class="pill" data-testid="model">{move || state.model_desc.get()}</span> })}
        </div>
        {move || backend.get().and_then(|b| b.fallback_reason).map(|r| view! {
            <p class="muted" data-testid="fallback-reason">{format!("Running on the CPU: {r}")}</p>
        })}
        {move || state.error.get().map(|e| view! {
            <p class="alert" role="alert" data-testid="error">{e}
                <button class="link" on:click=move |_| state.error.set(None) aria-label="Dismiss the error">"×"</button>
            </p>
        })}
    }
}
