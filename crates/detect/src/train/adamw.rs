//! AdamW as Paddle's `paddle.optimizer.AdamW` applies it (decoupled decay, then the moments, then
//! the bias-corrected step), for configs whose `OptimizerBuilder.optimizer.type` is `AdamW`.
//! Paddle decays every parameter unless an `apply_decay_param_fun` says otherwise, and
//! PaddleDetection passes none, so the decay mask here is all ones.

use ringdet_kernels::Cpu;
use ringdet_kernels::backend::OptimOps;
use ringdet_kernels::optimizer::AdamwParams;

use crate::error::{DetectError, Result};
use crate::layout::ParamLayout;

/// Optimizer state: both moments, the decay mask, the constants and the number of steps taken.
#[derive(Clone, Debug)]
pub struct AdamW {
    /// First moment, same layout as the parameters.
    pub moment1: Vec<f32>,
    /// Second moment.
    pub moment2: Vec<f32>,
    /// 1 where the decoupled decay applies.
    pub decay_mask: Vec<u8>,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Paddle's epsilon.
    pub epsilon: f64,
    /// Decoupled decay coefficient.
    pub weight_decay: f64,
    /// Steps taken so far (the next step is number `steps + 1`).
    pub steps: u64,
}

impl AdamW {
    /// Paddle's defaults (β₁ 0.9, β₂ 0.999, ε 1e-8, decay 0.01) for a layout, every parameter
    /// decayed.
    pub fn paddle_default(layout: &ParamLayout) -> Self {
        let n = layout.num_params();
        Self {
            moment1: vec![0.0; n],
            moment2: vec![0.0; n],
            decay_mask: vec![1; n],
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.01,
            steps: 0,
        }
    }

    /// Replaces both moments and the step count (resume); an error names the buffer whose
    /// length is not the parameter count.
    pub fn restore(&mut self, moment1: Vec<f32>, moment2: Vec<f32>, steps: u64) -> Result<()> {
        for (what, v) in [("moment1", &moment1), ("moment2", &moment2)] {
            if v.len() != self.decay_mask.len() {
                return Err(DetectError::Input(format!(
                    "AdamW {what}: {} values for {} parameters",
                    v.len(),
                    self.decay_mask.len()
                )));
            }
        }
        (self.moment1, self.moment2, self.steps) = (moment1, moment2, steps);
        Ok(())
    }

    /// One step at learning rate `lr`.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f64) -> Result<()> {
        let p = AdamwParams {
            lr,
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            step: self.steps + 1,
        };
        Cpu.adamw_step(
            params,
            [&mut self.moment1, &mut self.moment2],
            grads,
            &self.decay_mask,
            &p,
        )
        .map_err(|e| DetectError::Kernel {
            op: "adamw_step",
            message: e.to_string(),
        })?;
        self.steps += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{Arch, ModelConfig};

    #[test]
    fn first_step_moves_each_parameter_by_about_lr() {
        let arch = Arch::new(ModelConfig::s()).unwrap();
        let layout = ParamLayout::new(&arch).unwrap();
        let mut opt = AdamW::paddle_default(&layout);
        let mut params = vec![1.0f32; layout.num_params()];
        let grads: Vec<f32> = (0..params.len()).map(|i| (i % 7) as f32 - 3.0).collect();
        opt.step(&mut params, &grads, 0.001).unwrap();
        assert_eq!(opt.steps, 1);
        for (p, g) in params.iter().zip(&grads).take(100) {
            // decay 1 → 1 − 1e-5, then −lr·sign(g) (|m̂/√v̂| = 1 at step 1).
            let want = (1.0 - 1e-5) - 0.001 * g.signum() * f32::from(*g != 0.0);
            assert!((p - want).abs() < 1e-6, "{p} vs {want}");
        }
        let err = opt.restore(vec![0.0; 3], vec![0.0; 3], 0).unwrap_err();
        assert!(err.to_string().contains("moment1"), "{err}");
    }
}
