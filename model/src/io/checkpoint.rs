//! The project's own checkpoint format: one safetensors file holding the weights under the model's own paths
//! (`net.wte.weight`, `net.h.0.attn.c_attn.weight`, …) and, in its metadata, the format tag, the model config as
//! JSON and the tokenizer id. One file, so the browser can download it and the CLI can load it, and any
//! safetensors reader can inspect it.
//!
//! Writes are atomic: a temporary file in the same directory, flushed, then renamed over the target.

use std::collections::{BTreeMap, HashMap};

use burn::tensor::backend::Backend;
use safetensors::SafeTensors;

use crate::arch::config::ModelConfig;
use crate::arch::model::Model;
use crate::error::{LoadError, ModelError};
use crate::io::params::{largest_parameter, stored, Component, ParamPath, ROOT};
use crate::io::weights::{load_into, write_safetensors, Copied, Named, Values};
use crate::tokenizer::{TokenizerSpec, TOKENIZER_JSON_KEY};

/// Format tag written into every checkpoint.
pub const FORMAT: &str = "hnet-gpt/1";

/// What a checkpoint's metadata says.
#[derive(Debug, Clone)]
pub struct CheckpointInfo {
    /// The model config.
    pub config: ModelConfig,
    /// The tokenizer the model expects.
    pub tokenizer: TokenizerSpec,
    /// Every metadata entry (format, config, tokenizer and any extras such as training provenance).
    pub metadata: HashMap<String, String>,
    /// Total number of parameters stored.
    pub num_params: usize,
    /// Parameters per component, in [`Component::ALL`] order (components the architecture lacks are left out).
    pub components: Vec<(&'static str, usize)>,
}

fn format_err(what: &str, reason: impl std::fmt::Display) -> LoadError {
    LoadError::Format { what: what.to_string(), reason: reason.to_string() }
}

/// Reads and checks a checkpoint's metadata without building the model.
pub fn read_info(bytes: &[u8], what: &str) -> Result<CheckpointInfo, LoadError> {
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| format_err(what, e))?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format_err(what, e))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let field = |name: &str| {
        metadata.get(name).cloned().ok_or_else(|| LoadError::Config {
            field: name.to_string(),
            reason: format!(
                "missing from the metadata of {what} (is this an hnet-gpt checkpoint? Hugging Face directories go through `import-hf`)"
            ),
        })
    };
    let format = field("format")?;
    if format != FORMAT {
        return Err(LoadError::Config { field: "format".into(), reason: format!("`{format}` is not `{FORMAT}`") });
    }
    let config = ModelConfig::from_json(&field("config")?).map_err(|e| e.in_config("config"))?;
    let mut per: HashMap<Component, usize> = HashMap::new();
    for (name, t) in tensors.tensors() {
        *per.entry(Component::of(&name)).or_default() += t.shape().iter().product::<usize>();
    }
    let num_params = per.values().sum();
    let components = Component::ALL.iter().filter_map(|c| per.get(c).map(|n| (c.name(), *n))).collect();
    let tokenizer = TokenizerSpec::from_metadata(&field("tokenizer")?, metadata.get(TOKENIZER_JSON_KEY).map(String::as_str))
        .map_err(|e| LoadError::Config { field: "tokenizer".into(), reason: e.to_string() })?;
    // The metadata map keeps everything else (provenance); the tokenizer's JSON is the spec's, not a note.
    let mut metadata = metadata;
    metadata.remove(TOKENIZER_JSON_KEY);
    Ok(CheckpointInfo { config, tokenizer, metadata, num_params, components })
}

/// Serialises a model (weights + config + tokenizer id + `extra` metadata) to checkpoint bytes.
pub fn to_bytes<B: Backend>(model: &Model<B>, extra: &[(&str, &str)]) -> Result<Vec<u8>, LoadError> {
    to_bytes_as(model, extra, false)
}

/// Like [`to_bytes`]; with `half`, weights are stored as f16 (half the size; loading widens them back to f32,
/// which is exact). For shipping models to the browser.
pub fn to_bytes_as<B: Backend>(model: &Model<B>, extra: &[(&str, &str)], half: bool) -> Result<Vec<u8>, LoadError> {
    let mut bytes = Vec::new();
    write_to(model, extra, half, &mut bytes).map_err(|e| LoadError::Apply(e.to_string()))?;
    Ok(bytes)
}

