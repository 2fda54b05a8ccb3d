//! A code editor: a textarea with a line-number gutter, Tab/Shift+Tab for indentation, Ctrl+Enter to complete.

use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

const INDENT: &str = "    ";

/// The editor.
#[component]
pub fn Editor(
    /// The code (two-way).
    code: RwSignal<String>,
    /// Called on Ctrl+Enter (or Cmd+Enter).
    on_complete: Callback<()>,
    /// Visible rows.
    #[prop(default = 14)]
    rows: usize,
    /// Set to the first visible line as the editor scrolls (the chunk view follows it).
    #[prop(optional)]
    top_line: Option<RwSignal<usize>>,
) -> impl IntoView {
    let area = NodeRef::<html::Textarea>::new();
    let gutter = NodeRef::<html::Div>::new();
    let numbers = move || (1..=code.with(|c| c.split('\n').count())).map(|i| format!("{i}\n")).collect::<String>();
    let on_keydown = move |ev: web_sys::KeyboardEvent| {
        if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
            ev.prevent_default();
            on_complete.run(());
            return;
        }
        if ev.key() != "Tab" || ev.ctrl_key() || ev.alt_key() || ev.meta_key() {
            return;
        }
        // Tab indents (Shift+Tab dedents) the current line; Escape-then-Tab still leaves the editor, since the
        // browser's default runs when the key is not handled here.
        let Some(el) = area.get() else { return };
        ev.prevent_default();
        let text = el.value();
        let start = el.selection_start().ok().flatten().unwrap_or(0) as usize;
        let start = text.char_indices().nth(start).map_or(text.len(), |(i, _)| i);
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let (new_text, cursor) = if ev.shift_key() {
            let line = &text[line_start..];
            let n = line.len() - line.trim_start_matches(' ').len();
            let remove = n.min(INDENT.len());
            (format!("{}{}", &text[..line_start], &text[line_start + remove..]), start.saturating_sub(remove).max(line_start))
        } else {
            (format!("{}{INDENT}{}", &text[..start], &text[start..]), start + INDENT.len())
        };
        el.set_value(&new_text);
        let chars = new_text[..cursor].chars().count() as u32;
        let _ = el.set_selection_range(chars, chars);
        code.set(new_text);
    };
    let on_scroll = move |_| {
        if let (Some(a), Some(g)) = (area.get(), gutter.get()) {
            g.set_scroll_top(a.scroll_top());
            if let Some(top) = top_line {
                let lines = code.with_untracked(|c| c.split('\n').count()).max(1) as f64;
                let line_px = (a.scroll_height() as f64 / lines).max(1.0);
                let line = (a.scroll_top() as f64 / line_px).floor() as usize;
                if top.get_untracked() != line {
                    top.set(line);
                }
            }
        }
    };
    view! {
        <div class="editor">
            <div class="gutter" node_ref=gutter aria-hidden="true">{numbers}</div>
            <textarea
                id="code"
                data-testid="editor"
                node_ref=area
                rows=rows
                spellcheck="false"
                autocomplete="off"
                aria-label="Code"
                aria-describedby="editor-help"
                prop:value=move || code.get()
                on:input=move |ev| code.set(event_target_value(&ev))
                on:keydown=on_keydown
                on:scroll=on_scroll
            ></textarea>
        </div>
        <p class="muted" id="editor-help">"Tab indents, Shift+Tab dedents, Ctrl+Enter completes. Press Esc, then Tab, to leave the editor."</p>
    }
}

/// The element an event came from, as a given type.
pub fn target<T: JsCast>(ev: &web_sys::Event) -> Option<T> {
    ev.target().and_then(|t| t.dyn_into::<T>().ok())
}
