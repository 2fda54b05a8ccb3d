//! One training step, two drivers: the native `hnet-gpt train` loop and the browser's fine-tune panel both call
//! [`loss`] → backward → [`AdamW::step`](crate::optim::AdamW::step) with [`lr_at`] as the schedule. Everything here is
//! a pure function of its inputs; run directories, progress bars and signals belong to the drivers.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::data::Packed;
use crate::model::Model;
use crate::optim::{AdamWConfig, ParamGroups};

/// Learning-rate schedule shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Linear warmup, then cosine decay to `min_lr_ratio · lr`.
    Cosine,
    /// Warmup-stable-decay: linear warmup, constant, then a linear decay over the last 20% of steps (H-Net paper).
    Wsd,
}

/// Gradual unfreezing of the hybrid's GPT-2 part (the seed's plan, done right): frozen at first, then the top half
/// of its blocks, then everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unfreeze {
    /// Step at which the top half of the GPT-2 blocks (and `ln_f`) start training.
    pub top_half_at: usize,
    /// Step at which all of GPT-2 (blocks and embeddings) trains.
    pub all_at: usize,
}

/// Everything that determines a training run (saved as the run's `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The model.
    pub model: ModelConfig,
    /// Tokens per training sequence.
    pub seq_len: usize,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Optimizer steps.
    pub steps: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate as a fraction of the peak.
    pub min_lr_ratio: f64,
    /// Linear warmup steps.
    pub warmup_steps: usize,
    /// Schedule shape after warmup.
    pub schedule: Schedule,
    /// AdamW settings.
    pub adamw: AdamWConfig,
    /// Weight α of the ratio loss (H-Net: 0.03).
    pub ratio_loss_weight: f64,
    /// Learning-rate multipliers `[λ⁰, λ¹]`: outer stage (embeddings, encoder, router, decoder, fusion, GPT-2 part)
    /// and main network.
    pub stage_lr: [f64; 2],
    /// Gradual unfreezing of a pretrained GPT-2 decoder (hybrid only).
    pub unfreeze: Option<Unfreeze>,
    /// Validate every this many steps.
    pub eval_every: usize,
    /// Validation batches per evaluation.
    pub eval_batches: usize,
    /// Seed of initialisation and data order.
    pub seed: u64,
}

impl TrainConfig {
    /// Defaults for a model: a short CPU-friendly run.
    pub fn new(model: ModelConfig) -> Self {
        Self {
            seq_len: 128.min(model.n_ctx()),
            model,
            batch_size: 8,
            grad_accum: 1,
            steps: 200,
            lr: 1e-3,
            min_lr_ratio: 0.1,
            warmup_steps: 20,
            schedule: Schedule::Cosine,
            adamw: AdamWConfig::default(),
            ratio_loss_weight: 0.03,
            stage_lr: [1.0, 1.0],
            unfreeze: None,
            eval_every: 50,
            eval_batches: 8,
            seed: 0,
        }
    }

    /// Checks the settings before any work starts.
    pub fn validate(&self) -> Result<(), String> {
        self.model.validate().map_err(|e| e.to_string())?;
        if self.seq_len == 0 || self.seq_len > self.model.n_ctx() {
            return Err(format!("seq_len must be in 1..={} (the context), got {}", self.model.n_ctx(), self.seq_len));
        }
        if self.batch_size == 0 || self.grad_accum == 0 || self.steps == 0 || self.eval_every == 0 {
            return Err("batch_size, grad_accum, steps and eval_every must be positive".into());
        }
        if !(self.lr > 0.0) || !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return Err(format!("lr must be positive and min_lr_ratio in [0, 1] (got {}, {})", self.lr, self.min_lr_ratio));
        }
        if let Some(u) = &self.unfreeze {
            if self.model.arch != crate::Arch::Hybrid {
                return Err("gradual unfreezing applies to the hybrid's GPT-2 decoder only".into());
            }
            if u.top_half_at > u.all_at {
                return Err("unfreeze: top_half_at must not come after all_at".into());
            }
        }
        Ok(())
    }

    /// Parameter groups at `step`: stage learning-rate multipliers and, when unfreezing, what is still frozen.
    pub fn groups_at(&self, step: usize) -> ParamGroups {
        let mut groups = ParamGroups {
            lr_multipliers: vec![("net.".into(), self.stage_lr[0]), ("net.stage.main.".into(), self.stage_lr[1])],
            frozen: vec![],
        };
        if let Some(u) = &self.unfreeze {
            let n = self.model.gpt2.n_layer;
            if step < u.top_half_at {
                groups.frozen.push("net.gpt2.".into());
            } else if step < u.all_at {
                // Bottom half of the blocks and the embeddings stay frozen.
                groups.frozen.extend((0..n / 2).map(|i| format!("net.gpt2.h.{i}.")));
                groups.frozen.extend(["net.gpt2.wte.".to_string(), "net.gpt2.wpe.".to_string()]);
            }
        }
        groups
    }
}

