//! Models: the bundled default, a checkpoint from a URL (with progress, cached), or a local file from the CLI.
//! A file that does not load leaves the current model in place and says why. When `public/models/models.json`
//! lists several bundled models (one per architecture), an architecture selector switches between them.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::components::editor::target;
use crate::state::{Busy, BundledModel, Manifest, Playground, MANIFEST_URL};
use crate::web;

/// The model panel.
#[component]
pub fn ModelPanel(state: Playground) -> impl IntoView {
    let url = RwSignal::new(String::new());
    let progress = RwSignal::new(None::<(usize, Option<usize>)>);
    // Fetches a checkpoint (progress bar, Cache API) and loads it; true when it loaded. The URL field and the
    // architecture selector both load through here.
    let load_from = move |url: String, source: String| async move {
        state.busy.set(Some(Busy::Loading));
        let result = web::fetch_cached(&url, |got, total| progress.set(Some((got, total)))).await;
        progress.set(None);
        state.busy.set(None);
        match result {
            Ok(bytes) => state.load_bytes(&bytes, &source).await,
            Err(e) => {
                state.error.set(Some(format!("{e}. The previous model is still loaded.")));
                false
            }
        }
    };
    let load_url = move |_| {
        let u = url.get_untracked().trim().to_string();
        if u.is_empty() {
            state.error.set(Some("Enter the URL of a checkpoint (.safetensors written by hnet-gpt).".into()));
            return;
        }
        spawn_local(async move {
            load_from(u.clone(), format!("model from {u}")).await;
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
            if !load_from(model.url, format!("bundled {} model", model.arch)).await {
                selected.set(previous);
            }
        });
    };
    let load_file = move |ev: web_sys::Event| {
        let Some(input) = target::<web_sys::HtmlInputElement>(&ev) else { return };
        let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
        spawn_local(async move {
            match web::read_file(&file).await {
                Ok(bytes) => {
                    state.load_bytes(&bytes, &format!("local file {}", file.name())).await;
                }
                Err(e) => state.error.set(Some(e)),
            }
        });
    };
    view! {
        <section class="card" aria-labelledby="models-title">
            <h2 id="models-title">"Model"</h2>
            <p class="muted">{move || format!("Loaded: {}", state.model_desc.get())}</p>
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
            {move || progress.get().map(|(got, total)| view! {
                <progress max=total.unwrap_or(0).to_string() value=got.to_string() aria-label="Download progress"></progress>
                <span class="muted">{format!("{:.1} MB", got as f64 / 1e6)}</span>
            })}
        </section>
    }
}
