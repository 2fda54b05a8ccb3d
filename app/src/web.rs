//! Browser plumbing: fetching files, yielding to the event loop, probing WebGPU, IndexedDB. All of it async;
//! nothing blocks. Everything here works both on the page (`Window`) and in the model worker
//! (`DedicatedWorkerGlobalScope`): the two scopes share these APIs, so [`Scope`] dispatches to whichever runs.

use js_sys::{Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The global scope the code runs in.
pub enum Scope {
    /// The page.
    Window(web_sys::Window),
    /// A worker.
    Worker(web_sys::WorkerGlobalScope),
}

/// The current global scope.
pub fn scope() -> Scope {
    let global = js_sys::global();
    match global.dyn_into::<web_sys::Window>() {
        Ok(w) => Scope::Window(w),
        Err(g) => Scope::Worker(g.unchecked_into()),
    }
}

impl Scope {
    fn fetch(&self, url: &str) -> Promise {
        match self {
            Scope::Window(w) => w.fetch_with_str(url),
            Scope::Worker(w) => w.fetch_with_str(url),
        }
    }

    fn fetch_abortable(&self, url: &str, signal: &web_sys::AbortSignal) -> Promise {
        let init = web_sys::RequestInit::new();
        init.set_signal(Some(signal));
        match self {
            Scope::Window(w) => w.fetch_with_str_and_init(url, &init),
            Scope::Worker(w) => w.fetch_with_str_and_init(url, &init),
        }
    }

    fn set_timeout(&self, f: &js_sys::Function, ms: i32) {
        let _ = match self {
            Scope::Window(w) => w.set_timeout_with_callback_and_timeout_and_arguments_0(f, ms),
            Scope::Worker(w) => w.set_timeout_with_callback_and_timeout_and_arguments_0(f, ms),
        };
    }

    fn performance(&self) -> Option<web_sys::Performance> {
        match self {
            Scope::Window(w) => w.performance(),
            Scope::Worker(w) => w.performance(),
        }
    }

    fn caches(&self) -> Option<web_sys::CacheStorage> {
        match self {
            Scope::Window(w) => w.caches().ok(),
            Scope::Worker(w) => w.caches().ok(),
        }
    }

    fn indexed_db(&self) -> Result<Option<web_sys::IdbFactory>, JsValue> {
        match self {
            Scope::Window(w) => w.indexed_db(),
            Scope::Worker(w) => w.indexed_db(),
        }
    }
}

/// What a storage error means to a person: a full quota gets a sentence (the browser's own message names an
/// internal limit), anything else its message.
pub fn storage_err(v: JsValue) -> String {
    if get(&v, "name").as_string().as_deref() == Some("QuotaExceededError") {
        return "this site's storage in the browser is full (quota exceeded); free some in the browser's site settings".into();
    }
    js_err(v)
}

thread_local! {
    /// Why the last download that should have been cached was not (taken by [`take_cache_warning`]).
    static CACHE_WARNING: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Why a download of this task was not kept in the Cache API, if one was not: it worked, but a reload fetches it
/// again.
pub fn take_cache_warning() -> Option<String> {
    CACHE_WARNING.with(|w| w.borrow_mut().take())
}

/// A JavaScript error value as text.
pub fn js_err(v: JsValue) -> String {
    // An Error object stringifies to `{}`: its message is what a person can read.
    if let Some(e) = v.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    v.as_string()
        .or_else(|| js_sys::JSON::stringify(&v).ok().and_then(|s| s.as_string()).filter(|s| s != "{}"))
        .unwrap_or_else(|| format!("{v:?}"))
}

/// Fetches a URL's bytes; non-2xx statuses are errors naming the URL.
pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let response: web_sys::Response =
        JsFuture::from(scope().fetch(url)).await.map_err(|e| format!("fetching {url}: {}", js_err(e)))?.unchecked_into();
    if !response.ok() {
        return Err(format!("fetching {url}: HTTP {}", response.status()));
    }
    let buffer = JsFuture::from(response.array_buffer().map_err(js_err)?).await.map_err(js_err)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Lets the event loop run (a `setTimeout(0)` round trip): on the page it paints and handles input; in the worker
/// it delivers messages such as a cancel.
pub async fn yield_now() {
    sleep_ms(0).await;
}

/// Resolves after `ms` milliseconds (a `setTimeout` promise).
pub async fn sleep_ms(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| scope().set_timeout(&resolve, ms));
    let _ = JsFuture::from(promise).await;
}

/// Milliseconds since the scope started.
pub fn now_ms() -> f64 {
    scope().performance().map_or(0.0, |p| p.now())
}

/// Puts a named mark on this thread's performance timeline (DevTools shows it; the e2e test reads the page's to
/// say which phase a long task belongs to).
pub fn mark(name: &str) {
    if let Some(p) = scope().performance() {
        let _ = p.mark(name);
    }
}

/// What the browser says about its WebGPU adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterInfo {
    /// Vendor / architecture / description, whatever the browser exposes.
    pub name: String,
    /// True for software ("fallback") adapters such as SwiftShader.
    pub fallback: bool,
    /// The largest storage buffer a shader may bind (`maxStorageBufferBindingSize`; 128 MiB by default, more where
    /// the adapter allows — burn asks for the adapter's limits). One weight matrix must fit in it.
    pub max_binding: Option<f64>,
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Asks `navigator.gpu` for an adapter. `Err` says why WebGPU cannot be used.
pub async fn probe_webgpu() -> Result<AdapterInfo, String> {
    let navigator = get(&js_sys::global(), "navigator");
    let gpu = get(&navigator, "gpu");
    if gpu.is_undefined() || gpu.is_null() {
        return Err("this browser does not expose WebGPU (navigator.gpu is missing)".into());
    }
    let request = get(&gpu, "requestAdapter").dyn_into::<js_sys::Function>().map_err(|_| "navigator.gpu.requestAdapter is missing")?;
    let promise: Promise = request.call0(&gpu).map_err(js_err)?.dyn_into().map_err(js_err)?;
    let adapter = JsFuture::from(promise).await.map_err(|e| format!("requestAdapter failed: {}", js_err(e)))?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err("WebGPU is present but no adapter is available".into());
    }
    let info = get(&adapter, "info");
    let field = |k: &str| get(&info, k).as_string().filter(|s| !s.is_empty());
    let name = [field("vendor"), field("architecture"), field("description")].into_iter().flatten().collect::<Vec<_>>().join(" · ");
    let fallback = get(&info, "isFallbackAdapter").as_bool().or_else(|| get(&adapter, "isFallbackAdapter").as_bool()).unwrap_or(false);
    let limits = get(&adapter, "limits");
    let mut max_binding = get(&limits, "maxStorageBufferBindingSize").as_f64();
    // `?max-binding=BYTES`: behave as an adapter that binds at most that much (the tests' GPU binds 1 GiB).
    if let Some(bytes) = query_param("max-binding").and_then(|b| b.parse::<f64>().ok()) {
        max_binding = Some(max_binding.map_or(bytes, |m| m.min(bytes)));
    }
    Ok(AdapterInfo { name: if name.is_empty() { "unnamed adapter".into() } else { name }, fallback, max_binding })
}