/// The learning rate at `step` (0-based): a pure function, so resuming anywhere continues the same curve.
pub fn lr_at(step: usize, c: &TrainConfig) -> f64 {
    let min = c.lr * c.min_lr_ratio;
    if step < c.warmup_steps {
        return c.lr * (step + 1) as f64 / c.warmup_steps as f64;
    }
    let span = c.steps.saturating_sub(c.warmup_steps).max(1) as f64;
    let progress = ((step - c.warmup_steps) as f64 / span).min(1.0);
    match c.schedule {
        Schedule::Cosine => min + (c.lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        Schedule::Wsd => {
            let decay_start = 0.8;
            if progress < decay_start { c.lr } else { c.lr - (c.lr - min) * (progress - decay_start) / (1.0 - decay_start) }
        }
    }
}

/// The sequences `indices` of `packed` as a `[B, seq_len + 1]` tensor.
pub fn batch_tensor<B: Backend>(packed: &Packed, indices: &[usize], device: &B::Device) -> Tensor<B, 2, Int> {
    let width = packed.seq_len + 1;
    let data: Vec<i32> = indices.iter().flat_map(|&i| packed.sequence(i).iter().map(|&t| t as i32)).collect();
    Tensor::from_data(TensorData::new(data, [indices.len(), width]), device)
}

/// Mean cross-entropy of `logits` against `targets` over positions where `mask` is true.
///
/// # Shapes
/// `logits: [B, T, V]`, `targets, mask: [B, T]` → `[1]`.
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 3>, targets: Tensor<B, 2, Int>, mask: Tensor<B, 2, Bool>) -> Tensor<B, 1> {
    let [b, t, _] = logits.dims();
    let picked = log_softmax(logits, 2).gather(2, targets.reshape([b, t, 1])).reshape([b, t]); // [B, T]
    let m = mask.float();
    (picked * m.clone()).sum().neg() / m.sum().clamp_min(1.0)
}

/// The parts of a training loss (unread tensors).
#[derive(Debug, Clone)]
pub struct LossParts<B: Backend> {
    /// `ce + α · ratio`.
    pub total: Tensor<B, 1>,
    /// Next-token cross-entropy (nats per token).
    pub ce: Tensor<B, 1>,
    /// The ratio loss (`hnet`, `hybrid`).
    pub ratio: Option<Tensor<B, 1>>,
    /// Boundaries per sequence position (`hnet`, `hybrid`): 1 / mean chunk length in tokens.
    pub boundary_rate: Option<Tensor<B, 1>>,
}

