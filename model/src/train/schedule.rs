//! Learning-rate schedules: linear warmup, then cosine decay or warmup-stable-decay (WSD, as in the H-Net paper).
//! A pure function of the step, so a resumed run continues the same curve.

use serde::{Deserialize, Serialize};

/// Learning-rate schedule shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Linear warmup, then cosine decay to `min_lr_ratio · lr`.
    Cosine,
    /// Warmup-stable-decay: linear warmup, constant, then a linear decay over the last 20% of steps (H-Net paper).
    Wsd,
}

impl std::str::FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cosine" => Ok(Schedule::Cosine),
            "wsd" => Ok(Schedule::Wsd),
            other => Err(format!("unknown schedule `{other}` (expected cosine or wsd)")),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Schedule::Cosine => "cosine",
            Schedule::Wsd => "wsd",
        })
    }
}

/// A run's learning-rate curve: its shape, peak, warmup and length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrCurve {
    /// The shape after warmup.
    pub schedule: Schedule,
    /// The peak learning rate.
    pub lr: f64,
    /// Steps of linear warmup to the peak.
    pub warmup_steps: usize,
    /// The run's length in steps.
    pub steps: usize,
    /// The floor, as a fraction of the peak.
    pub min_lr_ratio: f64,
}

impl LrCurve {
    /// The learning rate at `step` (0-based): a pure function, so resuming anywhere continues the same curve.
    pub fn at(&self, step: usize) -> f64 {
        let c = self;
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
                if progress < decay_start {
                    c.lr
                } else {
                    c.lr - (c.lr - min) * (progress - decay_start) / (1.0 - decay_start)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LrCurve {
        LrCurve { schedule: Schedule::Cosine, lr: 1.0, warmup_steps: 10, steps: 100, min_lr_ratio: 0.1 }
    }

    #[test]
    fn cosine_schedule_warms_up_peaks_and_ends_at_the_minimum() {
        let c = config();
        assert!((c.at(0) - 0.1).abs() < 1e-12);
        assert!((c.at(9) - 1.0).abs() < 1e-12);
        assert!((c.at(10) - 1.0).abs() < 1e-12);
        assert!((c.at(55) - 0.55).abs() < 1e-12, "half-way down the cosine: (1 + 0.1)/2");
        assert!((c.at(100) - 0.1).abs() < 1e-12);
        assert!((1..100).all(|s| c.at(s) <= 1.0));
    }

    #[test]
    fn wsd_schedule_is_flat_then_decays_linearly() {
        let c = LrCurve { schedule: Schedule::Wsd, ..config() };
        assert_eq!(c.at(50), 1.0);
        assert_eq!(c.at(82), 1.0);
        assert!((c.at(91) - 0.55).abs() < 1e-9);
        assert!((c.at(100) - 0.1).abs() < 1e-9);
    }
}
