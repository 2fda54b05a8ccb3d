//! Import of Hugging Face checkpoints (`config.json` + `model.safetensors`, or sharded safetensors with
//! `model.safetensors.index.json`) of every supported decoder family, of any size and vocabulary: GPT-2 (`gpt2`,
//! `distilgpt2`, `codeparrot/codeparrot-small`, …), GPTBigCode (`bigcode/tiny_starcoder_py`,
//! `bigcode/gpt_bigcode-santacoder`), Llama (`HuggingFaceTB/SmolLM2-135M`, TinyLlama) and Qwen2
//! (`Qwen/Qwen2.5-Coder-0.5B`). `hnet-gpt pull` and the playground's Hub loader come here.
//!
//! Every Hugging Face naming, layout and config quirk lives in this file. The weights are read tensor by tensor
//! ([`crate::io::weights`]) from the shards as they lie (memory-mapped by the caller), widened from f16/bf16.
//!
//! | family | Hugging Face | ours | note |
//! |---|---|---|---|
//! | GPT-2 | `[transformer.]wte`, `wpe`, `h.{i}.{ln_1,attn.c_attn,attn.c_proj,ln_2,mlp.c_fc,mlp.c_proj}`, `ln_f` | the same names under `net.` | Conv1D is `[in, out]` like burn's Linear: **no transpose**; norms' `weight`/`bias` are `gamma`/`beta` |
//! | GPTBigCode | the same names under `transformer.` | as GPT-2 | `nn.Linear` is `[out, in]`: **transposed**; `c_attn` is `[q | k | v]` with one key/value head (multi-query) |
//! | Llama, Qwen2 | `model.embed_tokens`, `model.layers.{i}.{input_layernorm, post_attention_layernorm}`, `model.norm` | `net.embed_tokens`, `net.layers.{i}.…` (`gamma`), `net.norm` | |
//! | | `self_attn.{q,k,v}_proj.{weight,bias}` | `self_attn.qkv_proj` | transposed and joined side by side (biases: Qwen2) |
//! | | `self_attn.o_proj.weight` | `self_attn.o_proj.weight` | transposed |
//! | | `mlp.{gate,up}_proj.weight`, `mlp.down_proj.weight` | `mlp.fc1.weight` = `[gate | up]`, `mlp.fc2.weight` | transposed |
//! | | `lm_head.weight` `[V, C]` | `net.lm_head.weight` (untied only) | as stored |
//!
//! Ignored: GPT-2's causal-mask buffers (`attn.bias`, `attn.masked_bias`), rotary `inv_freq` buffers, and
//! `lm_head.weight` when the head is tied. (burn-store's PyTorch adapter would transpose every Linear weight: right
//! for `nn.Linear`, silently wrong for GPT-2's Conv1D — `c_proj` is square, so shapes would not even catch it. Hence
//! the explicit table.) Config fields that change the math and are not implemented — a `rope_scaling`, sliding
//! windows, another activation, untied GPT-2 heads — are errors naming the field.

use std::collections::{BTreeMap, BTreeSet};

use burn::tensor::backend::Backend;
use safetensors::SafeTensors;
use serde::Deserialize;

use crate::arch::config::{Arch, ModelConfig};
use crate::arch::family::{DecoderConfig, Family};
use crate::arch::model::Model;
use crate::error::LoadError;
use crate::io::params::ROOT;
use crate::io::stream::Tensors;
use crate::io::weights::{f32_values, load_into, stored_values, Source, Values};
use crate::tokenizer::{Tokenizer, TokenizerSpec};

/// The Hugging Face architectures each family's weights come from.
pub const SUPPORTED_ARCHITECTURES: [&str; 7] =
    ["GPT2LMHeadModel", "GPT2Model", "GPTBigCodeForCausalLM", "GPTBigCodeModel", "LlamaForCausalLM", "Qwen2ForCausalLM", "LlamaModel"];

fn config_err(field: &str, reason: impl Into<String>) -> LoadError {
    LoadError::Config { field: field.to_string(), reason: reason.into() }
}

