//! The HNet-GPT playground (Leptos, client-side rendered, built by trunk).

mod app;
mod components;
mod engine;
mod state;
mod web;

fn main() {
    console_error_panic_hook::set_once();
    if web::query_param("embed").as_deref() == Some("1") {
        leptos::mount::mount_to_body(app::Embed);
    } else {
        leptos::mount::mount_to_body(app::App);
    }
}
