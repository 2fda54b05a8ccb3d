//! Import of Hugging Face GPT-2 checkpoints (`config.json` + `model.safetensors`, or sharded safetensors with
//! `model.safetensors.index.json`), of any size and vocabulary (`gpt2`, `gpt2-medium`, `distilgpt2`,
//! `codeparrot/codeparrot-small`, …). `hnet-gpt pull` fetches the files from the Hub and comes here.
//!
//! Every Hugging Face naming and layout quirk lives in this file:
//!
//! | Hugging Face                                  | ours                                   | note |
//! |-----------------------------------------------|----------------------------------------|------|
//! | `[transformer.]wte.weight` `[V, C]`           | `net.wte.weight`                       | also the tied LM head |
//! | `[transformer.]wpe.weight` `[P, C]`           | `net.wpe.weight`                       | |
//! | `h.{i}.ln_1.weight` / `.bias`                 | `net.h.{i}.ln_1.gamma` / `.beta`       | same for `ln_2`, `ln_f` |
//! | `h.{i}.attn.c_attn.weight` `[C, 3C]` / `.bias`| `net.h.{i}.attn.c_attn.weight` / `.bias`| Conv1D is `[in, out]`, burn `Linear` too: **no transpose** |
//! | `h.{i}.attn.c_proj.*`, `h.{i}.mlp.c_fc.*`, `h.{i}.mlp.c_proj.*` | same under `net.`   | Conv1D, no transpose |
//! | `h.{i}.attn.bias`, `h.{i}.attn.masked_bias`   | —                                      | causal-mask buffers, ignored |
//! | `lm_head.weight`                              | —                                      | tied to `wte`, ignored |
//!
//! (burn-store's PyTorch adapter would transpose every Linear weight: right for `nn.Linear`, silently wrong for
//! GPT-2's Conv1D — `c_proj` is square, so shapes would not even catch it. Hence no adapter here.)
//! Tensors stored as f16/bf16 are widened to f32.

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::arch::gpt2::Gpt2Config;
use crate::arch::model::Model;
use crate::config::{Arch, ModelConfig};
use crate::error::LoadError;
use crate::io::checkpoint::apply_weights;
use crate::io::params::ROOT;
use crate::io::tokenizer::{Tokenizer, TokenizerSpec};

/// The fields of Hugging Face's GPT-2 `config.json` we read. Everything is optional here so that a missing field
/// produces an error naming it rather than a serde message.
#[derive(Debug, Deserialize)]
struct HfGpt2Config {
    model_type: Option<String>,
    architectures: Option<Vec<String>>,
    vocab_size: Option<usize>,
    n_positions: Option<usize>,
    n_embd: Option<usize>,
    n_layer: Option<usize>,
    n_head: Option<usize>,
    n_inner: Option<usize>,
    layer_norm_epsilon: Option<f64>,
    activation_function: Option<String>,
    tie_word_embeddings: Option<bool>,
    scale_attn_weights: Option<bool>,
    scale_attn_by_inverse_layer_idx: Option<bool>,
    reorder_and_upcast_attn: Option<bool>,
}

/// The Hugging Face architectures whose weights are GPT-2's (the LM head is tied to `wte` in both).
pub const SUPPORTED_ARCHITECTURES: [&str; 2] = ["GPT2LMHeadModel", "GPT2Model"];

fn config_err(field: &str, reason: impl Into<String>) -> LoadError {
    LoadError::Config { field: field.to_string(), reason: reason.into() }
}