/// The fields of the families' `config.json` we read, every one optional so that a missing field produces an error
/// naming it rather than a serde message. GPT-2 and GPTBigCode spell sizes `n_embd`, `n_layer`…; Llama and Qwen2
/// `hidden_size`, `num_hidden_layers`….
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    architectures: Option<Vec<String>>,
    vocab_size: Option<usize>,
    tie_word_embeddings: Option<bool>,
    // GPT-2, GPTBigCode
    n_positions: Option<usize>,
    n_embd: Option<usize>,
    n_layer: Option<usize>,
    n_head: Option<usize>,
    n_inner: Option<usize>,
    layer_norm_epsilon: Option<f64>,
    activation_function: Option<String>,
    scale_attn_weights: Option<bool>,
    scale_attn_by_inverse_layer_idx: Option<bool>,
    reorder_and_upcast_attn: Option<bool>,
    multi_query: Option<bool>,
    // Llama, Qwen2
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    max_position_embeddings: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    /// transformers 5's form of the two above: `{"rope_theta": …, "rope_type": "default"}`.
    rope_parameters: Option<serde_json::Value>,
    layer_types: Option<Vec<String>>,
    hidden_act: Option<String>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    pretraining_tp: Option<usize>,
    head_dim: Option<usize>,
    use_sliding_window: Option<bool>,
}

fn need<T>(v: Option<T>, field: &str) -> Result<T, LoadError> {
    v.ok_or_else(|| config_err(field, "missing"))
}

/// Translates Hugging Face's `config.json` into ours, rejecting what our decoders cannot represent.
pub fn config_from_hf_json(json: &str) -> Result<ModelConfig, LoadError> {
    let hf: HfConfig = serde_json::from_str(json).map_err(|e| config_err("config.json", e.to_string()))?;
    let family = match hf.model_type.as_deref() {
        Some("gpt2") => Family::Gpt2,
        Some("gpt_bigcode") => Family::GptBigCode,
        Some("llama") => Family::Llama,
        Some("qwen2") => Family::Qwen2,
        Some(other) => return Err(LoadError::UnsupportedModelType(other.to_string())),
        None => return Err(config_err("model_type", "missing")),
    };
    if let Some(archs) = &hf.architectures {
        if !archs.iter().any(|a| SUPPORTED_ARCHITECTURES.contains(&a.as_str())) {
            return Err(config_err(
                "architectures",
                format!("{archs:?} is not supported (supported: {})", SUPPORTED_ARCHITECTURES.join(", ")),
            ));
        }
    }
    let decoder = if family.is_llama_like() { llama_config(&hf, family)? } else { gpt2_config(&hf, family)? };
    let config = ModelConfig { arch: Arch::Gpt2, decoder, hnet: None };
    config.validate().map_err(|e| config_err("config.json", e.to_string()))?;
    Ok(config)
}

fn gpt2_config(hf: &HfConfig, family: Family) -> Result<DecoderConfig, LoadError> {
    let n_embd = need(hf.n_embd, "n_embd")?;
    let bigcode = family == Family::GptBigCode;
    let n_inner = hf.n_inner.unwrap_or(4 * n_embd);
    if !bigcode && n_inner != 4 * n_embd {
        return Err(config_err("n_inner", format!("{n_inner} is not 4 × n_embd; GPT-2's MLP is 4× wide")));
    }
    let act = hf.activation_function.as_deref().unwrap_or(if bigcode { "gelu_pytorch_tanh" } else { "gelu_new" });
    if !matches!(act, "gelu_new" | "gelu_pytorch_tanh") {
        return Err(config_err("activation_function", format!("`{act}` is not supported (gelu_new / gelu_pytorch_tanh, the tanh GELU)")));
    }
    if hf.tie_word_embeddings == Some(false) {
        return Err(config_err("tie_word_embeddings", "false is not supported: this family's LM head is tied to wte"));
    }
    // Attention variants the released models never used; refuse rather than compute something else.
    if hf.scale_attn_weights == Some(false) {
        return Err(config_err("scale_attn_weights", "false is not supported (attention is scaled by 1/√head_dim)"));
    }
    if hf.scale_attn_by_inverse_layer_idx == Some(true) {
        return Err(config_err("scale_attn_by_inverse_layer_idx", "true is not supported"));
    }
    if hf.reorder_and_upcast_attn == Some(true) {
        return Err(config_err("reorder_and_upcast_attn", "true is not supported"));
    }
    // GPTBigCode without multi-query interleaves q, k and v per head in c_attn; only multi-query models exist on
    // the Hub in this family, and only they are read.
    if bigcode && hf.multi_query == Some(false) {
        return Err(config_err("multi_query", "false is not supported (only multi-query GPTBigCode models)"));
    }
    Ok(DecoderConfig {
        family,
        vocab_size: need(hf.vocab_size, "vocab_size")?,
        n_positions: need(hf.n_positions, "n_positions")?,
        n_embd,
        n_layer: need(hf.n_layer, "n_layer")?,
        n_head: need(hf.n_head, "n_head")?,
        n_kv_head: bigcode.then_some(1),
        d_intermediate: (n_inner != 4 * n_embd).then_some(n_inner),
        layer_norm_epsilon: hf.layer_norm_epsilon.unwrap_or(1e-5),
        rope_theta: None,
        tie_word_embeddings: true,
        attention_bias: false,
    })
}

