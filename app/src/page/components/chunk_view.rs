//! The chunk view: the code drawn with each learned chunk as a shaded span, each token's boundary probability as a
//! thin edge mark before it (as dark as p, so a chunk's start is a firm edge and a near-miss a faint one), details of each token on hover or focus, and overlays for Python statement starts (parsed in the
//! worker) and per-token surprisal. Recomputed in the worker, debounced, as the code changes.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::page::state::Playground;
use crate::protocol::{ChunksView, Reply, Request};
use crate::web;

/// Boundary probabilities below this draw no edge mark (it would be invisible, and a long file has many tokens).
const FAINTEST_EDGE: f32 = 0.05;

/// Arrow keys, Home and End move the focus between the view's `shown` tokens (one tab stop for all of them).
fn move_focus(ev: &web_sys::KeyboardEvent, focused: RwSignal<usize>, shown: usize) {
    let now = focused.get_untracked();
    let next = match ev.key().as_str() {
        "ArrowRight" | "ArrowDown" => (now + 1).min(shown.saturating_sub(1)),
        "ArrowLeft" | "ArrowUp" => now.saturating_sub(1),
        "Home" => 0,
        "End" => shown.saturating_sub(1),
        _ => return,
    };
    ev.prevent_default();
    focused.set(next);
    let target =
        web_sys::window().and_then(|w| w.document()).and_then(|d| d.query_selector(&format!(".chunks [data-k=\"{next}\"]")).ok().flatten());
    if let Some(el) = target.and_then(|e| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(e).ok()) {
        let _ = el.focus();
    }
}