/// Translates Hugging Face's `config.json` into ours, rejecting what our GPT-2 cannot represent.
pub fn config_from_hf_json(json: &str) -> Result<ModelConfig, LoadError> {
    let hf: HfGpt2Config = serde_json::from_str(json).map_err(|e| config_err("config.json", e.to_string()))?;
    match hf.model_type.as_deref() {
        Some("gpt2") => {}
        Some(other) => return Err(LoadError::UnsupportedModelType(other.to_string())),
        None => return Err(config_err("model_type", "missing")),
    }
    if let Some(archs) = &hf.architectures {
        if !archs.iter().any(|a| SUPPORTED_ARCHITECTURES.contains(&a.as_str())) {
            return Err(config_err(
                "architectures",
                format!("{archs:?} is not supported (supported: {})", SUPPORTED_ARCHITECTURES.join(", ")),
            ));
        }
    }
    let need = |v: Option<usize>, field: &str| v.ok_or_else(|| config_err(field, "missing"));
    let gpt2 = Gpt2Config {
        vocab_size: need(hf.vocab_size, "vocab_size")?,
        n_positions: need(hf.n_positions, "n_positions")?,
        n_embd: need(hf.n_embd, "n_embd")?,
        n_layer: need(hf.n_layer, "n_layer")?,
        n_head: need(hf.n_head, "n_head")?,
        layer_norm_epsilon: hf.layer_norm_epsilon.unwrap_or(1e-5),
    };
    if let Some(inner) = hf.n_inner.filter(|&n| n != 4 * gpt2.n_embd) {
        return Err(config_err("n_inner", format!("{inner} is not 4 × n_embd; only GPT-2's 4× MLP is supported")));
    }
    if let Some(act) = hf.activation_function.as_deref().filter(|&a| a != "gelu_new") {
        return Err(config_err("activation_function", format!("`{act}` is not supported (GPT-2 uses `gelu_new`)")));
    }
    if hf.tie_word_embeddings == Some(false) {
        return Err(config_err("tie_word_embeddings", "false is not supported: our LM head is tied to wte"));
    }
    // Attention variants GPT-2 itself never used; refuse rather than compute something else.
    if hf.scale_attn_weights == Some(false) {
        return Err(config_err("scale_attn_weights", "false is not supported (attention is scaled by 1/√head_dim)"));
    }
    if hf.scale_attn_by_inverse_layer_idx == Some(true) {
        return Err(config_err("scale_attn_by_inverse_layer_idx", "true is not supported"));
    }
    if hf.reorder_and_upcast_attn == Some(true) {
        return Err(config_err("reorder_and_upcast_attn", "true is not supported"));
    }
    let config = ModelConfig { arch: Arch::Gpt2, gpt2, hnet: None };
    config.validate().map_err(|e| config_err("config.json", e.to_string()))?;
    Ok(config)
}

/// Maps one Hugging Face tensor name to ours; `None` for tensors we deliberately ignore.
fn our_name(hf_name: &str) -> Option<String> {
    let name = hf_name.strip_prefix("transformer.").unwrap_or(hf_name);
    if name == "lm_head.weight" || name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") {
        return None;
    }
    let is_norm = name.starts_with("ln_f.") || name.contains(".ln_1.") || name.contains(".ln_2.");
    let name = match (is_norm, name.rsplit_once('.')) {
        (true, Some((module, "weight"))) => format!("{module}.gamma"),
        (true, Some((module, "bias"))) => format!("{module}.beta"),
        _ => name.to_string(),
    };
    Some(format!("{ROOT}{name}"))
}

/// Builds a model from Hugging Face `config.json` text and `model.safetensors` bytes.
pub fn from_hf_bytes<B: Backend>(config_json: &str, safetensors_bytes: &[u8], device: &B::Device) -> Result<Model<B>, LoadError> {
    from_hf_shards(config_json, &[("model.safetensors", safetensors_bytes)], device)
}

/// The shard files a `model.safetensors.index.json` names (its `weight_map` values), in order, each once.
pub fn shard_files(index_json: &str) -> Result<Vec<String>, LoadError> {
    #[derive(Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let index: Index = serde_json::from_str(index_json).map_err(|e| config_err("model.safetensors.index.json", e.to_string()))?;
    let mut files: Vec<String> = index.weight_map.into_values().collect();
    files.sort();
    files.dedup();
    if let Some(bad) = files.iter().find(|f| f.contains('/') || f.contains('\\') || !f.ends_with(".safetensors")) {
        return Err(config_err("model.safetensors.index.json", format!("`{bad}` is not a safetensors file next to the index")));
    }
    Ok(files)
}