/// Writes a checkpoint — weights (f32, or f16 with `half`), config, tokenizer and `extra` metadata — to `out`, one
/// tensor at a time ([`write_safetensors`]).
pub fn write_to<B: Backend>(model: &Model<B>, extra: &[(&str, &str)], half: bool, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut metadata = std::collections::BTreeMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("config".to_string(), model.config.to_json()),
        ("tokenizer".to_string(), model.tokenizer.id().to_string()),
    ]);
    if let TokenizerSpec::Embedded(json) = &model.tokenizer {
        metadata.insert(TOKENIZER_JSON_KEY.to_string(), json.to_string());
    }
    for (k, v) in extra {
        metadata.insert(k.to_string(), v.to_string());
    }
    write_safetensors(model, &metadata, half, out)
}

/// Copies a model to backend `H` on `device`, reading each weight asynchronously: what backends that cannot read
/// tensors synchronously (WebGPU in the browser) serialise with [`to_bytes`], so names come from one place. A table
/// the model holds in parts arrives joined (the host model holds it whole).
pub async fn to_host_async<B: Backend, H: Backend>(model: &Model<B>, device: &H::Device) -> Result<Model<H>, LoadError> {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;

    /// Every float parameter, flattened, with its path, in module order.
    struct Collect<B: Backend>(ParamPath, Vec<(String, Tensor<B, 1>, Vec<usize>)>);
    impl<B: Backend> ModuleVisitor<B> for Collect<B> {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.0.enter(name, container_type);
        }
        fn exit_module(&mut self, _name: &str, container_type: &str) {
            self.0.exit(container_type);
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let t = param.val();
            let dims = t.dims().to_vec();
            self.1.push((self.0.path(), t.reshape([-1]), dims));
        }
    }

    let mut collect = Collect(ParamPath::default(), Vec::new());
    model.visit(&mut collect);
    let mut read: BTreeMap<String, Values> = BTreeMap::new();
    for (path, tensor, dims) in collect.1 {
        let data = tensor.into_data_async().await.map_err(|e| LoadError::Apply(format!("reading a weight: {e:?}")))?;
        let values = data.convert::<f32>().into_vec::<f32>().map_err(|e| LoadError::Apply(format!("reading a weight: {e:?}")))?;
        match (stored(&path), read.get_mut(stored(&path).0)) {
            ((_, 1..), Some((shape, before))) => {
                shape[0] += dims[0];
                before.extend(values);
            }
            _ => {
                read.insert(path, (dims, values));
            }
        }
    }
    // The fresh model's parameters are still lazy: filling them draws none of the random weights they would be
    // initialised with (in the browser that drawing was most of a 100 ms main-thread task).
    let host = init::<H>(&model.config, device).map_err(|e| e.in_config("config"))?;
    let mut host = load_into(host, &mut Copied::ready(read), ROOT, false)?;
    host.tokenizer = model.tokenizer.clone();
    Ok(host)
}

/// A fresh model of `config` built for `device` (its parameters lazy: nothing drawn or allocated yet), refused
/// when a weight does not fit one buffer of the device: [`crate::nn::embedding::with_part_bytes`] sets the limit
/// (a GPU's largest storage-buffer binding), a token table is cut into parts that fit it, any other weight must fit
/// whole. Every model loaded or built for a device comes through here, so such a weight is a clear error before
/// anything is allocated rather than a failed allocation inside the device's thread.
pub fn init<B: Backend>(config: &ModelConfig, device: &B::Device) -> Result<Model<B>, ModelError> {
    let model = Model::init(config, device)?;
    let limit = crate::nn::embedding::part_bytes();
    match largest_parameter(&model).map(|(name, values)| (name, 4 * values as u64)) {
        Some((name, bytes)) if bytes > limit => Err(LoadError::TooLargeForBuffer { name, bytes, limit }.into()),
        _ => Ok(model),
    }
}

/// Builds the model a checkpoint describes and loads its weights, one tensor at a time (see [`crate::io::weights`]).
pub fn from_bytes<B: Backend>(bytes: &[u8], what: &str, device: &B::Device) -> Result<Model<B>, LoadError> {
    let info = read_info(bytes, what)?;
    check_declared_size(&info.config, bytes.len(), what)?;
    check_host_memory(info.config.param_count(), 4, what)?;
    let mut model = init(&info.config, device).map_err(|e| e.in_config("config"))?;
    model.tokenizer = info.tokenizer;
    load_into(model, &mut Named::new(bytes, what)?, ROOT, false)
}

