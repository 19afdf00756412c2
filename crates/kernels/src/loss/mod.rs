//! PP-YOLOE's losses (spec §7), forward and backward: BCE on probabilities, varifocal,
//! GIoU and distribution focal loss. Each forward returns the scalar loss already divided by
//! the normaliser `S` (the all-reduced sum of soft targets, at least 1; the caller computes it);
//! each backward takes the upstream gradient of that scalar and accumulates into the inputs.

pub mod bce;
pub mod cuda;
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

/// Checks the targets and labels of the varifocal loss against `n` predictions and the
/// normalizer; shared by the CPU and CUDA versions.
pub(crate) fn check_varifocal(
    op: &'static str,
    n: usize,
    target: usize,
    label: usize,
    p: &VarifocalParams,
) -> Result<(), crate::KernelError> {
    crate::error::check_len(op, "target", target, &[n])?;
    crate::error::check_len(op, "label", label, &[n])?;
    check_normalizer(op, p.normalizer)
}

/// Checks the boxes of a GIoU loss (`[P, 4]` each for `P` weights) and the normalizer; shared by
/// the CPU and CUDA versions.
pub(crate) fn check_boxes(
    op: &'static str,
    pred: usize,
    target: usize,
    weight: usize,
    p: &BoxLossParams,
) -> Result<(), crate::KernelError> {
    crate::error::check_len(op, "pred", pred, &[weight, 4])?;
    crate::error::check_len(op, "target", target, &[weight, 4])?;
    check_normalizer(op, p.normalizer)
}

/// Checks the logits (`[P, 4, bins]`) and targets (`[P, 4]`) of a DFL loss, the normalizer and
/// `bins >= 2`; shared by the CPU and CUDA versions.
pub(crate) fn check_dfl(
    op: &'static str,
    logits: usize,
    target: usize,
    weight: usize,
    p: &BoxLossParams,
) -> Result<(), crate::KernelError> {
    crate::error::check_len(op, "logits", logits, &[weight, 4, p.bins])?;
    crate::error::check_len(op, "target", target, &[weight, 4])?;
    check_normalizer(op, p.normalizer)?;
    if p.bins < 2 {
        return Err(crate::error::param(
            op,
            format!("bins must be >= 2, got {}", p.bins),
        ));
    }
    Ok(())
}

/// Checks that the other buffers of an elementwise BCE call hold `n` elements; shared by the
/// CPU and CUDA versions.
pub(crate) fn check_bce(
    op: &'static str,
    n: usize,
    lens: &[(&'static str, usize)],
) -> Result<(), crate::KernelError> {
    crate::error::check_lens(op, &[n], lens)
}

/// Checks per-box GIoU losses (`[P]`) against their `[P, 4]` boxes; shared by the CPU and CUDA
/// versions.
pub(crate) fn check_giou_per_box(
    op: &'static str,
    loss: usize,
    pred: usize,
    target: usize,
) -> Result<(), crate::KernelError> {
    crate::error::check_lens(op, &[loss, 4], &[("pred", pred), ("target", target)])
}

/// Checks DFL targets (`[P, 4]`) against anchor points (`[P, 2]`) and boxes (`[P, 4]`); shared
/// by the CPU and CUDA versions. Returns `P`.
pub(crate) fn check_dfl_targets(
    op: &'static str,
    target: usize,
    anchor_points: usize,
    boxes: usize,
) -> Result<usize, crate::KernelError> {
    let n = anchor_points / 2;
    crate::error::check_len(op, "anchor_points", anchor_points, &[n, 2])?;
    crate::error::check_lens(op, &[n, 4], &[("boxes", boxes), ("target", target)])?;
    Ok(n)
}
