//! PPYOLOEHead forward and backward up to the raw per-level logits (class and distribution).

use std::sync::Arc;

use ringdet_kernels::backend::{Backend, Buffers};
use ringdet_kernels::{Cpu, Real};

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
#[derive(Debug)]
pub struct LevelLogits<T: Real = f32, B: Buffers<T> = Cpu> {
    /// `pred_cls` output `[n, classes, h, w]` (pre-sigmoid).
    pub cls: Feat<T, B>,
    /// `pred_reg` output `[n, 4·bins, h, w]`, side-major.
    pub reg: Feat<T, B>,
}

impl<T: Real> Clone for LevelLogits<T, Cpu> {
    fn clone(&self) -> Self {
        Self {
            cls: self.cls.clone(),
            reg: self.reg.clone(),
        }
    }
}

/// Cache of one level.
pub struct LevelCache<T: Real = f32, B: Buffers<T> = Cpu> {
    feat: Option<Arc<Feat<T, B>>>,
    cls_gate: GateCache<T, B>,
    cls_conv: ConvBnCache<T, B>,
    cls_in: Option<Feat<T, B>>,
    reg_gate: GateCache<T, B>,
    reg_conv: ConvBnCache<T, B>,
    reg_in: Option<Feat<T, B>>,
}

impl<T: Real, B: Buffers<T>> Default for LevelCache<T, B> {
    fn default() -> Self {
        Self {
            feat: Default::default(),
            cls_gate: Default::default(),
            cls_conv: Default::default(),
            cls_in: Default::default(),
            reg_gate: Default::default(),
            reg_conv: Default::default(),
            reg_in: Default::default(),
        }
    }
}

/// Logits and caches of every level.
pub type HeadOutputs<T = f32, B = Cpu> = (Vec<LevelLogits<T, B>>, Vec<LevelCache<T, B>>);

fn pred<T: Real, B: Backend<T>>(
    ctx: &Fwd<T, B>,
    s: &ConvSpec,
    x: &Feat<T, B>,
) -> Result<Feat<T, B>> {
    let w = ctx.param(&format!("{}.weight", s.name))?;
    let b = ctx.param(&format!("{}.bias", s.name))?;
    ops::conv2d(ctx.backend(), x, w, Some(b), s.cout, s.kernel, 1)
}

/// Neck outputs (deepest first) → logits per level.
pub fn forward<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &HeadSpec,
    feats: &[Feat<T, B>],
) -> Result<HeadOutputs<T, B>> {
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
        let shared = match train {
            true => Some(Arc::new(f.copy_on(ctx.backend())?)),
            false => None,
        };
        let (cls_fc, reg_fc) = (&s.stem_cls[i].fc, &s.stem_reg[i].fc);
        let (g, cls_gate) = match &shared {
            Some(fa) => blocks::gate_forward_shared(ctx, cls_fc, GateFn::Sigmoid, fa, &avg)?,
            None => blocks::gate_forward(ctx, cls_fc, GateFn::Sigmoid, f, &avg)?,
        };
        // The gated maps are this level's own: the ConvBN caches keep them without a copy.
        let (mut cls_in, cls_conv) =
            conv_bn::forward_shared(ctx, &s.stem_cls[i].conv, &Arc::new(g))?;
        cls_in.add_assign_on(ctx.backend(), f)?;
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

fn pred_backward<B: Backend<f32>>(
    ctx: &mut Bwd<B>,
    s: &ConvSpec,
    x: &Feat<f32, B>,
    dy: &Feat<f32, B>,
) -> Result<Feat<f32, B>> {
    let be = ctx.backend();
    let w = ctx.param(&format!("{}.weight", s.name))?;
    let mut db = Feat::vector_on(be, s.cout)?;
    let dw = ctx.grad(&format!("{}.weight", s.name))?;
    let dbv = Some(B::view_mut(&mut db.data));
    let dx = ops::conv2d_backward(be, dy, x, w, dw, dbv, s.kernel, 1, true)?.ok_or_else(missing)?;
    let bias = format!("{}.bias", s.name);
    ctx.add_grad(&bias, &db.data)?;
    ctx.release(&[&format!("{}.weight", s.name), &bias])?;
    Ok(dx)
}

/// Backward from the logit gradients per level; returns the gradients of the neck outputs.
pub fn backward<B: Backend<f32>>(
    ctx: &mut Bwd<B>,
    s: &HeadSpec,
    caches: &[LevelCache<f32, B>],
    dlogits: &[LevelLogits<f32, B>],
) -> Result<Vec<Feat<f32, B>>> {
    let mut douts: Vec<Feat<f32, B>> = Vec::with_capacity(caches.len());
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
        df.add_assign_on(ctx.backend(), &df_reg)?;
        df.add_assign_on(ctx.backend(), &df_cls)?;
        davg.add_assign_on(ctx.backend(), &davg_cls)?;
        ops::global_avg_pool_backward(ctx.backend(), &mut df, &davg)?;
        debug_assert_eq!(df.shape(), f.shape());
        douts.push(df);
    }
    douts.reverse();
    Ok(douts)
}
