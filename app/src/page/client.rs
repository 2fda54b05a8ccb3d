//! The page's handle on the model worker: starts it, sends [`Request`]s as numbered jobs, and routes each
//! [`Reply`] to the job that asked (and every reply to the page-wide handler, which keeps the status bar and
//! model card current). Requests sent before the worker has said [`Reply::Ready`] wait in a queue: a dedicated
//! worker drops messages that arrive before its handler is installed.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures::channel::oneshot;
use js_sys::{Object, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use crate::protocol::{Envelope, JobId, Reply, Request};
use crate::web;

/// The worker's loader script, which trunk writes next to the page (`data-loader-shim`).
const WORKER_URL: &str = "./worker_loader.js";

/// A job's reply handler.
type Handler = Box<dyn FnMut(Reply, Option<JsValue>)>;
/// The page-wide handler, which sees every reply with its job.
type GlobalHandler = Box<dyn Fn(JobId, &Reply)>;

struct Inner {
    worker: web_sys::Worker,
    next: Cell<JobId>,
    ready: Cell<bool>,
    queue: RefCell<Vec<Object>>,
    handlers: RefCell<HashMap<JobId, Handler>>,
    global: GlobalHandler,
}

/// A running model worker.
#[derive(Clone)]
pub struct Client(Rc<Inner>);

impl Client {
    /// Starts the worker. `global` sees every reply first (with its job); `on_error` hears when the worker script
    /// itself fails (it did not load, or it crashed).
    pub fn start(global: impl Fn(JobId, &Reply) + 'static, on_error: impl Fn(String) + 'static) -> Result<Self, String> {
        let options = web_sys::WorkerOptions::new();
        options.set_type(web_sys::WorkerType::Module);
        // The page's query string goes with it: the worker reads its settings (`?max-binding=`) from its own URL.
        let search = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
        let worker = web_sys::Worker::new_with_options(&format!("{WORKER_URL}{search}"), &options).map_err(web::js_err)?;
        let inner = Rc::new(Inner {
            worker,
            next: Cell::new(1),
            ready: Cell::new(false),
            queue: RefCell::new(Vec::new()),
            handlers: RefCell::new(HashMap::new()),
            global: Box::new(global),
        });
        let weak = Rc::downgrade(&inner);
        let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            if let Some(inner) = weak.upgrade() {
                Client(inner).receive(event.data());
            }
        });
        inner.worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        let on_worker_error = Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |event: web_sys::ErrorEvent| {
            let message = event.message();
            on_error(if message.is_empty() { "the worker script did not load".into() } else { message });
        });
        inner.worker.set_onerror(Some(on_worker_error.as_ref().unchecked_ref()));
        on_worker_error.forget();
        Ok(Client(inner))
    }

    fn receive(&self, data: JsValue) {
        let text = Reflect::get(&data, &"msg".into()).ok().and_then(|m| m.as_string()).unwrap_or_default();
        let extra = Reflect::get(&data, &"data".into()).ok().filter(|v| !v.is_undefined());
        let Ok(Envelope { job, msg }) = Envelope::<Reply>::from_json(&text) else {
            web_sys::console::error_1(&format!("a malformed message from the worker: {text}").into());
            return;
        };
        if msg == Reply::Ready {
            self.0.ready.set(true);
            for envelope in self.0.queue.take() {
                let _ = self.0.worker.post_message(&envelope);
            }
        }
        (self.0.global)(job, &msg);
        let done = matches!(msg, Reply::Done(_));
        // Take the handler out while it runs: it may send requests of its own.
        let handler = self.0.handlers.borrow_mut().remove(&job);
        if let Some(mut handler) = handler {
            handler(msg, extra);
            if !done {
                self.0.handlers.borrow_mut().insert(job, handler);
            }
        }
    }

    /// Sends a request; `on_reply` gets every reply of the job, the last being [`Reply::Done`]. `data` travels
    /// beside the JSON (a `File`).
    pub fn send(&self, request: Request, data: Option<JsValue>, on_reply: impl FnMut(Reply, Option<JsValue>) + 'static) -> JobId {
        let job = self.0.next.get();
        self.0.next.set(job + 1);
        self.0.handlers.borrow_mut().insert(job, Box::new(on_reply));
        let envelope = Object::new();
        let _ = Reflect::set(&envelope, &"msg".into(), &Envelope { job, msg: request }.to_json().into());
        if let Some(data) = data {
            let _ = Reflect::set(&envelope, &"data".into(), &data);
        }
        if self.0.ready.get() {
            let _ = self.0.worker.post_message(&envelope);
        } else {
            self.0.queue.borrow_mut().push(envelope);
        }
        job
    }

    /// Sends a request; returns its job (to cancel it) and a future of its end. `on_reply` sees the replies
    /// before [`Reply::Done`].
    pub fn call(
        &self,
        request: Request,
        data: Option<JsValue>,
        mut on_reply: impl FnMut(Reply, Option<JsValue>) + 'static,
    ) -> (JobId, impl std::future::Future<Output = Result<String, String>>) {
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        let job = self.send(request, data, move |reply, extra| match reply {
            Reply::Done(result) => {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(result);
                }
            }
            other => on_reply(other, extra),
        });
        (job, async move { rx.await.unwrap_or_else(|_| Err("the worker went away".into())) })
    }

    /// [`Client::call`] when the job need not be cancelled.
    pub async fn run(
        &self,
        request: Request,
        data: Option<JsValue>,
        on_reply: impl FnMut(Reply, Option<JsValue>) + 'static,
    ) -> Result<String, String> {
        self.call(request, data, on_reply).1.await
    }

    /// Asks the worker to stop `job` at its next step.
    pub fn cancel(&self, job: JobId) {
        self.send(Request::Cancel(job), None, |_, _| {});
    }
}