fn llama_config(hf: &HfConfig, family: Family) -> Result<DecoderConfig, LoadError> {
    let hidden = need(hf.hidden_size, "hidden_size")?;
    let heads = need(hf.num_attention_heads, "num_attention_heads")?;
    if let Some(scaling) = hf.rope_scaling.as_ref().filter(|v| !v.is_null()) {
        return Err(config_err("rope_scaling", format!("{scaling} is not supported (plain rotary positions only)")));
    }
    let mut rope_theta = hf.rope_theta;
    if let Some(params) = hf.rope_parameters.as_ref().filter(|v| !v.is_null()) {
        match params.get("rope_type").and_then(|t| t.as_str()).unwrap_or("default") {
            "default" => {}
            other => {
                return Err(config_err("rope_parameters.rope_type", format!("`{other}` is not supported (plain rotary positions only)")))
            }
        }
        rope_theta = rope_theta.or_else(|| params.get("rope_theta").and_then(|t| t.as_f64()));
    }
    if hf.use_sliding_window == Some(true) {
        return Err(config_err("use_sliding_window", "true is not supported (global attention only)"));
    }
    if let Some(kind) = hf.layer_types.iter().flatten().find(|t| *t != "full_attention") {
        return Err(config_err("layer_types", format!("`{kind}` layers are not supported (global attention only)")));
    }
    if let Some(act) = hf.hidden_act.as_deref().filter(|&a| a != "silu") {
        return Err(config_err("hidden_act", format!("`{act}` is not supported (SwiGLU with silu)")));
    }
    if hf.mlp_bias == Some(true) {
        return Err(config_err("mlp_bias", "true is not supported"));
    }
    if let Some(tp) = hf.pretraining_tp.filter(|&t| t != 1) {
        return Err(config_err("pretraining_tp", format!("{tp} is not supported (1 only)")));
    }
    if let Some(hd) = hf.head_dim.filter(|&d| heads == 0 || d != hidden / heads) {
        return Err(config_err("head_dim", format!("{hd} is not hidden_size / num_attention_heads; not supported")));
    }
    let attention_bias = match family {
        // Qwen2's attention always has q/k/v biases (its config has no switch for them).
        Family::Qwen2 => true,
        _ => hf.attention_bias.unwrap_or(false),
    };
    Ok(DecoderConfig {
        family,
        vocab_size: need(hf.vocab_size, "vocab_size")?,
        n_positions: need(hf.max_position_embeddings, "max_position_embeddings")?,
        n_embd: hidden,
        n_layer: need(hf.num_hidden_layers, "num_hidden_layers")?,
        n_head: heads,
        n_kv_head: Some(hf.num_key_value_heads.unwrap_or(heads)),
        d_intermediate: Some(need(hf.intermediate_size, "intermediate_size")?),
        layer_norm_epsilon: hf.rms_norm_eps.unwrap_or(1e-6),
        rope_theta: Some(rope_theta.unwrap_or(10_000.0)),
        // transformers' LlamaConfig and Qwen2Config default to an untied head.
        tie_word_embeddings: hf.tie_word_embeddings.unwrap_or(false),
        attention_bias,
    })
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

/// How one of our parameters is made from Hugging Face tensors.
#[derive(Debug, Clone, PartialEq)]
enum Recipe {
    /// The tensor as stored.
    Copy(String),
    /// A 2-D `nn.Linear` weight `[out, in]`, transposed to `[in, out]`.
    Transpose(String),
    /// `nn.Linear` weights transposed and joined side by side (`[in, Σ out]`), or biases joined end to end.
    Join(Vec<String>),
}

/// The recipe of our parameter `path` in a decoder of `family` (`None`: not a decoder parameter).
fn recipe(family: Family, path: &str) -> Option<Recipe> {
    let p = path.strip_prefix(ROOT)?;
    let norm = |p: &str| p.replace(".gamma", ".weight").replace(".beta", ".bias");
    match family {
        Family::Gpt2 => Some(Recipe::Copy(norm(p))),
        Family::GptBigCode => {
            let name = format!("transformer.{}", norm(p));
            let linear_weight = p.ends_with(".weight") && (p.contains(".c_attn.") || p.contains(".c_proj.") || p.contains(".c_fc."));
            Some(if linear_weight { Recipe::Transpose(name) } else { Recipe::Copy(name) })
        }
        Family::Llama | Family::Qwen2 => {
            if p == "lm_head.weight" {
                return Some(Recipe::Copy("lm_head.weight".into()));
            }
            let p = p.replace(".gamma", ".weight");
            if let Some(layer) = p.strip_suffix(".self_attn.qkv_proj.weight") {
                return Some(Recipe::Join(["q", "k", "v"].map(|x| format!("model.{layer}.self_attn.{x}_proj.weight")).to_vec()));
            }
            if let Some(layer) = p.strip_suffix(".self_attn.qkv_proj.bias") {
                return Some(Recipe::Join(["q", "k", "v"].map(|x| format!("model.{layer}.self_attn.{x}_proj.bias")).to_vec()));
            }
            if let Some(layer) = p.strip_suffix(".mlp.fc1.weight") {
                return Some(Recipe::Join(["gate", "up"].map(|x| format!("model.{layer}.mlp.{x}_proj.weight")).to_vec()));
            }
            if let Some(layer) = p.strip_suffix(".mlp.fc2.weight") {
                return Some(Recipe::Transpose(format!("model.{layer}.mlp.down_proj.weight")));
            }
            if p.ends_with(".self_attn.o_proj.weight") {
                return Some(Recipe::Transpose(format!("model.{p}")));
            }
            Some(Recipe::Copy(format!("model.{p}")))
        }
    }
}

/// Hugging Face tensors that are no parameter of ours, on purpose.
fn ignored(family: Family, name: &str, tied: bool) -> bool {
    (name == "lm_head.weight" && tied)
        || name.ends_with(".attn.bias")
        || name.ends_with(".attn.masked_bias")
        || name.ends_with(".rotary_emb.inv_freq")
        || (family == Family::Gpt2 && name == "transformer.lm_head.weight")
}

/// Where a Hugging Face checkpoint's tensors are.
enum Store<'a> {
    /// Whole safetensors files in memory or mapped (the CLI), by name.
    Files(Vec<(&'a str, SafeTensors<'a>)>),
    /// Tensors kept as they downloaded (the page), each freed as it is taken.
    Kept(Tensors),
}

