//! The three architectures, tested with teeth:
//! - causality: changing tokens after position t never moves logits or boundary probabilities at ≤ t
//!   (the library's check: padded multi-row batches and cached decoding, with boundaries that really vary), and
//!   the seed's leak — chunks mean-pooled over all their tokens — fails the very same check;
//! - cached decoding equals the full forward pass at each of 64 positions;
//! - generation, scoring and chunk inspection run for every architecture.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Distribution, Int, Tensor, TensorData};
use hnet_gpt_model::arch::model::Net;
use hnet_gpt_model::eval::causality;
use hnet_gpt_model::eval::inspect::inspect_chunks_blocking;
use hnet_gpt_model::eval::score::score_text;
use hnet_gpt_model::generate::sampling::SamplingParams;
use hnet_gpt_model::generate::{generate, GenerateParams};
use hnet_gpt_model::hnet::chunk::boundary_cumsum;
use hnet_gpt_model::hnet::dechunk::{ema, plug_back, P_EPS};
use hnet_gpt_model::hnet::ste::ste;
use hnet_gpt_model::tokenizer::Tokenizer;
use hnet_gpt_model::util::rng::Rng;
use hnet_gpt_model::{Arch, Model, ModelConfig};

type B = burn::backend::Flex;

/// Adds N(0, σ) noise to every weight: GPT-2's 0.02 init makes most effects tiny, so a 1e-5 test would prove
/// little. With noise, every path (router, main network, fusion gate) changes the output by whole units.
struct Jitter(f64);
impl<Bk: Backend> ModuleMapper<Bk> for Jitter {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<Bk, D>>) -> Param<Tensor<Bk, D>> {
        let sigma = self.0;
        param.map(|t| {
            let noise = Tensor::random(t.shape(), Distribution::Normal(0.0, sigma), &t.device());
            t + noise
        })
    }
}

fn model(arch: Arch, seed: u64) -> Model<B> {
    let device = Default::default();
    <B as Backend>::seed(&device, seed);
    let config = ModelConfig::preset(arch, "tiny").unwrap();
    Model::<B>::init(&config, &device).unwrap().map(&mut Jitter(0.15))
}

fn tokens(ids: &[u32]) -> Tensor<B, 2, Int> {
    let data: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
    Tensor::from_data(TensorData::new(data, [1, ids.len()]), &Default::default())
}

fn all_true(n: usize) -> Tensor<B, 2, Bool> {
    Tensor::from_data(TensorData::new(vec![true; n], [1, n]), &Default::default())
}

#[test]
fn every_architecture_is_causal_in_padded_batches_and_in_cached_decoding() {
    for arch in Arch::ALL {
        let m = model(arch, 11);
        // Full pass: batches of 1–3 rows of mixed lengths, padding masked.
        let full = causality::check(&m, 24, 1 + arch as u64);
        assert!(
            full.max_change <= causality::TOLERANCE,
            "{arch}: positions ≤ t moved by {} when only later tokens changed",
            full.max_change
        );
        assert!(full.rows >= 24);
        // The router must really decide: some positions boundaries, some not (else the chunk paths went untested).
        assert_eq!(full.boundaries_varied, arch != Arch::Gpt2, "{arch}: boundaries did not vary");
        // Cached decoding: a prefill, then several new tokens per call.
        let cached = causality::check_cached(&m, 12, 7 + arch as u64);
        assert!(cached.max_change <= causality::TOLERANCE, "{arch}: cached decoding moved positions ≤ t by {}", cached.max_change);
        assert_eq!(cached.boundaries_varied, arch != Arch::Gpt2);
    }
}

/// Every architecture with its weight matrices kept in f16 (for a GPU with `shader-f16`):
/// causal, and the same model as its weights rounded to f16 and computed in f32 but for the head's f16 products
/// (the router sees the same values, so the chunks are the same).
#[test]
fn every_architecture_with_weights_kept_in_f16_is_causal_and_computes_in_f32() {
    use burn::tensor::FloatDType;
    use hnet_gpt_model::nn::weights::keep_in;
    for arch in Arch::ALL {
        let half = keep_in(model(arch, 13), FloatDType::F16);
        let rounded = keep_in(half.clone(), FloatDType::F32);
        let full = causality::check(&half, 12, 3 + arch as u64);
        assert!(full.max_change <= causality::TOLERANCE, "{arch}: positions ≤ t moved by {}", full.max_change);
        assert_eq!(full.boundaries_varied, arch != Arch::Gpt2, "{arch}: boundaries did not vary");
        let ids: Vec<u32> = (0..40).map(|i| (i * 37 + 11) % 256).collect();
        let ours = half.forward(tokens(&ids)).into_data().to_vec::<f32>().unwrap();
        let want = rounded.forward(tokens(&ids)).into_data().to_vec::<f32>().unwrap();
        let scale = want.iter().fold(0.0, |m: f32, x| m.max(x.abs()));
        let diff = ours.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff <= 2e-3 * scale, "{arch}: max abs diff {diff} at logits up to {scale}");
    }
}

