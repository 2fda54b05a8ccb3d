//! Fine-tuning in the worker: the user's snippets are tokenized, the last fifth held back, the model trained a
//! few steps with the library's one training step, and perplexity on the held-back part measured before and
//! after. Progress streams to the page as [`Reply::Step`]s.

use std::cell::Cell;
use std::rc::Rc;

use hnet_gpt_model::io::params::TrainScope;
use hnet_gpt_model::tokenizer::Tokenizer;
use hnet_gpt_model::train::data::{hold_back_fifth, Packed};

use super::engine::{Engine, FineTune, TuneSettings};
use super::post;
use crate::protocol::{JobId, Reply, Scope, TuneRequest};
use crate::web;

/// Fewer tokens than this cannot fill a training sequence and a held-back part.
const MIN_TOKENS: usize = 24;

/// Fine-tunes `engine`'s model on the request's snippets; returns the tuned model.
pub async fn fine_tune(
    job: JobId,
    engine: &Engine,
    tokenizer: &Tokenizer,
    request: TuneRequest,
    cancel: Rc<Cell<bool>>,
) -> Result<Engine, String> {
    let encoded: Vec<Vec<u32>> = request.snippets.iter().filter_map(|d| tokenizer.encode(d).ok()).filter(|d| !d.is_empty()).collect();
    if encoded.iter().map(Vec::len).sum::<usize>() < MIN_TOKENS {
        return Err("Add more code to train on: at least a few lines (separate snippets with a line `# ---`).".into());
    }
    let (train_docs, held) = hold_back_fifth(encoded);
    let stream_len: usize = train_docs.iter().map(|d| d.len() + 1).sum();
    let seq_len = 64.min(stream_len.saturating_sub(1)).max(8);
    let data = Packed::new(train_docs.into_iter().map(|d| (d, 0)), seq_len, tokenizer.eos_id());
    let settings = TuneSettings {
        steps: request.steps.clamp(1, 1000),
        lr: request.lr,
        batch: request.batch.clamp(1, 16),
        seq_len,
        scope: match request.scope {
            Scope::EncoderAndFusion => TrainScope::EncoderAndFusion,
            Scope::Everything => TrainScope::Everything,
        },
    };
    post(job, Reply::Progress("Measuring perplexity on the held-back part…".into()), None);
    let before = engine.perplexity(&held, tokenizer.eos_id()).await?;
    post(job, Reply::Perplexity { before, after: None }, None);
    if engine.on_gpu() && engine.split_table() {
        post(job, Reply::Progress("Fine-tuning on the CPU: this model's token table is larger than one buffer of this GPU, and so would be a batch's logits over its vocabulary. The model returns to WebGPU afterwards.".into()), None);
    }
    let mut tuner = FineTune::start(engine, data, &settings).await?;
    let t0 = web::now_ms();
    let (mut last, mut first_done) = (t0, t0);
    for step in 1..=settings.steps {
        if cancel.get() {
            post(job, Reply::Progress(format!("Cancelled after {} steps.", step - 1)), None);
            break;
        }
        let loss = tuner.step().await?;
        let now = web::now_ms();
        let (elapsed, step_ms) = ((now - t0) / 1000.0, now - last);
        last = now;
        let tokens_per_s = (step * settings.batch * settings.seq_len) as f64 / elapsed.max(1e-3);
        // The first step compiles kernels and warms caches: after it, the estimate uses the steps since.
        let per_step_s = if step == 1 { elapsed } else { (now - first_done) / 1000.0 / (step - 1) as f64 };
        if step == 1 {
            first_done = now;
        }
        let eta_s = per_step_s * (settings.steps - step) as f64;
        let (memory_bytes, on_gpu) = (tuner.memory_bytes(), tuner.on_gpu());
        post(job, Reply::Step { step, steps: settings.steps, loss, tokens_per_s, eta_s, step_ms, memory_bytes, on_gpu }, None);
    }
    let tuned = tuner.finish();
    let after = tuned.perplexity(&held, tokenizer.eos_id()).await?;
    post(job, Reply::Perplexity { before, after: Some(after) }, None);
    Ok(tuned)
}