/// A Hugging Face checkpoint's shards, read through a family's [`recipe`]s.
struct HfSource<'a> {
    family: Family,
    tied: bool,
    store: Store<'a>,
    /// Every tensor by name (GPT-2's optional `transformer.` prefix dropped): its file in [`Store::Files`] and its
    /// name as stored.
    index: BTreeMap<String, (usize, String)>,
    taken: BTreeSet<String>,
}

impl<'a> HfSource<'a> {
    fn key(family: Family, name: &str) -> String {
        match family {
            Family::Gpt2 => name.strip_prefix("transformer.").unwrap_or(name).to_string(),
            _ => name.to_string(),
        }
    }

    fn new(family: Family, tied: bool, shards: &[(&'a str, &'a [u8])]) -> Result<Self, LoadError> {
        let mut index = BTreeMap::new();
        let mut parsed = Vec::new();
        for (i, (file, bytes)) in shards.iter().enumerate() {
            let tensors =
                SafeTensors::deserialize(bytes).map_err(|e| LoadError::Format { what: file.to_string(), reason: e.to_string() })?;
            for name in tensors.names() {
                if index.insert(Self::key(family, name), (i, name.to_string())).is_some() {
                    return Err(LoadError::Format { what: file.to_string(), reason: format!("tensor `{name}` appears twice") });
                }
            }
            parsed.push((*file, tensors));
        }
        Ok(Self { family, tied, store: Store::Files(parsed), index, taken: BTreeSet::new() })
    }

    fn kept(family: Family, tied: bool, tensors: Tensors) -> Result<Self, LoadError> {
        let mut index = BTreeMap::new();
        for name in tensors.map.keys() {
            if index.insert(Self::key(family, name), (0, name.clone())).is_some() {
                return Err(LoadError::Format { what: "the checkpoint".into(), reason: format!("tensor `{name}` appears twice") });
            }
        }
        Ok(Self { family, tied, store: Store::Kept(tensors), index, taken: BTreeSet::new() })
    }

    /// The stored shape of the tensor `key`.
    fn shape(&self, key: &str) -> Option<Vec<usize>> {
        let (i, stored) = self.index.get(key)?;
        match &self.store {
            Store::Files(files) => files[*i].1.tensor(stored).ok().map(|t| t.shape().to_vec()),
            Store::Kept(tensors) => tensors.map.get(stored).map(|t| t.shape.clone()),
        }
    }

