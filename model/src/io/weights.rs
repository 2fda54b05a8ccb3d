//! Moving weights between a model and a file one tensor at a time, so that neither loading nor saving holds more
//! than one extra copy of them. Loading ([`load_into`]): the
//! model's parameters are still lazy when it is built (no random weights are drawn), and each is replaced by its
//! values as soon as they are read — from a memory-mapped file, widened from f16/bf16 when stored so, checked for
//! NaN and ∞ — before the next one is read.
//!
//! A [`Source`] answers "the values of our parameter `net.h.0.attn.c_attn.weight`": our checkpoints by name
//! ([`Named`]), Hugging Face checkpoints through each family's renames, transposes and joins ([`crate::io::hf`]).
//! Saving ([`write_safetensors`]): the header from the parameters' shapes, then each tensor's bytes as it is read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::SafeTensors;

use crate::error::LoadError;
use crate::io::params::{former_name, parameter_shapes, stored, ParamPath};
use crate::io::stream::Float;
use crate::nn::weights::as_loaded;

/// Values of one parameter: its shape and its values, row-major f32.
pub(crate) type Values = (Vec<usize>, Vec<f32>);

/// Where parameters' values come from.
pub(crate) trait Source {
    /// The values of our parameter `path`; `Ok(None)` when the source has no such tensor.
    fn take(&mut self, path: &str) -> Result<Option<Values>, LoadError>;

    /// The source's tensors no parameter took, by their names in the source.
    fn leftovers(&self) -> Vec<String>;

    /// The name the source gives parameter `path` (what errors name: the one a user can find in their file).
    fn name_of(&self, path: &str) -> String {
        path.to_string()
    }
}

/// A tensor of a safetensors file as f32 values (f16 and bf16 widened exactly); other dtypes, and NaN or ∞, are
/// errors naming it.
pub(crate) fn f32_values(tensors: &SafeTensors, name: &str, what: &str) -> Result<Values, LoadError> {
    let view = tensors.tensor(name).map_err(|e| LoadError::Format { what: what.into(), reason: e.to_string() })?;
    stored_values(name, &format!("{:?}", view.dtype()), view.shape().to_vec(), view.data())
}

/// A stored tensor's bytes (`dtype` as safetensors names it) as f32 values, checked as [`f32_values`] checks them.
pub(crate) fn stored_values(name: &str, dtype: &str, shape: Vec<usize>, data: &[u8]) -> Result<Values, LoadError> {
    let float = Float::from_name(dtype).ok_or_else(|| LoadError::Dtype { name: name.to_string(), dtype: dtype.to_string() })?;
    let values = float.widen(data);
    let bad = values.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(LoadError::NonFinite { name: name.to_string(), count: bad });
    }
    Ok((shape, values))
}

/// A safetensors file whose tensors carry our parameters' names (our checkpoint format), optionally renamed: the
/// parameter `path` is the tensor `rename(path)`.
pub(crate) struct Named<'a> {
    tensors: SafeTensors<'a>,
    what: String,
    taken: BTreeSet<String>,
    rename: Box<dyn Fn(&str) -> String + 'a>,
}

impl<'a> Named<'a> {
    /// Over `bytes` (a safetensors file), tensors named as the parameters.
    pub(crate) fn new(bytes: &'a [u8], what: &str) -> Result<Self, LoadError> {
        Self::renamed(bytes, what, |p| p.to_string())
    }

    /// Over `bytes`, the parameter `path` stored as `rename(path)`.
    pub(crate) fn renamed(bytes: &'a [u8], what: &str, rename: impl Fn(&str) -> String + 'a) -> Result<Self, LoadError> {
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| LoadError::Format { what: what.into(), reason: e.to_string() })?;
        Ok(Self { tensors, what: what.into(), taken: BTreeSet::new(), rename: Box::new(rename) })
    }
}

impl Source for Named<'_> {
    fn take(&mut self, path: &str) -> Result<Option<Values>, LoadError> {
        let mut name = (self.rename)(path);
        if self.tensors.tensor(&name).is_err() {
            match former_name(&name).filter(|former| self.tensors.tensor(former).is_ok()) {
                Some(former) => name = former,
                None => return Ok(None),
            }
        }
        self.taken.insert(name.clone());
        f32_values(&self.tensors, &name, &self.what).map(Some)
    }

    fn leftovers(&self) -> Vec<String> {
        self.tensors.names().into_iter().filter(|n| !self.taken.contains(*n)).map(str::to_string).collect()
    }
}

