//! The page's binary: the Leptos playground. Model work happens in the `worker` binary.

fn main() {
    hnet_gpt_app::page::mount();
}