/// The seed's hybrid pooled each chunk over all of its tokens. Rebuild the pure H-Net that way (test only) and
/// show the causality check catches it.
#[test]
fn the_seeds_mean_pooled_chunks_fail_the_causality_check() {
    let m = model(Arch::Hnet, 12);
    let Net::HNet(h) = &m.net else { unreachable!() };
    let leaky_row = |ids: &[u32]| {
        let l = ids.len();
        let x = h.encoder.forward(h.wte.forward(tokens(ids)), 0, None); // [1, L, D]
        let routing = h.stage.routing.forward(x.clone(), None, all_true(l));
        let cs = boundary_cumsum(routing.boundary_mask.clone()); // [1, L]
                                                                 // one_hot[j, t] = 1 if token t belongs to chunk j — including tokens after t: the leak.
        let slots = Tensor::<B, 1, Int>::arange(0..l as i64, &Default::default()).reshape([1, l, 1]);
        let one_hot = (cs.clone() - 1).reshape([1, 1, l]).equal(slots).float(); // [1, L(slots), L]
        let counts = one_hot.clone().sum_dim(2).clamp_min(1.0); // [1, L, 1]
        let means = one_hot.matmul(x.clone()) / counts; // [1, L, D]
        let z_hat = h.stage.main.forward(means, 0, None);
        let p_chunks = one_hot_first(&cs, routing.boundary_prob.clone());
        let z_bar = ema(z_hat, p_chunks.clamp(P_EPS, 1.0 - P_EPS), None);
        let z_tilde = plug_back(z_bar, (cs - 1).clamp_min(0));
        let c = routing.selected_probs.clone().reshape([1, l, 1]);
        let z = z_tilde * ste(c) + h.stage.residual_proj.forward(x);
        let logits = h.lm_head(h.decoder.forward(z, 0, None));
        (logits.into_data().to_vec::<f32>().unwrap(), routing.boundary_prob.into_data().to_vec::<f32>().unwrap())
    };
    let leaky = |rows: &[Vec<u32>]| Some(rows.iter().map(|r| leaky_row(r)).collect());
    let leak = causality::check_with(leaky, 50257, 32, 24, 99).max_change;
    assert!(leak > 1e-3, "the leaky variant should fail the causality check, but max change was {leak}");
}

/// The boundary probability of each chunk's first token, per chunk slot (slot j = chunk j). `[1, L]`.
fn one_hot_first(cs: &Tensor<B, 2, Int>, p: Tensor<B, 2>) -> Tensor<B, 2> {
    let l = p.dims()[1];
    let idx = hnet_gpt_model::hnet::chunk::chunk_indices(cs.clone(), l);
    p.gather(1, idx)
}

#[test]
fn cached_decoding_equals_the_full_pass_at_each_of_64_positions() {
    for arch in Arch::ALL {
        let m = model(arch, 21);
        let mut rng = Rng::new(5);
        let ids: Vec<u32> = (0..64).map(|_| rng.below(50257) as u32).collect();
        let full = m.forward(tokens(&ids));
        let v = full.dims()[2];
        let full = full.into_data().to_vec::<f32>().unwrap();
        let mut state = m.new_state();
        // A prefill of 5 tokens, then one token per step.
        let pre = m.forward_cached_blocking(tokens(&ids[..5]), &mut state, false).unwrap().logits.into_data().to_vec::<f32>().unwrap();
        let diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff(&pre, &full[..5 * v]) <= 1e-4, "{arch}: prefill differs by {}", diff(&pre, &full[..5 * v]));
        for t in 5..64 {
            let step =
                m.forward_cached_blocking(tokens(&ids[t..t + 1]), &mut state, true).unwrap().logits.into_data().to_vec::<f32>().unwrap();
            let d = diff(&step, &full[t * v..(t + 1) * v]);
            assert!(d <= 1e-4, "{arch}: position {t}: cached vs full max abs diff {d}");
        }
        if arch != Arch::Gpt2 {
            let chunks = state.n_chunks().unwrap();
            assert!(chunks > 1 && chunks < 64, "{arch}: {chunks} chunks — the test should exercise both branches");
        }
    }
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_file(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../public/tokenizer.json")).unwrap()
}

