//! The page's Hub loader holds little more than the f32 model: a Hugging Face checkpoint read as it downloads
//! (`io::stream`), converted tensor by tensor (`hf::from_hub_tensors`) and given a fresh H-Net encoder
//! (`transplant::hybrid_around`) never holds the file, its tensors and the model all at once. Measured here with a
//! counting allocator on a bf16 Llama-family checkpoint of a few million parameters (the embedding a quarter of
//! them, as in Qwen2.5-Coder-0.5B): the peak heap while loading
//! stays within the f32 model's size plus 25% (the bound the browser measurement states for a 0.5B model; a whole
//! bf16 file held beside the model would be 50%).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use hnet_gpt_model::io::hf::from_hub_tensors;
use hnet_gpt_model::io::stream::Streamed;
use hnet_gpt_model::io::transplant::hybrid_around;
use hnet_gpt_model::tokenizer::Tokenizer;

type Cpu = burn::backend::Flex;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated beyond what was live when `f` started, at its peak.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst) - base)
}

const D: usize = 256;
const HIDDEN: usize = 688;
const LAYERS: usize = 8;
const VOCAB: usize = 8192;

fn config() -> String {
    format!(
        r#"{{"model_type":"llama","vocab_size":{VOCAB},"hidden_size":{D},"intermediate_size":{HIDDEN},"num_hidden_layers":{LAYERS},
        "num_attention_heads":8,"num_key_value_heads":2,"max_position_embeddings":256,"rms_norm_eps":1e-5,"rope_theta":10000.0,
        "tie_word_embeddings":true}}"#
    )
}

/// A bf16 safetensors file of the config's tensors (small random values), and its parameter count.
fn checkpoint() -> (Vec<u8>, usize) {
    let kv = D / 8 * 2;
    let mut shapes = vec![("model.embed_tokens.weight".to_string(), vec![VOCAB, D]), ("model.norm.weight".to_string(), vec![D])];
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}.");
        for (name, shape) in [
            ("input_layernorm.weight", vec![D]),
            ("post_attention_layernorm.weight", vec![D]),
            ("self_attn.q_proj.weight", vec![D, D]),
            ("self_attn.k_proj.weight", vec![kv, D]),
            ("self_attn.v_proj.weight", vec![kv, D]),
            ("self_attn.o_proj.weight", vec![D, D]),
            ("mlp.gate_proj.weight", vec![HIDDEN, D]),
            ("mlp.up_proj.weight", vec![HIDDEN, D]),
            ("mlp.down_proj.weight", vec![D, HIDDEN]),
        ] {
            shapes.push((format!("{p}{name}"), shape));
        }
    }
    let data: Vec<Vec<u8>> = shapes
        .iter()
        .enumerate()
        .map(|(t, (_, shape))| {
            let n: usize = shape.iter().product();
            // bf16 of small values that differ from tensor to tensor.
            (0..n).flat_map(|i| (((0.01 * ((i * 7 + t) % 13) as f32 - 0.06).to_bits() >> 16) as u16).to_le_bytes()).collect()
        })
        .collect();
    let views: Vec<_> = shapes
        .iter()
        .zip(&data)
        .map(|((name, shape), bytes)| {
            (name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, shape.clone(), bytes).unwrap())
        })
        .collect();
    let params = shapes.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    (safetensors::serialize(views, None).unwrap(), params)
}

#[test]
fn loading_as_it_downloads_holds_little_more_than_the_f32_model() {
    let gpt2 = Tokenizer::gpt2().unwrap();
    // The tiny Llama fixture's own BPE (a few hundred tokens; the model's vocabulary is larger, as Qwen's is).
    let tokenizer = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hf-tiny-llama/tokenizer.json")).unwrap();
    // Parsed before the weights, as the page checks it before their download.
    let parsed = Tokenizer::from_json_bytes(tokenizer.as_bytes()).unwrap();
    let (file, params) = checkpoint();
    let f32_bytes = 4 * params;
    let config = config();

    // As the page does it: the pieces arrive (each a copy of a part of the file, which stands for the network and
    // is not counted; each dropped once pushed), the tensors are converted as taken.
    let (model, peak) = peak_during(|| {
        let mut stream = Streamed::new("model.safetensors", None);
        for piece in file.chunks(64 << 10) {
            // A piece as the network hands it over: a new buffer, dropped once pushed.
            let arrived: Vec<u8> = piece.to_vec();
            stream.push(&arrived).unwrap();
        }
        from_hub_tensors::<Cpu>(&config, stream.finish().unwrap(), &tokenizer, &parsed, &gpt2, &Default::default()).unwrap()
    });
    drop(file);
    eprintln!("f32 model {f32_bytes} B; peak while loading {peak} B");
    assert!(peak as f64 <= 1.25 * f32_bytes as f64, "peak {peak} bytes for an f32 model of {f32_bytes}");
    assert!(peak as f64 >= 0.9 * f32_bytes as f64, "the model itself ({f32_bytes} bytes) is counted: peak {peak}");

    // A fresh hybrid around it: the decoder's tensors move into the hybrid, never copied whole (beyond the new
    // encoder's parameters, one tensor in flight).
    let decoder_bytes = f32_bytes;
    let largest = 4 * VOCAB * D;
    let (hybrid, peak) = peak_during(|| hybrid_around(model, "decoder", &Default::default()).unwrap());
    let new_bytes = 4 * burn::module::Module::num_params(&hybrid) - decoder_bytes;
    eprintln!("f32 model {f32_bytes} B; hybrid: {new_bytes} B new, peak {peak} B beyond the decoder");
    assert!(peak <= new_bytes + 2 * largest, "peak {peak} bytes beyond the decoder's {decoder_bytes}, {new_bytes} of them new");
}
