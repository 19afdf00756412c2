//! PP-YOLOE's LR schedule, one value per iteration: linear warmup from exactly 0 over `W` iterations,
//! then cosine from `W` to the horizon `M` (360 epochs for the 300-epoch config).

/// Iterations per epoch per rank: `floor(ceil(N / ranks) / batch_per_rank)` (drop_last sampler).
pub fn iters_per_epoch(num_images: usize, ranks: usize, batch_per_rank: usize) -> usize {
    num_images.div_ceil(ranks.max(1)) / batch_per_rank.max(1)
}

/// Warmup + cosine schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSchedule {
    /// Base LR.
    pub base: f64,
    /// Warmup iterations `W` (5 epochs).
    pub warmup_iters: usize,
    /// Cosine horizon `M` in iterations (360 epochs).
    pub max_iters: usize,
}

impl LrSchedule {
    /// PP-YOLOE 300e: warmup 5 epochs, cosine over 360 epochs.
    pub fn ppyoloe(base: f64, iters_per_epoch: usize) -> Self {
        Self::new(base, iters_per_epoch, 5, 360)
    }
    /// Warmup over `warmup_epochs`, cosine horizon `cosine_epochs`.
    pub fn new(
        base: f64,
        iters_per_epoch: usize,
        warmup_epochs: usize,
        cosine_epochs: usize,
    ) -> Self {
        Self {
            base,
            warmup_iters: warmup_epochs * iters_per_epoch,
            max_iters: cosine_epochs * iters_per_epoch,
        }
    }
    /// LR used by iteration `step` (0-based, before stepping). Past the horizon the last scheduled
    /// value is held.
    pub fn lr(&self, step: usize) -> f64 {
        let w = self.warmup_iters;
        if step < w {
            return self.base * step as f64 / w as f64;
        }
        let span = self.max_iters.saturating_sub(w);
        if span == 0 {
            return self.base;
        }
        let s = (step - w).min(span - 1) as f64;
        self.base * 0.5 * (1.0 + (std::f64::consts::PI * s / span as f64).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        assert_eq!(iters_per_epoch(117_266, 8, 8), 1832);
        assert_eq!(iters_per_epoch(117_266, 8, 32), 458);
        let s = LrSchedule::ppyoloe(0.01, 1832);
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(1) - 0.01 / 9160.0).abs() < 1e-15);
        assert!((s.lr(9159) - 0.01 * 9159.0 / 9160.0).abs() < 1e-15);
        assert_eq!(s.lr(9160), 0.01);
        let end = s.lr(300 * 1832);
        let expect = 0.01 * 0.5 * (1.0 + (std::f64::consts::PI * 295.0 / 355.0).cos());
        assert!(
            (end - expect).abs() < 1e-12 && (end / 0.01 - 0.0688).abs() < 1e-3,
            "{end}"
        );
        assert!(s.lr(400 * 1832) >= 0.0);
    }
}
