//! Completion: sampling controls, Complete / Stop / Accept / Reject, and the streamed ghost suffix.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::page::state::{Busy, Playground};
use crate::protocol::{CompleteSettings, JobId, Reply, Request};
use crate::web;

/// Sampling settings, as the controls hold them.
#[derive(Clone, Copy)]
struct Controls {
    temperature: RwSignal<f32>,
    top_k: RwSignal<usize>,
    top_p: RwSignal<f32>,
    max_tokens: RwSignal<usize>,
    seed: RwSignal<u64>,
}

impl Controls {
    fn settings(&self) -> CompleteSettings {
        CompleteSettings {
            temperature: self.temperature.get_untracked(),
            top_k: self.top_k.get_untracked(),
            top_p: self.top_p.get_untracked(),
            max_tokens: self.max_tokens.get_untracked(),
            seed: self.seed.get_untracked(),
        }
    }
}

fn number_input<T: std::str::FromStr + ToString + Copy + Send + Sync + 'static>(
    id: &'static str,
    label: &'static str,
    value: RwSignal<T>,
    step: &'static str,
    min: &'static str,
    max: &'static str,
) -> impl IntoView {
    view! {
        <label class="control" for=id>
            <span>{label}</span>
            <input id=id type="number" step=step min=min max=max prop:value=move || value.get().to_string()
                on:change=move |ev| if let Ok(v) = event_target_value(&ev).parse() { value.set(v) } />
        </label>
    }
}

/// Starts a completion of the editor's code (used by the button and by Ctrl+Enter); the worker streams it.
fn start(
    state: Playground,
    controls: Controls,
    ghost: RwSignal<String>,
    tokens: RwSignal<usize>,
    speed: RwSignal<Option<f64>>,
    job: RwSignal<Option<JobId>>,
) {
    let Some(client) = state.client() else { return };
    if state.busy.get_untracked().is_some() || !state.model.with_untracked(Option::is_some) {
        return;
    }
    let text = state.code.get_untracked();
    if text.trim().is_empty() {
        state.error.set(Some("Type or paste some code first: the prompt is empty.".into()));
        return;
    }
    state.error.set(None);
    state.busy.set(Some(Busy::Generating));
    ghost.set(String::new());
    tokens.set(0);
    speed.set(None);
    web::mark("complete");
    let t0 = web::now_ms();
    let (id, done) = client.call(Request::Complete { prompt: text, settings: controls.settings() }, None, move |reply, _| {
        if let Reply::Text { delta, tokens: n } = reply {
            ghost.update(|g| g.push_str(&delta));
            tokens.set(n);
            speed.set(Some(n as f64 / ((web::now_ms() - t0) / 1000.0).max(1e-3)));
        }
    });
    job.set(Some(id));
    spawn_local(async move {
        let result = done.await;
        job.set(None);
        state.busy.set(None);
        if let Err(e) = result {
            state.error.set(Some(e));
        }
    });
}

/// The completion panel.
#[component]
pub fn CompletionPanel(
    state: Playground,
    /// Fires to start a completion (Ctrl+Enter in the editor).
    trigger: RwSignal<u64>,
    /// Compact layout for embedding.
    #[prop(default = false)]
    compact: bool,
) -> impl IntoView {
    let controls = Controls {
        temperature: RwSignal::new(0.6),
        top_k: RwSignal::new(40),
        top_p: RwSignal::new(0.95),
        max_tokens: RwSignal::new(48),
        seed: RwSignal::new(0),
    };
    let ghost = RwSignal::new(String::new());
    let tokens = RwSignal::new(0usize);
    let speed = RwSignal::new(None::<f64>);
    let job = RwSignal::new(None::<JobId>);
    let run = move || start(state, controls, ghost, tokens, speed, job);
    let stop = move |_| {
        if let (Some(client), Some(id)) = (state.client(), job.get_untracked()) {
            client.cancel(id);
        }
    };
    Effect::new(move |prev: Option<u64>| {
        let now = trigger.get();
        if prev.is_some_and(|p| p != now) {
            run();
        }
        now
    });
    let generating = move || state.busy.get() == Some(Busy::Generating);
    let idle_with_ghost = move || state.busy.get().is_none() && !ghost.with(String::is_empty);
    let accept = move |_| {
        let g = ghost.get_untracked();
        state.code.update(|c| c.push_str(&g));
        ghost.set(String::new());
    };
    view! {
        <div class="completion">
            {(!compact).then(|| view! {
                <fieldset class="controls">
                    <legend>"Sampling"</legend>
                    {number_input("temperature", "Temperature", controls.temperature, "0.1", "0", "2")}
                    {number_input("top-k", "Top-k", controls.top_k, "1", "0", "50257")}
                    {number_input("top-p", "Top-p", controls.top_p, "0.05", "0.05", "1")}
                    {number_input("max-tokens", "Max tokens", controls.max_tokens, "1", "1", "512")}
                    {number_input("seed", "Seed", controls.seed, "1", "0", "4294967295")}
                </fieldset>
            })}
            <div class="row">
                <button data-testid="complete" on:click=move |_| run() disabled=move || state.busy.get().is_some() || !state.has_model()>
                    "Complete"
                </button>
                <button class="secondary" data-testid="stop" on:click=stop disabled=move || !generating()>"Stop"</button>
                <button class="secondary" data-testid="accept" on:click=accept disabled=move || !idle_with_ghost() title="Append the completion to the code">"Accept"</button>
                <button class="secondary" data-testid="reject" on:click=move |_| ghost.set(String::new()) disabled=move || !idle_with_ghost()>"Reject"</button>
                <span class="muted" data-testid="token-count">{move || format!("{} tokens", tokens.get())}</span>
                <span class="muted" data-testid="speed">{move || speed.get().map(|s| format!("{s:.1} tokens/s")).unwrap_or_default()}</span>
            </div>
            <pre class="output" aria-label="Code with the proposed completion" aria-live="polite"><span class="prompt">{move || tail_lines(&state.code.get(), 6)}</span><span class="ghost" data-testid="completion">{move || ghost.get()}</span></pre>
        </div>
    }
}

/// The last `n` lines of `text` (the context the ghost suffix continues).
fn tail_lines(text: &str, n: usize) -> String {
    let starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let from = starts.len().saturating_sub(n);
    let prefix = if from > 0 { "…\n" } else { "" };
    format!("{prefix}{}", &text[starts[from]..])
}
