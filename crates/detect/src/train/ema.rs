//! Model EMA with PaddleDetection's 'threshold' decay over parameters and BN running statistics:
//! state starts at zero, `d_t = min(decay, (1 + t) / (10 + t))`, `ema ← d_t·ema + (1 − d_t)·θ`, and
//! the weights used for eval/saving are `ema / (1 − d_last^T)`. The frozen projection is not tracked.
//! The arithmetic is the kernels' `ema_update` / `ema_apply`.

use ringdet_kernels::Cpu;
use ringdet_kernels::backend::OptimOps;
use ringdet_kernels::optimizer::EmaParams;

use crate::error::{DetectError, Result, kernel_error};

/// EMA of the flat parameter and statistics buffers.
#[derive(Clone, Debug)]
pub struct Ema {
    /// Upper bound of the decay (0.9998).
    pub decay: f64,
    /// EMA of the parameter buffer.
    pub params: Vec<f32>,
    /// EMA of the statistics buffer.
    pub stats: Vec<f32>,
    /// Updates done (`T`).
    pub updates: u64,
    /// Decay of the last update (`d_last`).
    pub last_decay: f64,
}

impl Ema {
    /// Zero state for buffers of these lengths.
    pub fn new(decay: f64, num_params: usize, num_stats: usize) -> Self {
        Self {
            decay,
            params: vec![0.0; num_params],
            stats: vec![0.0; num_stats],
            updates: 0,
            last_decay: 0.0,
        }
    }

    /// Restore a saved state (resume): the EMA buffers, the number of updates done and the decay
    /// of the last one. An error when the buffer lengths differ from this EMA's, or when
    /// `last_decay` is not what update `updates − 1` uses (a state from another decay).
    pub fn restore(
        &mut self,
        params: Vec<f32>,
        stats: Vec<f32>,
        updates: u64,
        last_decay: f64,
    ) -> Result<()> {
        if params.len() != self.params.len() || stats.len() != self.stats.len() {
            return Err(DetectError::Input(format!(
                "EMA state holds {} params and {} stats, this EMA {} and {}",
                params.len(),
                stats.len(),
                self.params.len(),
                self.stats.len()
            )));
        }
        let expect = if updates == 0 {
            0.0
        } else {
            self.decay_at(updates - 1)
        };
        if last_decay.to_bits() != expect.to_bits() {
            return Err(DetectError::Input(format!(
                "EMA state: last decay {last_decay} after {updates} updates, decay {} gives {expect}",
                self.decay
            )));
        }
        self.params = params;
        self.stats = stats;
        self.updates = updates;
        self.last_decay = last_decay;
        Ok(())
    }

    /// Decay for update number `t` (0-based).
    pub fn decay_at(&self, t: u64) -> f64 {
        EmaParams { decay: self.decay }.threshold_decay(t)
    }

    /// Fold the current weights in (after an optimizer step).
    pub fn update(&mut self, params: &[f32], stats: &[f32]) -> Result<()> {
        if params.len() != self.params.len() || stats.len() != self.stats.len() {
            return Err(DetectError::Input(format!(
                "EMA holds {} params and {} stats, got {} and {}",
                self.params.len(),
                self.stats.len(),
                params.len(),
                stats.len()
            )));
        }
        let d = self.decay_at(self.updates);
        let (df, rf) = (d as f32, (1.0 - d) as f32);
        for (e, v) in self
            .params
            .iter_mut()
            .zip(params)
            .chain(self.stats.iter_mut().zip(stats))
        {
            *e = df * *e + rf * *v;
        }
        self.last_decay = d;
        self.updates += 1;
        Ok(())
    }

    /// Bias-corrected weights `(params, stats)`; `None` before the first update (the live weights
    /// are used then).
    pub fn corrected(&self) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
        if self.updates == 0 {
            return Ok(None);
        }
        let mut p = vec![0.0f32; self.params.len()];
        let mut s = vec![0.0f32; self.stats.len()];
        Cpu.ema_apply(&mut p, &self.params, self.last_decay, self.updates)
            .map_err(kernel_error("ema_apply"))?;
        Cpu.ema_apply(&mut s, &self.stats, self.last_decay, self.updates)
            .map_err(kernel_error("ema_apply"))?;
        Ok(Some((p, s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_decay_and_bias_correction() {
        let mut e = Ema::new(0.9998, 1, 1);
        assert_eq!(e.decay_at(0), 0.1);
        assert!((e.decay_at(44_990) - 0.9998).abs() < 1e-9 && e.decay_at(44_989) < 0.9998);
        // A constant weight stays (nearly) constant after correction, as in Paddle.
        for _ in 0..3 {
            e.update(&[2.0], &[5.0]).unwrap();
        }
        // ema after 3 updates with d = .1, 2/11, 3/12 of a constant c: c·(1 − .1·(2/11)·(3/12)).
        let d: [f64; 3] = [0.1, 2.0 / 11.0, 0.25];
        let expect = 2.0 * (1.0 - d.iter().product::<f64>());
        assert!((e.params[0] as f64 - expect).abs() < 1e-6);
        let (p, s) = e.corrected().unwrap().unwrap();
        let c = 1.0 - 0.25f64.powi(3);
        assert!((p[0] as f64 - expect / c).abs() < 1e-6);
        assert!((s[0] as f64 - 5.0 * expect / 2.0 / c).abs() < 1e-5);
        assert!(e.update(&[1.0, 2.0], &[1.0]).is_err());
        let mut r = Ema::new(0.9998, 1, 1);
        r.restore(e.params.clone(), e.stats.clone(), e.updates, e.last_decay)
            .unwrap();
        assert_eq!(r.corrected().unwrap(), e.corrected().unwrap());
        assert!(r.restore(vec![0.0], vec![0.0], 3, 0.5).is_err());
        assert!(r.restore(vec![0.0; 2], vec![0.0], 0, 0.0).is_err());
    }
}