/// Builds a model from Hugging Face `config.json` text and one or more safetensors files (`(name, bytes)`; a
/// sharded checkpoint's shards). A tensor in two shards is an error.
pub fn from_hf_shards<B: Backend>(config_json: &str, shards: &[(&str, &[u8])], device: &B::Device) -> Result<Model<B>, LoadError> {
    let config = config_from_hf_json(config_json)?;
    // Rename (and widen) into a safetensors blob under our names, then load it like one of our checkpoints.
    let mut renamed: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    let mut hf_names: BTreeMap<String, String> = BTreeMap::new();
    for (file, bytes) in shards {
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| LoadError::Format { what: file.to_string(), reason: e.to_string() })?;
        for (hf_name, view) in tensors.tensors() {
            let Some(name) = our_name(&hf_name) else { continue };
            let data = crate::io::half::to_f32_bytes(&hf_name, view.dtype(), view.data())?;
            if renamed.insert(name.clone(), (view.shape().to_vec(), data)).is_some() {
                return Err(LoadError::Format { what: file.to_string(), reason: format!("tensor `{hf_name}` appears in two shards") });
            }
            hf_names.insert(name, hf_name);
        }
    }
    check_against_config(&config, &renamed)?;
    let views = renamed
        .iter()
        .map(|(name, (shape, data))| safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data).map(|v| (name.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LoadError::Format { what: "model.safetensors".into(), reason: e.to_string() })?;
    let blob = safetensors::serialize(views, None).map_err(|e| LoadError::Apply(e.to_string()))?;
    let mut model = Model::init(&config, device).map_err(|e| config_err("config.json", e.to_string()))?;
    // Report problems under Hugging Face's names, which are the ones the user can look up in their file.
    let hf = |ours: String| hf_names.get(&ours).cloned().unwrap_or_else(|| hf_name_of(&ours));
    apply_weights(&mut model, blob, "model.safetensors").map_err(|e| match e {
        LoadError::MissingTensor(n) => LoadError::MissingTensor(hf(n)),
        LoadError::UnexpectedTensor(n) => LoadError::UnexpectedTensor(hf(n)),
        LoadError::ShapeMismatch { name, expected, found } => LoadError::ShapeMismatch { name: hf(name), expected, found },
        other => other,
    })?;
    Ok(model)
}

/// A model from a Hub repository's files — `config.json`, the safetensors shard(s), `tokenizer.json` — with its
/// tokenizer checked against the vocabulary and recorded (GPT-2's by id when it is GPT-2's, `gpt2` being that copy;
/// otherwise embedded). What `hnet-gpt pull` and the playground's Hub loader both build.
pub fn from_hub_files<B: Backend>(
    config_json: &str,
    shards: &[(&str, &[u8])],
    tokenizer_json: &str,
    gpt2: &Tokenizer,
    device: &B::Device,
) -> Result<Model<B>, LoadError> {
    let tok_err = |e: crate::error::ModelError| config_err("tokenizer.json", e.to_string());
    let config = config_from_hf_json(config_json)?;
    let tokenizer = Tokenizer::from_json_bytes(tokenizer_json.as_bytes()).map_err(tok_err)?;
    tokenizer.check_fits(config.vocab_size()).map_err(tok_err)?;
    let mut model = from_hf_shards(config_json, shards, device)?;
    model.tokenizer = TokenizerSpec::for_json_with(tokenizer_json, gpt2).map_err(tok_err)?;
    Ok(model)
}

/// The Hugging Face name of one of our parameters (for error messages about tensors absent from the file).
fn hf_name_of(ours: &str) -> String {
    let name = ours.strip_prefix(ROOT).unwrap_or(ours);
    name.replace(".gamma", ".weight").replace(".beta", ".bias")
}

/// Catches a `config.json` that contradicts the tensors and names the field, before shapes are compared one by one.
fn check_against_config(config: &ModelConfig, tensors: &BTreeMap<String, (Vec<usize>, Vec<u8>)>) -> Result<(), LoadError> {
    let g = &config.gpt2;
    if let Some((shape, _)) = tensors.get(&format!("{ROOT}wte.weight")) {
        if shape.len() == 2 && shape[0] != g.vocab_size {
            return Err(config_err("vocab_size", format!("config.json says {}, wte.weight has {} rows", g.vocab_size, shape[0])));
        }
        if shape.len() == 2 && shape[1] != g.n_embd {
            return Err(config_err("n_embd", format!("config.json says {}, wte.weight is {} wide", g.n_embd, shape[1])));
        }
    }
    if let Some((shape, _)) = tensors.get(&format!("{ROOT}wpe.weight")) {
        if shape.len() == 2 && shape[0] != g.n_positions {
            return Err(config_err("n_positions", format!("config.json says {}, wpe.weight has {} rows", g.n_positions, shape[0])));
        }
    }
    let layers_in_file = tensors
        .keys()
        .filter_map(|k| k.strip_prefix(ROOT)?.strip_prefix("h.")?.split('.').next()?.parse::<usize>().ok())
        .max()
        .map_or(0, |m| m + 1);
    if layers_in_file != g.n_layer {
        return Err(config_err("n_layer", format!("config.json says {}, the tensors hold {layers_in_file} layers", g.n_layer)));
    }
    Ok(())
}

