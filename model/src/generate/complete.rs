//! Text in, text out: a completion of a prompt — left to right, or fill-in-the-middle between a prefix and a suffix
//! for models whose tokenizer has FIM tokens — that stops at stop strings: the glue between the tokenizer and the
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
    on_text: impl FnMut(&str),
) -> Result<(String, usize), ModelError> {
    complete_ids(model, tokenizer, &tokenizer.encode(prompt)?, params, stop, on_text)
}

/// [`complete`] of the text between `prefix` and `suffix` ([`Tokenizer::fim_prompt`]); an error for a model without
/// FIM tokens. The completion is the middle.
#[cfg(not(target_arch = "wasm32"))]
pub fn complete_middle<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    prefix: &str,
    suffix: &str,
    params: GenerateParams,
    stop: &[String],
    on_text: impl FnMut(&str),
) -> Result<(String, usize), ModelError> {
    complete_ids(model, tokenizer, &tokenizer.fim_prompt(prefix, suffix)?, params, stop, on_text)
}

/// [`complete`] from prompt token ids.
#[cfg(not(target_arch = "wasm32"))]
pub fn complete_ids<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    ids: &[u32],
    params: GenerateParams,
    stop: &[String],
    mut on_text: impl FnMut(&str),
) -> Result<(String, usize), ModelError> {
    let mut generator = Generator::new(model, ids, params)?;
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
