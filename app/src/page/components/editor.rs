//! The code editor: CodeMirror 6 (`app/editor/editor.js`, bundled by esbuild and copied next to the page by trunk)
//! — Python, JavaScript/TypeScript and C/C++ highlighting, indentation, bracket matching, undo, search — with
//! completions as ghost text at the cursor: Tab accepts, Esc rejects, Ctrl+Enter (or Ctrl+Space) asks for one.
//! This component loads the bundle, creates the editor and keeps it and the page's signals in step.

use js_sys::{Function, Object, Promise, Reflect};
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::web;

#[wasm_bindgen(inline_js = "export function load_editor_module() { return import(new URL('editor.js', document.baseURI).href); }")]
extern "C" {
    /// Imports the bundled editor (resolved against the page, not this snippet's own URL).
    fn load_editor_module() -> Promise;
}

/// The languages the editor highlights.
pub const LANGUAGES: [(&str, &str); 3] = [("python", "Python"), ("javascript", "JavaScript / TypeScript"), ("cpp", "C / C++")];

/// A live CodeMirror editor (the object `createEditor` returns).
#[derive(Clone)]
pub struct CodeEditor(JsValue);

impl CodeEditor {
    fn call(&self, method: &str, args: &[JsValue]) -> JsValue {
        let f: Option<Function> = Reflect::get(&self.0, &method.into()).ok().and_then(|f| f.dyn_into().ok());
        let Some(f) = f else { return JsValue::UNDEFINED };
        let args: js_sys::Array = args.iter().collect();
        f.apply(&self.0, &args).unwrap_or(JsValue::UNDEFINED)
    }

    /// Replaces the text (a no-op when it is the same).
    pub fn set_doc(&self, text: &str) {
        self.call("setDoc", &[text.into()]);
    }

    /// The text before the cursor (what a completion continues).
    pub fn prefix(&self) -> Option<String> {
        self.call("prefix", &[]).as_string()
    }

    /// The text after the cursor (what a fill-in-the-middle completion leads into).
    pub fn suffix(&self) -> Option<String> {
        self.call("suffix", &[]).as_string()
    }

    /// Shows ghost text at the cursor (growing as tokens stream in); empty drops it quietly. Not the editor's
    /// reject, which is the person's Esc and stops the completion: the page clears the ghost when it starts the next.
    pub fn set_ghost(&self, text: &str) {
        self.call("setGhost", &[text.into()]);
    }

    /// Inserts the ghost text at its place.
    pub fn accept(&self) {
        self.call("accept", &[]);
    }

    /// Switches the highlighting.
    pub fn set_language(&self, name: &str) {
        self.call("setLanguage", &[name.into()]);
    }
}

/// The editor.
#[component]
pub fn Editor(
    /// The code (two-way).
    code: RwSignal<String>,
    /// The ghost text of a completion (set by the completion panel; cleared here when Tab or Esc settles it).
    ghost: RwSignal<String>,
    /// Where the live editor is kept for the completion panel.
    handle: StoredValue<Option<CodeEditor>, LocalStorage>,
    /// Called on Ctrl+Enter (or Cmd+Enter, Ctrl+Space).
    on_complete: Callback<()>,
    /// Bumped when Esc drops the ghost: a completion still streaming stops.
    stop_completion: RwSignal<u64>,
    /// Visible rows.
    #[prop(default = 14)]
    rows: usize,
    /// Set to the first visible line as the editor scrolls (the chunk view follows it).
    #[prop(optional)]
    top_line: Option<RwSignal<usize>>,
) -> impl IntoView {
    let host = NodeRef::<html::Div>::new();
    let failed = RwSignal::new(None::<String>);
    let language = RwSignal::new("python".to_string());
    host.on_load(move |el| {
        spawn_local(async move {
            let module = match JsFuture::from(load_editor_module()).await {
                Ok(m) => m,
                Err(e) => return failed.set(Some(format!("The code editor did not load: {}", web::js_err(e)))),
            };
            let create: Option<Function> = Reflect::get(&module, &"createEditor".into()).ok().and_then(|f| f.dyn_into().ok());
            let Some(create) = create else { return failed.set(Some("The code editor's bundle has no createEditor".into())) };
            let options = Object::new();
            let set = |k: &str, v: &JsValue| {
                let _ = Reflect::set(&options, &k.into(), v);
            };
            set("doc", &code.get_untracked().into());
            set("rows", &(rows as u32).into());
            set("language", &language.get_untracked().into());
            // The editor lives as long as the page: its callbacks do too.
            let on_change = Closure::<dyn FnMut(String)>::new(move |text: String| code.set(text));
            let on_complete = Closure::<dyn FnMut()>::new(move || on_complete.run(()));
            let on_top = Closure::<dyn FnMut(u32)>::new(move |line: u32| {
                if let Some(top) = top_line {
                    top.set(line as usize);
                }
            });
            let on_ghost_done = Closure::<dyn FnMut(bool)>::new(move |accepted: bool| {
                ghost.set(String::new());
                if !accepted {
                    stop_completion.update(|n| *n += 1);
                }
            });
            set("onChange", on_change.as_ref());
            set("onComplete", on_complete.as_ref());
            set("onTopLine", on_top.as_ref());
            set("onGhostDone", on_ghost_done.as_ref());
            on_change.forget();
            on_complete.forget();
            on_top.forget();
            on_ghost_done.forget();
            match create.call2(&JsValue::NULL, &el, &options) {
                Ok(editor) => handle.set_value(Some(CodeEditor(editor))),
                Err(e) => failed.set(Some(format!("The code editor failed to start: {}", web::js_err(e)))),
            }
        });
    });
    // The page's copy of the code and the ghost text flow into the editor (each a no-op when already there).
    Effect::new(move |_| {
        let text = code.get();
        handle.with_value(|h| {
            if let Some(h) = h {
                h.set_doc(&text)
            }
        });
    });
    Effect::new(move |_| {
        let text = ghost.get();
        handle.with_value(|h| {
            if let Some(h) = h {
                h.set_ghost(&text)
            }
        });
    });
    let on_language = move |ev: web_sys::Event| {
        let name = event_target_value(&ev);
        handle.with_value(|h| {
            if let Some(h) = h {
                h.set_language(&name)
            }
        });
        language.set(name);
    };
    view! {
        <div class="editor" node_ref=host data-testid="editor-host"></div>
        {move || failed.get().map(|e| view! { <p class="alert" role="alert">{e}</p> })}
        <div class="row editor-help">
            <p class="muted" id="editor-help">"Ctrl+Enter completes · Tab accepts the grey completion, Esc rejects (and stops) it · Esc then Tab leaves the editor · Ctrl+Z undoes."</p>
            <label class="control" for="language"><span>"Language"</span>
                <select id="language" data-testid="language" on:change=on_language>
                    {LANGUAGES.iter().map(|(v, l)| view! { <option value=*v>{*l}</option> }).collect_view()}
                </select>
            </label>
        </div>
    }
}

/// The element an event came from, as a given type.
pub fn target<T: JsCast>(ev: &web_sys::Event) -> Option<T> {
    ev.target().and_then(|t| t.dyn_into::<T>().ok())
}
