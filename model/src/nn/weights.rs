//! Weights kept in a narrower float type than the model computes in: f16 weight matrices halve a model's memory on
//! a GPU whose shaders read f16 (WebGPU's `shader-f16`), while the layers compute in the compute type (f32). A matrix
//! is widened where it is used — a linear layer's weight as it multiplies (one layer's worth at a time), a token
//! table's rows after they are looked up. The one exception is the LM head: it multiplies in the table's type (the
//! hidden states narrowed, the logits widened) instead of widening the whole vocabulary. Where weights are in the
//! compute type (every model the CLI trains or loads), burn's cast returns its input: nothing changes.

use std::cell::Cell;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Element, FloatDType, Tensor};

/// The float type activations are computed in: the backend's (f32 here).
pub fn compute_dtype<B: Backend>() -> DType {
    <B::FloatElem as Element>::dtype()
}

/// `t` in the compute type: a weight (or values read from one) kept narrower is widened; anything else is returned
/// as it is.
pub fn widen<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    let dtype = compute_dtype::<B>();
    if t.dtype() == dtype {
        t
    } else {
        t.cast(dtype)
    }
}

/// Whether `device` can keep weights in `dtype` (a wgpu adapter keeps f16 only with `shader-f16`).
pub fn can_keep_in<B: Backend>(device: &B::Device, dtype: FloatDType) -> bool {
    B::supports_dtype(device, dtype.into())
}

/// `module` with every weight matrix (a float parameter of two or more dimensions: linear layers, token tables, an
/// untied head) kept in `dtype`. Vectors — norms' scales, biases — stay in the compute type, and so does burn's own
/// `Embedding` (GPT-2's learned positions: small, and looked up by burn, which cannot widen them). Keeping them in
/// the compute type again gives the model back as it computes (values rounded to `dtype` and back stay rounded). The
/// device must support `dtype` ([`can_keep_in`]).
pub fn keep_in<B: Backend, M: Module<B>>(module: M, dtype: FloatDType) -> M {
    module.map(&mut KeepIn { dtype, containers: Vec::new() })
}

thread_local! {
    /// The dtype weight matrices are narrowed to as they are loaded on this thread ([`loading_in`]).
    static LOAD_IN: Cell<Option<FloatDType>> = const { Cell::new(None) };
}

/// Runs `load` with every weight matrix that a checkpoint load or a copy to another device fills kept in `dtype`
/// as it arrives (the io layer's loader asks [`as_loaded`]): a model loaded onto a GPU so is never whole in f32
/// there. Which parameters are weight matrices: as [`keep_in`] says.
pub fn loading_in<R>(dtype: FloatDType, load: impl FnOnce() -> R) -> R {
    let before = LOAD_IN.with(|d| d.replace(Some(dtype)));
    let out = load();
    LOAD_IN.with(|d| d.set(before));
    out
}

/// `t`, a parameter just loaded directly inside a module of burn's container type `container`, in the dtype of
/// the current [`loading_in`] scope when it is a weight matrix; as it is otherwise.
pub(crate) fn as_loaded<B: Backend, const D: usize>(t: Tensor<B, D>, container: Option<&str>) -> Tensor<B, D> {
    match LOAD_IN.with(Cell::get) {
        Some(dtype) if is_matrix(D, container) && t.dtype() != DType::from(dtype) => t.cast(dtype),
        _ => t,
    }
}

/// Whether a float parameter of `dims` dimensions directly inside burn's container type `container` is a weight
/// matrix that may be kept narrower: two or more dimensions, and not burn's own `Embedding` (which looks its rows
/// up itself and cannot widen them).
fn is_matrix(dims: usize, container: Option<&str>) -> bool {
    dims >= 2 && container != Some("Struct:Embedding")
}

/// Bytes of `module`'s float parameters as they are kept.
pub fn kept_bytes<B: Backend, M: Module<B>>(module: &M) -> u64 {
    struct Bytes(u64);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Bytes {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let t = param.val();
            self.0 += (t.shape().num_elements() * t.dtype().size()) as u64;
        }
    }
    let mut bytes = Bytes(0);
    module.visit(&mut bytes);
    bytes.0
}

struct KeepIn {
    dtype: FloatDType,
    /// The containers entered, innermost last (`Struct:Linear`, `Vec`, …).
    containers: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for KeepIn {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.containers.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let matrix = is_matrix(D, self.containers.last().map(String::as_str));
        let dtype = if matrix { self.dtype.into() } else { compute_dtype::<B>() };
        if param.val().dtype() == dtype {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.cast(dtype), mapper)
    }
}
