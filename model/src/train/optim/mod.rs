//! AdamW (Loshchilov & Hutter 2019) with parameter groups chosen by path, written out rather than taken from
//! `burn::optim` because training here needs four things at once, all keyed by the parameter's checkpoint name:
//! - no weight decay on norms, biases and embeddings;
//! - per-stage learning-rate multipliers (H-Net §3, "LR modulation");
//! - frozen parameters that receive no update and keep no moments (gradual unfreezing), and that start training
//!   for real the moment they are unfrozen (the seed's unfrozen blocks never entered its optimizer);
//! - a state (moments, per-parameter step counts) saved under those names, so `--resume` is exact.
//!
//! Gradients are clipped by their global norm, computed on the device (no read-back needed). Where the weights
//! live in host memory (burn's Flex backend) the update of each parameter is one fused pass ([`host`]) instead of a
//! dozen tensor operations; the tests hold the two to the same numbers.

use std::collections::HashMap;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::host::{all_f32_on_host, from_vec, on_host, to_vec};
use crate::io::params::ParamPath;

mod host;

/// AdamW settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay (applied to matrices only).
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value (0 = off).
    pub grad_clip: f64,
}

impl AdamWConfig {
    /// Default decoupled weight decay.
    pub const WEIGHT_DECAY: f64 = 0.1;
    /// Default gradient-norm clip.
    pub const GRAD_CLIP: f64 = 1.0;
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: Self::WEIGHT_DECAY, grad_clip: Self::GRAD_CLIP }
    }
}

/// How each parameter trains, decided from its path (e.g. `net.stage.main.layers.0.mixer.wqkv.weight`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParamGroups {
    /// `(path prefix, multiplier)`: the learning rate of parameters under the longest matching prefix is scaled.
    pub lr_multipliers: Vec<(String, f64)>,
    /// Path prefixes that are frozen.
    pub frozen: Vec<String>,
}

impl ParamGroups {
    /// Learning-rate multiplier of a parameter (1 when no prefix matches).
    pub fn lr_multiplier(&self, path: &str) -> f64 {
        self.lr_multipliers.iter().filter(|(p, _)| path.starts_with(p.as_str())).max_by_key(|(p, _)| p.len()).map_or(1.0, |(_, m)| *m)
    }

    /// Whether a parameter is frozen.
    pub fn is_frozen(&self, path: &str) -> bool {
        self.frozen.iter().any(|p| path.starts_with(p.as_str()))
    }
}

/// Whether weight decay applies: only to weight matrices — not to norms, biases or embeddings.
pub fn decays(path: &str, rank: usize) -> bool {
    // A table's parts (`wte.weight@1`) as the table.
    let path = crate::io::params::stored(path).0;
    let leaf = path.rsplit('.').next().unwrap_or(path);
    let in_norm = path.split('.').any(|s| s.starts_with("ln_") || s.starts_with("norm"));
    let in_embedding = path.split('.').any(|s| s == "wte" || s == "wpe" || s == "embed_tokens");
    rank >= 2 && leaf == "weight" && !in_norm && !in_embedding
}

/// Moments of one parameter, flattened.
struct Moments<B: Backend> {
    m: Tensor<B, 1>,
    v: Tensor<B, 1>,
    step: u64,
}

/// The optimizer: settings, groups and per-parameter state.
pub struct AdamW<B: AutodiffBackend> {
    /// Settings.
    pub config: AdamWConfig,
    /// Groups (learning-rate multipliers, frozen prefixes); may change between steps.
    pub groups: ParamGroups,
    state: HashMap<String, Moments<B::InnerBackend>>,
}

/// Sums squared gradients of the trainable parameters.
struct NormVisitor<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    groups: &'a ParamGroups,
    path: ParamPath,
    total: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for NormVisitor<'_, B> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.exit(container_type);
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.groups.is_frozen(&self.path.path()) {
            return;
        }
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let sq = (g.clone() * g).sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + sq,
                None => sq,
            });
        }
    }
}