/// `model` copied onto another backend's `device` (the page moving a model from the CPU to WebGPU), tensor by
/// tensor: the copy's host memory is one tensor beyond the two models. `model`'s backend must read tensors
/// synchronously (not WebGPU in the browser: [`to_host_async`] reads those).
pub fn copy_to<B: Backend, C: Backend>(model: &Model<B>, device: &C::Device) -> Result<Model<C>, LoadError> {
    let mut copy = init(&model.config, device).map_err(|e| e.in_config("config"))?;
    copy.tokenizer = model.tokenizer.clone();
    load_into(copy, &mut Copied::of(model), ROOT, false)
}

/// A config in the metadata is a promise about the weights that follow: refuse before allocating a model whose
/// parameters could not fit in the file even at two bytes each (a corrupt or hostile header that declares a
/// billion-wide model must not make us allocate it).
pub fn check_declared_size(config: &ModelConfig, file_bytes: usize, what: &str) -> Result<(), LoadError> {
    let params = config.param_count();
    if params.saturating_mul(2) > file_bytes {
        return Err(LoadError::Config {
            field: "config".into(),
            reason: format!("{what} declares a model of {params} parameters but holds only {file_bytes} bytes"),
        });
    }
    Ok(())
}

/// Refuses to build a model of `params` parameters at `bytes_per_param` bytes each (4 for f32 weights, about 16 to
/// train with AdamW: weights, gradients and two moments) when this machine's available memory (Linux's
/// MemAvailable) cannot hold it: a clear error instead of an abort on allocation. Elsewhere it checks nothing.
pub fn check_host_memory(params: usize, bytes_per_param: usize, what: &str) -> Result<(), LoadError> {
    #[cfg(target_os = "linux")]
    {
        let available_kb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines().find_map(|l| l.strip_prefix("MemAvailable:").map(|v| v.trim().trim_end_matches("kB").trim().to_string()))
            })
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(kb) = available_kb {
            let needed = params as f64 * bytes_per_param as f64;
            let available = kb as f64 * 1024.0;
            if needed > available {
                return Err(LoadError::TooLarge { what: what.to_string(), params, needed_gb: needed / 1e9, available_gb: available / 1e9 });
            }
        }
    }
    let _ = (params, bytes_per_param, what);
    Ok(())
}

/// Saves a checkpoint file atomically.
#[cfg(not(target_arch = "wasm32"))]
pub fn save<B: Backend>(model: &Model<B>, path: &std::path::Path, extra: &[(&str, &str)]) -> Result<(), LoadError> {
    save_as(model, path, extra, false)
}

/// [`save`], with f16 weights when `half`: streamed to a temporary file, then renamed over `path`.
#[cfg(not(target_arch = "wasm32"))]
pub fn save_as<B: Backend>(model: &Model<B>, path: &std::path::Path, extra: &[(&str, &str)], half: bool) -> Result<(), LoadError> {
    crate::util::files::write_atomic_with(path, |out| write_to(model, extra, half, out))
        .map_err(|source| LoadError::Io { path: path.display().to_string(), source })
}

/// A checkpoint file, memory-mapped (a regular file within
/// [`MAX_CHECKPOINT_BYTES`](crate::util::files::MAX_CHECKPOINT_BYTES)): what loading, converting and inspecting read,
/// so that a large model's bytes are never copied whole into memory.
#[cfg(not(target_arch = "wasm32"))]
pub fn map_file(path: &std::path::Path) -> Result<memmap2::Mmap, LoadError> {
    crate::util::files::map_regular(path, crate::util::files::MAX_CHECKPOINT_BYTES)
        .map_err(|e| LoadError::Io { path: path.display().to_string(), source: e.into() })
}

/// A checkpoint file's bytes (a regular file within [`MAX_CHECKPOINT_BYTES`](crate::util::files::MAX_CHECKPOINT_BYTES)).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>, LoadError> {
    crate::util::files::read_regular(path, crate::util::files::MAX_CHECKPOINT_BYTES)
        .map_err(|e| LoadError::Io { path: path.display().to_string(), source: e.into() })
}