/// The loss of a batch of `[B, L + 1]` token sequences (inputs `[:, :L]`, targets `[:, 1:]`). `mask` marks real
/// targets (`None`: all real, as with packed data).
pub fn loss<B: Backend>(model: &Model<B>, sequences: Tensor<B, 2, Int>, mask: Option<Tensor<B, 2, Bool>>, alpha: f64) -> LossParts<B> {
    let [b, w] = sequences.dims();
    let l = w - 1;
    let inputs = sequences.clone().narrow(1, 0, l);
    let targets = sequences.narrow(1, 1, l);
    let mask = mask.unwrap_or_else(|| Tensor::from_data(TensorData::new(vec![true; b * l], [b, l]), &inputs.device()));
    let out = model.forward_full(inputs, mask.clone(), None);
    let ce = cross_entropy(out.logits, targets, mask.clone());
    let (ratio, rate) = match &out.aux {
        Some(aux) => {
            let m = mask.clone().float();
            let rate = (aux.routing.boundary_mask.clone().float() * m.clone()).sum() / m.sum().clamp_min(1.0);
            (model.ratio_loss(aux, mask), Some(rate))
        }
        None => (None, None),
    };
    let total = match &ratio {
        Some(r) => ce.clone() + r.clone() * alpha,
        None => ce.clone(),
    };
    LossParts { total, ce, ratio, boundary_rate: rate }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Arch, ModelConfig};
    use crate::TestBackend;

    fn config() -> TrainConfig {
        let mut c = TrainConfig::new(ModelConfig::preset(Arch::Gpt2, "tiny").unwrap());
        c.steps = 100;
        c.warmup_steps = 10;
        c.lr = 1.0;
        c.min_lr_ratio = 0.1;
        c
    }

    #[test]
    fn cosine_schedule_warms_up_peaks_and_ends_at_the_minimum() {
        let c = config();
        assert!((lr_at(0, &c) - 0.1).abs() < 1e-12);
        assert!((lr_at(9, &c) - 1.0).abs() < 1e-12);
        assert!((lr_at(10, &c) - 1.0).abs() < 1e-12);
        assert!((lr_at(55, &c) - 0.55).abs() < 1e-12, "half-way down the cosine: (1 + 0.1)/2");
        assert!((lr_at(100, &c) - 0.1).abs() < 1e-12);
        assert!((1..100).all(|s| lr_at(s, &c) <= 1.0));
    }

    #[test]
    fn wsd_schedule_is_flat_then_decays_linearly() {
        let c = TrainConfig { schedule: Schedule::Wsd, ..config() };
        assert_eq!(lr_at(50, &c), 1.0);
        assert_eq!(lr_at(82, &c), 1.0);
        assert!((lr_at(91, &c) - 0.55).abs() < 1e-9);
        assert!((lr_at(100, &c) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn cross_entropy_by_hand_and_masking() {
        let device = Default::default();
        // Two positions, vocab 2: logits (0, 0) → ln 2; logits (ln 3, 0) with target 0 → ln(4/3).
        let logits = Tensor::<TestBackend, 3>::from_floats([[[0.0, 0.0], [3f32.ln(), 0.0]]], &device);
        let targets = Tensor::<TestBackend, 2, Int>::from_ints([[1, 0]], &device);
        let all = Tensor::<TestBackend, 2, Bool>::from_data(TensorData::from([[true, true]]), &device);
        let ce = cross_entropy(logits.clone(), targets.clone(), all).into_scalar();
        assert!((ce - (2f32.ln() + (4.0f32 / 3.0).ln()) / 2.0).abs() < 1e-6);
        let first = Tensor::<TestBackend, 2, Bool>::from_data(TensorData::from([[true, false]]), &device);
        assert!((cross_entropy(logits, targets, first).into_scalar() - 2f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn unfreezing_groups_follow_the_schedule() {
        let mut c = TrainConfig::new(ModelConfig::preset(Arch::Hybrid, "small").unwrap());
        c.unfreeze = Some(Unfreeze { top_half_at: 10, all_at: 20 });
        c.validate().unwrap();
        assert!(c.groups_at(0).is_frozen("net.gpt2.h.3.mlp.c_fc.weight"));
        assert!(c.groups_at(0).is_frozen("net.gpt2.wte.weight"));
        assert!(!c.groups_at(0).is_frozen("net.stage.main.layers.0.mixer.wqkv.weight"));
        let mid = c.groups_at(15);
        assert!(mid.is_frozen("net.gpt2.h.0.attn.c_attn.weight") && mid.is_frozen("net.gpt2.h.1.ln_1.gamma"));
        assert!(!mid.is_frozen("net.gpt2.h.2.attn.c_attn.weight") && !mid.is_frozen("net.gpt2.ln_f.gamma"));
        assert!(c.groups_at(20).frozen.is_empty());
        let gpt2 = TrainConfig { unfreeze: Some(Unfreeze { top_half_at: 1, all_at: 2 }), ..TrainConfig::new(ModelConfig::preset(Arch::Gpt2, "tiny").unwrap()) };
        assert!(gpt2.validate().is_err());
    }
}
