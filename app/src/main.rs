//! The HNet-GPT playground (Leptos, client-side rendered, built by trunk).

mod app;
mod engine;
mod web;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