#[test]
fn generate_score_and_inspect_work_for_every_architecture() {
    let tok = tokenizer();
    let text = "def add(a, b):\n    return a + b\n";
    for arch in Arch::ALL {
        let m = model(arch, 31);
        let ids = tok.encode(text).unwrap();
        let params = GenerateParams { sampling: SamplingParams::greedy(), max_new_tokens: 6, seed: 0, stop_tokens: vec![] };
        let out = generate(&m, &ids, params, |_| true).unwrap();
        assert_eq!(out.len(), 6, "{arch}");
        // Greedy generation must agree with argmax of the full pass (it is cached underneath).
        let full = m.forward(tokens(&ids)).into_data().to_vec::<f32>().unwrap();
        let last = &full[full.len() - 50257..];
        assert_eq!(out[0], hnet_gpt_model::generate::sampling::argmax(last), "{arch}");
        let report = score_text(&m, &tok, text).unwrap();
        assert!(report.bits_per_byte.is_finite() && report.bits_per_byte > 0.0, "{arch}");
        match inspect_chunks_blocking(&m, &tok, text) {
            Ok(r) => {
                assert_ne!(arch, Arch::Gpt2);
                assert_eq!(r.tokens.len(), ids.len());
                assert!(r.tokens[0].boundary && r.tokens[0].p == 1.0, "position 0 always starts a chunk");
                assert_eq!(r.chunks.iter().map(|c| c.end - c.start).sum::<usize>(), text.len(), "chunks tile the text");
                assert_eq!(r.n_chunks, r.tokens.iter().filter(|t| t.boundary).count());
            }
            Err(e) => assert_eq!(arch, Arch::Gpt2, "{e}"),
        }
    }
}

#[test]
fn padding_does_not_change_real_positions_and_compacted_slots_give_the_same_logits() {
    for arch in [Arch::Hnet, Arch::Hybrid] {
        let m = model(arch, 41);
        let ids: Vec<u32> = (0..20).map(|i| (i * 977 + 13) % 50257).collect();
        let reference = m.forward(tokens(&ids)).into_data().to_vec::<f32>().unwrap();
        // Right-pad to 28 with junk tokens masked out.
        let mut padded = ids.clone();
        padded.extend([50256; 8]);
        let mask: Vec<bool> = (0..28).map(|i| i < 20).collect();
        let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(mask, [1, 28]), &Default::default());
        let out = m.forward_full(tokens(&padded), mask, None).logits.into_data().to_vec::<f32>().unwrap();
        let v = 50257;
        let d = reference.iter().zip(&out[..20 * v]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(d <= 1e-5, "{arch}: padding moved real positions by {d}");
        // Running the main network over exactly as many slots as there are chunks changes nothing.
        let aux = m.forward_full(tokens(&ids), all_true(20), None).aux.unwrap();
        let n = aux.boundary_cumsum.clone().narrow(1, 19, 1).into_data().to_vec::<i32>().unwrap()[0] as usize;
        let compact = m.forward_full(tokens(&ids), all_true(20), Some(n)).logits.into_data().to_vec::<f32>().unwrap();
        let d = reference.iter().zip(&compact).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(d <= 1e-5, "{arch}: compacted slots moved logits by {d}");
    }
}

