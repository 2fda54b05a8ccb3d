// The playground's code editor: CodeMirror 6 (highlighting, indentation, bracket matching, undo, search) with
// completions shown as ghost text at the cursor — Tab accepts, Esc rejects, Ctrl/Cmd+Enter (or Ctrl+Space) asks
// for one. The Rust page drives it through the small object createEditor returns; it owns no model logic.
// Bundled by esbuild into dist/editor.js (`npm run build`), which trunk copies next to the page.
import { EditorView, basicSetup } from "codemirror";
import { Compartment, EditorState, Prec, StateEffect, StateField } from "@codemirror/state";
import { Decoration, WidgetType, keymap } from "@codemirror/view";
import { indentWithTab } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { javascript } from "@codemirror/lang-javascript";
import { cpp } from "@codemirror/lang-cpp";
import { oneDark } from "@codemirror/theme-one-dark";
import { indentUnit } from "@codemirror/language";

const LANGUAGES = { python: () => python(), javascript: () => javascript({ typescript: true }), cpp: () => cpp() };

/**
 * Ghost text. A completion streams in token by token; each token must cost the page's thread almost nothing, so the
 * ghost is one widget for the whole completion whose text lives in a mutable box: a new token writes the box and the
 * widget's one text node (CodeMirror ignores mutations inside widgets) and asks CodeMirror to re-measure in its next
 * frame. No transaction, no selection read, no forced layout per token; only showing and dropping the ghost are
 * transactions.
 */
const setGhost = StateEffect.define();
class GhostBox {
  constructor(text) { this.text = text; this.dom = null; }
}
class GhostWidget extends WidgetType {
  constructor(box) { super(); this.box = box; }
  eq(other) { return other.box === this.box; }
  toDOM() {
    // CodeMirror may draw the widget again (a re-rendered line): the box keeps the current text and element.
    const span = document.createElement("span");
    span.className = "cm-ghost";
    span.setAttribute("aria-hidden", "true");
    span.textContent = this.box.text;
    this.box.dom = span;
    return span;
  }
  ignoreEvent() { return true; }
}
const NO_GHOST = { pos: 0, box: null };
const ghostField = StateField.define({
  create: () => NO_GHOST,
  update(ghost, tr) {
    for (const e of tr.effects) if (e.is(setGhost)) return e.value;
    // An edit elsewhere moves the ghost with the text; typing over it drops it.
    if (tr.docChanged && ghost.box) return tr.selection ? NO_GHOST : { pos: tr.changes.mapPos(ghost.pos), box: ghost.box };
    return ghost;
  },
  provide: (f) => EditorView.decorations.from(f, (g) => (g.box ? Decoration.set([Decoration.widget({ widget: new GhostWidget(g.box), side: 1 }).range(g.pos)]) : Decoration.none)),
});
const ghostText = (state) => state.field(ghostField).box?.text ?? "";

/**
 * Creates the editor in `parent`. `options`: doc, language ("python" | "javascript" | "cpp"), rows (visible lines),
 * and callbacks onChange(text), onComplete(), onTopLine(line), onGhostDone(accepted).
 */
