//! Which parameters get the optimizer's coupled L2 decay: conv weights and conv biases; not BN γ/β
//! (their own L2 of 0 overrides it), never the frozen DFL projection (not in the parameter buffer).

use std::ops::Range;

use crate::arch::TensorKind;
use crate::layout::ParamLayout;

/// Contiguous ranges of the flat parameter buffer that decay, merged where adjacent.
pub fn decay_ranges(layout: &ParamLayout) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for slot in layout
        .slots()
        .iter()
        .filter(|s| s.spec.kind == TensorKind::Param && s.spec.decays())
    {
        let r = slot.range();
        match out.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

/// Per-element decay coefficient for the flat parameter buffer (`coeff` or 0).
pub fn decay_coefficients(layout: &ParamLayout, coeff: f32) -> Vec<f32> {
    let mut c = vec![0.0; layout.num_params()];
    for r in decay_ranges(layout) {
        c[r].fill(coeff);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{Arch, ModelConfig};

    #[test]
    fn conv_weights_and_biases_only() {
        let arch = Arch::new(ModelConfig::s()).unwrap();
        let layout = ParamLayout::new(&arch).unwrap();
        let c = decay_coefficients(&layout, 5e-4);
        let at = |n: &str| c[layout.slot(n).unwrap().offset];
        assert_eq!(at("backbone.stem.conv1.conv.weight"), 5e-4);
        assert_eq!(at("backbone.stages.0.attn.fc.bias"), 5e-4);
        assert_eq!(at("yolo_head.pred_cls.0.bias"), 5e-4);
        assert_eq!(at("yolo_head.stem_cls.0.fc.bias"), 5e-4);
        assert_eq!(at("backbone.stem.conv1.bn.weight"), 0.0);
        assert_eq!(at("neck.fpn_routes.0.bn.bias"), 0.0);
        assert!(layout.slot("yolo_head.proj_conv.weight").unwrap().spec.kind == TensorKind::Frozen);
        // BN γ/β of s: 2 × Σ channels of the 78 BNs.
        let bn: usize = layout
            .slots()
            .iter()
            .filter(|s| s.spec.name.ends_with(".bn.weight"))
            .map(|s| s.spec.numel())
            .sum();
        let decayed: usize = decay_ranges(&layout).iter().map(|r| r.len()).sum();
        assert_eq!(decayed + 2 * bn, layout.num_params());
    }
}
