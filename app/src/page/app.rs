//! The page: status, editor and completion, the chunk view, fine-tuning and model loading — or, with `?embed=1`,
//! a compact widget for an `<iframe>` in documentation.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::page::components::chunk_view::ChunkView;
use crate::page::components::completion::CompletionPanel;
use crate::page::components::editor::Editor;
use crate::page::components::finetune::FineTunePanel;
use crate::page::components::models::ModelPanel;
use crate::page::components::status::StatusBar;
use crate::page::state::{hub_endpoint, Place, Playground};
use crate::protocol::ModelSource;
use crate::web;

const EXAMPLE: &str = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\ndef is_prime(n):\n";

/// Loads the model the URL names (`?model=hf:REPO[@REVISION]`, with `&hybrid=1` for GPT-2 + a fresh H-Net
/// encoder — how an embedded widget names a Hub model), else the saved fine-tuned model if this browser has one,
/// else the bundled model.
fn boot(state: Playground) {
    let source = match web::query_param("model").as_deref().and_then(|m| m.strip_prefix("hf:")) {
        Some(spec) => {
            let (repo, revision) = spec.split_once('@').unwrap_or((spec, "main"));
            ModelSource::Hub {
                repo: repo.into(),
                revision: revision.into(),
                hybrid: web::query_param("hybrid").as_deref() == Some("1"),
                endpoint: hub_endpoint(),
            }
        }
        None => ModelSource::SavedOrBundled,
    };
    spawn_local(async move {
        state.load(source, None, Place::Page).await;
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
                    <Editor code=state.code ghost=state.ghost handle=state.editor top_line=state.top_line stop_completion=state.stop_completion on_complete=Callback::new(move |_| trigger.update(|t| *t += 1)) />
                    <CompletionPanel state=state trigger=trigger />
                </section>
                <ChunkView state=state />
            </div>
            <div class="grid">
                <FineTunePanel state=state />
                <ModelPanel state=state />
            </div>
            <footer class="muted">"Everything runs locally in this tab, on WebGPU or the CPU (whichever is faster here; the switch above chooses). "
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
            <Editor code=state.code ghost=state.ghost handle=state.editor rows=8 stop_completion=state.stop_completion on_complete=Callback::new(move |_| trigger.update(|t| *t += 1)) />
            <CompletionPanel state=state trigger=trigger compact=true />
        }
        .into_any()
    };
    view! {
        <main class="embed" data-testid="embed" data-mode=mode.clone()>
            <div class="embed-head">
                <a href="./" target="_blank" rel="noopener">"HNet-GPT"</a>
                <StatusBar state=state compact=true />
            </div>
            {body}
        </main>
    }
}
