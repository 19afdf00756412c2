//! Inference-only folding: conv + BN into one biased conv, and the RepVGG block's 3×3 and 1×1
//! branches into one 3×3 conv (spec §3.1, deploy fusion).

pub mod cpu;

/// Shape of the conv being folded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoldParams {
    /// Output channels (K).
    pub out_channels: usize,
    /// Weights per output channel (C·kh·kw).
    pub per_out: usize,
    /// BN eps (1e-5).
    pub eps: f64,
}

/// Shape of a RepVGG block's fused conv.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RepVggParams {
    /// Output channels.
    pub out_channels: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Scale of the 1×1 branch (1 for crn; the learnable α of the "plus" configs).
    pub alpha: f64,
}