/// Applies one AdamW update to every trainable parameter that has a gradient.
struct StepMapper<'a, B: AutodiffBackend> {
    opt: &'a mut AdamW<B>,
    grads: &'a mut GradientsParams,
    lr: f64,
    clip: Clip<B::InnerBackend>,
    path: ParamPath,
}

impl<B: AutodiffBackend> ModuleMapper<B> for StepMapper<'_, B> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.exit(container_type);
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let path = self.path.path();
        let grad = self.grads.remove::<B::InnerBackend, D>(param.id);
        let Some(grad) = grad.filter(|_| !self.opt.groups.is_frozen(&path)) else { return param };
        let (id, tensor, mapper) = param.consume();
        let c = &self.opt.config;
        let shape = grad.shape();
        let n = shape.num_elements();
        let device = grad.device();
        let moments = self.opt.state.remove(&path).unwrap_or_else(|| Moments {
            m: Tensor::zeros([n], &device),
            v: Tensor::zeros([n], &device),
            step: 0,
        });
        let step = moments.step + 1;
        let lr = self.lr * self.opt.groups.lr_multiplier(&path);
        let update = Update::new(c, lr, step, c.weight_decay > 0.0 && decays(&path, D));
        let (weights, grad) = (tensor.inner().reshape([n]), grad.reshape([n]));
        let (weights, m, v) = match &self.clip {
            Clip::OnHost(scale) if all_f32_on_host(&[&weights, &grad, &moments.m, &moments.v]) => {
                let (mut w, mut m, mut v) = (to_vec(weights), to_vec(moments.m), to_vec(moments.v));
                host::update(&update, *scale, &to_vec(grad), &mut w, &mut m, &mut v);
                (from_vec(w, [n], &device), from_vec(m, [n], &device), from_vec(v, [n], &device))
            }
            clip => {
                let scale = match clip {
                    Clip::OnHost(s) => (*s != 1.0).then(|| Tensor::from_data(TensorData::new(vec![*s], [1]), &device)),
                    Clip::OnDevice(s) => s.clone(),
                };
                update.with_tensor_ops(scale, grad, weights, moments.m, moments.v)
            }
        };
        let updated = Tensor::<B, D>::from_inner(weights.reshape(shape)).require_grad();
        self.opt.state.insert(path, Moments { m, v, step });
        Param::from_mapped_value(id, updated, mapper)
    }
}

/// The gradient-clipping factor of a step: `min(1, clip / (norm + 10⁻⁶))`, read once when the weights live in host
/// memory, kept on the device otherwise (no read-back there).
enum Clip<B: Backend> {
    OnHost(f32),
    OnDevice(Option<Tensor<B, 1>>),
}

/// One AdamW update of one parameter, its scalars resolved: with the bias corrections `m̂ = m / (1 − β₁ᵗ)` and
/// `v̂ = v / (1 − β₂ᵗ)` moved into them, `lr · m̂ / (√v̂ + ε)` is `step_size · m / (√v + eps_hat)` — four passes over
/// the parameter instead of six on the tensor path, one on the host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Update {
    pub beta1: f32,
    pub beta2: f32,
    /// ε·√(1 − β₂ᵗ).
    pub eps_hat: f32,
    /// lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ).
    pub step_size: f32,
    /// The decoupled weight decay's factor on the weights, `1 − lr·λ` (1 without decay).
    pub keep: f32,
}

impl Update {
    fn new(c: &AdamWConfig, lr: f64, step: u64, decay: bool) -> Self {
        let (bias1, sqrt_bias2) = (1.0 - c.beta1.powi(step as i32), (1.0 - c.beta2.powi(step as i32)).sqrt());
        Self {
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            eps_hat: (c.eps * sqrt_bias2) as f32,
            step_size: (lr * sqrt_bias2 / bias1) as f32,
            keep: if decay { (1.0 - lr * c.weight_decay) as f32 } else { 1.0 },
        }
    }

