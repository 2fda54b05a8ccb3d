//! Fine-tuning in the browser: the user's snippets (pasted or picked files) train the loaded model a few steps,
//! with a live loss curve, tokens/s and ETA; perplexity on a held-back part before and after; then save in this
//! browser (IndexedDB), download a checkpoint the CLI loads, or reset to the bundled model.

use std::cell::Cell;
use std::rc::Rc;

use hnet_gpt_model::train::data::Packed;
use hnet_gpt_model::Arch;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::components::editor::target;
use crate::engine::{FineTune, TuneSettings};
use hnet_gpt_model::io::params::TrainScope;
use crate::state::{Busy, Playground, MODEL_URL, SAVED_KEY};
use crate::web;

/// Snippets are separated by a line `# ---` (or come one per file).
pub const SEPARATOR: &str = "# ---";

fn split_snippets(text: &str) -> Vec<String> {
    text.split(&format!("\n{SEPARATOR}\n")).map(|s| s.trim_matches('\n').to_string()).filter(|s| !s.trim().is_empty()).collect()
}

/// The loss curve as an SVG polyline.
fn curve(losses: &[f64]) -> impl IntoView {
    let (w, h) = (320.0, 120.0);
    let (lo, hi) = losses.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let span = (hi - lo).max(1e-6);
    let n = losses.len().max(2) - 1;
    let points: String = losses
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{:.1},{:.1} ", 8.0 + (w - 16.0) * i as f64 / n as f64, 8.0 + (h - 16.0) * (hi - l) / span))
        .collect();
    let label = losses.last().map(|l| format!("loss {l:.3}")).unwrap_or_default();
    view! {
        <svg class="curve" viewBox=format!("0 0 {w} {h}") role="img" aria-label=format!("Training loss curve, {label}") data-testid="loss-curve"
            data-losses=serde_json::to_string(losses).unwrap_or_default()>
            <rect x="0" y="0" width=w height=h class="curve-bg"></rect>
            <polyline points=points class="curve-line"></polyline>
            <text x="10" y="18" class="curve-text">{format!("{hi:.2}")}</text>
            <text x="10" y=h - 10.0 class="curve-text">{format!("{lo:.2}")}</text>
        </svg>
    }
}

