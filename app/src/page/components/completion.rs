//! Completion: sampling controls, Complete / Stop / Accept / Reject, and the streamed ghost suffix.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::page::components::status::ErrorNote;
use crate::page::state::{Busy, Place, Playground};
use hnet_gpt_model::generate::stop::Scope;

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
    scope: RwSignal<Scope>,
}

impl Controls {
    fn settings(&self) -> CompleteSettings {
        CompleteSettings {
            temperature: self.temperature.get_untracked(),
            top_k: self.top_k.get_untracked(),
            top_p: self.top_p.get_untracked(),
            max_tokens: self.max_tokens.get_untracked(),
            seed: self.seed.get_untracked(),
            scope: self.scope.get_untracked(),
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

/// Starts a completion of the code before the editor's cursor (the button, Ctrl+Enter); the worker streams it into
/// the ghost text.
/// What the panel shows of the completion in flight.
#[derive(Clone, Copy)]
struct Live {
    tokens: RwSignal<usize>,
    speed: RwSignal<Option<f64>>,
    note: RwSignal<String>,
    job: RwSignal<Option<JobId>>,
    /// Esc dropped the ghost: text still arriving from the stopped job is not shown.
    dropped: RwSignal<bool>,
}

fn start(state: Playground, controls: Controls, live: Live) {
    let Live { tokens, speed, note, job, dropped } = live;
    let Some(client) = state.client() else { return };
    if state.busy.get_untracked().is_some() || !state.model.with_untracked(Option::is_some) {
        return;
    }
    let prompt = state.editor.with_value(|e| e.as_ref().and_then(|e| e.prefix())).unwrap_or_else(|| state.code.get_untracked());
    let suffix = state.editor.with_value(|e| e.as_ref().and_then(|e| e.suffix())).unwrap_or_default();
    if prompt.trim().is_empty() {
        state.fail(Place::Completion, "Type or paste some code first: the prompt is empty.");
        return;
    }
    state.error.set(None);
    state.busy.set(Some(Busy::Generating));
    let ghost = state.ghost;
    ghost.set(String::new());
    tokens.set(0);
    speed.set(None);
    note.set(String::new());
    dropped.set(false);
    web::mark("complete");
    let t0 = web::now_ms();
    let (id, done) = client.call(Request::Complete { prompt, suffix, settings: controls.settings() }, None, move |reply, _| {
        if let Reply::Text { delta, tokens: n } = reply {
            if dropped.get_untracked() {
                return;
            }
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
        match result {
            // A ghost of whitespace only is not shown: the panel says there was nothing to propose.
            Ok(_) if dropped.get_untracked() => ghost.set(String::new()),
            Ok(_) if ghost.with_untracked(|g| g.trim().is_empty()) => {
                ghost.set(String::new());
                note.set("no completion".into());
            }
            Ok(_) => {}
            Err(e) => state.fail(Place::Completion, e),
        }
    });
}

/// Pause in typing after which an automatic completion starts.
const TYPING_PAUSE_MS: i32 = 350;

/// Completion as the person types: every edit stops the completion in flight (its ghost is stale) and, when `auto`
/// is on, a new one starts after a pause of [`TYPING_PAUSE_MS`]. Returns `auto`: off until the backend is known, then
/// on for a hardware GPU and off for the CPU path and software adapters (a completion per pause would keep those
/// busy), unless the person has set it (`chosen`).
fn auto_complete(state: Playground, live: Live, chosen: StoredValue<bool>, run: impl Fn() + Copy + 'static) -> RwSignal<bool> {
    let auto = RwSignal::new(false);
    Effect::new(move |_| {
        let fast = state.backend.with(|b| b.as_ref().is_some_and(|b| b.is_webgpu() && !b.software));
        if !chosen.get_value() {
            auto.set(fast);
        }
    });
    let edits = StoredValue::new(0u64);
    Effect::new(move |first: Option<()>| {
        state.code.track();
        if first.is_none() {
            return;
        }
        if let (Some(client), Some(id)) = (state.client(), live.job.get_untracked()) {
            live.dropped.set(true);
            client.cancel(id);
        }
        let this = edits.get_value() + 1;
        edits.set_value(this);
        if !auto.get_untracked() {
            return;
        }
        spawn_local(async move {
            web::sleep_ms(TYPING_PAUSE_MS).await;
            // The stopped completion hands the worker back within a token.
            while edits.get_value() == this && state.busy.get_untracked() == Some(Busy::Generating) {
                web::sleep_ms(20).await;
            }
            if edits.get_value() == this && auto.get_untracked() {
                run();
            }
        });
    });
    auto
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
        max_tokens: RwSignal::new(64),
        seed: RwSignal::new(0),
        scope: RwSignal::new(Scope::Block),
    };
    let ghost = state.ghost;
    let tokens = RwSignal::new(0usize);
    let speed = RwSignal::new(None::<f64>);
    let job = RwSignal::new(None::<JobId>);
    let note = RwSignal::new(String::new());
    let live = Live { tokens, speed, note, job, dropped: RwSignal::new(false) };
    let run = move || start(state, controls, live);
    let chosen = StoredValue::new(false);
    let auto = auto_complete(state, live, chosen, run);
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
    // Esc in the editor dropped the ghost: the completion streaming into it stops too.
    Effect::new(move |prev: Option<u64>| {
        let now = state.stop_completion.get();
        if prev.is_some_and(|p| p != now) {
            if let (Some(client), Some(id)) = (state.client(), job.get_untracked()) {
                live.dropped.set(true);
                client.cancel(id);
            }
        }
        now
    });
    let generating = move || state.busy.get() == Some(Busy::Generating);
    let idle_with_ghost = move || state.busy.get().is_none() && !ghost.with(String::is_empty);
    // Into the editor at the ghost's place (Tab does the same from the keyboard).
    let accept = move |_| {
        match state.editor.get_value() {
            Some(editor) => editor.accept(),
            None => state.code.update(|c| c.push_str(&ghost.get_untracked())),
        }
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
                    <label class="control" for="scope">
                        <span>"Complete"</span>
                        <select id="scope" data-testid="scope" on:change=move |ev| {
                            if let Ok(scope) = event_target_value(&ev).parse() { controls.scope.set(scope) }
                        }>
                            <option value="line">"the line"</option>
                            <option value="block" selected>"the block"</option>
                            <option value="free">"up to max tokens"</option>
                        </select>
                    </label>
                </fieldset>
            })}
            {(!compact).then(|| view! {
                <label class="row" title="After a pause in typing, ask for a completion at the cursor; a keystroke stops the one in flight">
                    <input type="checkbox" data-testid="auto-complete" prop:checked=move || auto.get()
                        on:change=move |ev| {
                            chosen.set_value(true);
                            auto.set(event_target_checked(&ev));
                        } />
                    " Complete as I type (after a 350 ms pause)"
                </label>
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
                <span class="muted" data-testid="completion-note" aria-live="polite">{move || note.get()}</span>
            </div>
            <ErrorNote state=state place=Place::Completion />
            // The ghost text lives in the editor; this copy is for screen readers (and says what is proposed).
            <p class="sr-only" aria-live="polite">"Proposed completion: "<span data-testid="completion">{move || ghost.get()}</span></p>
        </div>
    }
}
