//! Browser plumbing: fetching files, yielding to the event loop, probing WebGPU. All of it async; nothing blocks.

use js_sys::{Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

fn js_err(v: JsValue) -> String {
    v.as_string().or_else(|| js_sys::JSON::stringify(&v).ok().and_then(|s| s.as_string())).unwrap_or_else(|| format!("{v:?}"))
}

/// Fetches a URL's bytes; non-2xx statuses are errors naming the URL.
pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response: web_sys::Response =
        JsFuture::from(window.fetch_with_str(url)).await.map_err(|e| format!("fetching {url}: {}", js_err(e)))?.unchecked_into();
    if !response.ok() {
        return Err(format!("fetching {url}: HTTP {}", response.status()));
    }
    let buffer = JsFuture::from(response.array_buffer().map_err(js_err)?).await.map_err(js_err)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Lets the browser paint and handle input (a `setTimeout(0)` round trip).
pub async fn yield_now() {
    let promise = Promise::new(&mut |resolve, _| {
        let _ = web_sys::window().unwrap().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
    });
    let _ = JsFuture::from(promise).await;
}

/// Milliseconds since page load.
pub fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// What the browser says about its WebGPU adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterInfo {
    /// Vendor / architecture / description, whatever the browser exposes.
    pub name: String,
    /// True for software ("fallback") adapters such as SwiftShader.
    pub fallback: bool,
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Asks `navigator.gpu` for an adapter. `Err` says why WebGPU cannot be used.
pub async fn probe_webgpu() -> Result<AdapterInfo, String> {
    let navigator = web_sys::window().ok_or("no window")?.navigator();
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
    Ok(AdapterInfo { name: if name.is_empty() { "unnamed adapter".into() } else { name }, fallback })
}

/// Reads a query-string parameter (`?gpu=0` forces the CPU path, used by tests and for comparison).
pub fn query_param(key: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    search.trim_start_matches('?').split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| js_sys::decode_uri_component(v).ok().and_then(|s| s.as_string()).unwrap_or_default())
    })
}