    fn read(&mut self, name: &str) -> Result<Option<Values>, LoadError> {
        let Some((i, stored)) = self.index.get(name).cloned() else { return Ok(None) };
        self.taken.insert(name.to_string());
        match &mut self.store {
            Store::Files(files) => {
                let (file, tensors) = &files[i];
                f32_values(tensors, &stored, file).map(Some)
            }
            Store::Kept(tensors) => {
                // Taken once: its stored bytes go as its values come.
                let t = tensors.map.remove(&stored).ok_or_else(|| LoadError::MissingTensor(stored.clone()))?;
                stored_values(&stored, &t.dtype, t.shape, &t.data).map(Some)
            }
        }
    }

    fn need(&mut self, name: &str) -> Result<Values, LoadError> {
        self.read(name)?.ok_or_else(|| LoadError::MissingTensor(name.to_string()))
    }
}

fn transpose((shape, values): Values, name: &str) -> Result<Values, LoadError> {
    let [rows, cols] = shape[..] else {
        return Err(LoadError::ShapeMismatch { name: name.to_string(), expected: vec![0, 0], found: shape });
    };
    let mut out = vec![0.0f32; values.len()];
    for (r, row) in values.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    Ok((vec![cols, rows], out))
}

impl Source for HfSource<'_> {
    fn take(&mut self, path: &str) -> Result<Option<Values>, LoadError> {
        let Some(recipe) = recipe(self.family, path) else { return Ok(None) };
        // A tensor the file lacks is named as the file would name it: that is the name the user can look up.
        match recipe {
            Recipe::Copy(name) => self.need(&name).map(Some),
            Recipe::Transpose(name) => transpose(self.need(&name)?, &name).map(Some),
            Recipe::Join(names) => {
                let parts = names.iter().map(|n| self.need(n)).collect::<Result<Vec<_>, _>>()?;
                if parts.iter().all(|(s, _)| s.len() == 1) {
                    let len = parts.iter().map(|(s, _)| s[0]).sum();
                    return Ok(Some((vec![len], parts.into_iter().flat_map(|(_, v)| v).collect())));
                }
                // [out_i, in] each → [in, Σ out_i]: row r of the result is row r of every transposed part in turn.
                let parts = names.iter().zip(parts).map(|(n, p)| transpose(p, n)).collect::<Result<Vec<_>, _>>()?;
                let rows = parts[0].0[0];
                if let Some((bad, (shape, _))) = names.iter().zip(&parts).find(|(_, (s, _))| s[0] != rows) {
                    return Err(LoadError::ShapeMismatch {
                        name: bad.clone(),
                        expected: vec![shape[1], rows],
                        found: vec![shape[1], shape[0]],
                    });
                }
                let width: usize = parts.iter().map(|(s, _)| s[1]).sum();
                let mut out = Vec::with_capacity(rows * width);
                for r in 0..rows {
                    for (shape, values) in &parts {
                        out.extend_from_slice(&values[r * shape[1]..(r + 1) * shape[1]]);
                    }
                }
                Ok(Some((vec![rows, width], out)))
            }
        }
    }

    fn name_of(&self, path: &str) -> String {
        let key = match recipe(self.family, path) {
            Some(Recipe::Copy(n) | Recipe::Transpose(n)) => n,
            Some(Recipe::Join(names)) => names.join(" + "),
            None => return path.to_string(),
        };
        self.index.get(&key).map_or(key, |(_, stored)| stored.clone())
    }

    fn leftovers(&self) -> Vec<String> {
        self.index
            .iter()
            .filter(|(key, (_, stored))| !self.taken.contains(*key) && !ignored(self.family, stored, self.tied))
            .map(|(_, (_, stored))| stored.clone())
            .collect()
    }
}

