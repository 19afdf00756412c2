//! SGD with momentum 0.9 and coupled L2 5e-4 on the flat parameter buffer (the kernel's
//! `sgd_momentum_step`), decaying only conv weights and conv biases.

use ringdet_kernels::Cpu;
use ringdet_kernels::backend::OptimOps;
use ringdet_kernels::optimizer::SgdParams;

use super::decay::decay_ranges;
use crate::error::{DetectError, Result};
use crate::layout::ParamLayout;

/// Optimizer state: velocity and the per-element decay mask.
#[derive(Clone, Debug)]
pub struct Sgd {
    /// Momentum buffer, same layout as the parameters.
    pub velocity: Vec<f32>,
    /// 1 where L2 decay applies.
    pub decay_mask: Vec<u8>,
    /// Momentum.
    pub momentum: f64,
    /// L2 coefficient.
    pub weight_decay: f64,
}

impl Sgd {
    /// PP-YOLOE's optimizer for a layout.
    pub fn ppyoloe(layout: &ParamLayout) -> Self {
        let mut decay_mask = vec![0u8; layout.num_params()];
        for r in decay_ranges(layout) {
            decay_mask[r].fill(1);
        }
        Self {
            velocity: vec![0.0; layout.num_params()],
            decay_mask,
            momentum: 0.9,
            weight_decay: 5e-4,
        }
    }

    /// Replace the velocity with a saved one (resume); an error when its length is not the
    /// parameter count.
    pub fn restore_velocity(&mut self, velocity: Vec<f32>) -> Result<()> {
        if velocity.len() != self.velocity.len() {
            return Err(DetectError::Input(format!(
                "SGD velocity: {} values for {} parameters",
                velocity.len(),
                self.velocity.len()
            )));
        }
        self.velocity = velocity;
        Ok(())
    }

    /// `v ← m·v + (g + wd·θ·mask)`, `θ ← θ − lr·v`.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f64) -> Result<()> {
        let p = SgdParams {
            lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
        };
        Cpu.sgd_momentum_step(params, &mut self.velocity, grads, &self.decay_mask, &p)
            .map_err(|e| DetectError::Kernel {
                op: "sgd_momentum_step",
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{Arch, ModelConfig};

    #[test]
    fn bn_is_not_decayed() {
        let arch = Arch::new(ModelConfig::s()).unwrap();
        let layout = ParamLayout::new(&arch).unwrap();
        let mut sgd = Sgd::ppyoloe(&layout);
        let mut params = vec![1.0f32; layout.num_params()];
        let grads = vec![0.0f32; layout.num_params()];
        sgd.step(&mut params, &grads, 0.1).unwrap();
        let at = |n: &str| params[layout.slot(n).unwrap().offset];
        assert_eq!(at("backbone.stem.conv1.bn.weight"), 1.0);
        assert!((at("backbone.stem.conv1.conv.weight") - (1.0 - 0.1 * 5e-4)).abs() < 1e-7);
        assert!((at("yolo_head.pred_cls.2.bias") - (1.0 - 0.1 * 5e-4)).abs() < 1e-7);
    }
}
