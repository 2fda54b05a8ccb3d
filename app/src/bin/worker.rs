//! The model worker's binary, started by the page as a module Web Worker (`worker_loader.js`, written by trunk).

fn main() {
    hnet_gpt_app::worker::run();
}