#[test]
fn long_texts_are_chunked_in_windows_that_match_the_model_and_are_cached() {
    use hnet_gpt_model::eval::inspect::{inspect_chunks, inspect_chunks_windowed, route_ids, windows, WindowCache};
    use hnet_gpt_model::tokenizer::Tokenizer as Tok;
    let tok: Tok = tokenizer();
    let m = model(Arch::Hybrid, 53);
    let n_ctx = m.n_ctx();
    let short = "def add(a, b):\n    return a + b\n";
    let mut go_on = |_, _| async { true };
    let run = |text: &str, cache: &mut WindowCache, go_on: &mut _| {
        futures_lite::future::block_on(inspect_chunks_windowed(&m, &tok, text, cache, go_on)).unwrap().unwrap()
    };
    // A text within the context: exactly the one-window inspection.
    let (windowed, stats) = run(short, &mut WindowCache::default(), &mut go_on);
    assert_eq!(stats.windows, 1);
    assert_eq!(windowed, futures_lite::future::block_on(inspect_chunks(&m, &tok, short)).unwrap());
    // A text of several contexts: every token is scored, each owned token as its window sees it.
    let long: String = (0..60).map(|i| format!("def f{i}(x):\n    return x * {i} + {}\n\n", i * 7)).collect();
    let ids = tok.encode(&long).unwrap();
    assert!(ids.len() > 3 * n_ctx, "the test text must span several windows ({} tokens)", ids.len());
    let mut cache = WindowCache::default();
    let (report, stats) = run(&long, &mut cache, &mut go_on);
    assert_eq!(report.tokens.len(), ids.len());
    assert_eq!(report.chunks.last().unwrap().end, long.len(), "chunks cover the whole text");
    let plan = windows(ids.len(), n_ctx);
    assert_eq!((stats.windows, stats.cached), (plan.len(), 0));
    let w = &plan[2];
    let (direct, _) = futures_lite::future::block_on(route_ids(&m, &ids[w.start..w.start + w.len])).unwrap();
    for i in w.own.clone() {
        assert_eq!(report.tokens[i].p, direct[i - w.start], "token {i} takes its window's value");
    }
    // Again, unchanged: every window from the cache. After an edit at the end, only the last windows run.
    let (again, stats) = run(&long, &mut cache, &mut go_on);
    assert_eq!((again, stats.cached), (report, plan.len()));
    let edited = format!("{long}def tail():\n    pass\n");
    let (_, stats) = run(&edited, &mut cache, &mut go_on);
    assert!(stats.cached >= plan.len() - 2, "an edit at the end reran {} of {} windows", stats.windows - stats.cached, stats.windows);
    // A progress callback that says stop ends the run early.
    let mut stop = |done, _| async move { done < 2 };
    let stopped = futures_lite::future::block_on(inspect_chunks_windowed(&m, &tok, &long, &mut WindowCache::default(), &mut stop)).unwrap();
    assert!(stopped.is_none());
}

#[test]
fn routing_alone_gives_the_boundaries_of_the_full_pass() {
    for arch in [Arch::Hnet, Arch::Hybrid] {
        let m = model(arch, 61);
        let ids: Vec<u32> = (0..40).map(|i| (i * 131 + 7) % 50257).collect();
        let full = m.forward_full(tokens(&ids), all_true(40), None).aux.unwrap().routing;
        let alone = m.route(tokens(&ids), all_true(40)).unwrap();
        full.boundary_prob.into_data().assert_eq(&alone.boundary_prob.into_data(), true);
        full.boundary_mask.into_data().assert_eq(&alone.boundary_mask.into_data(), true);
    }
    assert!(model(Arch::Gpt2, 61).route(tokens(&[1, 2]), all_true(2)).is_none());
}

/// Names the float parameters that do not require a gradient.
struct Untrainable(Vec<String>);
impl<Bk: Backend> burn::module::ModuleVisitor<Bk> for Untrainable {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
        if !param.val().is_require_grad() {
            self.0.push(format!("{:?} {:?}", param.id, param.val().shape()));
        }
    }
}

/// burn's `Param::map` takes `require_grad` from the tensor it is given, so a parameter re-initialised with
/// `zeros_like` silently stops training unless the new tensor asks for a gradient: every architecture and every
/// decoder family must come out of `init` with all its parameters trainable.
#[test]
fn every_initialised_parameter_requires_a_gradient() {
    use hnet_gpt_model::arch::family::Family;
    type A = burn::backend::Autodiff<B>;
    let device = Default::default();
    for arch in Arch::ALL {
        for family in [Family::Gpt2, Family::GptBigCode, Family::Llama, Family::Qwen2] {
            let mut config = ModelConfig::preset(arch, "tiny").unwrap();
            config.decoder.family = family;
            if matches!(family, Family::Llama | Family::Qwen2) {
                config.decoder.rope_theta = Some(10_000.0);
            }
            config.decoder.attention_bias = family == Family::Qwen2;
            let Ok(model) = Model::<A>::init(&config, &device) else { continue };
            let mut found = Untrainable(Vec::new());
            model.visit(&mut found);
            assert!(found.0.is_empty(), "{arch:?} / {family:?}: {} frozen at init: {:?}", found.0.len(), found.0);
        }
    }
}

