//! Weights kept in a narrower float type than the model computes in: f16 weight matrices halve a model's memory on
//! a GPU whose shaders read f16 (WebGPU's `shader-f16`), while every product, sum and normalisation stays in the
//! compute type (f32). A matrix is widened where it is used — a linear layer's weight as it multiplies (one layer's
//! worth at a time), a token table's rows after they are looked up — and the LM head multiplies in the table's type
//! instead of widening the whole vocabulary. Where weights are in the compute type (every model the CLI trains or
//! loads), burn's cast returns its input: nothing changes.

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
        let in_burns_embedding = self.containers.last().is_some_and(|c| c == "Struct:Embedding");
        let dtype = if D >= 2 && !in_burns_embedding { self.dtype.into() } else { compute_dtype::<B>() };
        if param.val().dtype() == dtype {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.cast(dtype), mapper)
    }
}
