//! Everything that determines a training run, with every default defined once (the CLI's flags and the browser's
//! fine-tune panel read them from here).

use serde::{Deserialize, Serialize};

use crate::arch::config::ModelConfig;
use crate::error::ModelError;
use crate::io::params::Part;
use crate::train::optim::{AdamWConfig, ParamGroups};
use crate::train::schedule::{LrCurve, Schedule};

/// Gradual unfreezing of the hybrid's GPT-2 part (the seed's plan, done right): frozen at first, then the top half
/// of its blocks, then everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unfreeze {
    /// Step at which the top half of the GPT-2 blocks (and `ln_f`) start training.
    pub top_half_at: usize,
    /// Step at which all of GPT-2 (blocks and embeddings) trains.
    pub all_at: usize,
}

/// The precision of a training step's matrix products — the tied head's three over the vocabulary (three quarters of
/// gpt2 `small`'s FLOPs at batch 8 × 128) and every linear layer's, forward and backward: `f32`, or `bf16` operands
/// with f32 sums (mixed precision, as PyTorch's autocast; on AMX where the CPU has it). Everything else — the
/// weights and gradients, biases, norms, attention, the softmax and loss, the optimizer — stays f32. bf16 runs where
/// tensors live in host memory (`--device cpu`) only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 throughout.
    #[default]
    F32,
    /// bf16 operands, f32 sums, for the head's and the linear layers' products.
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision `{other}` (expected f32 or bf16)")),
        }
    }
}

impl Precision {
    /// Whether this CPU has AMX, which bf16 training needs to be worth it.
    pub fn cpu_has_amx() -> bool {
        crate::host::bf16::amx()
    }

