//! RepVGG fusion for inference: each RepVgg block's two conv+BN branches become one 3×3 conv with
//! bias (`W = W3' + pad(W1')`, `b = b3' + b1'`, BN folded with the running statistics). The eval
//! forward uses the fused convs when given them.
//!
//! The folding runs in f64 and rounds once to the target type, so f32 fused weights are the
//! nearest f32 values of the exact fused ones. `tests/fuse_golden.rs` proves the fusion exact in
//! f64 and within one conv's rounding per block in f32.

use std::collections::HashMap;

use ringdet_kernels::Cpu;
use ringdet_kernels::Real;
use ringdet_kernels::backend::{Buffers, FuseOps};
use ringdet_kernels::fuse::{FoldParams, RepVggParams};

use crate::arch::{Arch, ConvBnSpec, CspItemSpec, RepVggSpec};
use crate::error::{Result, kernel_error};
use crate::state::ModelState;

/// Fused 3×3 weight and bias of every RepVgg block, keyed by the block's name prefix
/// (e.g. `backbone.stages.0.blocks.0.conv2`); f32 on the host unless asked otherwise.
pub type FusedRepVgg<T = f32, B = Cpu> =
    HashMap<String, (<B as Buffers<T>>::Buf, <B as Buffers<T>>::Buf)>;

/// Name prefix of a RepVgg block from its spec.
pub fn block_name(s: &RepVggSpec) -> &str {
    s.conv1.name.strip_suffix(".conv1").unwrap_or(&s.conv1.name)
}

fn wide(state: &ModelState, name: &str) -> Result<Vec<f64>> {
    Ok(state.get(name)?.iter().map(|&v| f64::from(v)).collect())
}

fn fold(state: &ModelState, c: &ConvBnSpec) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = &c.name;
    let w = wide(state, &format!("{n}.conv.weight"))?;
    let per_out = c.cin * c.kernel * c.kernel;
    let mut wo = vec![0.0; w.len()];
    let mut bo = vec![0.0; c.cout];
    let p = FoldParams {
        out_channels: c.cout,
        per_out,
        eps: 1e-5,
    };
    Cpu.fold_conv_bn(
        &mut wo,
        &mut bo,
        &w,
        None,
        &wide(state, &format!("{n}.bn.weight"))?,
        &wide(state, &format!("{n}.bn.bias"))?,
        &wide(state, &format!("{n}.bn._mean"))?,
        &wide(state, &format!("{n}.bn._variance"))?,
        &p,
    )
    .map_err(kernel_error("fold_conv_bn"))?;
    Ok((wo, bo))
}

fn fuse_block<T: Real>(state: &ModelState, s: &RepVggSpec, out: &mut FusedRepVgg<T>) -> Result<()> {
    let (w3, b3) = fold(state, &s.conv1)?;
    let (w1, b1) = fold(state, &s.conv2)?;
    let mut w = vec![0.0; w3.len()];
    let mut b = vec![0.0; b3.len()];
    let p = RepVggParams {
        out_channels: s.conv1.cout,
        in_channels: s.conv1.cin,
        alpha: 1.0,
    };
    Cpu.repvgg_fuse(&mut w, &mut b, &w3, &b3, &w1, &b1, &p)
        .map_err(kernel_error("repvgg_fuse"))?;
    let narrow = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect();
    out.insert(block_name(s).to_string(), (narrow(w), narrow(b)));
    Ok(())
}

/// Fuse every RepVgg block of the model (6 in the backbone and 5 in the neck of s) into f32 convs.
pub fn fuse_repvgg(arch: &Arch, state: &ModelState) -> Result<FusedRepVgg> {
    fuse_repvgg_as(arch, state)
}

/// [`fuse_repvgg`] into convs of any float type (f64 for the exactness check of
/// the detector's f64 evaluation forward, which takes the result).
pub fn fuse_repvgg_as<T: Real>(arch: &Arch, state: &ModelState) -> Result<FusedRepVgg<T>> {
    let mut out: FusedRepVgg<T> = HashMap::new();
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