/// Reads a query-string parameter of the page (`?gpu=0` forces the CPU path, used by tests and for comparison); in
/// the worker, of its own URL, which carries the page's.
pub fn query_param(key: &str) -> Option<String> {
    let search = get(&get(&js_sys::global(), "location"), "search").as_string()?;
    search.trim_start_matches('?').split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| js_sys::decode_uri_component(v).ok().and_then(|s| s.as_string()).unwrap_or_default())
    })
}

/// A failed fetch: the HTTP status when the server answered, and what went wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchError {
    /// The HTTP status (None: no answer at all — offline, refused, blocked by CORS).
    pub status: Option<u16>,
    /// The message, naming the URL.
    pub message: String,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a download may cost: its size, and how long it may go without bringing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The most bytes accepted (a declared size above it is refused before the body is read).
    pub max_bytes: usize,
    /// Milliseconds without an answer or a new chunk after which the download is abandoned as stalled.
    pub stall_ms: i32,
}

impl Bounds {
    /// JSON: configs, tokenizers, indexes, manifests.
    pub const METADATA: Bounds = Bounds { max_bytes: 64 << 20, stall_ms: 30_000 };
    /// Weights: no file over 3 GiB fits beside the rest in wasm32's 4 GiB.
    pub const WEIGHTS: Bounds = Bounds { max_bytes: 3 << 30, stall_ms: 30_000 };
}

