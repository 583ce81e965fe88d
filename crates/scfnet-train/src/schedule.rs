//! The learning-rate schedule of KD-SCFNet: linear warm-up, then cosine annealing, per iteration.

/// Linear warm-up from `min_lr` to `max_lr` over `warmup` iterations (a real number, as in the
/// original: `5 · (N / B + 1)`), then cosine annealing from `max_lr` to `min_lr` over `t_max`
/// iterations, reproducing the authors' loop exactly: it reads Paddle's
/// `CosineAnnealingDecay.get_lr()` before each `step()`, and that recursive formula applied to the
/// stored value gives `min + (max − min) · h(t)² / h(t − 1)` with `h(t) = (1 + cos(π t / t_max)) / 2`
/// at cosine step `t ≥ 1` (`max` at `t = 0`): the plain cosine, shifted by about one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupCosine {
    /// Start of the warm-up and end of the cosine.
    pub min_lr: f64,
    /// Peak learning rate.
    pub max_lr: f64,
    /// Warm-up length in iterations.
    pub warmup: f64,
    /// Cosine period in iterations.
    pub t_max: f64,
}

impl WarmupCosine {
    /// The paper's schedule for `samples` training images, batch `batch`, `epochs` epochs with
    /// 5 warm-up epochs, learning rates 6.4e-4 → 6.4e-2 → 6.4e-4.
    pub fn paper(samples: usize, batch: usize, epochs: usize) -> Self {
        let iters_per_epoch = samples.div_ceil(batch) as f64;
        Self {
            min_lr: 6.4e-4,
            max_lr: 6.4e-2,
            warmup: 5.0 * (samples as f64 / batch as f64 + 1.0),
            t_max: iters_per_epoch * (epochs as f64 - 5.0),
        }
    }

    /// Learning rate of global iteration `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        let g = step as f64;
        if g < self.warmup {
            self.min_lr + (self.max_lr - self.min_lr).abs() / self.warmup * g
        } else {
            // Iterations since the warm-up ended: the first one reads the cosine at t = 0.
            let t = g - self.warmup.ceil();
            let h = |t: f64| (1.0 + (std::f64::consts::PI * t / self.t_max).cos()) / 2.0;
            let factor = if t == 0.0 || h(t - 1.0) == 0.0 {
                h(t)
            } else {
                h(t) * h(t) / h(t - 1.0)
            };
            self.min_lr + (self.max_lr - self.min_lr) * factor
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_schedule_shape() {
        let s = WarmupCosine::paper(10553, 128, 69);
        assert!((s.warmup - 417.2265625).abs() < 1e-9);
        assert_eq!(s.t_max, 83.0 * 64.0);
        assert_eq!(s.lr(0), 6.4e-4);
        assert!(s.lr(417) < 6.4e-2 && s.lr(417) > 6.3e-2);
        assert!((s.lr(418) - 6.4e-2).abs() < 1e-15);
        assert!((s.lr(418 + 5308) - 6.4e-4).abs() < 1e-6);
    }
}