/// The chunk view.
#[component]
pub fn ChunkView(state: Playground) -> impl IntoView {
    let drawn = RwSignal::new(None::<ChunksView>);
    let note = RwSignal::new(None::<String>);
    let show_statements = RwSignal::new(false);
    let show_surprisal = RwSignal::new(false);
    let detail = RwSignal::new(None::<String>);
    // Roving tabindex: the view is one tab stop, the token last focused; arrow keys move between tokens.
    let focused = RwSignal::new(0usize);
    let progress = RwSignal::new(None::<String>);
    let generation = StoredValue::new(0u64);

    // Recompute 400 ms after the last edit, and whenever the model or the surprisal toggle changes; re-slice 150 ms
    // after the editor scrolls. The worker does the work (a newer request stops an older one); the page only draws.
    let last_text = StoredValue::new(String::new());
    Effect::new(move |_| {
        let text = state.code.get();
        let first_line = state.top_line.get();
        let _ = state.model_version.get();
        let surprisal = show_surprisal.get();
        let this = generation.get_value() + 1;
        generation.set_value(this);
        let delay = if last_text.with_value(|t| *t == text) { 150 } else { 400 };
        spawn_local(async move {
            web::sleep_ms(delay).await;
            if generation.get_value() != this || !state.has_model() {
                return; // a newer edit superseded this one, or there is no model yet
            }
            let Some(client) = state.client() else { return };
            last_text.set_value(text.clone());
            let result = RwSignal::new(None::<Result<ChunksView, String>>);
            let _ = client
                .run(Request::Chunks { text, surprisal, first_line: first_line.saturating_sub(2) }, None, move |reply, _| match reply {
                    Reply::Chunks(view) => result.set(Some(view)),
                    Reply::Progress(p) => progress.set(Some(p)),
                    _ => {}
                })
                .await;
            if generation.get_value() != this {
                return;
            }
            progress.set(None);
            match result.get_untracked() {
                Some(Ok(view)) => {
                    note.set(view.note.clone());
                    drawn.set(Some(view));
                    web::mark("chunks drawn");
                }
                Some(Err(message)) => {
                    drawn.set(None);
                    note.set(Some(message));
                }
                None => {}
            }
        });
    });

    let body = move || {
        let Some(d) = drawn.get() else { return ().into_any() };
        let statements = show_statements.get();
        let parse_note = (statements && !d.parses).then(|| {
            view! { <p class="muted" data-testid="parse-note">"The code does not parse as Python yet, so statement starts are not shown."</p> }
        });
        // Token spans are offsets in the whole text; the view holds the slice from `d.offset`.
        let mut cursor = d.offset;
        let shown = d.tokens.len();
        if focused.get_untracked() >= shown {
            focused.set(0);
        }
        let mut tokens = d.tokens.iter().enumerate().map(|(k, t)| (d.first_token + k, t)).peekable();
        let mut chunks = Vec::with_capacity(d.n_chunks);
        while let Some(&(_, first)) = tokens.peek() {
            let ci = first.token.chunk;
            let mut spans = Vec::new();
            while let Some((i, t)) = tokens.next_if(|(_, t)| t.token.chunk == ci) {
                let from = cursor.max(t.token.start);
                let to = t.token.end.max(from);
                cursor = to;
                let piece = d.text.get(from - d.offset..to - d.offset).unwrap_or("").to_string();
                let stmt = statements && t.statement == Some(true);
                let style = t
                    .surprisal
                    .map(|b| format!("background: color-mix(in srgb, orange {:.0}%, transparent)", (b / 16.0).clamp(0.0, 1.0) * 70.0));
                let edge = (t.token.p >= FAINTEST_EDGE).then(|| {
                    view! { <span class="edge" aria-hidden="true" style=format!("opacity: {:.2}", t.token.p.min(1.0))></span> }
                });
                let info = format!(
                    "token {i}: {:?} · id {} · p = {:.3}{} · chunk {ci}{}",
                    piece,
                    t.token.id,
                    t.token.p,
                    if t.token.boundary { " (boundary)" } else { "" },
                    t.surprisal.map(|b| format!(" · surprisal {b:.2} bits")).unwrap_or_default()
                );
                let (label, on_hover, on_focus) = (info.clone(), info.clone(), info);
                let k = i - d.first_token;
                spans.push(view! {
                    <span class="tok" class:stmt=stmt data-testid="token" data-p=format!("{:.4}", t.token.p) data-k=k
                        tabindex=move || if focused.get() == k { "0" } else { "-1" } style=style
                        aria-label=label on:mouseenter=move |_| detail.set(Some(on_hover.clone()))
                        on:focus=move |_| { focused.set(k); detail.set(Some(on_focus.clone())) }>{edge}{piece}</span>
                });
            }
            chunks.push(view! { <span class=format!("chunk c{}", ci % 2) data-testid="chunk">{spans}</span> });
        }
        let summary = format!(
            "{} chunks · {} tokens · mean {:.2} tokens, {:.1} bytes per chunk",
            d.n_chunks, d.total_tokens, d.mean_chunk_tokens, d.mean_chunk_bytes
        );
        view! {
            {parse_note}
            <p class="muted" data-testid="chunk-summary" data-chunks=d.n_chunks>{summary}</p>
            <pre class="chunks" aria-label="Code drawn by chunk; arrow keys move between tokens" on:keydown=move |ev| move_focus(&ev, focused, shown)>{chunks}</pre>
        }
        .into_any()
    };

    view! {
        <section class="card chunk-view" aria-labelledby="chunks-title">
            <h2 id="chunks-title">"Chunks"</h2>
            <p class="muted" data-testid="chunk-legend">"Each shaded run is one chunk the router cut; the mark before a token is its boundary probability p, as dark as p (p above 0.5 starts a chunk, so each chunk begins at a firm edge; a faint mark is a near-miss)."
                {move || show_surprisal.get().then_some(" Orange behind a token: its surprisal, −log₂ p of the token given the ones before (darker = more bits, full at 16).")}
            </p>
            <div class="row">
                <label><input type="checkbox" data-testid="toggle-statements" prop:checked=move || show_statements.get()
                    on:change=move |ev| show_statements.set(event_target_checked(&ev)) />" Python statement starts"</label>
                <label><input type="checkbox" data-testid="toggle-surprisal" prop:checked=move || show_surprisal.get()
                    on:change=move |ev| show_surprisal.set(event_target_checked(&ev)) />" Surprisal"</label>
            </div>
            {move || note.get().map(|n| view! { <p class="muted" data-testid="chunk-note">{n}</p> })}
            {move || progress.get().map(|p| view! { <p class="muted" data-testid="chunk-progress">{p}</p> })}
            {body}
            <p class="detail" data-testid="token-detail" aria-live="polite">{move || detail.get().unwrap_or_else(|| "Hover or focus a token for details.".into())}</p>
        </section>
    }
}