/// `with_context(n)`: a model keeps its outputs on the first `n` positions, says `n_ctx() == n`, saves and loads as
/// such, and refuses a context it does not have.
#[test]
fn a_shorter_context_keeps_the_outputs_on_the_positions_it_keeps() {
    for arch in Arch::ALL {
        let full = model(arch, 3);
        let ids: Vec<u32> = (0..24).map(|i| (i * 31 % 200) as u32).collect();
        let before = full.forward(full.tokens_tensor(&ids).unwrap());
        let n_ctx = full.n_ctx();
        let short = full.clone().with_context(24).unwrap();
        assert_eq!(short.n_ctx(), 24, "{arch}");
        let after = short.forward(short.tokens_tensor(&ids).unwrap());
        after.into_data().assert_approx_eq::<f32>(&before.into_data(), burn::tensor::Tolerance::absolute(1e-6));
        let bytes = hnet_gpt_model::io::checkpoint::to_bytes(&short, &[]).unwrap();
        let loaded: Model<B> = hnet_gpt_model::io::checkpoint::from_bytes(&bytes, "short", &Default::default()).unwrap();
        assert_eq!(loaded.n_ctx(), 24, "{arch}");
        assert!(full.clone().with_context(n_ctx + 1).is_err() && full.with_context(0).is_err(), "{arch}");
    }
}

/// The page fine-tunes the model it already holds (a 0.5B model has no room for a second copy): a model loaded on the
/// inference backend, taken into autodiff, must train every parameter.
#[test]
fn a_loaded_inference_model_taken_into_autodiff_trains_every_parameter() {
    use hnet_gpt_model::io::checkpoint;
    type A = burn::backend::Autodiff<B>;
    for arch in Arch::ALL {
        let bytes = checkpoint::to_bytes(&model(arch, 3), &[]).unwrap();
        let inner = checkpoint::from_bytes::<B>(&bytes, "test", &Default::default()).unwrap();
        let trained = Model::<A>::trainable(inner);
        let mut found = Untrainable(Vec::new());
        trained.visit(&mut found);
        assert!(found.0.is_empty(), "{arch:?}: {} frozen: {:?}", found.0.len(), &found.0[..found.0.len().min(3)]);
    }
}

/// The page fine-tunes a model whose weights it keeps in f16 by widening it to f32 first: then every parameter is
/// f32, trainable, and gets an f32 gradient; narrowed again afterwards, it is kept in f16 as before.
#[test]
fn a_model_kept_in_f16_widened_trains_in_f32_and_narrows_again() {
    use burn::tensor::{DType, FloatDType};
    use hnet_gpt_model::nn::weights::{keep_in, kept_bytes};
    type A = burn::backend::Autodiff<B>;
    struct Grads<'a>(&'a <A as burn::tensor::backend::AutodiffBackend>::Gradients, Vec<Option<DType>>);
    impl burn::module::ModuleVisitor<A> for Grads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
            self.1.push(param.val().grad(self.0).map(|g| g.dtype()));
        }
    }
    for arch in Arch::ALL {
        let half = keep_in(model(arch, 5), FloatDType::F16);
        let trained = Model::<A>::trainable(keep_in(half.clone(), FloatDType::F32));
        let ids: Vec<u32> = (0..16).map(|i| (i * 29 + 3) % 256).collect();
        let loss = trained.forward(trained.tokens_tensor(&ids).unwrap()).powi_scalar(2).mean();
        let grads = loss.backward();
        let mut seen = Grads(&grads, Vec::new());
        trained.visit(&mut seen);
        assert!(!seen.1.is_empty() && seen.1.iter().all(|d| *d == Some(DType::F32)), "{arch}: gradients {:?}", seen.1);
        let again = keep_in(burn::module::AutodiffModule::valid(&trained), FloatDType::F16);
        assert_eq!(kept_bytes(&again), kept_bytes(&half), "{arch}");
    }
}