/// The fine-tuning panel.
#[component]
pub fn FineTunePanel(state: Playground) -> impl IntoView {
    let snippets = RwSignal::new(String::new());
    let steps = RwSignal::new(10usize);
    let lr = RwSignal::new(1e-3f64);
    let batch = RwSignal::new(2usize);
    let everything = RwSignal::new(false);
    let losses = RwSignal::new(Vec::<f64>::new());
    let progress = RwSignal::new(String::new());
    let before_after = RwSignal::new((None::<f64>, None::<f64>));
    let cancel = StoredValue::new_local(Rc::new(Cell::new(false)));
    let trained = RwSignal::new(false);

    let on_files = move |ev: web_sys::Event| {
        let Some(input) = target::<web_sys::HtmlInputElement>(&ev) else { return };
        let Some(files) = input.files() else { return };
        spawn_local(async move {
            let mut added = Vec::new();
            for i in 0..files.length() {
                let Some(file) = files.get(i) else { continue };
                match web::read_file(&file).await.map(String::from_utf8) {
                    Ok(Ok(text)) => added.push(text),
                    _ => state.error.set(Some(format!("{} is not a UTF-8 text file; skipped.", file.name()))),
                }
            }
            snippets.update(|s| {
                for text in added {
                    if !s.is_empty() {
                        s.push_str(&format!("\n{SEPARATOR}\n"));
                    }
                    s.push_str(&text);
                }
            });
        });
    };

    let train = move |_| {
        let (Some(engine), Some(tok)) = (state.engine(), state.tokenizer()) else { return };
        let docs = split_snippets(&snippets.get_untracked());
        let encoded: Vec<Vec<u32>> = docs.iter().filter_map(|d| tok.encode(d).ok()).filter(|d| !d.is_empty()).collect();
        let total: usize = encoded.iter().map(Vec::len).sum();
        if total < 24 {
            state.error.set(Some("Add more code to train on: at least a few lines (separate snippets with a line `# ---`).".into()));
            return;
        }
        // Hold back the last fifth (of the snippets, or of the only snippet's tokens) to measure perplexity.
        let (train_docs, held): (Vec<Vec<u32>>, Vec<Vec<u32>>) = if encoded.len() >= 2 {
            let k = encoded.len().div_ceil(5);
            (encoded[..encoded.len() - k].to_vec(), encoded[encoded.len() - k..].to_vec())
        } else {
            let d = &encoded[0];
            let cut = d.len() * 4 / 5;
            (vec![d[..cut].to_vec()], vec![d[cut..].to_vec()])
        };
        let stream_len: usize = train_docs.iter().map(|d| d.len() + 1).sum();
        let seq_len = 64.min(stream_len.saturating_sub(1)).max(8);
        let data = Packed::new(train_docs.into_iter().map(|d| (d, 0)), seq_len);
        let settings = TuneSettings {
            steps: steps.get_untracked().clamp(1, 1000),
            lr: lr.get_untracked(),
            batch: batch.get_untracked().clamp(1, 16),
            seq_len,
            scope: if everything.get_untracked() { TrainScope::Everything } else { TrainScope::EncoderAndFusion },
        };
        state.error.set(None);
        state.busy.set(Some(Busy::Training));
        losses.set(Vec::new());
        before_after.set((None, None));
        let stop = Rc::new(Cell::new(false));
        cancel.set_value(stop.clone());
        spawn_local(async move {
            let result: Result<(), String> = async {
                progress.set("Measuring perplexity on the held-back part…".into());
                let before = engine.perplexity(&held).await?;
                before_after.set((Some(before), None));
                let mut tuner = FineTune::start(&engine, data, &settings).await?;
                let t0 = web::now_ms();
                for step in 1..=settings.steps {
                    if stop.get() {
                        progress.set(format!("Cancelled after {} steps.", step - 1));
                        break;
                    }
                    if let Some(l) = tuner.step().await? {
                        losses.update(|v| v.push(l));
                    }
                    let elapsed = (web::now_ms() - t0) / 1000.0;
                    let tps = (step * settings.batch * settings.seq_len) as f64 / elapsed.max(1e-3);
                    let eta = elapsed / step as f64 * (settings.steps - step) as f64;
                    progress.set(format!("Step {step}/{} · {tps:.0} tokens/s · ETA {eta:.0} s", settings.steps));
                    web::yield_now().await;
                }
                let tuned = tuner.finish();
                let after = tuned.perplexity(&held).await?;
                before_after.set((Some(before), Some(after)));
                state.set_engine(tuned, "fine-tuned here (not saved yet)");
                trained.set(true);
                Ok(())
            }
            .await;
            if let Err(e) = result {
                state.error.set(Some(format!("Fine-tuning failed: {e}. The previous model is still loaded.")));
            }
            state.busy.set(None);
        });
    };

    let save = move |_| {
        let Some(engine) = state.engine() else { return };
        spawn_local(async move {
            match engine.checkpoint_bytes("fine-tuned in the HNet-GPT playground").await {
                Ok(bytes) => match web::idb::put(SAVED_KEY, &bytes).await {
                    Ok(()) => {
                        state.saved.set(true);
                        state.status.set("Saved in this browser: it will be restored on reload".into());
                        state.set_engine(engine, "fine-tuned here (saved in this browser)");
                    }
                    Err(e) => state.error.set(Some(format!("Could not save: {e}"))),
                },
                Err(e) => state.error.set(Some(e)),
            }
        });
    };
    let download = move |_| {
        let Some(engine) = state.engine() else { return };
        spawn_local(async move {
            match engine.checkpoint_bytes("fine-tuned in the HNet-GPT playground").await {
                Ok(bytes) => {
                    if let Err(e) = web::download(&bytes, "hnet-gpt-finetuned.safetensors") {
                        state.error.set(Some(e));
                    }
                }
                Err(e) => state.error.set(Some(e)),
            }
        });
    };
    let reset = move |_| {
        spawn_local(async move {
            let _ = web::idb::delete(SAVED_KEY).await;
            state.saved.set(false);
            trained.set(false);
            match web::fetch_bytes(MODEL_URL).await {
                Ok(bytes) => {
                    state.load_bytes(&bytes, "bundled model").await;
                }
                Err(e) => state.error.set(Some(e)),
            }
        });
    };
    let training = move || state.busy.get() == Some(Busy::Training);
    let is_hybrid = move || {
        let _ = state.model_version.get();
        state.engine().is_some_and(|e| e.arch() == Arch::Hybrid)
    };

    view! {
        <section class="card" aria-labelledby="finetune-title">
            <h2 id="finetune-title">"Fine-tune on your code"</h2>
            <p class="muted">"Paste snippets (separate them with a line " <code>{SEPARATOR}</code> ") or pick files. The last fifth is held back to measure perplexity."</p>
            <label for="snippets">"Snippets"</label>
            <textarea id="snippets" data-testid="snippets" rows="6" spellcheck="false" prop:value=move || snippets.get()
                on:input=move |ev| snippets.set(event_target_value(&ev))></textarea>
            <div class="row">
                <label for="snippet-files">"Files"</label>
                <input id="snippet-files" type="file" multiple accept=".py,.js,.ts,.c,.h,.cc,.cpp,.hpp,.txt" on:change=on_files />
            </div>
            <fieldset class="controls">
                <legend>"Training"</legend>
                <label class="control" for="ft-steps"><span>"Steps"</span><input id="ft-steps" data-testid="ft-steps" type="number" min="1" max="1000"
                    prop:value=move || steps.get().to_string() on:change=move |ev| if let Ok(v) = event_target_value(&ev).parse() { steps.set(v) } /></label>
                <label class="control" for="ft-lr"><span>"Learning rate"</span><input id="ft-lr" type="number" step="0.0001" min="0"
                    prop:value=move || lr.get().to_string() on:change=move |ev| if let Ok(v) = event_target_value(&ev).parse() { lr.set(v) } /></label>
                <label class="control" for="ft-batch"><span>"Batch"</span><input id="ft-batch" type="number" min="1" max="16"
                    prop:value=move || batch.get().to_string() on:change=move |ev| if let Ok(v) = event_target_value(&ev).parse() { batch.set(v) } /></label>
                <label class="control" for="ft-scope"><span>"What trains"</span>
                    <select id="ft-scope" data-testid="ft-scope" on:change=move |ev| everything.set(event_target_value(&ev) == "all")>
                        <option value="encoder" selected=true>{move || if is_hybrid() { "H-Net encoder + fusion (GPT-2 frozen)" } else { "the whole model" }}</option>
                        <option value="all">"everything"</option>
                    </select>
                </label>
            </fieldset>
            <div class="row">
                <button data-testid="train" on:click=train disabled=move || state.busy.get().is_some() || state.engine().is_none()>"Train"</button>
                <button class="secondary" data-testid="cancel-train" on:click=move |_| cancel.get_value().set(true) disabled=move || !training()>"Cancel"</button>
                <span class="muted" data-testid="train-progress">{move || progress.get()}</span>
            </div>
            {move || (!losses.with(Vec::is_empty)).then(|| curve(&losses.get()))}
            <p class="muted" data-testid="perplexity">{move || match before_after.get() {
                (Some(b), Some(a)) => format!("Held-back perplexity: {b:.2} before → {a:.2} after"),
                (Some(b), None) => format!("Held-back perplexity before: {b:.2}"),
                _ => String::new(),
            }}</p>
            <div class="row">
                <button class="secondary" data-testid="save" on:click=save disabled=move || state.busy.get().is_some() || !trained.get()>"Save in this browser"</button>
                <button class="secondary" data-testid="download" on:click=download disabled=move || state.busy.get().is_some() || state.engine().is_none()>"Download checkpoint"</button>
                <button class="secondary" data-testid="reset" on:click=reset disabled=move || state.busy.get().is_some()>"Reset to the bundled model"</button>
            </div>
        </section>
    }
}