    /// Whether a training step on backend `B`, on this machine, can run in this precision (the reason when not).
    pub fn check<B: burn::tensor::backend::Backend>(self) -> Result<(), String> {
        match self {
            Precision::F32 => Ok(()),
            Precision::Bf16 if !crate::host::on_host::<B>() => {
                Err("--precision bf16 is implemented for the CPU backend (--device cpu) only".into())
            }
            Precision::Bf16 if !crate::host::bf16::amx() => Err("--precision bf16 needs AMX on the CPU (Intel Xeon of the 4th \
                 generation or later), which this machine lacks: without it bf16 would run slower than f32"
                .into()),
            Precision::Bf16 => Ok(()),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

/// What a training step minimises, and in what precision: the arguments of [`crate::train::loss::loss`] that come
/// from the run's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    /// H-Net's ratio-loss weight α.
    pub ratio_loss_weight: f64,
    /// The head's precision.
    pub precision: Precision,
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
    /// The head's precision (runs saved before this setting existed trained in f32).
    #[serde(default)]
    pub precision: Precision,
}

impl TrainConfig {
    /// Default optimizer steps.
    pub const STEPS: usize = 200;
    /// Default sequences per micro-batch.
    pub const BATCH_SIZE: usize = 8;
    /// Default tokens per sequence (at most the context).
    pub const SEQ_LEN: usize = 128;
    /// Default peak learning rate.
    pub const LR: f64 = 1e-3;
    /// Default final learning rate, as a fraction of the peak.
    pub const MIN_LR_RATIO: f64 = 0.1;
    /// Default warmup steps.
    pub const WARMUP_STEPS: usize = 20;
    /// H-Net's ratio-loss weight α (the paper's 0.03).
    pub const RATIO_LOSS_WEIGHT: f64 = 0.03;
    /// Default steps between validations.
    pub const EVAL_EVERY: usize = 50;
    /// Default validation batches.
    pub const EVAL_BATCHES: usize = 8;

    /// Defaults for a model: a short CPU-friendly run.
    pub fn new(model: ModelConfig) -> Self {
        Self {
            seq_len: Self::SEQ_LEN.min(model.n_ctx()),
            model,
            batch_size: Self::BATCH_SIZE,
            grad_accum: 1,
            steps: Self::STEPS,
            lr: Self::LR,
            min_lr_ratio: Self::MIN_LR_RATIO,
            warmup_steps: Self::WARMUP_STEPS,
            schedule: Schedule::Cosine,
            adamw: AdamWConfig::default(),
            ratio_loss_weight: Self::RATIO_LOSS_WEIGHT,
            stage_lr: [1.0, 1.0],
            unfreeze: None,
            eval_every: Self::EVAL_EVERY,
            eval_batches: Self::EVAL_BATCHES,
            seed: 0,
            precision: Precision::F32,
        }
    }

    /// The objective a training step of this run minimises.
    pub fn objective(&self) -> Objective {
        Objective { ratio_loss_weight: self.ratio_loss_weight, precision: self.precision }
    }

    /// Checks the settings before any work starts.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.check().map_err(ModelError::InvalidConfig)
    }

    fn check(&self) -> Result<(), String> {
        self.model.validate().map_err(|e| e.to_string())?; // the model's own message, inside ours
        if self.seq_len == 0 || self.seq_len > self.model.n_ctx() {
            return Err(format!("seq_len must be in 1..={} (the context), got {}", self.model.n_ctx(), self.seq_len));
        }
        if self.batch_size == 0 || self.grad_accum == 0 || self.steps == 0 || self.eval_every == 0 {
            return Err("batch_size, grad_accum, steps and eval_every must be positive".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && (0.0..=1.0).contains(&self.min_lr_ratio)) {
            return Err(format!("lr must be positive and min_lr_ratio in [0, 1] (got {}, {})", self.lr, self.min_lr_ratio));
        }
        let non_negative = |x: f64| x >= 0.0 && x.is_finite();
        if !non_negative(self.adamw.weight_decay) || !non_negative(self.adamw.grad_clip) || !non_negative(self.ratio_loss_weight) {
            return Err(format!(
                "weight_decay, grad_clip and the ratio loss weight must be finite and ≥ 0 (got {}, {}, {})",
                self.adamw.weight_decay, self.adamw.grad_clip, self.ratio_loss_weight
            ));
        }
        if !self.stage_lr.iter().all(|&m| m > 0.0 && m.is_finite()) {
            return Err(format!("stage learning-rate multipliers must be finite and positive, got {:?}", self.stage_lr));
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

    /// The learning rate at `step` (0-based), on this run's curve.
    pub fn lr_at(&self, step: usize) -> f64 {
        LrCurve {
            schedule: self.schedule,
            lr: self.lr,
            warmup_steps: self.warmup_steps,
            steps: self.steps,
            min_lr_ratio: self.min_lr_ratio,
        }
        .at(step)
    }

    /// Parameter groups at `step`: stage learning-rate multipliers and, when unfreezing, what is still frozen.
    pub fn groups_at(&self, step: usize) -> ParamGroups {
        let mut groups = ParamGroups {
            lr_multipliers: vec![(Part::All.prefix(), self.stage_lr[0]), (Part::Main.prefix(), self.stage_lr[1])],
            frozen: vec![],
        };
        if let Some(u) = &self.unfreeze {
            let n = self.model.decoder.n_layer;
            if step < u.top_half_at {
                groups.frozen.extend(Part::HybridGpt2.prefixes());
            } else if step < u.all_at {
                // Bottom half of the blocks and the embeddings stay frozen.
                groups.frozen.extend((0..n / 2).flat_map(|i| Part::HybridGpt2Block(i).prefixes()));
                groups.frozen.extend(Part::HybridGpt2Embeddings.prefixes());
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::config::{Arch, ModelConfig};

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
        let gpt2 = TrainConfig {
            unfreeze: Some(Unfreeze { top_half_at: 1, all_at: 2 }),
            ..TrainConfig::new(ModelConfig::preset(Arch::Gpt2, "tiny").unwrap())
        };
        assert!(gpt2.validate().is_err());
    }
}
