//! PPYOLOEHead forward and backward up to the raw per-level logits (class and distribution).

use std::sync::Arc;

use ringdet_kernels::{HostBackend, Real};

use super::blocks::{self, GateCache, GateFn};
use super::conv_bn::{self, ConvBnCache};
use super::ctx::{Bwd, Fwd};
use super::feat::Feat;
use super::ops;
use crate::arch::{ConvSpec, HeadSpec};
use crate::error::{DetectError, Result};

fn missing() -> DetectError {
    DetectError::Input("head backward: a value that must exist is missing".into())
}

/// Raw head outputs of one level.
#[derive(Clone, Debug)]
pub struct LevelLogits<T: Real = f32> {
    /// `pred_cls` output `[n, classes, h, w]` (pre-sigmoid).
    pub cls: Feat<T>,
    /// `pred_reg` output `[n, 4·bins, h, w]`, side-major.
    pub reg: Feat<T>,
}

/// Cache of one level.
#[derive(Debug, Default)]
pub struct LevelCache<T: Real = f32> {
    feat: Option<Arc<Feat<T>>>,
    cls_gate: GateCache<T>,
    cls_conv: ConvBnCache<T>,
    cls_in: Option<Feat<T>>,
    reg_gate: GateCache<T>,
    reg_conv: ConvBnCache<T>,
    reg_in: Option<Feat<T>>,
}

/// Logits and caches of every level.
pub type HeadOutputs<T = f32> = (Vec<LevelLogits<T>>, Vec<LevelCache<T>>);

fn pred<T: Real, B: HostBackend<T>>(ctx: &Fwd<T, B>, s: &ConvSpec, x: &Feat<T>) -> Result<Feat<T>> {
    let w = ctx.param(&format!("{}.weight", s.name))?;
    let b = ctx.param(&format!("{}.bias", s.name))?;
    ops::conv2d(ctx.backend(), x, w, Some(b), s.cout, s.kernel, 1)
}

/// Neck outputs (deepest first) → logits per level.
pub fn forward<T: Real, B: HostBackend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &HeadSpec,
    feats: &[Feat<T>],
) -> Result<HeadOutputs<T>> {
    if feats.len() != s.strides.len() {
        return Err(DetectError::Input(format!(
            "head expects {} levels, got {}",
            s.strides.len(),
            feats.len()
        )));
    }
    let train = ctx.training();
    let mut outs = Vec::with_capacity(feats.len());
    let mut caches = Vec::with_capacity(feats.len());
    for (i, f) in feats.iter().enumerate() {
        let avg = ops::global_avg_pool(ctx.backend(), f)?;
        // In training one copy of the level serves both gates' caches and this one.
        let shared = train.then(|| Arc::new(f.clone()));
        let (cls_fc, reg_fc) = (&s.stem_cls[i].fc, &s.stem_reg[i].fc);
        let (g, cls_gate) = match &shared {
            Some(fa) => blocks::gate_forward_shared(ctx, cls_fc, GateFn::Sigmoid, fa, &avg)?,
            None => blocks::gate_forward(ctx, cls_fc, GateFn::Sigmoid, f, &avg)?,
        };
        // The gated maps are this level's own: the ConvBN caches keep them without a copy.
        let (mut cls_in, cls_conv) =
            conv_bn::forward_shared(ctx, &s.stem_cls[i].conv, &Arc::new(g))?;
        cls_in.add_assign(f);
        let cls = pred(ctx, &s.pred_cls[i], &cls_in)?;
        let (g2, reg_gate) = match &shared {
            Some(fa) => blocks::gate_forward_shared(ctx, reg_fc, GateFn::Sigmoid, fa, &avg)?,
            None => blocks::gate_forward(ctx, reg_fc, GateFn::Sigmoid, f, &avg)?,
        };
        let (reg_in, reg_conv) = conv_bn::forward_shared(ctx, &s.stem_reg[i].conv, &Arc::new(g2))?;
        let reg = pred(ctx, &s.pred_reg[i], &reg_in)?;
        outs.push(LevelLogits { cls, reg });
        caches.push(LevelCache {
            feat: shared,
            cls_gate,
            cls_conv,
            cls_in: train.then_some(cls_in),
            reg_gate,
            reg_conv,
            reg_in: train.then_some(reg_in),
        });
    }
    Ok((outs, caches))
}

fn pred_backward<B: HostBackend<f32>>(
    ctx: &mut Bwd<B>,
    s: &ConvSpec,
    x: &Feat,
    dy: &Feat,
) -> Result<Feat> {
    let be = ctx.backend();
    let w = ctx.param(&format!("{}.weight", s.name))?;
    let mut db = vec![0.0f32; s.cout];
    let dw = ctx.grad(&format!("{}.weight", s.name))?;
    let dx = ops::conv2d_backward(be, dy, x, w, dw, Some(&mut db), s.kernel, 1, true)?
        .ok_or_else(missing)?;
    let bias = format!("{}.bias", s.name);
    ctx.add_grad(&bias, &db)?;
    ctx.release(&[&format!("{}.weight", s.name), &bias])?;
    Ok(dx)
}

/// Backward from the logit gradients per level; returns the gradients of the neck outputs.
pub fn backward<B: HostBackend<f32>>(
    ctx: &mut Bwd<B>,
    s: &HeadSpec,
    caches: &[LevelCache],
    dlogits: &[LevelLogits],
) -> Result<Vec<Feat>> {
    let mut douts: Vec<Feat> = Vec::with_capacity(caches.len());
    for i in (0..caches.len()).rev() {
        let c = &caches[i];
        let d = &dlogits[i];
        let (Some(f), Some(cls_in), Some(reg_in)) = (&c.feat, &c.cls_in, &c.reg_in) else {
            return Err(missing());
        };
        // Regression branch (used last).
        let d_reg_in = pred_backward(ctx, &s.pred_reg[i], reg_in, &d.reg)?;
        let dg2 = conv_bn::backward(ctx, &s.stem_reg[i].conv, &c.reg_conv, &d_reg_in, true)?
            .ok_or_else(missing)?;
        let (df_reg, mut davg) =
            blocks::gate_backward(ctx, &s.stem_reg[i].fc, GateFn::Sigmoid, &c.reg_gate, &dg2)?;
        // Classification branch with its residual.
        let d_cls_in = pred_backward(ctx, &s.pred_cls[i], cls_in, &d.cls)?;
        let dg = conv_bn::backward(ctx, &s.stem_cls[i].conv, &c.cls_conv, &d_cls_in, true)?
            .ok_or_else(missing)?;
        let (df_cls, davg_cls) =
            blocks::gate_backward(ctx, &s.stem_cls[i].fc, GateFn::Sigmoid, &c.cls_gate, &dg)?;
        let mut df = d_cls_in;
        df.add_assign(&df_reg);
        df.add_assign(&df_cls);
        davg.add_assign(&davg_cls);
        ops::global_avg_pool_backward(ctx.backend(), &mut df, &davg)?;
        debug_assert_eq!(df.shape(), f.shape());
        douts.push(df);
    }
    douts.reverse();
    Ok(douts)
}