/// Imports a Hugging Face GPT-2 checkpoint directory.
#[cfg(not(target_arch = "wasm32"))]
pub fn import_hf_dir<B: Backend>(dir: &std::path::Path, device: &B::Device) -> Result<Model<B>, LoadError> {
    let read = |name: &str| {
        let path = dir.join(name);
        crate::io::files::read_regular(&path, crate::io::files::MAX_CHECKPOINT_BYTES)
            .map_err(|e| LoadError::Io { path: path.display().to_string(), source: e.into() })
    };
    let config = String::from_utf8(read("config.json")?).map_err(|e| config_err("config.json", e.to_string()))?;
    from_hf_bytes(&config, &read("model.safetensors")?, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_as_the_table_says() {
        assert_eq!(our_name("h.3.ln_1.weight").unwrap(), "net.h.3.ln_1.gamma");
        assert_eq!(our_name("transformer.ln_f.bias").unwrap(), "net.ln_f.beta");
        assert_eq!(our_name("h.0.attn.c_attn.weight").unwrap(), "net.h.0.attn.c_attn.weight");
        assert_eq!(our_name("h.0.mlp.c_proj.bias").unwrap(), "net.h.0.mlp.c_proj.bias");
        assert_eq!(our_name("wte.weight").unwrap(), "net.wte.weight");
        assert!(our_name("h.0.attn.bias").is_none());
        assert!(our_name("h.0.attn.masked_bias").is_none());
        assert!(our_name("lm_head.weight").is_none());
        assert_eq!(hf_name_of("net.h.1.ln_2.gamma"), "h.1.ln_2.weight");
    }

    #[test]
    fn config_errors_name_the_field() {
        let base = r#"{"model_type":"gpt2","vocab_size":100,"n_positions":16,"n_embd":8,"n_layer":1,"n_head":2}"#;
        assert!(config_from_hf_json(base).is_ok());
        let err = |json: &str| config_from_hf_json(json).unwrap_err();
        assert!(matches!(err(&base.replace("gpt2", "llama")), LoadError::UnsupportedModelType(t) if t == "llama"));
        assert!(matches!(err(&base.replace(r#""n_head":2"#, r#""n_hea":2"#)), LoadError::Config { field, .. } if field == "n_head"));
        let relu = base.replace('}', r#","activation_function":"relu"}"#);
        assert!(matches!(err(&relu), LoadError::Config { field, .. } if field == "activation_function"));
        assert!(matches!(err("not json"), LoadError::Config { .. }));
        let llama_arch = base.replace('}', r#","architectures":["LlamaForCausalLM"]}"#);
        assert!(matches!(err(&llama_arch), LoadError::Config { field, .. } if field == "architectures"));
        assert!(config_from_hf_json(&base.replace('}', r#","architectures":["GPT2LMHeadModel"]}"#)).is_ok());
    }

    #[test]
    fn shard_indexes_name_their_files_once_and_nothing_outside() {
        let index = r#"{"metadata":{},"weight_map":{"wte.weight":"model-00001-of-00002.safetensors","h.0.ln_1.weight":"model-00002-of-00002.safetensors","wpe.weight":"model-00001-of-00002.safetensors"}}"#;
        assert_eq!(shard_files(index).unwrap(), vec!["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
        assert!(shard_files(r#"{"weight_map":{"a":"../../etc/passwd.safetensors"}}"#).is_err());
        assert!(shard_files(r#"{"weight_map":{"a":"model.bin"}}"#).is_err());
        assert!(shard_files("[]").is_err());
    }
}
