//! Parity with Hugging Face: a tiny random GPT-2 written by `scripts/fixtures/gen_reference.py` (transformers'
//! GPT2LMHeadModel, saved with `save_pretrained`) is imported through `load::import_hf_dir`; our logits must equal
//! the reference logits within 1e-4, and greedy decoding must reproduce `generate(do_sample=False)`.
//! Also: cached decoding equals the full forward pass at every step, on the CPU backend and (when a Vulkan device
//! exists, e.g. Mesa lavapipe) on wgpu.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use hnet_gpt_model::generate::sampling::SamplingParams;
use hnet_gpt_model::generate::{generate, GenerateParams};
use hnet_gpt_model::io::hf::import_hf_dir;
use hnet_gpt_model::{LoadError, Model};
use serde::Deserialize;

type Cpu = burn::backend::Flex;

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    ids: Vec<u32>,
    logits: Vec<Vec<f32>>,
    greedy: Vec<u32>,
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-tiny-gpt2")
}

fn reference() -> Reference {
    serde_json::from_slice(&std::fs::read(fixture_dir().join("reference.json")).unwrap()).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn logits_of<B: Backend>(model: &Model<B>, ids: &[u32]) -> Vec<f32> {
    model.forward(model.tokens_tensor(ids).unwrap()).into_data().to_vec::<f32>().unwrap()
}

#[test]
fn logits_equal_hugging_face() {
    let model: Model<Cpu> = import_hf_dir(&fixture_dir(), &Default::default()).unwrap();
    let reference = reference();
    assert!(reference.cases.len() >= 3);
    for case in &reference.cases {
        let ours = logits_of(&model, &case.ids);
        let theirs: Vec<f32> = case.logits.iter().flatten().copied().collect();
        let diff = max_abs_diff(&ours, &theirs);
        assert!(diff <= 1e-4, "prompt {:?}: max abs diff {diff}", case.ids);
        // The check has teeth: logits vary by whole units across the vocabulary.
        let spread = theirs.iter().fold(f32::MIN, |a, &b| a.max(b)) - theirs.iter().fold(f32::MAX, |a, &b| a.min(b));
        assert!(spread > 1.0, "reference logits are nearly constant ({spread}): the fixture would not catch bugs");
    }
}

#[test]
fn greedy_generation_equals_hugging_face_generate() {
    let model: Model<Cpu> = import_hf_dir(&fixture_dir(), &Default::default()).unwrap();
    for case in reference().cases {
        let params = GenerateParams { sampling: SamplingParams::greedy(), max_new_tokens: case.greedy.len(), seed: 0, stop_tokens: vec![] };
        let ours = generate(&model, &case.ids, params, |_| true).unwrap();
        assert_eq!(ours, case.greedy, "prompt {:?}", case.ids);
    }
}

/// Transposing Conv1D weights (what burn-store's PyTorch adapter would do) must break parity: the test above
/// really checks the layout.
#[test]
fn a_transposed_c_proj_would_be_caught() {
    let model: Model<Cpu> = import_hf_dir(&fixture_dir(), &Default::default()).unwrap();
    let case = &reference().cases[0];
    let mut broken = model.clone();
    let hnet_gpt_model::arch::model::Net::Decoder(hnet_gpt_model::arch::decoder::Decoder::Gpt2(g)) = &mut broken.net else {
        panic!("imported a gpt2")
    };
    g.h[0].attn.c_proj.weight = g.h[0].attn.c_proj.weight.clone().map(|w| w.transpose());
    let theirs: Vec<f32> = case.logits.iter().flatten().copied().collect();
    assert!(max_abs_diff(&logits_of(&broken, &case.ids), &theirs) > 1e-2);
}

fn cached_equals_uncached<B: Backend>(device: &B::Device, steps: usize) {
    let model: Model<B> = import_hf_dir(&fixture_dir(), device).unwrap();
    let ids: Vec<u32> = (0..steps as u32).map(|i| (i * 131 + 7) % 1000).collect();
    let full = model.forward(model.tokens_tensor(&ids).unwrap()); // [1, T, V]
    let v = full.dims()[2];
    let full = full.into_data().to_vec::<f32>().unwrap();
    let mut state = model.new_state();
    // Prefill the first 4 tokens in one call, then one token per step.
    let prefill = model.forward_cached_blocking(model.tokens_tensor(&ids[..4]).unwrap(), &mut state, false).unwrap().logits;
    let prefill = prefill.into_data().to_vec::<f32>().unwrap();
    assert!(max_abs_diff(&prefill, &full[..4 * v]) <= 1e-4);
    for t in 4..steps {
        let step = model.forward_cached_blocking(model.tokens_tensor(&ids[t..t + 1]).unwrap(), &mut state, true).unwrap().logits;
        let step = step.into_data().to_vec::<f32>().unwrap();
        let diff = max_abs_diff(&step, &full[t * v..(t + 1) * v]);
        assert!(diff <= 1e-4, "step {t}: cached vs uncached max abs diff {diff}");
    }
}

#[test]
fn cached_logits_equal_uncached_at_each_of_64_steps() {
    cached_equals_uncached::<Cpu>(&Default::default(), 64);
}

/// The same check on burn's wgpu backend. CI installs Mesa's lavapipe (a software Vulkan device), so the GPU code
/// path — WGSL kernels, device buffers, async reads — runs on every CI build.
#[test]
fn cached_logits_equal_uncached_on_wgpu() {
    if std::env::var_os("HNET_SKIP_WGPU").is_some() {
        eprintln!("HNET_SKIP_WGPU set: skipping the wgpu test");
        return;
    }
    cached_equals_uncached::<burn::backend::Wgpu>(&Default::default(), 24);
}

/// Weights kept in f16 (`nn::weights::keep_in`), for a GPU with `shader-f16`: the weight
/// matrices take half the bytes, the vectors and GPT-2's learned positions stay in f32, and the logits stay within
/// f16's rounding of transformers' — at every position of the full pass, and step by step through the cache.
fn weights_kept_in_f16<B: Backend>(device: &B::Device) {
    use burn::tensor::{DType, FloatDType};
    use hnet_gpt_model::nn::weights::{keep_in, kept_bytes, loading_in};
    let f32_model: Model<B> = import_hf_dir(&fixture_dir(), device).unwrap();
    let model = keep_in(f32_model.clone(), FloatDType::F16);
    let hnet_gpt_model::arch::model::Net::Decoder(hnet_gpt_model::arch::decoder::Decoder::Gpt2(g)) = &model.net else {
        panic!("imported a gpt2")
    };
    assert_eq!(g.h[0].attn.c_attn.weight.val().dtype(), DType::F16);
    assert_eq!(g.wte.parts[0].val().dtype(), DType::F16);
    assert_eq!((g.wpe.weight.val().dtype(), g.ln_f.gamma.val().dtype()), (DType::F32, DType::F32));
    let (full, half) = (kept_bytes(&f32_model), kept_bytes(&model));
    assert!(half < full * 6 / 10 && half > full * 4 / 10, "f32 {full} bytes, kept in f16 {half}");
    for case in &reference().cases {
        let theirs: Vec<f32> = case.logits.iter().flatten().copied().collect();
        let ours = logits_of(&model, &case.ids);
        // f16 keeps 11 significant bits of every weight: the logits move by a few thousandths of their scale.
        let scale = theirs.iter().fold(0.0, |m: f32, x| m.max(x.abs()));
        let diff = max_abs_diff(&ours, &theirs);
        assert!(diff > 0.0 && diff <= 4e-3 * scale, "prompt {:?}: max abs diff {diff} at logits up to {scale}", case.ids);
        // Cached, a token at a time: equal to the full pass within a unit in the last place of the largest logit in
        // f16 (the head's products come out in f16: at magnitude 4 a unit is 0.004).
        let v = ours.len() / case.ids.len();
        let ulp = |x: f32| 2f32.powi(x.abs().max(1e-3).log2().floor() as i32 - 10);
        let mut state = model.new_state();
        for (t, id) in case.ids.iter().enumerate() {
            let step = model.forward_cached_blocking(model.tokens_tensor(&[*id]).unwrap(), &mut state, true).unwrap().logits;
            let step = step.into_data().to_vec::<f32>().unwrap();
            let full = &ours[t * v..(t + 1) * v];
            let unit = ulp(full.iter().fold(0.0, |m: f32, x| m.max(x.abs())));
            let worst = max_abs_diff(&step, full) / unit;
            assert!(worst <= 1.0, "prompt {:?}, step {t}: cached vs uncached differ by {worst} units of f16", case.ids);
        }
    }
    // Narrowed tensor by tensor as it is copied onto the device (as the page moves a model onto WebGPU, so that
    // the f32 model is never whole there): the same model.
    let host: Model<Cpu> = import_hf_dir(&fixture_dir(), &Default::default()).unwrap();
    let copied: Model<B> = loading_in(FloatDType::F16, || hnet_gpt_model::io::checkpoint::copy_to(&host, device)).unwrap();
    assert_eq!(kept_bytes(&copied), half);
    let ids = &reference().cases[0].ids;
    assert_eq!(logits_of(&copied, ids), logits_of(&model, ids));
    // Kept in f32 again, the model computes as it did (its weights rounded to f16's values).
    let back = keep_in(model, FloatDType::F32);
    assert_eq!(kept_bytes(&back), full);
}

#[test]
fn weights_kept_in_f16_give_the_logits_within_f16s_rounding() {
    weights_kept_in_f16::<Cpu>(&Default::default());
}

/// On wgpu (lavapipe in CI, which has `shader-f16`; a device without it is skipped, saying so).
#[test]
fn weights_kept_in_f16_give_the_logits_on_wgpu() {
    if std::env::var_os("HNET_SKIP_WGPU").is_some() {
        eprintln!("HNET_SKIP_WGPU set: skipping the wgpu test");
        return;
    }
    let device = Default::default();
    if !hnet_gpt_model::nn::weights::can_keep_in::<burn::backend::Wgpu>(&device, burn::tensor::FloatDType::F16) {
        eprintln!("this wgpu device has no shader-f16: skipping the f16 test");
        return;
    }
    weights_kept_in_f16::<burn::backend::Wgpu>(&device);
}

#[test]
fn import_errors_name_the_tensor_or_field() {
    let dir = std::env::temp_dir().join(format!("hnet-hf-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = std::fs::read_to_string(fixture_dir().join("config.json")).unwrap();
    let weights = std::fs::read(fixture_dir().join("model.safetensors")).unwrap();
    let write = |config: &str, weights: &[u8]| {
        std::fs::write(dir.join("config.json"), config).unwrap();
        std::fs::write(dir.join("model.safetensors"), weights).unwrap();
        import_hf_dir::<Cpu>(&dir, &Default::default()).expect_err("import should fail")
    };
    // A truncated file.
    assert!(matches!(write(&config, &weights[..weights.len() - 100]), LoadError::Format { .. }));
    // An unknown model type.
    assert!(matches!(write(&config.replace("\"gpt2\"", "\"mistral\""), &weights), LoadError::UnsupportedModelType(t) if t == "mistral"));
    // A config that disagrees with the tensors.
    let more_layers = config.replace("\"n_layer\": 2", "\"n_layer\": 3");
    assert_ne!(more_layers, config, "fixture config format changed");
    assert!(matches!(write(&more_layers, &weights), LoadError::Config { field, .. } if field == "n_layer"));
    let wider = config.replace("\"n_embd\": 32", "\"n_embd\": 64");
    assert!(matches!(write(&wider, &weights), LoadError::Config { field, .. } if field == "n_embd"));
    // A missing tensor and a wrong shape, made by rewriting the safetensors file.
    let tensors = safetensors::SafeTensors::deserialize(&weights).unwrap();
    let rewrite = |skip: &str, reshape: Option<&str>| {
        let kept: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .tensors()
            .into_iter()
            .filter(|(n, _)| n != skip)
            .map(|(n, v)| {
                if Some(n.as_str()) == reshape {
                    let shape = vec![v.shape().iter().product::<usize>()];
                    (n, safetensors::tensor::TensorView::new(v.dtype(), shape, v.data()).unwrap())
                } else {
                    (n, v)
                }
            })
            .collect();
        safetensors::serialize(kept, None).unwrap()
    };
    let missing = write(&config, &rewrite("transformer.h.1.mlp.c_fc.bias", None));
    assert!(matches!(&missing, LoadError::MissingTensor(n) if n == "h.1.mlp.c_fc.bias"), "{missing}");
    let reshaped = write(&config, &rewrite("", Some("transformer.h.0.attn.c_proj.weight")));
    assert!(matches!(&reshaped, LoadError::ShapeMismatch { name, .. } if name == "transformer.h.0.attn.c_proj.weight"), "{reshaped}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn token_ids_tensor_rejects_out_of_vocabulary_ids() {
    let model: Model<Cpu> = import_hf_dir(&fixture_dir(), &Default::default()).unwrap();
    assert!(model.tokens_tensor(&[999]).is_ok());
    assert!(model.tokens_tensor(&[1000]).is_err());
}
