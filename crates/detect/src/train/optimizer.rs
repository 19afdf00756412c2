//! The optimizer a recipe names: PP-YOLOE's momentum SGD, or AdamW. One type, so the trainer,
//! its checkpoints and its replica check do not care which.

use super::adamw::AdamW;
use super::sgd::Sgd;
use crate::error::Result;

/// One of the supported optimizers with its state.
#[derive(Clone, Debug)]
pub enum Optimizer {
    /// `Momentum` with coupled L2 decay (PaddleDetection's PP-YOLOE recipe).
    Momentum(Sgd),
    /// `AdamW` with decoupled decay.
    AdamW(AdamW),
}

impl Optimizer {
    /// One update of `params` by `grads` at learning rate `lr`.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f64) -> Result<()> {
        match self {
            Optimizer::Momentum(s) => s.step(params, grads, lr),
            Optimizer::AdamW(a) => a.step(params, grads, lr),
        }
    }

    /// PaddleDetection's name for it (`OptimizerBuilder.optimizer.type`).
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Momentum(_) => "Momentum",
            Optimizer::AdamW(_) => "AdamW",
        }
    }

    /// The per-parameter state buffers (velocity; or both moments), for replica checks.
    pub fn state_buffers(&self) -> Vec<&[f32]> {
        match self {
            Optimizer::Momentum(s) => vec![&s.velocity],
            Optimizer::AdamW(a) => vec![&a.moment1, &a.moment2],
        }
    }

    /// The momentum SGD, when that is the optimizer.
    pub fn as_momentum(&self) -> Option<&Sgd> {
        match self {
            Optimizer::Momentum(s) => Some(s),
            Optimizer::AdamW(_) => None,
        }
    }
}

/// Scales `grads` in place so that their global L2 norm is at most `max_norm` (Paddle's
/// `ClipGradByGlobalNorm`: `g ← g · max_norm / max(‖g‖, max_norm)`); returns the norm before.
pub fn clip_by_global_norm(grads: &mut [f32], max_norm: f64) -> f64 {
    let norm = grads
        .iter()
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>()
        .sqrt();
    if norm > max_norm {
        let s = (max_norm / norm) as f32;
        grads.iter_mut().for_each(|g| *g *= s);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_scales_only_above_the_bound() {
        let mut g = vec![3.0f32, 4.0];
        assert_eq!(clip_by_global_norm(&mut g, 10.0), 5.0);
        assert_eq!(g, [3.0, 4.0]);
        assert_eq!(clip_by_global_norm(&mut g, 1.0), 5.0);
        assert!((g[0] - 0.6).abs() < 1e-7 && (g[1] - 0.8).abs() < 1e-7);
    }
}
