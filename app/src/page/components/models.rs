//! Models: the bundled default, a checkpoint from a URL (with progress, cached), or a local file from the CLI.
//! A file that does not load leaves the current model in place and says why. When `public/models/models.json`
//! lists several bundled models (one per architecture), an architecture selector switches between them. The
//! loaded model's card says what it is and where it came from.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::page::components::editor::target;
use crate::page::components::status::describe;
use crate::page::state::{format_bytes, BundledModel, Manifest, Playground, MANIFEST_URL};
use crate::protocol::ModelSource;
use crate::web;

/// Download progress, one bar per file (model, tokenizer), with sizes.
#[component]
pub fn Downloads(state: Playground) -> impl IntoView {
    view! {
        <ul class="downloads" data-testid="downloads">
            {move || state.downloads.get().into_iter().map(|d| {
                let size = match d.total {
                    Some(t) => format!("{} of {}", format_bytes(d.received), format_bytes(t)),
                    None => format_bytes(d.received),
                };
                view! {
                    <li data-testid="download-progress" data-file=d.file.clone()>
                        <span class="download-name">{d.file.clone()}</span>
                        <progress max=d.total.unwrap_or(0).to_string() value=d.received.to_string()
                            aria-label=format!("Downloading the {}", d.file)></progress>
                        <span class="muted">{size}</span>
                    </li>
                }
            }).collect_view()}
        </ul>
    }
}

/// The model panel.
#[component]
pub fn ModelPanel(state: Playground) -> impl IntoView {
    let url = RwSignal::new(String::new());
    let load_url = move |_| {
        let u = url.get_untracked().trim().to_string();
        if u.is_empty() {
            state.error.set(Some("Enter the URL of a checkpoint (.safetensors written by hnet-gpt).".into()));
            return;
        }
        spawn_local(async move {
            state.load(ModelSource::Url { label: format!("model from {u}"), url: u }, None).await;
        });
    };
    // The bundled models; the selector only appears when there is a choice.
    let bundled = RwSignal::new(Vec::<BundledModel>::new());
    let selected = RwSignal::new(0usize);
    spawn_local(async move {
        if let Ok(Ok(manifest)) = web::fetch_bytes(MANIFEST_URL).await.map(|b| serde_json::from_slice::<Manifest>(&b)) {
            bundled.set(manifest.models);
        }
    });
    let choose = move |ev: web_sys::Event| {
        let Ok(i) = event_target_value(&ev).parse::<usize>() else { return };
        let Some(model) = bundled.get_untracked().get(i).cloned() else { return };
        let previous = selected.get_untracked();
        selected.set(i);
        spawn_local(async move {
            if !state.load(ModelSource::Url { url: model.url, label: format!("bundled {} model", model.arch) }, None).await {
                selected.set(previous);
            }
        });
    };
    let load_file = move |ev: web_sys::Event| {
        let Some(input) = target::<web_sys::HtmlInputElement>(&ev) else { return };
        let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
        // The File itself goes to the worker, which reads it: the page never copies the bytes.
        spawn_local(async move {
            state.load(ModelSource::File { name: file.name() }, Some(file)).await;
        });
    };
    let card = move || {
        state.model.get().map(|m| {
            let rows = m.card.iter().map(|(k, v)| view! { <dt>{k.replace('_', " ")}</dt><dd>{v.clone()}</dd> }).collect_view();
            view! {
                <div class="model-card" data-testid="model-card">
                    <p><strong>{describe(&m)}</strong></p>
                    <dl>{rows}</dl>
                </div>
            }
        })
    };
    view! {
        <section class="card" aria-labelledby="models-title">
            <h2 id="models-title">"Model"</h2>
            {card}
            {move || (bundled.get().len() > 1).then(|| view! {
                <div class="row">
                    <label for="arch-select">"Architecture"</label>
                    <select id="arch-select" data-testid="arch-select" on:change=choose disabled=move || state.busy.get().is_some()>
                        {bundled.get().into_iter().enumerate().map(|(i, m)| view! {
                            <option value=i.to_string() selected=move || selected.get() == i>{m.label}</option>
                        }).collect_view()}
                    </select>
                </div>
            })}
            <div class="row">
                <label for="model-file">"Checkpoint file"</label>
                <input id="model-file" data-testid="model-file" type="file" accept=".safetensors" on:change=load_file
                    disabled=move || state.busy.get().is_some() />
            </div>
            <div class="row">
                <label for="model-url">"Checkpoint URL"</label>
                <input id="model-url" class="grow" type="url" placeholder="https://…/model.safetensors" prop:value=move || url.get()
                    on:input=move |ev| url.set(event_target_value(&ev)) />
                <button class="secondary" on:click=load_url disabled=move || state.busy.get().is_some()>"Load"</button>
            </div>
            <Downloads state=state />
        </section>
    }
}
