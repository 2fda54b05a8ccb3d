//! The page: status, editor and completion, the chunk view, fine-tuning and model loading — or, with `?embed=1`,
//! a compact widget for an `<iframe>` in documentation.

use hnet_gpt_model::io::tokenizer::Tokenizer;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::components::chunk_view::ChunkView;
use crate::components::completion::CompletionPanel;
use crate::components::editor::Editor;
use crate::components::finetune::FineTunePanel;
use crate::components::models::ModelPanel;
use crate::components::status::StatusBar;
use crate::state::{Playground, MODEL_URL, SAVED_KEY, TOKENIZER_URL};
use crate::web;

const EXAMPLE: &str = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\ndef is_prime(n):\n";

/// Loads the tokenizer, then the saved fine-tuned model if this browser has one, else the bundled model.
fn boot(state: Playground) {
    spawn_local(async move {
        match web::fetch_bytes(TOKENIZER_URL).await.and_then(|b| Tokenizer::from_json_bytes(&b).map_err(|e| e.to_string())) {
            Ok(t) => state.set_tokenizer(t),
            Err(e) => {
                state.error.set(Some(format!("Could not load the tokenizer: {e}")));
                state.status.set("Could not start".into());
                state.busy.set(None);
                return;
            }
        }
        if let Ok(Some(bytes)) = web::idb::get(SAVED_KEY).await {
            state.saved.set(true);
            if state.load_bytes(&bytes, "fine-tuned model restored from this browser").await {
                return;
            }
        }
        match web::fetch_bytes(MODEL_URL).await {
            Ok(bytes) => {
                state.load_bytes(&bytes, "bundled model").await;
            }
            Err(e) => {
                state.error.set(Some(format!("Could not load the bundled model: {e}")));
                state.status.set("No model loaded".into());
                state.busy.set(None);
            }
        }
    });
}

/// The full playground.
#[component]
pub fn App() -> impl IntoView {
    let state = Playground::new(web::query_param("code").unwrap_or_else(|| EXAMPLE.to_string()));
    let trigger = RwSignal::new(0u64);
    boot(state);
    view! {
        <main>
            <header>
                <h1>"HNet-GPT playground"</h1>
                <p class="lede">"A GPT-2 code model with an H-Net dynamic-chunking encoder, running in your browser. Paste code, see how the model chunks it, complete it, fine-tune it on your own snippets."</p>
            </header>
            <StatusBar state=state />
            <div class="grid">
                <section class="card" aria-labelledby="code-title">
                    <h2 id="code-title">"Code"</h2>
                    <Editor code=state.code on_complete=Callback::new(move |_| trigger.update(|t| *t += 1)) />
                    <CompletionPanel state=state trigger=trigger />
                </section>
                <ChunkView state=state />
            </div>
            <div class="grid">
                <FineTunePanel state=state />
                <ModelPanel state=state />
            </div>
            <footer class="muted">"Everything runs locally in this tab: WebGPU when available, otherwise the CPU. "
                <a href="public/embed-example.html">"Embedding example"</a></footer>
        </main>
    }
}

/// The compact widget for `<iframe>` embedding: `?embed=1&mode=complete|chunks&code=…`.
#[component]
pub fn Embed() -> impl IntoView {
    let mode = web::query_param("mode").unwrap_or_else(|| "complete".into());
    let state = Playground::new(web::query_param("code").unwrap_or_else(|| EXAMPLE.to_string()));
    let trigger = RwSignal::new(0u64);
    boot(state);
    let body = if mode == "chunks" {
        view! { <ChunkView state=state /> }.into_any()
    } else {
        view! {
            <Editor code=state.code rows=8 on_complete=Callback::new(move |_| trigger.update(|t| *t += 1)) />
            <CompletionPanel state=state trigger=trigger compact=true />
        }
        .into_any()
    };
    view! {
        <main class="embed" data-testid="embed" data-mode=mode.clone()>
            <div class="embed-head">
                <a href="./" target="_blank" rel="noopener">"HNet-GPT"</a>
                <StatusBar state=state />
            </div>
            {body}
        </main>
    }
}
