//! `hnet-gpt bench`: this tool's side of the benchmark `scripts/bench.sh` runs beside PyTorch — training tokens/s
//! through the library's one training step, cached greedy generation tokens/s and time to the first token, and the
//! backend's measured matmul peak (the yardstick of model FLOPs utilisation); with the generation, the bytes of the
//! weights as they are kept (`--weights f16` halves the matrices) and the device memory the allocator holds on a
//! GPU. JSON on standard output.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, FloatDType, Tensor};
use hnet_gpt_model::generate::generation::{GenerateParams, Generator};
use hnet_gpt_model::generate::sampling::SamplingParams;
use hnet_gpt_model::io::checkpoint;
use hnet_gpt_model::nn::weights::{can_keep_in, keep_in, kept_bytes, loading_in};
use hnet_gpt_model::train::data::Packed;
use hnet_gpt_model::train::optim::{AdamW, ParamGroups};
use hnet_gpt_model::train::step::{train_step, StepOutcome};
use hnet_gpt_model::train::{Precision, TrainConfig};
use hnet_gpt_model::util::rng::Rng;
use hnet_gpt_model::{Model, ModelConfig};
use serde_json::{json, Value};

use crate::args::BenchArgs;
use crate::backend::{with_backend, DeviceMemory};

/// Runs the benchmark on the backend `args.device` selects and prints its JSON.
pub fn run(args: &BenchArgs) -> Result<()> {
    let out = with_backend!(args.device, |device: B| bench::<burn::backend::Autodiff<B>>(args, &device))?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn bench<A: AutodiffBackend>(args: &BenchArgs, device: &A::Device) -> Result<Value>
where
    A::InnerBackend: DeviceMemory,
{
    let config = ModelConfig::preset(args.arch, &args.preset)?;
    let mut out = json!({
        "tool": "hnet-gpt", "version": env!("CARGO_PKG_VERSION"), "arch": args.arch, "preset": args.preset,
        "device": crate::backend::describe(args.device), "threads": std::thread::available_parallelism().map_or(0, |n| n.get()), "config": config,
    });
    out["matmul"] = matmul_peak::<A::InnerBackend>(args.matmul_size, device);
    if args.train_steps > 0 {
        out["train"] = train::<A>(&config, args, device)?;
    }
    if args.new_tokens > 0 {
        // The matmuls above leave buffers in the allocator's pools: let them go, so that what it holds next is the model's.
        A::InnerBackend::memory_cleanup(device);
        let before = A::InnerBackend::reserved_bytes(device);
        let model = generation_model::<A::InnerBackend>(&config, args, device)?;
        let loaded = A::InnerBackend::reserved_bytes(device);
        out["generate"] = generate(&model, args)?;
        out["parameters"] = json!(model.num_params());
        out["config"] = json!(model.config);
        out["weights"] = json!({
            "dtype": args.weights, "bytes": kept_bytes(&model), "token_table_parts": model.embedding().parts.len(),
            "device_memory_bytes": { "before_loading": before, "loaded": loaded, "after_generation": A::InnerBackend::reserved_bytes(device) },
        });
    }
    Ok(out)
}

/// The generation benchmark's model — the checkpoint's, or a fresh one of the preset — with its weight matrices
/// kept as `--weights` says: narrowed as each arrives from the checkpoint (as the playground loads onto WebGPU), so
/// the f32 model is never whole on the device; a fresh model is initialised in f32 and narrowed after.
fn generation_model<B: Backend>(config: &ModelConfig, args: &BenchArgs, device: &B::Device) -> Result<Model<B>> {
    let dtype = FloatDType::from(args.weights);
    anyhow::ensure!(
        can_keep_in::<B>(device, dtype),
        "this device's kernels cannot read weights kept in f16 (a wgpu adapter needs shader-f16): run with --weights f32"
    );
    let model = loading_in(dtype, || -> Result<Model<B>> {
        match &args.checkpoint {
            Some(path) => checkpoint::load(path, device).with_context(|| format!("loading {}", path.display())),
            None => Ok(checkpoint::init(config, device)?),
        }
    })?;
    Ok(keep_in(model, dtype))
}

/// Sustained f32 matmul throughput of square `n`×`n` products, in GFLOP/s (best of several rounds).
fn matmul_peak<B: Backend>(n: usize, device: &B::Device) -> Value {
    let a = Tensor::<B, 2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let b = Tensor::<B, 2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let _ = a.clone().matmul(b.clone()).into_data(); // warm-up (kernels, autotune)
    let (reps, mut best) = (5, 0.0f64);
    for _ in 0..3 {
        let t = Instant::now();
        let mut acc = a.clone().matmul(b.clone());
        for _ in 1..reps {
            acc = acc + a.clone().matmul(b.clone());
        }
        let _ = acc.sum().into_data();
        best = best.max(2.0 * (n * n * n * reps) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    json!({"n": n, "dtype": "f32", "gflops": best})
}

/// Training steps through the library's `train_step` on random tokens (the values do not change the work).
fn train<A: AutodiffBackend>(config: &ModelConfig, args: &BenchArgs, device: &A::Device) -> Result<Value> {
    let mut tc = TrainConfig::new(config.clone());
    args.batch.apply(&mut tc);
    args.optimizer.apply(&mut tc);
    tc.validate()?;
    tc.precision.check::<A>().map_err(anyhow::Error::msg)?;
    let mut model = checkpoint::init::<A>(config, device)?;
    model.materialize();
    let params = model.num_params();
    let mut opt = AdamW::new(tc.adamw.clone(), ParamGroups::default());
    let mut rng = Rng::new(0);
    let vocab = config.decoder.vocab_size;
    let (batch_size, seq_len) = (tc.batch_size, tc.seq_len);
    let n_seq = batch_size * 4;
    let stream: Vec<u32> = (0..n_seq * seq_len + 1).map(|_| rng.below(vocab) as u32).collect();
    let data = Packed::new([(stream, 0)], seq_len, 0);
    let mut times = Vec::new();
    // Seconds per phase of the library's step (its `phase` callback marks where each begins; Flex runs eagerly, so
    // a boundary is where the work before it ended). On lazy GPU backends the split is only indicative.
    let mut phases: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut last_loss = f64::NAN;
    for step in 0..args.warmup_steps + args.train_steps {
        let idx: Vec<usize> = (0..batch_size).map(|i| (step * batch_size + i) % n_seq).collect();
        let t = Instant::now();
        let mut marks: Vec<(&'static str, Instant)> = Vec::new();
        let mut mark = |name: &'static str| {
            marks.push((name, Instant::now()));
            std::future::ready(())
        };
        let micro = [idx];
        let step_done = train_step(model, &mut opt, &data, &micro, tc.lr, tc.objective(), &mut mark);
        let (m, outcome) = futures_lite::future::block_on(step_done)?;
        model = m;
        let end = Instant::now();
        if step >= args.warmup_steps {
            times.push(t.elapsed().as_secs_f64());
            for (k, (name, start)) in marks.iter().enumerate() {
                let until = marks.get(k + 1).map_or(end, |(_, next)| *next);
                phases.entry(name).or_default().push(until.duration_since(*start).as_secs_f64());
            }
        }
        if let StepOutcome::Applied { loss, .. } = outcome {
            last_loss = loss;
        }
    }
    let phase_medians: BTreeMap<&str, f64> = phases.iter().map(|(k, v)| (*k, median(v))).collect();
    let tokens = (batch_size * seq_len) as f64;
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    Ok(json!({
        "batch_size": batch_size, "seq_len": seq_len, "warmup_steps": args.warmup_steps, "steps": args.train_steps,
        "parameters": params, "step_seconds": times, "median_step_seconds": median(&times),
        "tokens_per_second": tokens / mean, "median_phase_seconds": phase_medians, "last_loss": last_loss, "optimizer": "AdamW (hnet-gpt's, f32)",
        "precision": tc.precision, "amx": Precision::cpu_has_amx(),
    }))
}

/// Greedy cached generation of `new_tokens` after a `prompt_tokens` prompt; the first token's latency apart.
fn generate<B: Backend>(model: &Model<B>, args: &BenchArgs) -> Result<Value> {
    // The prompt: the reference tool passes the same ids (a fixed pseudo-random sequence).
    let mut rng = Rng::new(1);
    let prompt: Vec<u32> = (0..args.prompt_tokens).map(|_| rng.below(model.config.decoder.vocab_size) as u32).collect();
    let params = GenerateParams { sampling: SamplingParams::greedy(), max_new_tokens: args.new_tokens, seed: 0, stop_tokens: vec![] };
    let mut runs = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..args.gen_runs.max(1) {
        let t = Instant::now();
        let mut g = Generator::new(model, &prompt, params.clone())?;
        let first = g.next_token()?;
        let ttft = t.elapsed().as_secs_f64();
        while g.next_token()?.is_some() {}
        let total = t.elapsed().as_secs_f64();
        anyhow::ensure!(first.is_some(), "generation produced no token");
        tokens = g.generated().to_vec();
        runs.push((ttft, total));
    }
    let best = runs.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)).expect("at least one run");
    Ok(json!({
        "prompt_tokens": args.prompt_tokens, "new_tokens": tokens.len(), "runs": args.gen_runs.max(1),
        "time_to_first_token_seconds": best.0, "total_seconds": best.1,
        "tokens_per_second": tokens.len() as f64 / best.1,
        "decode_tokens_per_second": (tokens.len().saturating_sub(1)) as f64 / (best.1 - best.0).max(1e-9),
        "prompt": prompt, "generated": tokens,
    }))
}
