//! RepVGG fusion for inference: each RepVgg block's two conv+BN branches become one 3×3 conv with
//! bias (`W = W3' + pad(W1')`, `b = b3' + b1'`, BN folded with the running statistics). The eval
//! forward uses the fused convs when given them.

use std::collections::HashMap;

use ringdet_kernels::fuse::{FoldParams, RepVggParams, cpu as fk};

use crate::arch::{Arch, ConvBnSpec, CspItemSpec, RepVggSpec};
use crate::error::{DetectError, Result};
use crate::state::ModelState;

/// Fused 3×3 weight and bias of every RepVgg block, keyed by the block's name prefix
/// (e.g. `backbone.stages.0.blocks.0.conv2`).
pub type FusedRepVgg = HashMap<String, (Vec<f32>, Vec<f32>)>;

/// Name prefix of a RepVgg block from its spec.
pub fn block_name(s: &RepVggSpec) -> &str {
    s.conv1.name.strip_suffix(".conv1").unwrap_or(&s.conv1.name)
}

fn kerr(op: &'static str) -> impl Fn(ringdet_kernels::KernelError) -> DetectError {
    move |e| DetectError::Kernel {
        op,
        message: e.to_string(),
    }
}

fn fold(state: &ModelState, c: &ConvBnSpec) -> Result<(Vec<f32>, Vec<f32>)> {
    let n = &c.name;
    let w = state.get(&format!("{n}.conv.weight"))?;
    let per_out = c.cin * c.kernel * c.kernel;
    let mut wo = vec![0.0f32; w.len()];
    let mut bo = vec![0.0f32; c.cout];
    let p = FoldParams {
        out_channels: c.cout,
        per_out,
        eps: 1e-5,
    };
    fk::fold_conv_bn(
        &mut wo,
        &mut bo,
        w,
        None,
        state.get(&format!("{n}.bn.weight"))?,
        state.get(&format!("{n}.bn.bias"))?,
        state.get(&format!("{n}.bn._mean"))?,
        state.get(&format!("{n}.bn._variance"))?,
        &p,
    )
    .map_err(kerr("fold_conv_bn"))?;
    Ok((wo, bo))
}

fn fuse_block(state: &ModelState, s: &RepVggSpec, out: &mut FusedRepVgg) -> Result<()> {
    let (w3, b3) = fold(state, &s.conv1)?;
    let (w1, b1) = fold(state, &s.conv2)?;
    let mut w = vec![0.0f32; w3.len()];
    let mut b = vec![0.0f32; b3.len()];
    let p = RepVggParams {
        out_channels: s.conv1.cout,
        in_channels: s.conv1.cin,
        alpha: 1.0,
    };
    fk::repvgg_fuse(&mut w, &mut b, &w3, &b3, &w1, &b1, &p).map_err(kerr("repvgg_fuse"))?;
    out.insert(block_name(s).to_string(), (w, b));
    Ok(())
}

/// Fuse every RepVgg block of the model (6 in the backbone and 5 in the neck of s).
pub fn fuse_repvgg(arch: &Arch, state: &ModelState) -> Result<FusedRepVgg> {
    let mut out = FusedRepVgg::new();
    for st in &arch.backbone.stages {
        for b in &st.blocks {
            fuse_block(state, &b.conv2, &mut out)?;
        }
    }
    for st in arch.neck.fpn_stages.iter().chain(&arch.neck.pan_stages) {
        for item in &st.convs {
            if let CspItemSpec::Block(b) = item {
                fuse_block(state, &b.conv2, &mut out)?;
            }
        }
    }
    Ok(out)
}
