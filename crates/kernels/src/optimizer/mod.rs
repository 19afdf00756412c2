//! The training update over flat parameter buffers (spec §10.1, §10.4): SGD with momentum and
//! L2 decay coupled into the gradient, AdamW (Paddle's, for configs that name it), and the model
//! EMA with the 'threshold' decay.

pub mod cpu;
pub mod cuda;

/// SGD hyper-parameters (PP-YOLOE: momentum 0.9, L2 5e-4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdParams {
    /// Learning rate of this step.
    pub lr: f64,
    /// Momentum (no Nesterov).
    pub momentum: f64,
    /// L2 coefficient for parameters whose decay-mask entry is non-zero.
    pub weight_decay: f64,
}

impl SgdParams {
    /// PP-YOLOE's momentum 0.9 and L2 5e-4 at learning rate `lr`.
    pub fn ppyoloe(lr: f64) -> Self {
        Self {
            lr,
            momentum: 0.9,
            weight_decay: 5e-4,
        }
    }
}

/// AdamW hyper-parameters of one step, as Paddle's `paddle.optimizer.AdamW` applies them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamwParams {
    /// Learning rate of this step.
    pub lr: f64,
    /// First-moment decay (Paddle's default 0.9).
    pub beta1: f64,
    /// Second-moment decay (Paddle's default 0.999).
    pub beta2: f64,
    /// Paddle's `epsilon` (default 1e-8), added as `ε·√(1 − β₂ᵗ)` to `√v`.
    pub epsilon: f64,
    /// Decoupled decay coefficient for parameters whose decay-mask entry is non-zero.
    pub weight_decay: f64,
    /// This step's number, 1-based (the bias corrections use `βᵗ`).
    pub step: u64,
}

impl AdamwParams {
    /// `(lr_t, eps_t)`: the bias-corrected step size `lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)` and the scaled
    /// epsilon `ε·√(1 − β₂ᵗ)` (Paddle's form of the update).
    pub fn corrected(&self) -> (f64, f64) {
        let t = self.step.max(1) as i32;
        let c2 = (1.0 - self.beta2.powi(t)).sqrt();
        (self.lr * c2 / (1.0 - self.beta1.powi(t)), self.epsilon * c2)
    }
}

/// EMA constants (PP-YOLOE: decay 0.9998, 'threshold' warm-up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmaParams {
    /// The decay cap.
    pub decay: f64,
}

impl Default for EmaParams {
    fn default() -> Self {
        Self { decay: 0.9998 }
    }
}

impl EmaParams {
    /// `d_t = min(decay, (1 + t) / (10 + t))` for update number `t` (0-based).
    pub fn threshold_decay(&self, t: u64) -> f64 {
        self.decay.min((1.0 + t as f64) / (10.0 + t as f64))
    }
}

/// Checks that the velocity, gradients and decay mask of an SGD step match the `params` count;
/// shared by the CPU and CUDA versions.
pub(crate) fn check_sgd(
    op: &'static str,
    params: usize,
    velocity: usize,
    grads: usize,
    decay_mask: usize,
) -> Result<(), crate::KernelError> {
    for (what, len) in [
        ("velocity", velocity),
        ("grads", grads),
        ("decay_mask", decay_mask),
    ] {
        crate::error::check_len(op, what, len, &[params])?;
    }
    Ok(())
}

/// Checks the moments, gradients and decay mask of an AdamW step against the `params` count.
pub(crate) fn check_adamw(
    op: &'static str,
    params: usize,
    moments: [usize; 2],
    grads: usize,
    decay_mask: usize,
) -> Result<(), crate::KernelError> {
    for (what, len) in [
        ("moment1", moments[0]),
        ("moment2", moments[1]),
        ("grads", grads),
        ("decay_mask", decay_mask),
    ] {
        crate::error::check_len(op, what, len, &[params])?;
    }
    Ok(())
}
