//! The chunk view: the code drawn with each learned chunk as a coloured span, boundary probability as a heat
//! underline, details of each token on hover or focus, and overlays for Python statement starts (parsed in wasm)
//! and per-token surprisal. Recomputed, debounced, as the code changes.

use std::collections::HashSet;

use hnet_gpt_model::eval::inspect::ChunkReport;
use hnet_gpt_model::eval::pysyntax;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::state::Playground;
use crate::web;

/// What the view draws.
#[derive(Clone, Debug, PartialEq)]
struct Drawn {
    text: String,
    report: ChunkReport,
    surprisal: Option<Vec<f32>>,
}

/// Heat colour of a boundary probability: blue (0) to red (1).
fn heat(p: f32) -> String {
    format!("hsl({:.0} 85% 50%)", 220.0 - 220.0 * p.clamp(0.0, 1.0))
}

/// The chunk view.
#[component]
pub fn ChunkView(state: Playground) -> impl IntoView {
    let drawn = RwSignal::new(None::<Drawn>);
    let note = RwSignal::new(None::<String>);
    let show_statements = RwSignal::new(false);
    let show_surprisal = RwSignal::new(false);
    let detail = RwSignal::new(None::<String>);
    let generation = StoredValue::new(0u64);

    // Recompute 400 ms after the last edit, and whenever the model or the surprisal toggle changes.
    Effect::new(move |_| {
        let text = state.code.get();
        let _ = state.model_version.get();
        let want_surprisal = show_surprisal.get();
        let this = generation.get_value() + 1;
        generation.set_value(this);
        spawn_local(async move {
            web::sleep_ms(400).await;
            if generation.get_value() != this {
                return; // a newer edit superseded this one
            }
            let (Some(engine), Some(tok)) = (state.engine(), state.tokenizer()) else { return };
            if text.trim().is_empty() {
                drawn.set(None);
                note.set(Some("Type some code to see how the model chunks it.".into()));
                return;
            }
            match engine.chunks(&tok, &text).await {
                Ok(Some(report)) => {
                    let surprisal = if want_surprisal {
                        let ids: Vec<u32> = report.tokens.iter().map(|t| t.id).collect();
                        engine.surprisal(&ids).await.ok()
                    } else {
                        None
                    };
                    if generation.get_value() == this {
                        let covered = report.chunks.last().map_or(0, |c| c.end);
                        note.set((covered < text.len()).then(|| format!("Showing the first {} tokens (the model's context).", report.tokens.len())));
                        drawn.set(Some(Drawn { text: text[..covered].to_string(), report, surprisal }));
                    }
                }
                Ok(None) => {
                    drawn.set(None);
                    note.set(Some(format!("This is a {} model: it has no learned chunks to show. Load an hnet or hybrid checkpoint.", engine.arch())));
                }
                Err(e) => note.set(Some(format!("Could not compute the chunks: {e}"))),
            }
        });
    });

    let statements = move || {
        if !show_statements.get() {
            return None;
        }
        drawn.with(|d| d.as_ref().map(|d| pysyntax::statement_starts(&d.text).map(|s| s.into_iter().collect::<HashSet<usize>>())))
    };

    let body = move || {
        let Some(d) = drawn.get() else { return ().into_any() };
        let stmts = statements().flatten();
        let parse_note = (show_statements.get() && stmts.is_none()).then(|| view! {
            <p class="muted" data-testid="parse-note">"The code does not parse as Python yet, so statement starts are not shown."</p>
        });
        let mut cursor = 0;
        let chunks = d.report.chunks.iter().enumerate().map(|(ci, chunk)| {
            let tokens = d.report.tokens[chunk.start_token..chunk.end_token].iter().enumerate().map(|(k, t)| {
                let i = chunk.start_token + k;
                let from = cursor.max(t.start);
                let to = t.end.max(from);
                cursor = to;
                let piece = d.text.get(from..to).unwrap_or("").to_string();
                let stmt = stmts.as_ref().is_some_and(|s| s.iter().any(|&o| t.start <= o && o < t.end));
                let bits = d.surprisal.as_ref().and_then(|s| s.get(i).copied());
                let mut style = format!("border-bottom-color: {}", heat(t.p));
                if let Some(b) = bits {
                    style.push_str(&format!("; background: color-mix(in srgb, orange {:.0}%, transparent)", (b / 16.0).clamp(0.0, 1.0) * 70.0));
                }
                let info = format!(
                    "token {i}: {:?} · id {} · p = {:.3}{} · chunk {ci}{}",
                    piece,
                    t.id,
                    t.p,
                    if t.boundary { " (boundary)" } else { "" },
                    bits.map(|b| format!(" · surprisal {b:.2} bits")).unwrap_or_default()
                );
                let (label, on_hover, on_focus) = (info.clone(), info.clone(), info);
                view! {
                    <span class="tok" class:stmt=stmt data-testid="token" data-p=format!("{:.4}", t.p) tabindex="0" style=style
                        aria-label=label on:mouseenter=move |_| detail.set(Some(on_hover.clone()))
                        on:focus=move |_| detail.set(Some(on_focus.clone()))>{piece}</span>
                }
            }).collect_view();
            view! { <span class=format!("chunk c{}", ci % 2) data-testid="chunk">{tokens}</span> }
        }).collect_view();
        let r = &d.report;
        let summary = format!(
            "{} chunks · {} tokens · mean {:.2} tokens, {:.1} bytes per chunk",
            r.n_chunks, r.tokens.len(), r.mean_chunk_tokens, r.mean_chunk_bytes
        );
        view! {
            {parse_note}
            <p class="muted" data-testid="chunk-summary" data-chunks=r.n_chunks>{summary}</p>
            <pre class="chunks" aria-label="Code drawn by chunk">{chunks}</pre>
        }
        .into_any()
    };

    view! {
        <section class="card chunk-view" aria-labelledby="chunks-title">
            <h2 id="chunks-title">"Chunks"</h2>
            <p class="muted">"Each coloured run is one chunk the router cut; the underline is the boundary probability (blue 0 → red 1)."</p>
            <div class="row">
                <label><input type="checkbox" data-testid="toggle-statements" prop:checked=move || show_statements.get()
                    on:change=move |ev| show_statements.set(event_target_checked(&ev)) />" Python statement starts"</label>
                <label><input type="checkbox" data-testid="toggle-surprisal" prop:checked=move || show_surprisal.get()
                    on:change=move |ev| show_surprisal.set(event_target_checked(&ev)) />" Surprisal"</label>
            </div>
            {move || note.get().map(|n| view! { <p class="muted" data-testid="chunk-note">{n}</p> })}
            {body}
            <p class="detail" data-testid="token-detail" aria-live="polite">{move || detail.get().unwrap_or_else(|| "Hover or focus a token for details.".into())}</p>
        </section>
    }
}
