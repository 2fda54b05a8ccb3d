//! Parity of every decoder family with Hugging Face transformers: tiny random Llama (grouped heads 4:2, untied
//! head), Qwen2 (4:2, q/k/v biases, tied) and GPTBigCode (multi-query) repositories written by
//! `scripts/fixtures/gen_reference.py --families` are imported as a user's download would be, and must give transformers'
//! logits within 1e-4 at every position, its greedy `generate` token for token, the same logits cached as uncached,
//! their own tokenizer's ids, and fill-in-the-middle prompts equal to the tokenizer's encoding of the spelled-out
//! tokens (a clear error for the family fixture without FIM tokens).

use std::path::PathBuf;

use hnet_gpt_model::arch::family::Family;
use hnet_gpt_model::generate::sampling::SamplingParams;
use hnet_gpt_model::generate::{generate, GenerateParams};
use hnet_gpt_model::io::hf::import_hf_dir;
use hnet_gpt_model::{Model, ModelError};
use serde::Deserialize;

type Cpu = burn::backend::Flex;

#[derive(Deserialize)]
struct Reference {
    family: String,
    cases: Vec<Case>,
    fim: Vec<FimCase>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    logits: Vec<Vec<f32>>,
    greedy: Vec<u32>,
}

#[derive(Deserialize)]
struct FimCase {
    prefix: String,
    suffix: String,
    ids: Vec<u32>,
}

