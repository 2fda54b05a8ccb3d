//! Models: the bundled default, a checkpoint from a URL (with progress, cached), or a local file from the CLI.
//! A file that does not load leaves the current model in place and says why. When `public/models/models.json`
//! lists several bundled models (one per architecture), an architecture selector switches between them. The
//! loaded model's card says what it is and where it came from.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::page::components::editor::target;
use crate::page::components::status::describe;
use crate::page::components::status::ErrorNote;
use crate::page::state::{format_bytes, format_count, hub_endpoint, BundledModel, Manifest, Place, Playground, MANIFEST_URL};
use crate::protocol::{HubInfo, ModelSource, Reply, Request};
use crate::web;

/// A short list of Hub models that fit the page (a model's f32 weights, converted tensor by tensor as they download,
/// must fit wasm32's 4 GB heap with a quarter to spare), with their licences and download sizes (safetensors).
/// Qwen2.5-Coder-0.5B comes first: the one trained for code, with fill-in-the-middle. Any other repository of a
/// supported family (GPT-2, GPTBigCode, Llama, Qwen2) can be typed in.
const HUB_MODELS: [(&str, &str); 8] = [
    (
        "Qwen/Qwen2.5-Coder-0.5B",
        "Qwen2.5-Coder-0.5B (for code, fill-in-the-middle; Qwen2 family, Apache-2.0) · 494M parameters · 988 MB (bf16)",
    ),
    ("HuggingFaceTB/SmolLM2-135M", "SmolLM2-135M (Llama family, Apache-2.0) · 135M parameters · about 270 MB (bf16)"),
    ("HuggingFaceTB/SmolLM2-360M", "SmolLM2-360M (Llama family, Apache-2.0) · 362M parameters · about 720 MB (bf16)"),
    (
        "bigcode/tiny_starcoder_py",
        "tiny_starcoder_py (Python, fill-in-the-middle; GPTBigCode family, BigCode OpenRAIL-M) · 164M parameters · about 660 MB",
    ),
    ("gpt2", "GPT-2 small (MIT) · 124M parameters · 548 MB"),
    ("distilgpt2", "DistilGPT-2 (Apache-2.0) · 82M parameters · 353 MB"),
    ("gpt2-medium", "GPT-2 medium (MIT) · 355M parameters · 1.5 GB"),
    ("codeparrot/codeparrot-small", "CodeParrot small (Python, its own BPE; Apache-2.0) · 111M parameters · about 0.5 GB"),
];

/// Downloads above this many bytes (of f32 weights) ask first.
const ASK_ABOVE_BYTES: usize = 100_000_000;