/// Fills `module`'s float parameters from `source`: those whose path starts with `prefix` must be there with their
/// module's shape; the others keep what they hold. Every tensor of the source must be taken, unless `partial`.
pub(crate) fn load_into<B: Backend, M: Module<B>>(module: M, source: &mut dyn Source, prefix: &str, partial: bool) -> Result<M, LoadError> {
    let mut fill = Fill { source, prefix, path: ParamPath::default(), containers: Vec::new(), table: None, error: None };
    let module = module.map(&mut fill);
    fill.end_table();
    if let Some(e) = fill.error {
        return Err(e);
    }
    if !partial {
        if let Some(name) = fill.source.leftovers().into_iter().next() {
            return Err(LoadError::UnexpectedTensor(name));
        }
    }
    Ok(module)
}

/// The mapper: tracks the parameter path as burn's derive walks the module (enum variants are not part of a path,
/// as in our checkpoints' names), and replaces each parameter it is asked for.
struct Fill<'s> {
    source: &'s mut dyn Source,
    prefix: &'s str,
    path: ParamPath,
    /// burn's container types entered, innermost last (which decides how a weight is kept, `nn::weights`).
    containers: Vec<String>,
    /// A stored table whose rows are being handed to its parts: its name, its values and the next row to give.
    table: Option<(String, Values, usize)>,
    error: Option<LoadError>,
}

impl Fill<'_> {
    /// The values of parameter `path` of shape `expected`: a stored tensor, or the next rows of a stored table for a
    /// part of a table held in parts.
    fn values(&mut self, path: &str, expected: &[usize]) -> Result<Values, LoadError> {
        let (name, part) = stored(path);
        if part == 0 {
            self.end_table();
            let found = self.source.take(path)?.ok_or_else(|| LoadError::MissingTensor(path.to_string()))?;
            if !self.path.in_parts() {
                return Ok(found);
            }
            // Kept until the table's last part has taken its rows (a table in one part takes them all at once).
            self.table = Some((name.to_string(), found, 0));
        }
        let shown = self.source.name_of(name);
        let Some((_, (shape, values), next)) = self.table.as_mut().filter(|t| t.0 == name) else {
            return Err(LoadError::MissingTensor(path.to_string()));
        };
        let rows = expected[0];
        if shape.len() != expected.len() || shape[1..] != expected[1..] || *next + rows > shape[0] {
            return Err(LoadError::ShapeMismatch { name: shown, expected: expected.to_vec(), found: shape.clone() });
        }
        let width: usize = shape[1..].iter().product();
        let part = match (*next, rows == shape[0]) {
            (0, true) => std::mem::take(values),
            _ => values[*next * width..(*next + rows) * width].to_vec(),
        };
        *next += rows;
        Ok((expected.to_vec(), part))
    }

    /// A table handed out part-way is an error: the file holds more rows than the model's parts.
    fn end_table(&mut self) {
        if let Some((name, (shape, _), next)) = self.table.take() {
            if next < shape[0] && self.error.is_none() {
                let mut expected = shape.clone();
                expected[0] = next;
                self.error = Some(LoadError::ShapeMismatch { name: self.source.name_of(&name), expected, found: shape });
            }
        }
    }
}

impl<B: Backend> ModuleMapper<B> for Fill<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.exit(container_type);
        self.containers.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let path = self.path.path();
        if self.error.is_some() || !path.starts_with(self.prefix) {
            return param;
        }
        let expected = param.lazy_shape().dims::<D>().to_vec();
        match self.values(&path, &expected) {
            Ok((shape, values)) if shape == expected => {
                // Trainable, as every parameter is built (a tensor made from data would not be, and under autodiff
                // the optimiser would never see its gradient).
                let tensor = Tensor::from_data(TensorData::new(values, shape), &param.lazy_device());
                // Narrowed as it arrives inside a `nn::weights::loading_in` scope (else as it is).
                let tensor = as_loaded(tensor, self.containers.last().map(String::as_str)).require_grad();
                Param::initialized(param.id, tensor)
            }
            Ok((found, _)) => {
                self.error = Some(LoadError::ShapeMismatch { name: self.source.name_of(&path), expected, found });
                param
            }
            Err(e) => {
                self.error = Some(e);
                param
            }
        }
    }
}

