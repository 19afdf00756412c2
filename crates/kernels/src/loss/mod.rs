//! PP-YOLOE's losses (spec §7), forward and backward: BCE on probabilities, varifocal,
//! GIoU and distribution focal loss. Each forward returns the scalar loss already divided by
//! the normaliser `S` (the all-reduced sum of soft targets, at least 1; the caller computes it);
//! each backward takes the upstream gradient of that scalar and accumulates into the inputs.

pub mod bce;
pub mod dfl;
pub mod giou;
pub mod varifocal;

/// Varifocal loss constants (PP-YOLOE: alpha 0.75, gamma 2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VarifocalParams {
    /// Weight of negatives' `p^gamma` term.
    pub alpha: f64,
    /// Focusing exponent.
    pub gamma: f64,
    /// The normaliser `S` the summed loss is divided by.
    pub normalizer: f64,
}

impl Default for VarifocalParams {
    fn default() -> Self {
        Self {
            alpha: 0.75,
            gamma: 2.0,
            normalizer: 1.0,
        }
    }
}

/// Box-loss constants shared by GIoU and DFL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxLossParams {
    /// Bins per side for DFL (`reg_max + 1` = 17).
    pub bins: usize,
    /// The normaliser `S`.
    pub normalizer: f64,
}

impl Default for BoxLossParams {
    fn default() -> Self {
        Self {
            bins: 17,
            normalizer: 1.0,
        }
    }
}

/// Rejects a normaliser that is not a finite positive number.
pub(crate) fn check_normalizer(op: &'static str, s: f64) -> Result<(), crate::KernelError> {
    if s.is_finite() && s > 0.0 {
        Ok(())
    } else {
        Err(crate::error::param(
            op,
            format!("normalizer must be a finite number > 0, got {s}"),
        ))
    }
}