export function createEditor(parent, options) {
  const language = new Compartment();
  // The page follows the system's colour scheme; so does the editor.
  const theme = new Compartment();
  const dark = window.matchMedia?.("(prefers-color-scheme: dark)");
  const themeFor = () => (dark?.matches ? oneDark : []);
  const rows = options.rows ?? 14;
  let view;
  const hasGhost = () => ghostText(view.state) !== "";
  const accept = () => {
    const g = view.state.field(ghostField);
    const text = ghostText(view.state);
    if (!text) return false;
    view.dispatch({ changes: { from: g.pos, insert: text }, selection: { anchor: g.pos + text.length }, effects: setGhost.of(NO_GHOST), userEvent: "input.complete" });
    options.onGhostDone?.(true);
    return true;
  };
  const reject = () => {
    if (!hasGhost()) return false;
    view.dispatch({ effects: setGhost.of(NO_GHOST) });
    options.onGhostDone?.(false);
    return true;
  };
  const complete = () => { options.onComplete?.(); return true; };
  view = new EditorView({
    parent,
    state: EditorState.create({
      doc: options.doc ?? "",
      // The cursor starts at the end: a completion continues the code shown.
      selection: { anchor: (options.doc ?? "").length },
      extensions: [
        // Before the default keymap: Tab accepts a ghost (else indents), Esc rejects it.
        Prec.highest(keymap.of([
          { key: "Tab", run: accept },
          { key: "Escape", run: reject },
          { key: "Mod-Enter", run: complete },
          { key: "Ctrl-Space", run: complete },
        ])),
        basicSetup,
        keymap.of([indentWithTab]),
        language.of((LANGUAGES[options.language] ?? LANGUAGES.python)()),
        theme.of(themeFor()),
        ghostField,
        // Python's four spaces, for what the editor indents and what the models were trained on (PEP 8).
        EditorState.tabSize.of(4),
        indentUnit.of("    "),
        EditorView.contentAttributes.of({ "data-testid": "editor", "aria-label": "Code", spellcheck: "false", autocorrect: "off", autocapitalize: "off" }),
        EditorView.theme({ "&": { height: `calc(${rows} * 1.45em + 1.2rem)` }, ".cm-scroller": { overflow: "auto" } }),
        EditorView.updateListener.of((u) => { if (u.docChanged) options.onChange?.(u.state.doc.toString()); }),
      ],
    }),
  });
  dark?.addEventListener?.("change", () => view.dispatch({ effects: theme.reconfigure(themeFor()) }));
  // The first visible line, as the editor scrolls (the chunk view follows it).
  let lastTop = -1;
  view.scrollDOM.addEventListener("scroll", () => {
    const block = view.lineBlockAtHeight(view.scrollDOM.scrollTop);
    const line = view.state.doc.lineAt(block.from).number - 1;
    if (line !== lastTop) { lastTop = line; options.onTopLine?.(line); }
  }, { passive: true });
  return {
    getDoc: () => view.state.doc.toString(),
    /** Replaces the text (when it differs: an edit of our own must not move the cursor). */
    setDoc: (text) => {
      if (text === view.state.doc.toString()) return;
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text }, selection: { anchor: text.length }, effects: setGhost.of(NO_GHOST) });
    },
    /** The text before the cursor: what a completion continues. */
    prefix: () => view.state.sliceDoc(0, view.state.selection.main.head),
    /** The text after the cursor: what a fill-in-the-middle completion leads into. */
    suffix: () => view.state.sliceDoc(view.state.selection.main.head),
    /** Shows (or, streaming, grows) ghost text at the cursor. */
    setGhost: (text) => {
      const { box } = view.state.field(ghostField);
      if (!text) {
        if (box) view.dispatch({ effects: setGhost.of(NO_GHOST) });
      } else if (!box) {
        view.dispatch({ effects: setGhost.of({ pos: view.state.selection.main.head, box: new GhostBox(text) }) });
      } else if (box.text !== text) {
        const newLine = text.split("\n").length !== box.text.split("\n").length;
        box.text = text;
        if (box.dom) box.dom.textContent = text;
        view.requestMeasure();
        // A ghost that grows a line may run below the visible area: keep its end in view (once per line, not per
        // token).
        if (newLine) requestAnimationFrame(() => box.dom?.scrollIntoView({ block: "nearest", inline: "nearest" }));
      }
    },
    ghost: () => ghostText(view.state),
    accept: () => accept(),
    reject: () => reject(),
    setLanguage: (name) => view.dispatch({ effects: language.reconfigure((LANGUAGES[name] ?? LANGUAGES.python)()) }),
    focus: () => view.focus(),
    destroy: () => view.destroy(),
  };
}
