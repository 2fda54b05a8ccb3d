//! Text in, text out: a completion of a prompt that stops at stop strings — the glue between the tokenizer and the
//! token-level [`Generator`], shared by the CLI's `generate`, the evaluations and the playground.

use burn::tensor::backend::Backend;

use crate::arch::model::Model;
use crate::error::ModelError;
use crate::generate::{GenerateParams, Generator};
use crate::io::tokenizer::{TextStream, Tokenizer};

/// Streams the completion of `prompt`: `on_text` gets each safe piece; stops at a stop string (not emitted), a
/// stop token or `max_new_tokens`. Returns the full completion text and the number of tokens generated.
#[cfg(not(target_arch = "wasm32"))]
pub fn complete<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    prompt: &str,
    params: GenerateParams,
    stop: &[String],
    mut on_text: impl FnMut(&str),
) -> Result<(String, usize), ModelError> {
    let ids = tokenizer.encode(prompt)?;
    let mut generator = Generator::new(model, &ids, params)?;
    let mut stream = TextStream::new(tokenizer, stop);
    let mut text = String::new();
    let mut n = 0;
    while let Some(token) = generator.next_token()? {
        n += 1;
        let piece = stream.push(token)?;
        on_text(&piece);
        text.push_str(&piece);
        if stream.stopped() {
            generator.stop();
        }
    }
    let rest = stream.finish()?;
    on_text(&rest);
    text.push_str(&rest);
    Ok((text, n))
}