const FAMILIES: [(&str, Family); 3] =
    [("hf-tiny-llama", Family::Llama), ("hf-tiny-qwen2", Family::Qwen2), ("hf-tiny-gpt-bigcode", Family::GptBigCode)];

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn reference(name: &str) -> Reference {
    serde_json::from_slice(&std::fs::read(dir(name).join("reference.json")).unwrap()).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn load(name: &str) -> Model<Cpu> {
    import_hf_dir(&dir(name), &Default::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_family_gives_transformers_logits_and_its_own_tokenizers_ids() {
    for (name, family) in FAMILIES {
        let model = load(name);
        let r = reference(name);
        assert_eq!(model.config.decoder.family, family);
        assert_eq!(r.family, family.name());
        let tok = model.tokenizer.load().unwrap();
        for case in &r.cases {
            assert_eq!(tok.encode(&case.text).unwrap(), case.ids, "{name}: the tokenizer travels with the model");
            let ours = model.forward(model.tokens_tensor(&case.ids).unwrap()).into_data().to_vec::<f32>().unwrap();
            let theirs: Vec<f32> = case.logits.iter().flatten().copied().collect();
            let diff = max_abs_diff(&ours, &theirs);
            assert!(diff <= 1e-4, "{name}: logits differ from transformers by {diff} ({} positions)", case.ids.len());
        }
    }
}

/// Weights kept in f16 (for a GPU with `shader-f16`): every family — the Llama fixture's
/// untied head, Qwen2's biases, GPTBigCode's multi-query heads — stays within f16's rounding of transformers'
/// logits, in about half the bytes.
#[test]
fn every_family_with_weights_kept_in_f16_gives_transformers_logits() {
    use burn::tensor::FloatDType;
    use hnet_gpt_model::nn::weights::{keep_in, kept_bytes};
    for (name, _) in FAMILIES {
        let model = load(name);
        let full = kept_bytes(&model);
        let model = keep_in(model, FloatDType::F16);
        let half = kept_bytes(&model);
        assert!(half < full * 6 / 10, "{name}: f32 {full} bytes, kept in f16 {half}");
        for case in reference(name).cases {
            let ours = model.forward(model.tokens_tensor(&case.ids).unwrap()).into_data().to_vec::<f32>().unwrap();
            let theirs: Vec<f32> = case.logits.iter().flatten().copied().collect();
            // f16 keeps 11 significant bits of every weight: the logits move by a few thousandths of their scale.
            let scale = theirs.iter().fold(0.0, |m: f32, x| m.max(x.abs()));
            let diff = max_abs_diff(&ours, &theirs);
            assert!(diff > 0.0 && diff <= 4e-3 * scale, "{name} {:?}: max abs diff {diff} at logits up to {scale}", case.text);
        }
    }
}

#[test]
fn every_family_decodes_greedily_as_transformers_generate() {
    for (name, _) in FAMILIES {
        let model = load(name);
        for case in reference(name).cases {
            let params =
                GenerateParams { sampling: SamplingParams::greedy(), max_new_tokens: case.greedy.len(), seed: 0, stop_tokens: vec![] };
            assert_eq!(generate(&model, &case.ids, params, |_| true).unwrap(), case.greedy, "{name}: {:?}", case.text);
        }
    }
}

#[test]
fn every_family_decodes_cached_as_uncached() {
    for (name, _) in FAMILIES {
        let model = load(name);
        let ids = &reference(name).cases[2].ids;
        let full = model.forward(model.tokens_tensor(ids).unwrap()).into_data().to_vec::<f32>().unwrap();
        let v = model.config.vocab_size();
        let mut state = model.new_state();
        let prefill = model.forward_cached_blocking(model.tokens_tensor(&ids[..5]).unwrap(), &mut state, false).unwrap().logits;
        assert!(max_abs_diff(&prefill.into_data().to_vec::<f32>().unwrap(), &full[..5 * v]) <= 1e-4, "{name}: prefill");
        for t in 5..ids.len() {
            let step = model.forward_cached_blocking(model.tokens_tensor(&ids[t..t + 1]).unwrap(), &mut state, true).unwrap().logits;
            let diff = max_abs_diff(&step.into_data().to_vec::<f32>().unwrap(), &full[t * v..(t + 1) * v]);
            assert!(diff <= 1e-4, "{name}: step {t}: cached vs uncached {diff}");
        }
    }
}

/// Our checkpoints named an untied LM head `net.lm_head` before it became a table held in parts
/// (`net.lm_head.weight`): such a file still loads, to the same logits.
#[test]
fn a_checkpoint_with_the_former_name_of_an_untied_head_loads() {
    use hnet_gpt_model::io::checkpoint::{from_bytes, to_bytes};
    use safetensors::SafeTensors;
    let model = load("hf-tiny-llama");
    let bytes = to_bytes(&model, &[]).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let tensors = file.tensors().into_iter().map(|(name, view)| (name.replace("net.lm_head.weight", "net.lm_head"), view));
    let former = safetensors::serialize(tensors, header.metadata().clone()).unwrap();
    assert!(SafeTensors::deserialize(&former).unwrap().names().contains(&"net.lm_head"));
    let loaded: Model<Cpu> = from_bytes(&former, "former", &Default::default()).unwrap();
    let ids = model.tokens_tensor(&reference("hf-tiny-llama").cases[0].ids).unwrap();
    assert_eq!(loaded.forward(ids.clone()).into_data(), model.forward(ids).into_data());
    // And it is written back under the current name.
    assert_eq!(to_bytes(&loaded, &[]).unwrap(), bytes);
}

#[test]
fn fill_in_the_middle_prompts_are_the_tokenizers_own_encoding() {
    for (name, family) in FAMILIES {
        let tok = load(name).tokenizer.load().unwrap();
        let r = reference(name);
        match family {
            Family::Llama => {
                assert!(r.fim.is_empty() && tok.fim().is_none());
                assert!(matches!(tok.fim_prompt("a", "b"), Err(ModelError::NoFim)));
            }
            _ => {
                assert!(!r.fim.is_empty());
                for case in &r.fim {
                    assert_eq!(tok.fim_prompt(&case.prefix, &case.suffix).unwrap(), case.ids, "{name}");
                }
                let fim = tok.fim().unwrap();
                let stops = tok.stop_tokens();
                assert!(stops.contains(&tok.eos_id()) && [fim.prefix, fim.suffix, fim.middle].iter().all(|t| stops.contains(t)), "{name}");
                // Cut to a budget: the markers stay, the prefix keeps its end and the suffix its start.
                let (prefix, suffix) = ("def a():\n    return 1\n".repeat(20), "\ndef b():\n    pass\n".repeat(20));
                let (p, s) = (tok.encode(&prefix).unwrap(), tok.encode(&suffix).unwrap());
                let cut = tok.fim_prompt_within(&prefix, &suffix, 40).unwrap();
                assert_eq!(cut.len(), 40, "{name}");
                let at = |t| cut.iter().position(|&x| x == t).unwrap();
                let (i_s, i_m) = (at(fim.suffix), at(fim.middle));
                assert_eq!((cut[0], i_m), (fim.prefix, cut.len() - 1), "{name}");
                assert!(p.ends_with(&cut[1..i_s]) && s.starts_with(&cut[i_s + 1..i_m]), "{name}");
                assert_eq!(i_m - i_s - 1, 37 / 4, "{name}: the suffix gets a quarter");
                assert_eq!(tok.fim_prompt_within(&prefix, &suffix, usize::MAX).unwrap(), tok.fim_prompt(&prefix, &suffix).unwrap());
            }
        }
    }
}

#[test]
fn every_family_read_as_it_downloads_gives_transformers_logits() {
    use hnet_gpt_model::io::checkpoint::copy_to;
    use hnet_gpt_model::io::hf::from_hub_tensors;
    use hnet_gpt_model::io::stream::Streamed;
    use hnet_gpt_model::nn::embedding::with_part_bytes;
    use hnet_gpt_model::tokenizer::Tokenizer;
    let gpt2 = Tokenizer::gpt2().unwrap();
    for (name, _) in FAMILIES {
        let bytes = std::fs::read(dir(name).join("model.safetensors")).unwrap();
        let config = std::fs::read_to_string(dir(name).join("config.json")).unwrap();
        let tokenizer = std::fs::read_to_string(dir(name).join("tokenizer.json")).unwrap();
        // Pieces of an odd size, as a network delivers them: the header and most tensors arrive split.
        let mut stream = Streamed::new("model.safetensors", Some(bytes.len() as u64));
        for piece in bytes.chunks(1021) {
            stream.push(piece).unwrap();
        }
        let parsed = Tokenizer::from_json_bytes(tokenizer.as_bytes()).unwrap();
        let model: Model<Cpu> = from_hub_tensors(&config, stream.finish().unwrap(), &tokenizer, &parsed, &gpt2, &Default::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The model records the repository's tokenizer, the one given parsed.
        let probe = "def f(x):\n    return x + 1";
        assert_eq!(parsed.encode(probe).unwrap(), model.tokenizer.load().unwrap().encode(probe).unwrap(), "{name}");
        // And the same model moved to another backend instance, tensor by tensor, as the page moves it to WebGPU.
        let moved: Model<Cpu> = copy_to(&model, &Default::default()).unwrap();
        // On a device whose buffer bindings hold a third of the token table: the table in parts.
        let third = (model.config.vocab_size().div_ceil(3) * 4 * model.config.decoder.n_embd) as u64;
        // (Building it checks that every weight fits such a buffer: the Llama fixture's untied head is in parts too.)
        let parted: Model<Cpu> = with_part_bytes(third, || copy_to(&model, &Default::default())).unwrap();
        assert_eq!(parted.embedding().parts.len(), 3, "{name}");
        for case in &reference(name).cases {
            let theirs: Vec<f32> = case.logits.iter().flatten().copied().collect();
            for (what, m) in [("streamed", &model), ("copied", &moved), ("copied in parts", &parted)] {
                let ours = m.forward(m.tokens_tensor(&case.ids).unwrap()).into_data().to_vec::<f32>().unwrap();
                let diff = max_abs_diff(&ours, &theirs);
                assert!(diff <= 1e-4, "{name} {what}: logits differ from transformers by {diff}");
            }
        }
    }
}