    /// The update as tensor operations (every backend): returns the new weights, `m` and `v`, all `[n]`.
    fn with_tensor_ops<B: Backend>(
        &self,
        clip: Option<Tensor<B, 1>>,
        grad: Tensor<B, 1>,
        weights: Tensor<B, 1>,
        m: Tensor<B, 1>,
        v: Tensor<B, 1>,
    ) -> (Tensor<B, 1>, Tensor<B, 1>, Tensor<B, 1>) {
        let grad = match clip {
            Some(scale) => grad * scale,
            None => grad,
        };
        let m = m * self.beta1 + grad.clone() * (1.0 - self.beta1);
        let v = v * self.beta2 + (grad.clone() * grad) * (1.0 - self.beta2);
        let update = (m.clone() / v.clone().sqrt().add_scalar(self.eps_hat)).mul_scalar(self.step_size);
        let weights = if self.keep != 1.0 { weights * self.keep } else { weights };
        (weights - update, m, v)
    }
}

impl<B: AutodiffBackend> AdamW<B> {
    /// A fresh optimizer.
    pub fn new(config: AdamWConfig, groups: ParamGroups) -> Self {
        Self { config, groups, state: HashMap::new() }
    }

    /// The global gradient norm over trainable parameters, as a one-element tensor (not read back).
    pub fn grad_norm<M: AutodiffModule<B>>(&self, module: &M, grads: &GradientsParams) -> Option<Tensor<B::InnerBackend, 1>> {
        let mut v = NormVisitor::<B> { grads, groups: &self.groups, path: ParamPath::default(), total: None };
        module.visit(&mut v);
        v.total.map(|t| t.sqrt())
    }

    /// One update with learning rate `lr`; returns the module and the pre-clipping gradient norm (a tensor).
    pub fn step<M: AutodiffModule<B>>(&mut self, module: M, grads: GradientsParams, lr: f64) -> (M, Option<Tensor<B::InnerBackend, 1>>) {
        let norm = self.grad_norm(&module, &grads);
        let module = self.apply(module, grads, lr, norm.clone());
        (module, norm)
    }

    /// Updates `module` with `grads`, clipping by the given global gradient `norm` (from [`Self::grad_norm`]).
    pub fn apply<M: AutodiffModule<B>>(
        &mut self,
        module: M,
        mut grads: GradientsParams,
        lr: f64,
        norm: Option<Tensor<B::InnerBackend, 1>>,
    ) -> M {
        let scale = match (&norm, self.config.grad_clip > 0.0) {
            // scale = min(1, clip / (norm + 1e-6)), on the device.
            (Some(n), true) => Some((n.clone() + 1e-6).recip().mul_scalar(self.config.grad_clip).clamp_max(1.0)),
            _ => None,
        };
        let clip = match scale {
            Some(s) if on_host::<B::InnerBackend>() => Clip::OnHost(s.into_scalar().elem::<f32>()),
            None if on_host::<B::InnerBackend>() => Clip::OnHost(1.0),
            s => Clip::OnDevice(s),
        };
        let mut mapper = StepMapper { opt: self, grads: &mut grads, lr, clip, path: ParamPath::default() };
        module.map(&mut mapper)
    }

    /// The state as named tensors (`m/<path>`, `v/<path>`) and per-parameter step counts.
    pub fn state_tensors(&self) -> (Vec<(String, TensorData)>, HashMap<String, u64>) {
        let mut tensors = Vec::new();
        let mut steps = HashMap::new();
        let mut paths: Vec<&String> = self.state.keys().collect();
        paths.sort();
        for path in paths {
            let s = &self.state[path];
            tensors.push((format!("m/{path}"), s.m.to_data()));
            tensors.push((format!("v/{path}"), s.v.to_data()));
            steps.insert(path.clone(), s.step);
        }
        (tensors, steps)
    }