/// `promise`'s outcome, or `None` when `ms` milliseconds pass first.
async fn or_timeout(promise: &Promise, ms: i32) -> Option<Result<JsValue, JsValue>> {
    // A timer that resolves with `undefined`; fetch and read() never do.
    let timer = Promise::new(&mut |resolve, _| scope().set_timeout(&resolve, ms));
    match JsFuture::from(Promise::race(&js_sys::Array::of2(promise, &timer))).await {
        Ok(v) if v.is_undefined() => None,
        other => Some(other),
    }
}

/// Fetches a URL's bytes with progress (`on_progress(received, total)`), within `bounds`: [`fetch_stream`]
/// gathering the pieces.
pub async fn fetch_progress(
    url: &str,
    cached: bool,
    bounds: Bounds,
    on_progress: impl FnMut(usize, Option<usize>),
) -> Result<Vec<u8>, FetchError> {
    let mut bytes = Vec::new();
    fetch_stream(url, cached, bounds, on_progress, |piece, total| {
        if bytes.is_empty() {
            // The declared size, which `bounds` already checked: one allocation instead of doublings.
            bytes.reserve_exact(total.unwrap_or(0));
        }
        bytes.extend_from_slice(piece);
        Ok(())
    })
    .await?;
    Ok(bytes)
}

/// Streams a URL's body to `on_piece(piece, total)` as it arrives, with progress (`on_progress(received,
/// total)`), within `bounds`; the whole body is never held here. With `cached`, through the Cache API: a URL fetched
/// once is served from the cache afterwards (and works offline); the browser writes the cached copy from its own
/// branch of the stream. Files of this site (the bundled model, the tokenizer) go without it, so a new deployment
/// is seen at once. A server that declares too much, sends more than it declared or stalls gets an error, as does
/// an `on_piece` error (its message); nothing partial is cached. Returns the number of bytes.
pub async fn fetch_stream(
    url: &str,
    cached: bool,
    bounds: Bounds,
    mut on_progress: impl FnMut(usize, Option<usize>),
    mut on_piece: impl FnMut(&[u8], Option<usize>) -> Result<(), String>,
) -> Result<usize, FetchError> {
    let fail = |status: Option<u16>, message: String| FetchError { status, message };
    let scope = scope();
    let cache: Option<web_sys::Cache> = match scope.caches().filter(|_| cached) {
        Some(storage) => JsFuture::from(storage.open("hnet-gpt-models")).await.ok().map(|c| c.unchecked_into()),
        None => None,
    };
    let hit = match &cache {
        Some(cache) => JsFuture::from(cache.match_with_str(url)).await.ok().and_then(|r| r.dyn_into::<web_sys::Response>().ok()),
        None => None,
    };
    let abort = web_sys::AbortController::new().map_err(|e| fail(None, js_err(e)))?;
    let stalled = || fail(None, format!("fetching {url}: no data for {} s; the server stalled", bounds.stall_ms / 1000));
    let from_cache = hit.is_some();
    let response = match hit {
        Some(response) => response,
        None => match or_timeout(&scope.fetch_abortable(url, &abort.signal()), bounds.stall_ms).await {
            None => {
                abort.abort();
                return Err(stalled());
            }
            Some(r) => r
                .map_err(|e| {
                    let why = js_err(e);
                    fail(None, format!("could not reach {url} ({why}): offline, refused, or blocked by the browser (CORS)"))
                })?
                .unchecked_into(),
        },
    };
    if !response.ok() {
        return Err(fail(Some(response.status()), format!("fetching {url}: HTTP {}", response.status())));
    }
    // Content-Length counts the bytes on the wire: with a content encoding (gzip) it says nothing of the body's size.
    let encoded = response.headers().get("content-encoding").ok().flatten().is_some_and(|e| e != "identity");
    // Parsed as u64: a declared 5 GiB overflows wasm32's usize, and a size that does not parse is no limit at all.
    let declared = response.headers().get("content-length").ok().flatten().and_then(|v| v.trim().parse::<u64>().ok()).filter(|_| !encoded);
    if let Some(t) = declared.filter(|&t| t > bounds.max_bytes as u64) {
        abort.abort();
        return Err(fail(None, format!("fetching {url}: the server declares {t} bytes, over this page's limit of {}", bounds.max_bytes)));
    }
    let total = declared.map(|t| t as usize);
    let body = response.body().ok_or_else(|| fail(None, format!("fetching {url}: empty body")))?;
    // A download to keep: the browser stores one branch of the body while the other is read here.
    let (body, put) = match cache.as_ref().filter(|_| !from_cache) {
        Some(cache) => {
            let branches = body.tee();
            let init = web_sys::ResponseInit::new();
            if let (Some(t), Ok(headers)) = (total, web_sys::Headers::new()) {
                // The cached copy declares its size too: a later read is checked against it.
                let _ = headers.set("content-length", &t.to_string());
                init.set_headers(&headers);
            }
            let stored: web_sys::ReadableStream = branches.get(0).unchecked_into();
            let put = web_sys::Response::new_with_opt_readable_stream_and_init(Some(&stored), &init)
                .ok()
                .map(|copy| (cache, JsFuture::from(cache.put_with_str(url, &copy))));
            (branches.get(1).unchecked_into::<web_sys::ReadableStream>(), put)
        }
        None => (body, None),
    };
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut received = 0usize;
    loop {
        let chunk = match or_timeout(&reader.read(), bounds.stall_ms).await {
            None => {
                abort.abort();
                return Err(stalled());
            }
            Some(c) => c.map_err(|e| fail(None, format!("fetching {url}: {}", js_err(e))))?,
        };
        if get(&chunk, "done").as_bool().unwrap_or(true) {
            break;
        }
        let piece = Uint8Array::new(&get(&chunk, "value")).to_vec();
        received += piece.len();
        if received > total.unwrap_or(bounds.max_bytes).min(bounds.max_bytes) {
            abort.abort();
            return Err(fail(
                None,
                format!("fetching {url}: more bytes than {} arrived; discarded", total.map_or("this page's limit", |_| "declared")),
            ));
        }
        if let Err(e) = on_piece(&piece, total) {
            // Stops the download and the cached copy with it.
            abort.abort();
            let _ = reader.cancel();
            return Err(fail(None, e));
        }
        on_progress(received, total);
    }
    let partial = total.is_some_and(|t| t != received);
    if let Some((cache, put)) = put {
        match put.await {
            // Cut off: never cache (or use) a partial file.
            Ok(_) if partial => {
                let _ = JsFuture::from(cache.delete_with_str(url)).await;
            }
            Ok(_) => {}
            // A cache that cannot keep the file (a full quota) costs a download next time, not this one.
            Err(e) => {
                let why = storage_err(e);
                CACHE_WARNING.with(|w| *w.borrow_mut() = Some(format!("{url} was not kept for the next visit: {why}")));
            }
        }
    }
    if partial {
        return Err(fail(None, format!("fetching {url}: the download stopped at {received} of {} bytes", total.unwrap_or(0))));
    }
    Ok(received)
}

