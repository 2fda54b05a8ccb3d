//! The page: a prompt box, a Complete button, the streamed completion, and which backend produced it.

use std::cell::Cell;
use std::rc::Rc;

use hnet_gpt_model::generate::GenerateParams;
use hnet_gpt_model::tokenizer::Tokenizer;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::engine::{BackendInfo, Engine};
use crate::web;

/// Where the bundled model and tokenizer are served from (trunk copies `public/` into the site).
const TOKENIZER_URL: &str = "public/tokenizer.json";
const MODEL_URL: &str = "public/models/default.safetensors";

const EXAMPLE: &str = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n";

/// Everything the page knows about its model once loading finished.
#[derive(Clone)]
struct Loaded {
    engine: Engine,
    tokenizer: Rc<Tokenizer>,
}

#[component]
pub fn App() -> impl IntoView {
    let (status, set_status) = signal(String::from("Loading the model…"));
    let (error, set_error) = signal(None::<String>);
    let (backend, set_backend) = signal(None::<BackendInfo>);
    let (model_desc, set_model_desc) = signal(String::new());
    let (prompt, set_prompt) = signal(EXAMPLE.to_string());
    let (shown_prompt, set_shown_prompt) = signal(String::new());
    let (completion, set_completion) = signal(String::new());
    let (tokens, set_tokens) = signal(0usize);
    let (speed, set_speed) = signal(None::<f64>);
    let (busy, set_busy) = signal(true);
    let loaded = StoredValue::new_local(None::<Loaded>);
    let cancel = StoredValue::new_local(Rc::new(Cell::new(false)));

    spawn_local(async move {
        let force_cpu = web::query_param("gpu").as_deref() == Some("0");
        let result = async {
            let tokenizer = Tokenizer::from_json_bytes(&web::fetch_bytes(TOKENIZER_URL).await?).map_err(|e| e.to_string())?;
            set_status.set("Starting the backend…".into());
            let bytes = web::fetch_bytes(MODEL_URL).await?;
            let (engine, info) = Engine::load(&bytes, force_cpu).await?;
            Ok::<_, String>((Loaded { engine, tokenizer: Rc::new(tokenizer) }, info))
        }
        .await;
        match result {
            Ok((l, info)) => {
                set_model_desc.set(format!("{} · {} parameters", l.engine.arch(), format_count(l.engine.num_params())));
                set_status.set(format!("Ready (warm-up {:.1} s)", info.warmup_ms / 1000.0));
                set_backend.set(Some(info));
                loaded.set_value(Some(l));
                set_busy.set(false);
            }
            Err(e) => {
                set_status.set("Could not load the model".into());
                set_error.set(Some(e));
            }
        }
    });

    let run = move || {
        let Some(l) = loaded.get_value() else { return };
        if busy.get_untracked() {
            return;
        }
        let text = prompt.get_untracked();
        if text.trim().is_empty() {
            set_error.set(Some("Type or paste some code first: the prompt is empty.".into()));
            return;
        }
        set_error.set(None);
        set_busy.set(true);
        set_shown_prompt.set(text.clone());
        set_completion.set(String::new());
        set_tokens.set(0);
        set_speed.set(None);
        let stop = Rc::new(Cell::new(false));
        cancel.set_value(stop.clone());
        spawn_local(async move {
            let start = web::now_ms();
            let params = GenerateParams { max_new_tokens: 48, seed: start as u64, ..Default::default() };
            let result = l
                .engine
                .complete(&l.tokenizer, &text, params, &[], stop, |delta, n| {
                    set_completion.update(|c| c.push_str(delta));
                    set_tokens.set(n);
                    set_speed.set(Some(n as f64 / ((web::now_ms() - start) / 1000.0).max(1e-3)));
                })
                .await;
            if let Err(e) = result {
                set_error.set(Some(e));
            }
            set_busy.set(false);
        });
    };

    view! {
        <main>
            <header>
                <h1>"HNet-GPT playground"</h1>
                <p>"A GPT-2-family code model running in your browser. Paste code, press Complete (Ctrl+Enter)."</p>
            </header>
            <div class="status" role="status" aria-live="polite">
                <span class="pill" data-testid="status">{status}</span>
                <span class="pill" data-testid="backend">
                    {move || backend.get().map_or("Backend: …".to_string(), |b| format!("Backend: {}", b.name))}
                </span>
                {move || backend.get().and_then(|b| b.adapter).map(|a| view! {
                    <span class="pill" data-testid="adapter">{format!("Adapter: {}", a.name)}</span>
                    {a.fallback.then(|| view! { <span class="pill badge" data-testid="software-adapter">"software adapter"</span> })}
                })}
                {move || (!model_desc.get().is_empty()).then(|| view! { <span class="pill" data-testid="model">{model_desc}</span> })}
            </div>
            {move || backend.get().and_then(|b| b.fallback_reason).map(|r| view! {
                <p class="muted" data-testid="fallback-reason">{format!("Running on the CPU: {r}")}</p>
            })}
            {move || error.get().map(|e| view! { <p class="pill error" role="alert" data-testid="error">{e}</p> })}
            <section class="card">
                <label for="prompt">"Code"</label>
                <textarea
                    id="prompt"
                    spellcheck="false"
                    prop:value=prompt
                    on:input=move |ev| set_prompt.set(event_target_value(&ev))
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                            ev.prevent_default();
                            run();
                        }
                    }
                ></textarea>
                <div class="row">
                    <button data-testid="complete" on:click=move |_| run() disabled=move || busy.get()>"Complete"</button>
                    <button class="secondary" data-testid="stop" on:click=move |_| cancel.get_value().set(true)
                        disabled=move || !busy.get() || loaded.with_value(Option::is_none)>"Stop"</button>
                    <span class="muted" data-testid="token-count">{move || format!("{} tokens", tokens.get())}</span>
                    <span class="muted" data-testid="speed">{move || speed.get().map(|s| format!("{s:.1} tokens/s")).unwrap_or_default()}</span>
                </div>
                <pre class="output" aria-label="Completion"><span class="prompt">{shown_prompt}</span><span class="ghost" data-testid="completion">{completion}</span></pre>
            </section>
        </main>
    }
}

fn format_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}