    /// Restores a state written by [`Self::state_tensors`].
    pub fn load_state(
        &mut self,
        tensors: HashMap<String, TensorData>,
        steps: &HashMap<String, u64>,
        device: &burn::tensor::Device<B::InnerBackend>,
    ) -> Result<(), crate::error::LoadError> {
        self.state.clear();
        for (path, &step) in steps {
            let get = |k: String| tensors.get(&k).cloned().ok_or(crate::error::LoadError::MissingTensor(k));
            let m = Tensor::from_data(get(format!("m/{path}"))?, device);
            let v = Tensor::from_data(get(format!("v/{path}"))?, device);
            self.state.insert(path.clone(), Moments { m, v, step });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::config::{Arch, ModelConfig};
    use crate::arch::model::Model;
    use crate::{TestAutodiffBackend, TestBackend};

    type AD = TestAutodiffBackend;

    #[test]
    fn weight_decay_skips_norms_biases_and_embeddings() {
        assert!(decays("net.h.0.attn.c_attn.weight", 2));
        assert!(!decays("net.h.0.attn.c_attn.bias", 1));
        assert!(!decays("net.h.0.ln_1.gamma", 1));
        assert!(!decays("net.wte.weight", 2));
        assert!(!decays("net.wte.weight@1", 2));
        assert!(!decays("net.gpt2.embed_tokens.weight", 2));
        assert!(!decays("net.stage.main.layers.0.norm1.gamma", 1));
        assert!(decays("net.stage.routing.q_proj.weight", 2));
    }

    #[test]
    fn paths_match_the_checkpoint_names() {
        let model = Model::<TestBackend>::init(&ModelConfig::preset(Arch::Gpt2, "tiny").unwrap(), &Default::default()).unwrap();
        let paths: Vec<String> = crate::io::params::parameter_shapes(&model).into_iter().map(|(p, _)| p).collect();
        assert!(paths.contains(&"net.h.1.mlp.c_fc.weight".to_string()), "{paths:?}");
        assert!(paths.contains(&"net.ln_f.gamma".to_string()));
    }

    /// One AdamW step on a single scalar parameter, by hand: with m̂ = g and v̂ = g², the step is lr·g/(|g|+ε).
    #[test]
    fn one_step_by_hand_with_decay_and_clipping() {
        let device = Default::default();
        let mut model = Model::<AD>::init(&ModelConfig::preset(Arch::Gpt2, "tiny").unwrap(), &device).unwrap();
        let crate::arch::model::Net::Decoder(crate::arch::decoder::Decoder::Gpt2(g)) = &mut model.net else { unreachable!() };
        let w = g.h[0].attn.c_proj.weight.val();
        let before = w.clone().inner().into_data().to_vec::<f32>().unwrap();
        // Loss = 3·Σw over one matrix: its gradient is 3 everywhere.
        let loss = w.sum() * 3.0;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut opt = AdamW::<AD>::new(AdamWConfig { weight_decay: 0.5, grad_clip: 0.0, ..Default::default() }, ParamGroups::default());
        let (model, norm) = opt.step(model, grads, 0.01);
        let n = before.len() as f32;
        assert!((norm.unwrap().into_scalar() - 3.0 * n.sqrt()).abs() < 1e-2);
        let crate::arch::model::Net::Decoder(crate::arch::decoder::Decoder::Gpt2(g)) = &model.net else { unreachable!() };
        let after = g.h[0].attn.c_proj.weight.val().inner().into_data().to_vec::<f32>().unwrap();
        for (b, a) in before.iter().zip(&after) {
            let expected = b * (1.0 - 0.01 * 0.5) - 0.01 * 3.0 / (3.0 + 1e-8);
            assert!((a - expected).abs() < 1e-6, "{a} vs {expected}");
        }
    }

    #[test]
    fn the_host_update_is_the_tensor_update() {
        let device = Default::default();
        // Several chunks of the host loop, a ragged last one; gradients and moments of mixed signs and scales.
        let n = 40_000;
        let wave = |a: f32, b: f32| -> Vec<f32> { (0..n).map(|i| a * ((i as f32) * b).sin()).collect() };
        let (grad, weights, m) = (wave(0.3, 0.013), wave(1.5, 0.007), wave(0.02, 0.011));
        let v: Vec<f32> = wave(0.01, 0.017).iter().map(|x| x * x).collect();
        for (step, decay, clip) in [(1, true, 1.0), (7, false, 0.25), (1000, true, 0.5)] {
            let u = Update::new(&AdamWConfig::default(), 3e-3, step, decay);
            let t = |x: &[f32]| Tensor::<TestBackend, 1>::from_data(TensorData::new(x.to_vec(), [n]), &device);
            let scale = Tensor::from_data(TensorData::new(vec![clip], [1]), &device);
            let (tw, tm, tv) = u.with_tensor_ops(Some(scale), t(&grad), t(&weights), t(&m), t(&v));
            let (mut hw, mut hm, mut hv) = (weights.clone(), m.clone(), v.clone());
            host::update(&u, clip, &grad, &mut hw, &mut hm, &mut hv);
            assert_ne!(hw, weights, "the update moved nothing");
            for (name, want, got) in [("weights", tw, hw), ("m", tm, hm), ("v", tv, hv)] {
                let want = want.into_data().to_vec::<f32>().unwrap();
                // The same IEEE operations in the same order: equal to the last bit.
                assert_eq!(want, got, "{name} at step {step}");
            }
        }
    }

    #[test]
    fn frozen_parameters_do_not_move_and_unfrozen_ones_do() {
        let device = Default::default();
        let model = Model::<AD>::init(&ModelConfig::preset(Arch::Gpt2, "tiny").unwrap(), &device).unwrap();
        let snapshot = |m: &Model<AD>| -> (Vec<f32>, Vec<f32>) {
            let crate::arch::model::Net::Decoder(crate::arch::decoder::Decoder::Gpt2(g)) = &m.net else { unreachable!() };
            (
                g.h[0].mlp.c_fc.weight.val().inner().into_data().to_vec().unwrap(),
                g.h[1].mlp.c_fc.weight.val().inner().into_data().to_vec().unwrap(),
            )
        };
        let loss_of = |m: &Model<AD>| {
            let tokens = burn::tensor::Tensor::<AD, 2, burn::tensor::Int>::from_ints([[1, 2, 3, 4]], &Default::default());
            m.forward(tokens).powi_scalar(2).mean()
        };
        let groups = ParamGroups { frozen: vec!["net.h.0.".into()], ..Default::default() };
        let mut opt = AdamW::<AD>::new(AdamWConfig::default(), groups);
        let (h0, h1) = snapshot(&model);
        let grads = GradientsParams::from_grads(loss_of(&model).backward(), &model);
        let (model, _) = opt.step(model, grads, 1e-2);
        let (h0b, h1b) = snapshot(&model);
        assert_eq!(h0, h0b, "a frozen block moved");
        assert_ne!(h1, h1b, "a trainable block did not move");
        assert!(opt.state_tensors().1.keys().all(|p| !p.starts_with("net.h.0.")), "frozen parameters keep no moments");
        // Unfreeze: the block now trains, from fresh moments.
        opt.groups.frozen.clear();
        let grads = GradientsParams::from_grads(loss_of(&model).backward(), &model);
        let (model, _) = opt.step(model, grads, 1e-2);
        assert_ne!(snapshot(&model).0, h0b, "an unfrozen block did not train");
        assert_eq!(opt.state_tensors().1["net.h.0.mlp.c_fc.weight"], 1);
        assert_eq!(opt.state_tensors().1["net.h.1.mlp.c_fc.weight"], 2);
    }

    #[test]
    fn lr_multipliers_pick_the_longest_prefix() {
        let g = ParamGroups { lr_multipliers: vec![("net.".into(), 2.0), ("net.stage.main.".into(), 0.5)], frozen: vec![] };
        assert_eq!(g.lr_multiplier("net.stage.main.layers.0.mixer.wqkv.weight"), 0.5);
        assert_eq!(g.lr_multiplier("net.encoder.norm_f.gamma"), 2.0);
        assert_eq!(g.lr_multiplier("other"), 1.0);
    }
}