/// Loads a Hub model: asks the worker what it costs, asks the user before a large download, then loads it.
#[component]
fn HubLoader(state: Playground) -> impl IntoView {
    let repo = RwSignal::new(HUB_MODELS[0].0.to_string());
    let hybrid = RwSignal::new(true);
    let pending = RwSignal::new(None::<(String, HubInfo)>);
    let load = move |name: String| {
        pending.set(None);
        let source = ModelSource::Hub { repo: name, revision: "main".into(), hybrid: hybrid.get_untracked(), endpoint: hub_endpoint() };
        spawn_local(async move {
            state.load(source, None, Place::Models).await;
        });
    };
    let ask = move |_| {
        let spec = repo.get_untracked().trim().to_string();
        let Some(client) = state.client() else { return };
        if spec.is_empty() {
            state.fail(Place::Models, "Enter a Hub model id, such as gpt2 or OWNER/REPO.");
            return;
        }
        let (name, revision) = spec.split_once('@').map_or((spec.clone(), "main".to_string()), |(n, r)| (n.to_string(), r.to_string()));
        spawn_local(async move {
            let info = RwSignal::new(None::<HubInfo>);
            let request = Request::HubInfo { repo: name.clone(), revision: revision.clone(), endpoint: hub_endpoint() };
            let result = client
                .run(request, None, move |reply, _| {
                    if let Reply::HubInfo(i) = reply {
                        info.set(Some(i));
                    }
                })
                .await;
            match (result, info.get_untracked()) {
                (Err(e), _) => state.fail(Place::Models, format!("{}. The previous model is still loaded.", e.trim_end_matches('.'))),
                (Ok(_), Some(i)) if i.f32_bytes > ASK_ABOVE_BYTES => pending.set(Some((spec, i))),
                (Ok(_), _) => {
                    let source = ModelSource::Hub { repo: name, revision, hybrid: hybrid.get_untracked(), endpoint: hub_endpoint() };
                    state.load(source, None, Place::Models).await;
                }
            }
        });
    };
    view! {
        <fieldset class="controls hub" data-testid="hub">
            <legend>"From the Hugging Face Hub"</legend>
            <label class="control grow" for="hub-pick"><span>"Model"</span>
                <select id="hub-pick" on:change=move |ev| repo.set(event_target_value(&ev))>
                    {HUB_MODELS.iter().map(|(id, label)| view! { <option value=*id>{*label}</option> }).collect_view()}
                </select>
            </label>
            <label class="control grow" for="hub-repo"><span>"or a repo id"</span>
                <input id="hub-repo" data-testid="hub-repo" placeholder="OWNER/REPO[@REVISION]" prop:value=move || repo.get()
                    on:input=move |ev| repo.set(event_target_value(&ev)) />
            </label>
            <label class="check"><input type="checkbox" data-testid="hub-hybrid" prop:checked=move || hybrid.get()
                on:change=move |ev| hybrid.set(event_target_checked(&ev)) />" with a fresh H-Net encoder (GPT-2 + H-Net)"</label>
            <button class="secondary" data-testid="hub-load" on:click=ask disabled=move || state.busy.get().is_some()>"Load from the Hub"</button>
            {move || pending.get().map(|(spec, i)| {
                let name = spec.clone();
                view! {
                    <p class="alert warn" role="alertdialog" data-testid="hub-confirm">
                        {format!("{spec}: {} parameters ({}), about {} of weights to download and hold in memory. Continue?",
                            format_count(i.params), i.shape, format_bytes(i.f32_bytes))}
                        <button data-testid="hub-confirm-yes" on:click=move |_| load(name.clone())>"Download"</button>
                        <button class="secondary" on:click=move |_| pending.set(None)>"Cancel"</button>
                    </p>
                }
            })}
        </fieldset>
    }
}

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
            state.fail(Place::Models, "Enter the URL of a checkpoint (.safetensors written by hnet-gpt).");
            return;
        }
        spawn_local(async move {
            state.load(ModelSource::Url { label: format!("model from {u}"), url: u }, None, Place::Models).await;
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
            if !state.load(ModelSource::Url { url: model.url, label: format!("bundled {} model", model.arch) }, None, Place::Models).await {
                selected.set(previous);
            }
        });
    };
    let load_file = move |ev: web_sys::Event| {
        let Some(input) = target::<web_sys::HtmlInputElement>(&ev) else { return };
        let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
        // The File itself goes to the worker, which reads it: the page never copies the bytes.
        spawn_local(async move {
            state.load(ModelSource::File { name: file.name() }, Some(file), Place::Models).await;
        });
    };
    let card = move || {
        state.model.get().map(|m| {
            // The bundled models' manifest says what they are; checkpoints carry their own provenance.
            let about = m
                .source
                .starts_with("bundled")
                .then(|| bundled.with(|b| b.iter().find(|b| b.arch == m.arch).and_then(|b| b.about.clone())))
                .flatten();
            let rows = m.card.iter().map(|(k, v)| view! { <dt>{k.replace('_', " ")}</dt><dd>{v.clone()}</dd> }).collect_view();
            view! {
                <div class="model-card" data-testid="model-card">
                    <p><strong>{describe(&m)}</strong></p>
                    {about.map(|a| view! { <p class="muted" data-testid="model-about">{a}</p> })}
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
            <HubLoader state=state />
            <Downloads state=state />
            <ErrorNote state=state place=Place::Models />
        </section>
    }
}