/// Catches a `config.json` that contradicts the tensors and names the field, before shapes are compared one by one.
fn check_against_config(config: &DecoderConfig, source: &HfSource) -> Result<(), LoadError> {
    let shape = |key: &str| source.shape(key);
    let (embed, pos, layer) = match config.family {
        Family::Gpt2 => ("wte.weight", Some("wpe.weight"), "h."),
        Family::GptBigCode => ("transformer.wte.weight", Some("transformer.wpe.weight"), "transformer.h."),
        Family::Llama | Family::Qwen2 => ("model.embed_tokens.weight", None, "model.layers."),
    };
    if let Some(s) = shape(embed).filter(|s| s.len() == 2) {
        if s[0] != config.vocab_size {
            return Err(config_err("vocab_size", format!("config.json says {}, {embed} has {} rows", config.vocab_size, s[0])));
        }
        if s[1] != config.n_embd {
            return Err(config_err("n_embd", format!("config.json says {}, {embed} is {} wide", config.n_embd, s[1])));
        }
    }
    if let Some(s) = pos.and_then(shape).filter(|s| s.len() == 2) {
        if s[0] != config.n_positions {
            return Err(config_err(
                "n_positions",
                format!("config.json says {}, {} has {} rows", config.n_positions, pos.unwrap_or(""), s[0]),
            ));
        }
    }
    let layers_in_file =
        source.index.keys().filter_map(|k| k.strip_prefix(layer)?.split('.').next()?.parse::<usize>().ok()).max().map_or(0, |m| m + 1);
    if layers_in_file != config.n_layer {
        return Err(config_err("n_layer", format!("config.json says {}, the tensors hold {layers_in_file} layers", config.n_layer)));
    }
    Ok(())
}

/// Builds a model from Hugging Face `config.json` text and one or more safetensors files (`(name, bytes)`; a
/// sharded checkpoint's shards), one tensor at a time. A tensor in two shards is an error.
pub fn from_hf_shards<B: Backend>(config_json: &str, shards: &[(&str, &[u8])], device: &B::Device) -> Result<Model<B>, LoadError> {
    let config = config_from_hf_json(config_json)?;
    let d = &config.decoder;
    build(&config, HfSource::new(d.family, d.tie_word_embeddings, shards)?, device)
}

/// Builds a model from `config` and its tensors' source, checking the config against the tensors first.
fn build<B: Backend>(config: &ModelConfig, mut source: HfSource, device: &B::Device) -> Result<Model<B>, LoadError> {
    check_against_config(&config.decoder, &source)?;
    crate::io::checkpoint::check_host_memory(config.param_count(), 4, "this model")?;
    let model = crate::io::checkpoint::init(config, device).map_err(|e| e.in_config("config.json"))?;
    load_into(model, &mut source, ROOT, false)
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
    let tokenizer = Tokenizer::from_json_bytes(tokenizer_json.as_bytes()).map_err(tokenizer_err)?;
    hub_model(config_json, tokenizer_json, &tokenizer, gpt2, |config| {
        let d = &config.decoder;
        build(config, HfSource::new(d.family, d.tie_word_embeddings, shards)?, device)
    })
}

/// [`from_hub_files`] from tensors kept as they downloaded ([`crate::io::stream`]): each tensor's stored bytes are
/// freed as its parameter is made, so the memory alive is never much more than the f32 model's. `tokenizer` is
/// `tokenizer_json` parsed (the playground parses it to check it before the weights' download; a large model's
/// `tokenizer.json` is megabytes, not parsed twice).
pub fn from_hub_tensors<B: Backend>(
    config_json: &str,
    tensors: Tensors,
    tokenizer_json: &str,
    tokenizer: &Tokenizer,
    gpt2: &Tokenizer,
    device: &B::Device,
) -> Result<Model<B>, LoadError> {
    hub_model(config_json, tokenizer_json, tokenizer, gpt2, |config| {
        let d = &config.decoder;
        build(config, HfSource::kept(d.family, d.tie_word_embeddings, tensors)?, device)
    })
}

fn tokenizer_err(e: crate::error::ModelError) -> LoadError {
    config_err("tokenizer.json", e.to_string())
}

/// The tokenizer (`tokenizer_json`, parsed as `tokenizer`) checked against `config_json`'s vocabulary before `load`
/// builds the model, then recorded in it.
fn hub_model<B: Backend>(
    config_json: &str,
    tokenizer_json: &str,
    tokenizer: &Tokenizer,
    gpt2: &Tokenizer,
    load: impl FnOnce(&ModelConfig) -> Result<Model<B>, LoadError>,
) -> Result<Model<B>, LoadError> {
    let config = config_from_hf_json(config_json)?;
    tokenizer.check_fits(config.vocab_size()).map_err(tokenizer_err)?;
    let mut model = load(&config)?;
    model.tokenizer = TokenizerSpec::for_parsed(tokenizer_json, tokenizer, gpt2).map_err(tokenizer_err)?;
    Ok(model)
}