/// Loads a checkpoint file, memory-mapped (its bytes are read as the weights are filled in, never copied whole).
#[cfg(not(target_arch = "wasm32"))]
pub fn load<B: Backend>(path: &std::path::Path, device: &B::Device) -> Result<Model<B>, LoadError> {
    from_bytes(&map_file(path)?, &path.display().to_string(), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::config::{Arch, ModelConfig};
    use crate::TestBackend;
    use burn::tensor::{Int, Tensor, Tolerance};

    fn tiny() -> Model<TestBackend> {
        Model::init(&ModelConfig::preset(Arch::Gpt2, "tiny").unwrap(), &Default::default()).unwrap()
    }

    #[test]
    fn save_then_load_gives_identical_logits() {
        let model = tiny();
        let bytes = to_bytes(&model, &[("note", "test")]).unwrap();
        let info = read_info(&bytes, "mem").unwrap();
        assert_eq!(info.config, model.config);
        assert_eq!(info.tokenizer, TokenizerSpec::Gpt2Bpe);
        assert_eq!(info.metadata["note"], "test");
        assert_eq!(info.num_params, burn::module::Module::num_params(&model));
        let loaded: Model<TestBackend> = from_bytes(&bytes, "mem", &Default::default()).unwrap();
        let tokens = Tensor::<TestBackend, 2, Int>::from_ints([[1, 2, 3, 4]], &Default::default());
        model.forward(tokens.clone()).into_data().assert_eq(&loaded.forward(tokens).into_data(), true);
    }

    #[test]
    fn a_copy_to_another_backend_gives_identical_logits() {
        for arch in [Arch::Gpt2, Arch::Hnet, Arch::Hybrid] {
            let model = Model::<TestBackend>::init(&ModelConfig::preset(arch, "tiny").unwrap(), &Default::default()).unwrap();
            let copy: Model<TestBackend> = copy_to(&model, &Default::default()).unwrap();
            assert_eq!((copy.config.clone(), copy.tokenizer.clone()), (model.config.clone(), model.tokenizer.clone()));
            let tokens = Tensor::<TestBackend, 2, Int>::from_ints([[1, 2, 3, 4, 5, 6]], &Default::default());
            model.forward(tokens.clone()).into_data().assert_eq(&copy.forward(tokens).into_data(), true);
        }
    }

    #[test]
    fn parameters_are_counted_per_component() {
        let expect: [(Arch, &[&str]); 3] = [
            (Arch::Gpt2, &["embeddings", "blocks"]),
            (Arch::Hnet, &["embeddings", "encoder", "routing", "main", "decoder"]),
            (Arch::Hybrid, &["embeddings", "encoder", "routing", "main", "fusion", "blocks"]),
        ];
        for (arch, components) in expect {
            let model = Model::<TestBackend>::init(&ModelConfig::preset(arch, "tiny").unwrap(), &Default::default()).unwrap();
            let info = read_info(&to_bytes(&model, &[]).unwrap(), "test").unwrap();
            assert_eq!(info.components.iter().map(|(c, _)| *c).collect::<Vec<_>>(), components, "{arch:?}");
            assert!(info.components.iter().all(|(_, n)| *n > 0));
            assert_eq!(info.num_params, burn::module::Module::num_params(&model), "{arch:?}");
        }
    }

    #[test]
    fn async_serialisation_equals_the_synchronous_one() {
        for arch in [Arch::Gpt2, Arch::Hnet, Arch::Hybrid] {
            let model = Model::<TestBackend>::init(&ModelConfig::preset(arch, "tiny").unwrap(), &Default::default()).unwrap();
            let sync = to_bytes(&model, &[("note", "x")]).unwrap();
            let host = futures_lite::future::block_on(to_host_async::<TestBackend, TestBackend>(&model, &Default::default())).unwrap();
            let host = to_bytes(&host, &[("note", "x")]).unwrap();
            // Byte equality is too strict (the metadata map has no fixed order): compare what the files hold.
            let (a, b) = (SafeTensors::deserialize(&host).unwrap(), SafeTensors::deserialize(&sync).unwrap());
            let mut names = a.names();
            names.sort();
            assert_eq!(names.len(), b.names().len(), "{arch:?}");
            for name in names {
                assert_eq!(a.tensor(name).unwrap().data(), b.tensor(name).unwrap().data(), "{arch:?} {name}");
            }
            assert_eq!(read_info(&host, "async").unwrap().metadata, read_info(&sync, "sync").unwrap().metadata);
        }
    }

    /// Every path between a model whose token embedding is in one part and the same model with it in parts (a
    /// device whose buffer bindings are smaller than the table): loading, copying, saving, reading back async.
    #[test]
    fn a_table_in_parts_loads_copies_and_saves_as_one_tensor() {
        use crate::nn::embedding::with_part_bytes;
        let device = Default::default();
        let tokens = Tensor::<TestBackend, 2, Int>::from_ints([[1, 2, 3, 50000, 50256, 7]], &device);
        for arch in [Arch::Gpt2, Arch::Hnet, Arch::Hybrid] {
            let model = Model::<TestBackend>::init(&ModelConfig::preset(arch, "tiny").unwrap(), &device).unwrap();
            let bytes = to_bytes(&model, &[]).unwrap();
            let width = model.config.decoder.n_embd;
            // Parts of 12,000 rows: the 50,257-row table in five.
            let limit = (12_000 * 4 * width) as u64;
            let parts: Model<TestBackend> = with_part_bytes(limit, || from_bytes(&bytes, "mem", &device)).unwrap();
            let copied: Model<TestBackend> = with_part_bytes(limit, || copy_to(&model, &device)).unwrap();
            for m in [&parts, &copied] {
                let table = match &m.net {
                    crate::arch::model::Net::Decoder(crate::arch::decoder::Decoder::Gpt2(g)) => &g.wte,
                    crate::arch::model::Net::HNet(h) => &h.wte,
                    crate::arch::model::Net::Hybrid(h) => match &h.gpt2 {
                        crate::arch::decoder::Decoder::Gpt2(g) => &g.wte,
                        _ => unreachable!(),
                    },
                    _ => unreachable!(),
                };
                assert_eq!(table.parts.len(), 5, "{arch:?}");
                model
                    .forward(tokens.clone())
                    .into_data()
                    .assert_approx_eq::<f32>(&m.forward(tokens.clone()).into_data(), Tolerance::absolute(1e-5));
                // Saved as one tensor: the same file as the model in one part, and read back whole.
                assert_eq!(to_bytes(m, &[]).unwrap(), bytes, "{arch:?}");
                let back: Model<TestBackend> = copy_to(m, &device).unwrap();
                assert_eq!(to_bytes(&back, &[]).unwrap(), bytes, "{arch:?}");
                let host = futures_lite::future::block_on(to_host_async::<TestBackend, TestBackend>(m, &device)).unwrap();
                assert_eq!(to_bytes(&host, &[]).unwrap(), bytes, "{arch:?}");
            }
        }
        // A file whose table has other rows than the model's parts is refused, naming it.
        let model = tiny();
        let (mut small, mut one_part) =
            (ModelConfig::preset(Arch::Gpt2, "tiny").unwrap(), ModelConfig::preset(Arch::Gpt2, "tiny").unwrap());
        small.decoder.vocab_size = 40_000;
        one_part.decoder.vocab_size = 12_000;
        let fewer = Model::<TestBackend>::init(&small, &device).unwrap();
        let first = Model::<TestBackend>::init(&one_part, &device).unwrap();
        for (file, config) in [
            (to_bytes(&fewer, &[]).unwrap(), &model.config),
            (to_bytes(&model, &[]).unwrap(), &small),
            // Exactly the rows of the model's first part.
            (to_bytes(&first, &[]).unwrap(), &model.config),
        ] {
            let limit = (12_000 * 4 * config.decoder.n_embd) as u64;
            let host = with_part_bytes(limit, || Model::<TestBackend>::init(config, &device)).unwrap();
            let err = load_into(host, &mut Named::new(&file, "mem").unwrap(), ROOT, false).map(|_| ()).unwrap_err();
            assert!(matches!(&err, LoadError::ShapeMismatch { name, .. } if name == "net.wte.weight"), "{err}");
        }
    }

    /// A device whose buffers hold a table's rows in parts but not some other weight whole: building, loading and
    /// copying onto it are refused before anything is allocated, naming the weight; a buffer exactly its size is
    /// enough.
    #[test]
    fn a_weight_larger_than_one_buffer_is_refused_by_name() {
        use crate::nn::embedding::with_part_bytes;
        let device = Default::default();
        for arch in [Arch::Gpt2, Arch::Hnet, Arch::Hybrid] {
            let config = ModelConfig::preset(arch, "tiny").unwrap();
            let model = Model::<TestBackend>::init(&config, &device).unwrap();
            let bytes = to_bytes(&model, &[]).unwrap();
            // Two rows of the token table per buffer.
            let limit = (2 * 4 * config.decoder.n_embd) as u64;
            let err = with_part_bytes(limit, || init::<TestBackend>(&config, &device)).map(|_| ()).unwrap_err();
            let ModelError::Load(LoadError::TooLargeForBuffer { name, bytes: size, limit: l }) = err else { panic!("{arch:?}: {err}") };
            assert_eq!(l, limit);
            assert!(size > limit && !name.contains("wte"), "{arch:?}: {name} ({size} bytes)");
            let shapes = crate::io::params::parameter_shapes(&model);
            let dims = &shapes.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{arch:?}: no {name}")).1;
            assert_eq!(4 * dims.iter().product::<usize>() as u64, size, "{arch:?} {name}");
            for refused in [
                with_part_bytes(limit, || from_bytes::<TestBackend>(&bytes, "mem", &device)).map(|_| ()),
                with_part_bytes(limit, || copy_to::<TestBackend, TestBackend>(&model, &device)).map(|_| ()),
            ] {
                let err = refused.unwrap_err();
                assert!(matches!(&err, LoadError::TooLargeForBuffer { name: n, .. } if *n == name), "{arch:?}: {err}");
                assert!(err.to_string().contains(&format!("weight `{name}`")), "{err}");
            }
            // Exactly the largest weight's bytes: it fits.
            with_part_bytes(size, || from_bytes::<TestBackend>(&bytes, "mem", &device)).unwrap();
        }
    }

    #[test]
    fn half_precision_checkpoints_load_and_round_correctly() {
        let model = tiny();
        let half = to_bytes_as(&model, &[], true).unwrap();
        assert!(half.len() < to_bytes(&model, &[]).unwrap().len() * 6 / 10);
        let loaded: Model<TestBackend> = from_bytes(&half, "half", &Default::default()).unwrap();
        let tokens = Tensor::<TestBackend, 2, Int>::from_ints([[1, 2, 3]], &Default::default());
        let (a, b) = (
            model.forward(tokens.clone()).into_data().to_vec::<f32>().unwrap(),
            loaded.forward(tokens).into_data().to_vec::<f32>().unwrap(),
        );
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff > 0.0 && diff < 1e-2, "{diff}");
    }

    #[test]
    fn truncated_and_garbage_files_are_format_errors() {
        let bytes = to_bytes(&tiny(), &[]).unwrap();
        let cut = bytes[..bytes.len() / 2].to_vec();
        assert!(matches!(from_bytes::<TestBackend>(&cut, "cut", &Default::default()), Err(LoadError::Format { .. })));
        let garbage = b"this is not a checkpoint".to_vec();
        assert!(matches!(from_bytes::<TestBackend>(&garbage, "junk", &Default::default()), Err(LoadError::Format { .. })));
    }

    /// A model of a few thousand parameters, so that every byte offset of its checkpoint can be tried.
    fn micro() -> Model<TestBackend> {
        let mut config = ModelConfig::preset(Arch::Gpt2, "tiny").unwrap();
        config.decoder.vocab_size = 40;
        config.decoder.n_positions = 16;
        config.decoder.n_embd = 8;
        config.decoder.n_head = 2;
        config.decoder.n_layer = 1;
        Model::init(&config, &Default::default()).unwrap()
    }

    fn load_bytes(bytes: Vec<u8>) -> Result<Model<TestBackend>, LoadError> {
        from_bytes::<TestBackend>(&bytes, "fuzz", &Default::default())
    }

    #[test]
    fn every_truncation_of_a_checkpoint_is_an_error_not_a_panic() {
        let bytes = to_bytes(&micro(), &[]).unwrap();
        assert!(load_bytes(bytes.clone()).is_ok());
        assert!(bytes.len() < 20_000, "{}", bytes.len());
        for cut in 0..bytes.len() {
            let err = load_bytes(bytes[..cut].to_vec()).err().unwrap_or_else(|| panic!("a checkpoint cut at {cut} loaded"));
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn a_huge_declared_size_is_refused_before_anything_is_allocated() {
        // The header length field claims a petabyte.
        let mut bytes = to_bytes(&micro(), &[]).unwrap();
        bytes[..8].copy_from_slice(&(1u64 << 50).to_le_bytes());
        assert!(matches!(load_bytes(bytes), Err(LoadError::Format { .. })));
        // The config claims a model far larger than the file: refused by size, not by running out of memory.
        let model = micro();
        let mut config = model.config.clone();
        config.decoder.n_embd = 1 << 12;
        config.decoder.vocab_size = 1 << 20;
        let bytes = to_bytes(&Model { net: model.net, config, tokenizer: Default::default() }, &[]).unwrap();
        match load_bytes(bytes) {
            Err(LoadError::Config { reason, .. }) => assert!(reason.contains("parameters but holds only"), "{reason}"),
            other => panic!("expected a size refusal, got {other:?}"),
        }
        // Sizes beyond any real model are refused as a config error before anything multiplies them.
        let model = micro();
        let mut config = model.config.clone();
        config.decoder.n_layer = usize::MAX / 2;
        let bytes = to_bytes(&Model { net: model.net, config, tokenizer: Default::default() }, &[]).unwrap();
        assert!(matches!(load_bytes(bytes), Err(LoadError::Config { reason, .. }) if reason.contains("out of range")));
    }

    #[test]
    fn a_tensor_of_the_wrong_dtype_is_named() {
        let bytes = to_bytes(&micro(), &[]).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
        let name = "net.ln_f.gamma";
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| {
                let dtype = if n == name { safetensors::Dtype::I32 } else { v.dtype() };
                (n.clone(), safetensors::tensor::TensorView::new(dtype, v.shape().to_vec(), v.data()).unwrap())
            })
            .collect();
        assert!(views.iter().any(|(n, _)| n == name));
        let relabelled = safetensors::serialize(views, metadata.metadata().clone()).unwrap();
        match load_bytes(relabelled) {
            Err(LoadError::Dtype { name: n, dtype }) => assert_eq!((n.as_str(), dtype.as_str()), (name, "I32")),
            other => panic!("expected a dtype error, got {other:?}"),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Bit flips anywhere in the header (its length, the JSON, the config inside it) load or fail cleanly.
        #[test]
        fn bit_flipped_headers_never_panic(flips in proptest::collection::vec((0usize..4096, 0u8..8), 1..4)) {
            let mut bytes = to_bytes(&micro(), &[]).unwrap();
            let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            for (at, bit) in flips {
                bytes[at % header] ^= 1 << bit;
            }
            let _ = load_bytes(bytes);
        }

        /// Arbitrary bytes are never a checkpoint, and never a panic.
        #[test]
        fn random_bytes_are_format_errors(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            proptest::prop_assert!(load_bytes(bytes).is_err());
        }
    }

    #[test]
    fn a_config_that_disagrees_with_the_tensors_names_the_tensor() {
        // Build a checkpoint with 2 layers, then claim 3 in its config: layer 2's tensors are missing.
        let model = tiny();
        let mut config = model.config.clone();
        config.decoder.n_layer = 3;
        let relabelled = Model { net: model.net, config, tokenizer: Default::default() };
        let bytes = to_bytes(&relabelled, &[]).unwrap();
        // `relabelled` still has 2 layers of weights; the metadata says 3.
        match from_bytes::<TestBackend>(&bytes, "mem", &Default::default()) {
            Err(LoadError::MissingTensor(name)) => assert!(name.starts_with("net.h.2."), "{name}"),
            other => panic!("expected a missing tensor, got {other:?}"),
        }
    }

    #[test]
    fn a_wrong_width_is_a_shape_error_naming_the_tensor() {
        let model = tiny();
        let mut config = model.config.clone();
        config.decoder.n_embd = 32;
        let bytes = to_bytes(&Model { net: model.net, config, tokenizer: Default::default() }, &[]).unwrap();
        match from_bytes::<TestBackend>(&bytes, "mem", &Default::default()) {
            Err(LoadError::ShapeMismatch { name, .. }) => assert!(name.starts_with("net."), "{name}"),
            other => panic!("expected a shape mismatch, got {other:?}"),
        }
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporaries() {
        let dir = std::env::temp_dir().join(format!("hnet-ckpt-test-{}", std::process::id()));
        let path = dir.join("m.safetensors");
        let model = tiny();
        save(&model, &path, &[]).unwrap();
        save(&model, &path, &[]).unwrap();
        let loaded: Model<TestBackend> = load(&path, &Default::default()).unwrap();
        assert_eq!(loaded.config, model.config);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