/// Writes each float parameter's values, in module order.
struct WriteValues<'w, W: Write> {
    out: &'w mut W,
    half: bool,
    error: Option<std::io::Error>,
}

impl<B: Backend, W: Write> ModuleVisitor<B> for WriteValues<'_, W> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.error.is_some() {
            return;
        }
        let data = param.val().into_data().convert::<f32>();
        let values = data.as_slice::<f32>().expect("f32 after convert");
        let bytes: Vec<u8> = if self.half {
            values.iter().flat_map(|&v| crate::io::half::f32_to_f16(v).to_le_bytes()).collect()
        } else {
            values.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        self.error = self.out.write_all(&bytes).err();
    }
}

/// Writes `module` as a safetensors file — the parameters under their paths, f32 or (with `half`) f16, with
/// `metadata` — one tensor at a time: no second copy of the weights is ever made in memory.
pub(crate) fn write_safetensors<B: Backend, M: Module<B>, W: Write>(
    module: &M,
    metadata: &BTreeMap<String, String>,
    half: bool,
    out: &mut W,
) -> std::io::Result<()> {
    let shapes = parameter_shapes(module);
    let (dtype, width) = if half { ("F16", 2) } else { ("F32", 4) };
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::to_value(metadata).expect("strings serialise"));
    let mut offset = 0usize;
    for (name, shape) in &shapes {
        let len = shape.iter().product::<usize>() * width;
        header.insert(name.clone(), serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}));
        offset += len;
    }
    let mut text = serde_json::to_string(&header).expect("a header serialises");
    // The data starts 8-byte aligned, the header padded with spaces, as the format's writers do.
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    out.write_all(&(text.len() as u64).to_le_bytes())?;
    out.write_all(text.as_bytes())?;
    let mut values = WriteValues { out, half, error: None };
    module.visit(&mut values);
    match values.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A value made when asked for.
type Deferred = Box<dyn FnOnce() -> Values>;

/// The parameters of a module on one backend, as a [`Source`] for the same module on another: each is read out of
/// its backend only when taken, so a copy holds one extra tensor at a time on the host.
pub(crate) struct Copied {
    tensors: BTreeMap<String, Deferred>,
}

impl Copied {
    /// The parameters of `module`, by path.
    pub(crate) fn of<B: Backend, M: Module<B>>(module: &M) -> Self {
        struct Collect {
            path: ParamPath,
            tensors: BTreeMap<String, Deferred>,
        }
        impl<B: Backend> ModuleVisitor<B> for Collect {
            fn enter_module(&mut self, name: &str, container_type: &str) {
                self.path.enter(name, container_type);
            }
            fn exit_module(&mut self, _name: &str, container_type: &str) {
                self.path.exit(container_type);
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                // A handle on the tensor (shared, not copied) until it is read.
                let tensor = param.val();
                let read = move || {
                    let shape = tensor.dims().to_vec();
                    (shape, tensor.into_data().convert::<f32>().into_vec::<f32>().expect("f32 after convert"))
                };
                let path = self.path.path();
                let (name, part) = stored(&path);
                let read: Deferred = match (part, self.tensors.remove(name)) {
                    // A table's later part: its rows follow those of the parts before it.
                    (1.., Some(before)) => Box::new(move || {
                        let ((mut shape, mut values), (more, rest)) = (before(), read());
                        shape[0] += more[0];
                        values.extend(rest);
                        (shape, values)
                    }),
                    _ => Box::new(read),
                };
                self.tensors.insert(name.to_string(), read);
            }
        }
        let mut collect = Collect { path: ParamPath::default(), tensors: BTreeMap::new() };
        module.visit(&mut collect);
        Copied { tensors: collect.tensors }
    }

    /// Values already read, by path.
    pub(crate) fn ready(values: BTreeMap<String, Values>) -> Self {
        Copied { tensors: values.into_iter().map(|(path, v)| (path, Box::new(move || v) as Deferred)).collect() }
    }

    /// The same parameters, each under `rename(path)`.
    pub(crate) fn renamed(self, rename: impl Fn(&str) -> String) -> Self {
        Copied { tensors: self.tensors.into_iter().map(|(path, read)| (rename(&path), read)).collect() }
    }
}

impl Source for Copied {
    fn take(&mut self, path: &str) -> Result<Option<Values>, LoadError> {
        Ok(self.tensors.remove(path).map(|read| read()))
    }

    fn leftovers(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }
}