/// Builds a model from Hugging Face `config.json` text and `model.safetensors` bytes.
pub fn from_hf_bytes<B: Backend>(config_json: &str, safetensors_bytes: &[u8], device: &B::Device) -> Result<Model<B>, LoadError> {
    from_hf_shards(config_json, &[("model.safetensors", safetensors_bytes)], device)
}

/// Imports a Hugging Face checkpoint directory: `config.json`, `model.safetensors` or its shards with
/// `model.safetensors.index.json` (memory-mapped), and `tokenizer.json` when there is one (otherwise the model is
/// recorded with GPT-2's tokenizer, as before the families; ids outside its vocabulary are refused when used).
#[cfg(not(target_arch = "wasm32"))]
pub fn import_hf_dir<B: Backend>(dir: &std::path::Path, device: &B::Device) -> Result<Model<B>, LoadError> {
    use crate::util::files::{map_regular, read_regular_text, ReadError, MAX_CHECKPOINT_BYTES, MAX_JSON_BYTES};
    let io = |path: std::path::PathBuf| move |e: ReadError| LoadError::Io { path: path.display().to_string(), source: e.into() };
    let text = |name: &str| read_regular_text(&dir.join(name), MAX_JSON_BYTES).map_err(io(dir.join(name)));
    let config = text("config.json")?;
    let files = if dir.join("model.safetensors").exists() || !dir.join("model.safetensors.index.json").exists() {
        vec!["model.safetensors".to_string()]
    } else {
        shard_files(&text("model.safetensors.index.json")?)?
    };
    let maps =
        files.iter().map(|f| map_regular(&dir.join(f), MAX_CHECKPOINT_BYTES).map_err(io(dir.join(f)))).collect::<Result<Vec<_>, _>>()?;
    let shards: Vec<(&str, &[u8])> = files.iter().map(String::as_str).zip(maps.iter().map(|m| &m[..])).collect();
    let gpt2 = Tokenizer::gpt2().map_err(|e| config_err("tokenizer", e.to_string()))?;
    if dir.join("tokenizer.json").exists() {
        return from_hub_files(&config, &shards, &text("tokenizer.json")?, &gpt2, device);
    }
    from_hf_shards(&config, &shards, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_names_its_tensors_as_the_table_says() {
        let r = |f, p: &str| recipe(f, p).unwrap();
        assert_eq!(r(Family::Gpt2, "net.h.3.ln_1.gamma"), Recipe::Copy("h.3.ln_1.weight".into()));
        assert_eq!(r(Family::Gpt2, "net.ln_f.beta"), Recipe::Copy("ln_f.bias".into()));
        assert_eq!(r(Family::Gpt2, "net.h.0.attn.c_attn.weight"), Recipe::Copy("h.0.attn.c_attn.weight".into()));
        assert_eq!(r(Family::GptBigCode, "net.h.0.attn.c_attn.weight"), Recipe::Transpose("transformer.h.0.attn.c_attn.weight".into()));
        assert_eq!(r(Family::GptBigCode, "net.h.0.attn.c_attn.bias"), Recipe::Copy("transformer.h.0.attn.c_attn.bias".into()));
        assert_eq!(r(Family::GptBigCode, "net.wpe.weight"), Recipe::Copy("transformer.wpe.weight".into()));
        let qkv = |x: &str| ["q", "k", "v"].map(|p| format!("model.layers.2.self_attn.{p}_proj.{x}")).to_vec();
        assert_eq!(r(Family::Qwen2, "net.layers.2.self_attn.qkv_proj.weight"), Recipe::Join(qkv("weight")));
        assert_eq!(r(Family::Qwen2, "net.layers.2.self_attn.qkv_proj.bias"), Recipe::Join(qkv("bias")));
        assert_eq!(
            r(Family::Llama, "net.layers.0.self_attn.o_proj.weight"),
            Recipe::Transpose("model.layers.0.self_attn.o_proj.weight".into())
        );
        assert_eq!(
            r(Family::Llama, "net.layers.1.mlp.fc1.weight"),
            Recipe::Join(vec!["model.layers.1.mlp.gate_proj.weight".into(), "model.layers.1.mlp.up_proj.weight".into()])
        );
        assert_eq!(r(Family::Llama, "net.layers.1.mlp.fc2.weight"), Recipe::Transpose("model.layers.1.mlp.down_proj.weight".into()));
        assert_eq!(r(Family::Llama, "net.layers.1.input_layernorm.gamma"), Recipe::Copy("model.layers.1.input_layernorm.weight".into()));
        assert_eq!(r(Family::Llama, "net.norm.gamma"), Recipe::Copy("model.norm.weight".into()));
        assert_eq!(r(Family::Llama, "net.embed_tokens.weight"), Recipe::Copy("model.embed_tokens.weight".into()));
        assert_eq!(r(Family::Llama, "net.lm_head.weight"), Recipe::Copy("lm_head.weight".into()));
        assert!(ignored(Family::Gpt2, "h.0.attn.bias", true) && ignored(Family::Llama, "lm_head.weight", true));
        assert!(!ignored(Family::Llama, "lm_head.weight", false));
        assert!(ignored(Family::Llama, "model.layers.0.self_attn.rotary_emb.inv_freq", false));
    }

    #[test]
    fn transposes_lay_out_linear_weights_as_burn_does() {
        // nn.Linear's [2 out, 3 in] is burn's [3 in, 2 out].
        let q = (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(transpose(q, "q").unwrap(), (vec![3, 2], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
    }

    #[test]
    fn config_errors_name_the_field() {
        let base = r#"{"model_type":"gpt2","vocab_size":100,"n_positions":16,"n_embd":8,"n_layer":1,"n_head":2}"#;
        assert!(config_from_hf_json(base).is_ok());
        let err = |json: &str| config_from_hf_json(json).unwrap_err();
        assert!(matches!(err(&base.replace("gpt2", "mistral")), LoadError::UnsupportedModelType(t) if t == "mistral"));
        assert!(matches!(err(&base.replace(r#""n_head":2"#, r#""n_hea":2"#)), LoadError::Config { field, .. } if field == "n_head"));
        let relu = base.replace('}', r#","activation_function":"relu"}"#);
        assert!(matches!(err(&relu), LoadError::Config { field, .. } if field == "activation_function"));
        assert!(matches!(err("not json"), LoadError::Config { .. }));
        let other_arch = base.replace('}', r#","architectures":["MistralForCausalLM"]}"#);
        assert!(matches!(err(&other_arch), LoadError::Config { field, .. } if field == "architectures"));
        assert!(config_from_hf_json(&base.replace('}', r#","architectures":["GPT2LMHeadModel"]}"#)).is_ok());
        let llama = r#"{"model_type":"llama","vocab_size":100,"hidden_size":16,"intermediate_size":40,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":64,"rms_norm_eps":1e-5,"rope_theta":100000.0,"tie_word_embeddings":true}"#;
        let c = config_from_hf_json(llama).unwrap().decoder;
        assert_eq!((c.family, c.kv_heads(), c.hidden(), c.rope_theta, c.tie_word_embeddings), (Family::Llama, 2, 40, Some(1e5), true));
        for (field, extra) in [
            ("rope_scaling", r#""rope_scaling":{"type":"llama3","factor":8.0}"#),
            ("hidden_act", r#""hidden_act":"gelu""#),
            ("mlp_bias", r#""mlp_bias":true"#),
            ("head_dim", r#""head_dim":8"#),
            ("use_sliding_window", r#""use_sliding_window":true"#),
        ] {
            let json = llama.replace('}', &format!(",{extra}}}"));
            assert!(matches!(err(&json), LoadError::Config { field: f, .. } if f == field), "{field}");
        }
        assert!(config_from_hf_json(&llama.replace('}', r#","rope_scaling":null}"#)).is_ok());
        // transformers 5 writes rope_theta inside rope_parameters.
        let v5 = llama.replace(r#""rope_theta":100000.0"#, r#""rope_parameters":{"rope_theta":1000000.0,"rope_type":"default"}"#);
        assert_eq!(config_from_hf_json(&v5).unwrap().decoder.rope_theta, Some(1e6));
        let yarn = v5.replace(r#""rope_type":"default""#, r#""rope_type":"yarn""#);
        assert!(matches!(err(&yarn), LoadError::Config { field, .. } if field == "rope_parameters.rope_type"));
        let qwen = config_from_hf_json(&llama.replace("llama", "qwen2")).unwrap().decoder;
        assert!(qwen.attention_bias, "Qwen2 has q/k/v biases");
        let bigcode = r#"{"model_type":"gpt_bigcode","vocab_size":100,"n_positions":16,"n_embd":8,"n_layer":1,"n_head":2,"multi_query":true,"activation_function":"gelu_pytorch_tanh"}"#;
        assert_eq!(config_from_hf_json(bigcode).unwrap().decoder.kv_heads(), 1);
        let full_heads = bigcode.replace(r#""multi_query":true"#, r#""multi_query":false"#);
        assert!(matches!(err(&full_heads), LoadError::Config { field, .. } if field == "multi_query"));
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
