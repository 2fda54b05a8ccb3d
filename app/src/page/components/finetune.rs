//! Fine-tuning in the browser: the user's snippets (pasted or picked files) train the loaded model a few steps,
//! with a live loss curve, tokens/s and ETA; perplexity on a held-back part before and after; then save in this
//! browser (IndexedDB), download a checkpoint the CLI loads, or reset to the bundled model.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::page::components::editor::target;
use crate::page::components::status::ErrorNote;
use crate::page::state::{format_bytes, Busy, Place, Playground};
use crate::protocol::{JobId, Reply, Request, Scope, TuneRequest};
use crate::web;

/// Snippets are separated by a line `# ---` (or come one per file).
pub const SEPARATOR: &str = "# ---";

fn split_snippets(text: &str) -> Vec<String> {
    text.split(&format!("\n{SEPARATOR}\n")).map(|s| s.trim_matches('\n').to_string()).filter(|s| !s.trim().is_empty()).collect()
}

/// The loss curve as an SVG polyline over axes: the step (1 to the steps planned, so the curve grows across the
/// plot) and the loss (lowest to highest seen). `losses` holds (step, loss) pairs.
fn curve(losses: &[(usize, f64)], planned: usize) -> impl IntoView {
    let (w, h) = (320.0, 140.0);
    // The plot area, inside margins for the tick labels and axis titles.
    let (left, right, top, bottom) = (46.0, w - 10.0, 10.0, h - 30.0);
    let (lo, hi) = losses.iter().fold((f64::MAX, f64::MIN), |(a, b), &(_, x)| (a.min(x), b.max(x)));
    let span = (hi - lo).max(1e-6);
    let last = planned.max(losses.last().map_or(1, |&(s, _)| s)).max(2);
    let x = |step: usize| left + (right - left) * (step.max(1) - 1) as f64 / (last - 1) as f64;
    let y = |loss: f64| top + (bottom - top) * (hi - loss) / span;
    let points: String = losses.iter().map(|&(s, l)| format!("{:.1},{:.1} ", x(s), y(l))).collect();
    let label = losses.last().map(|(s, l)| format!("loss {l:.3} at step {s} of {planned}")).unwrap_or_default();
    let values: Vec<f64> = losses.iter().map(|&(_, l)| l).collect();
    view! {
        <svg class="curve" viewBox=format!("0 0 {w} {h}") role="img" aria-label=format!("Training loss curve, {label}") data-testid="loss-curve"
            data-losses=serde_json::to_string(&values).unwrap_or_default()>
            <rect x="0" y="0" width=w height=h class="curve-bg"></rect>
            <polyline points=format!("{left},{top} {left},{bottom} {right},{bottom}") class="curve-axis"></polyline>
            <polyline points=points class="curve-line"></polyline>
            <g data-testid="loss-axis">
                <text x=left - 4.0 y=top + 8.0 text-anchor="end" class="curve-text">{format!("{hi:.2}")}</text>
                <text x=left - 4.0 y=bottom text-anchor="end" class="curve-text">{format!("{lo:.2}")}</text>
                <text x="4" y=(top + bottom) / 2.0 + 4.0 class="curve-text">"loss"</text>
            </g>
            <g data-testid="step-axis">
                <text x=left y=bottom + 13.0 text-anchor="middle" class="curve-text">"1"</text>
                <text x=right y=bottom + 13.0 text-anchor="end" class="curve-text">{last.to_string()}</text>
                <text x=(left + right) / 2.0 y=h - 4.0 text-anchor="middle" class="curve-text">"step"</text>
            </g>
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
    let losses = RwSignal::new(Vec::<(usize, f64)>::new());
    let planned = RwSignal::new(0usize);
    let progress = RwSignal::new(String::new());
    let before_after = RwSignal::new((None::<f64>, None::<f64>));
    let job = RwSignal::new(None::<JobId>);
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
                    _ => state.fail(Place::FineTune, format!("{} is not a UTF-8 text file; skipped.", file.name())),
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
        let Some(client) = state.client() else { return };
        if state.busy.get_untracked().is_some() {
            return;
        }
        let request = TuneRequest {
            snippets: split_snippets(&snippets.get_untracked()),
            steps: steps.get_untracked().clamp(1, 1000),
            lr: lr.get_untracked(),
            batch: batch.get_untracked().clamp(1, 16),
            scope: if everything.get_untracked() { Scope::Everything } else { Scope::EncoderAndFusion },
        };
        state.error.set(None);
        state.busy.set(Some(Busy::Training));
        losses.set(Vec::new());
        before_after.set((None, None));
        progress.set(String::new());
        web::mark("fine-tune");
        let (id, done) = client.call(Request::FineTune(request), None, move |reply, _| match reply {
            Reply::Progress(text) => progress.set(text),
            Reply::Perplexity { before, after } => before_after.set((Some(before), after)),
            Reply::Step { step, steps, loss, tokens_per_s, eta_s, step_ms, memory_bytes, on_gpu } => {
                planned.set(steps);
                if let Some(l) = loss {
                    losses.update(|v| v.push((step, l)));
                }
                // The status bar's memory pill follows the figure while training, not the one after loading (when
                // the step ran on the backend the bar names).
                if let Some(bytes) = memory_bytes {
                    state.backend.update(|b| {
                        if let Some(b) = b.as_mut().filter(|b| b.is_webgpu() == on_gpu) {
                            b.memory_bytes = Some(bytes)
                        }
                    });
                }
                let memory = match memory_bytes {
                    Some(b) if on_gpu => {
                        format!(" · GPU memory {}", format_bytes(b as usize))
                    }
                    Some(b) => format!(" · worker memory {}", format_bytes(b as usize)),
                    None => String::new(),
                };
                progress.set(format!(
                    "Step {step}/{steps} · {tokens_per_s:.0} tokens/s · {:.1} s/step{memory} · ETA {eta_s:.0} s",
                    step_ms / 1000.0
                ));
            }
            _ => {}
        });
        job.set(Some(id));
        spawn_local(async move {
            match done.await {
                Ok(_) => trained.set(true),
                Err(e) => state
                    .fail(Place::FineTune, format!("Fine-tuning failed: {}. The previous model is still loaded.", e.trim_end_matches('.'))),
            }
            job.set(None);
            state.busy.set(None);
        });
    };
    let cancel = move |_| {
        if let (Some(client), Some(id)) = (state.client(), job.get_untracked()) {
            client.cancel(id);
        }
    };

    let save = move |_| {
        let Some(client) = state.client() else { return };
        state.busy.set(Some(Busy::Saving));
        spawn_local(async move {
            match client.run(Request::Save, None, |_, _| {}).await {
                Ok(note) => state.status.set(note),
                Err(e) => state.fail(Place::FineTune, e),
            }
            state.busy.set(None);
        });
    };
    let download = move |_| {
        let Some(client) = state.client() else { return };
        state.busy.set(Some(Busy::Saving));
        spawn_local(async move {
            let result = client
                .run(Request::Download, None, move |reply, data| {
                    if let (Reply::Bytes { filename }, Some(buffer)) = (reply, data) {
                        if let Err(e) = web::download(&buffer, &filename) {
                            state.fail(Place::FineTune, e);
                        }
                    }
                })
                .await;
            if let Err(e) = result {
                state.fail(Place::FineTune, e);
            }
            state.busy.set(None);
        });
    };
    let reset = move |_| {
        let Some(client) = state.client() else { return };
        state.busy.set(Some(Busy::Loading));
        trained.set(false);
        spawn_local(async move {
            match client.run(Request::Reset, None, |_, _| {}).await {
                Ok(note) => state.status.set(note),
                Err(e) => state.fail(Place::FineTune, e),
            }
            state.busy.set(None);
        });
    };
    let training = move || state.busy.get() == Some(Busy::Training);
    let is_hybrid = move || state.model.with(|m| m.as_ref().is_some_and(|m| m.arch == "hybrid"));

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
                <button data-testid="train" on:click=train disabled=move || state.busy.get().is_some() || !state.has_model()>"Train"</button>
                <button class="secondary" data-testid="cancel-train" on:click=cancel disabled=move || !training()>"Cancel"</button>
                <span class="muted" data-testid="train-progress">{move || progress.get()}</span>
            </div>
            <ErrorNote state=state place=Place::FineTune />
            {move || (!losses.with(Vec::is_empty)).then(|| curve(&losses.get(), planned.get()))}
            <p class="muted" data-testid="perplexity">{move || match before_after.get() {
                (Some(b), Some(a)) => format!("Held-back perplexity: {b:.2} before → {a:.2} after"),
                (Some(b), None) => format!("Held-back perplexity before: {b:.2}"),
                _ => String::new(),
            }}</p>
            <div class="row">
                <button class="secondary" data-testid="save" on:click=save disabled=move || state.busy.get().is_some() || !trained.get()>"Save in this browser"</button>
                <button class="secondary" data-testid="download" on:click=download disabled=move || state.busy.get().is_some() || !state.has_model()>"Download checkpoint"</button>
                <button class="secondary" data-testid="reset" on:click=reset disabled=move || state.busy.get().is_some()>"Reset to the bundled model"</button>
            </div>
        </section>
    }
}
