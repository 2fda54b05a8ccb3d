//! The page: components, shared state, and the client that talks to the model worker.

pub mod app;
pub mod client;
pub mod components;
pub mod state;

/// Mounts the playground (or, with `?embed=1`, the compact embed widget).
pub fn mount() {
    console_error_panic_hook::set_once();
    if crate::web::query_param("embed").as_deref() == Some("1") {
        leptos::mount::mount_to_body(app::Embed);
    } else {
        leptos::mount::mount_to_body(app::App);
    }
}