/// Reads a user-picked file.
pub async fn read_file(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let buffer = JsFuture::from(file.array_buffer()).await.map_err(js_err)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Offers bytes (an `ArrayBuffer` or typed array, as the worker sends them) as a file download.
pub fn download(bytes: &JsValue, filename: &str) -> Result<(), String> {
    let array = js_sys::Array::of1(bytes);
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/octet-stream");
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&array, &options).map_err(js_err)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(js_err)?;
    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement = document.create_element("a").map_err(js_err)?.unchecked_into();
    a.set_href(&url);
    a.set_download(filename);
    a.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// IndexedDB: one object store of byte blobs, for the fine-tuned model (it survives reloads).
pub mod idb {
    use super::*;

    const DB: &str = "hnet-gpt";
    const STORE: &str = "models";

    async fn request(req: &web_sys::IdbRequest) -> Result<JsValue, String> {
        let promise = Promise::new(&mut |resolve, reject| {
            let ok = resolve.clone();
            let on_success = wasm_bindgen::closure::Closure::once_into_js(move |e: web_sys::Event| {
                let target: web_sys::IdbRequest = e.target().expect("event target").unchecked_into();
                let _ = ok.call1(&JsValue::NULL, &target.result().unwrap_or(JsValue::UNDEFINED));
            });
            let on_error = wasm_bindgen::closure::Closure::once_into_js(move |e: web_sys::Event| {
                let target: web_sys::IdbRequest = e.target().expect("event target").unchecked_into();
                let error = Some(super::get(&target, "error")).filter(|e| !e.is_null() && !e.is_undefined());
                let error = error.unwrap_or_else(|| JsValue::from_str("IndexedDB request failed"));
                let _ = reject.call1(&JsValue::NULL, &error);
            });
            req.set_onsuccess(Some(on_success.unchecked_ref()));
            req.set_onerror(Some(on_error.unchecked_ref()));
        });
        JsFuture::from(promise).await.map_err(storage_err)
    }

    /// Resolves once `tx` has committed: a write whose request succeeded can still be undone when the transaction
    /// aborts (a full quota is reported there). Not async: the handlers must be in place before the transaction can
    /// finish.
    fn committed(tx: &web_sys::IdbTransaction) -> JsFuture {
        let promise = Promise::new(&mut |resolve, reject| {
            let on_complete = wasm_bindgen::closure::Closure::once_into_js(move |_e: web_sys::Event| {
                let _ = resolve.call0(&JsValue::NULL);
            });
            let failed = reject.clone();
            let tx_error = tx.clone();
            let on_abort = wasm_bindgen::closure::Closure::once_into_js(move |_e: web_sys::Event| {
                let error = Some(super::get(&tx_error, "error")).filter(|e| !e.is_null() && !e.is_undefined());
                let error = error.unwrap_or_else(|| JsValue::from_str("the IndexedDB transaction was aborted"));
                let _ = failed.call1(&JsValue::NULL, &error);
            });
            tx.set_oncomplete(Some(on_complete.unchecked_ref()));
            tx.set_onabort(Some(on_abort.unchecked_ref()));
        });
        JsFuture::from(promise)
    }

    async fn open() -> Result<web_sys::IdbDatabase, String> {
        let factory = scope().indexed_db().map_err(js_err)?.ok_or("IndexedDB is unavailable")?;
        let req = factory.open_with_u32(DB, 1).map_err(js_err)?;
        let upgrade = wasm_bindgen::closure::Closure::once_into_js(move |e: web_sys::Event| {
            let target: web_sys::IdbOpenDbRequest = e.target().expect("event target").unchecked_into();
            if let Ok(db) = target.result() {
                let db: web_sys::IdbDatabase = db.unchecked_into();
                let _ = db.create_object_store(STORE);
            }
        });
        req.set_onupgradeneeded(Some(upgrade.unchecked_ref()));
        Ok(request(&req).await?.unchecked_into())
    }

    fn store(db: &web_sys::IdbDatabase, mode: web_sys::IdbTransactionMode) -> Result<web_sys::IdbObjectStore, String> {
        db.transaction_with_str_and_mode(STORE, mode).map_err(js_err)?.object_store(STORE).map_err(js_err)
    }

    /// Stores bytes under `key`, once the write has committed.
    pub async fn put(key: &str, bytes: &[u8]) -> Result<(), String> {
        let db = open().await?;
        let tx = db.transaction_with_str_and_mode(STORE, web_sys::IdbTransactionMode::Readwrite).map_err(js_err)?;
        let s = tx.object_store(STORE).map_err(js_err)?;
        let done = committed(&tx);
        let written = request(&s.put_with_key(&Uint8Array::from(bytes), &JsValue::from_str(key)).map_err(storage_err)?).await;
        // The transaction's verdict is the one that counts (a full quota may only show there).
        let committed = done.await.map(drop).map_err(storage_err);
        written.and(committed)
    }

    /// The bytes under `key`, if any.
    pub async fn get(key: &str) -> Result<Option<Vec<u8>>, String> {
        let db = open().await?;
        let s = store(&db, web_sys::IdbTransactionMode::Readonly)?;
        let v = request(&s.get(&JsValue::from_str(key)).map_err(js_err)?).await?;
        Ok(if v.is_undefined() || v.is_null() { None } else { Some(Uint8Array::new(&v).to_vec()) })
    }

    /// Removes `key`.
    pub async fn delete(key: &str) -> Result<(), String> {
        let db = open().await?;
        let s = store(&db, web_sys::IdbTransactionMode::Readwrite)?;
        request(&s.delete(&JsValue::from_str(key)).map_err(js_err)?).await?;
        Ok(())
    }
}
