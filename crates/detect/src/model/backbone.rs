//! CSPResNet forward and backward.

use std::sync::Arc;

use ringdet_kernels::backend::{Backend, Buffers};
use ringdet_kernels::profile::StemScope;
use ringdet_kernels::{Cpu, Real};

use super::blocks::{self, BasicBlockCache, GateCache};
use super::conv_bn::{self, ConvBnCache};
use super::ctx::{Bwd, Fwd};
use super::feat::Feat;
use super::ops;
use crate::arch::{BackboneSpec, CspResStageSpec};
use crate::error::Result;

/// Cache of one CSPResStage.
pub struct StageCache<T: Real = f32, B: Buffers<T> = Cpu> {
    down: ConvBnCache<T, B>,
    c1: ConvBnCache<T, B>,
    c2: ConvBnCache<T, B>,
    blocks: Vec<BasicBlockCache<T, B>>,
    attn: GateCache<T, B>,
    c3: ConvBnCache<T, B>,
}

impl<T: Real, B: Buffers<T>> Default for StageCache<T, B> {
    fn default() -> Self {
        Self {
            down: Default::default(),
            c1: Default::default(),
            c2: Default::default(),
            blocks: Default::default(),
            attn: Default::default(),
            c3: Default::default(),
        }
    }
}

fn stage_forward<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &CspResStageSpec,
    x: &Feat<T, B>,
) -> Result<(Feat<T, B>, StageCache<T, B>)> {
    // Maps read by the caches are shared with them (Arc), not copied.
    let (xd, down) = conv_bn::forward(ctx, &s.conv_down, x)?;
    let xd = Arc::new(xd);
    let (y1, c1) = conv_bn::forward_shared(ctx, &s.conv1, &xd)?;
    let (y2, c2) = conv_bn::forward_shared(ctx, &s.conv2, &xd)?;
    let mut y2 = Arc::new(y2);
    let mut caches = Vec::with_capacity(s.blocks.len());
    for b in &s.blocks {
        let (y, c) = blocks::basic_forward_shared(ctx, b, &y2)?;
        y2 = Arc::new(y);
        caches.push(c);
    }
    let cat = ops::concat(ctx.backend(), &[&y1, &y2])?;
    let (a, attn) = blocks::ese_forward_shared(ctx, &s.attn, &Arc::new(cat))?;
    let (y, c3) = conv_bn::forward(ctx, &s.conv3, &a)?;
    Ok((
        y,
        StageCache {
            down,
            c1,
            c2,
            blocks: caches,
            attn,
            c3,
        },
    ))
}

fn stage_backward<B: Backend<f32>>(
    ctx: &mut Bwd<B>,
    s: &CspResStageSpec,
    c: &StageCache<f32, B>,
    dy: &Feat<f32, B>,
    want_dx: bool,
) -> Result<Option<Feat<f32, B>>> {
    let da = conv_bn::backward(ctx, &s.conv3, &c.c3, dy, true)?.ok_or_else(missing)?;
    let dcat = blocks::ese_backward(ctx, &s.attn, &c.attn, &da)?;
    let half = s.conv1.cout;
    let mut parts = ops::concat_backward(ctx.backend(), &dcat, &[half, half])?;
    let mut dy2 = parts.pop().ok_or_else(missing)?;
    let dy1 = parts.pop().ok_or_else(missing)?;
    for (b, bc) in s.blocks.iter().zip(&c.blocks).rev() {
        dy2 = blocks::basic_backward(ctx, b, bc, &dy2)?;
    }
    let mut dxd = conv_bn::backward(ctx, &s.conv2, &c.c2, &dy2, true)?.ok_or_else(missing)?;
    let dx1 = conv_bn::backward(ctx, &s.conv1, &c.c1, &dy1, true)?.ok_or_else(missing)?;
    dxd.add_assign_on(ctx.backend(), &dx1)?;
    conv_bn::backward(ctx, &s.conv_down, &c.down, &dxd, want_dx)
}

fn missing() -> crate::DetectError {
    crate::DetectError::Input("backward: a gradient that must exist is missing".into())
}

/// Cache of the backbone.
pub struct BackboneCache<T: Real = f32, B: Buffers<T> = Cpu> {
    stem: Vec<ConvBnCache<T, B>>,
    stages: Vec<StageCache<T, B>>,
}

impl<T: Real, B: Buffers<T>> Default for BackboneCache<T, B> {
    fn default() -> Self {
        Self {
            stem: Default::default(),
            stages: Default::default(),
        }
    }
}

/// The returned features and the backbone's cache.
pub type BackboneOutputs<T, B> = (Vec<Feat<T, B>>, BackboneCache<T, B>);

/// Image `[n, 3, H, W]` → features of `return_idx` stages (strides 8, 16, 32).
pub fn forward<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &BackboneSpec,
    image: &Feat<T, B>,
) -> Result<BackboneOutputs<T, B>> {
    let mut cache = BackboneCache::default();
    let mut x = image.copy_on(ctx.backend())?;
    let stem = StemScope::enter();
    for c in &s.stem {
        let (y, cc) = conv_bn::forward(ctx, c, &x)?;
        x = y;
        cache.stem.push(cc);
    }
    drop(stem);
    let mut outs = Vec::new();
    for (i, st) in s.stages.iter().enumerate() {
        let (y, sc) = stage_forward(ctx, st, &x)?;
        cache.stages.push(sc);
        if s.return_idx.contains(&i) {
            outs.push(y.copy_on(ctx.backend())?);
        }
        x = y;
    }
    Ok((outs, cache))
}

/// Backward from the gradients of the returned features (same order); the image gets no gradient.
pub fn backward<B: Backend<f32>>(
    ctx: &mut Bwd<B>,
    s: &BackboneSpec,
    c: &BackboneCache<f32, B>,
    douts: Vec<Feat<f32, B>>,
) -> Result<()> {
    let mut douts: Vec<Option<Feat<f32, B>>> = douts.into_iter().map(Some).collect();
    let mut carry: Option<Feat<f32, B>> = None;
    for i in (0..s.stages.len()).rev() {
        let mut dy = carry.take();
        if let Some(k) = s.return_idx.iter().position(|&r| r == i) {
            let d = douts[k].take().ok_or_else(missing)?;
            match dy.as_mut() {
                Some(acc) => acc.add_assign_on(ctx.backend(), &d)?,
                None => dy = Some(d),
            }
        }
        let Some(dy) = dy else { continue };
        carry = stage_backward(ctx, &s.stages[i], &c.stages[i], &dy, true)?;
    }
    let _stem = StemScope::enter();
    for (j, st) in s.stem.iter().enumerate().rev() {
        let Some(dy) = carry.take() else { break };
        carry = conv_bn::backward(ctx, st, &c.stem[j], &dy, j > 0)?;
    }
    Ok(())
}
