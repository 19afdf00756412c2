//! CustomCSPPAN forward and backward (FPN top-down with SPP on the deepest stage, then PAN bottom-up).

use std::sync::Arc;

use ringdet_kernels::backend::{Backend, Buffers};
use ringdet_kernels::{Cpu, Real};

use super::blocks::{self, BasicBlockCache};
use super::conv_bn::{self, ConvBnCache};
use super::ctx::{Bwd, Fwd};
use super::feat::Feat;
use super::ops;
use crate::arch::{CspItemSpec, CspStageSpec, NeckSpec, SppSpec};
use crate::error::{DetectError, Result};

fn missing() -> DetectError {
    DetectError::Input("neck backward: a gradient that must exist is missing".into())
}

/// Cache of an SPP block.
pub struct SppCache<T: Real = f32, B: Buffers<T> = Cpu> {
    x: Option<Feat<T, B>>,
    pools: Vec<Feat<T, B>>,
    conv: ConvBnCache<T, B>,
}

impl<T: Real, B: Buffers<T>> Default for SppCache<T, B> {
    fn default() -> Self {
        Self {
            x: Default::default(),
            pools: Default::default(),
            conv: Default::default(),
        }
    }
}

fn spp_forward<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &SppSpec,
    x: &Feat<T, B>,
) -> Result<(Feat<T, B>, SppCache<T, B>)> {
    let pools = s
        .pool_sizes
        .iter()
        .map(|&k| ops::max_pool(ctx.backend(), x, k))
        .collect::<Result<Vec<_>>>()?;
    let mut parts: Vec<&Feat<T, B>> = vec![x];
    parts.extend(pools.iter());
    let cat = ops::concat(ctx.backend(), &parts)?;
    let (y, conv) = conv_bn::forward(ctx, &s.conv, &cat)?;
    let train = ctx.training();
    Ok((
        y,
        SppCache {
            x: match train {
                true => Some(x.copy_on(ctx.backend())?),
                false => None,
            },
            pools: if train { pools } else { Vec::new() },
            conv,
        },
    ))
}

fn spp_backward<B: Backend<f32>>(
    ctx: &mut Bwd<B>,
    s: &SppSpec,
    c: &SppCache<f32, B>,
    dy: &Feat<f32, B>,
) -> Result<Feat<f32, B>> {
    let x = c.x.as_ref().ok_or_else(missing)?;
    let dcat = conv_bn::backward(ctx, &s.conv, &c.conv, dy, true)?.ok_or_else(missing)?;
    let channels = vec![x.c; 1 + s.pool_sizes.len()];
    let mut parts = ops::concat_backward(ctx.backend(), &dcat, &channels)?.into_iter();
    let mut dx = parts.next().ok_or_else(missing)?;
    for ((dp, &k), y) in parts.zip(&s.pool_sizes).zip(&c.pools) {
        ops::max_pool_backward(ctx.backend(), &mut dx, &dp, x, y, k)?;
    }
    Ok(dx)
}

/// Cache of one item of a CSPStage.
pub enum ItemCache<T: Real = f32, B: Buffers<T> = Cpu> {
    /// BasicBlock.
    Block(Box<BasicBlockCache<T, B>>),
    /// SPP.
    Spp(Box<SppCache<T, B>>),
}

/// Cache of a CSPStage.
pub struct CspStageCache<T: Real = f32, B: Buffers<T> = Cpu> {
    c1: ConvBnCache<T, B>,
    c2: ConvBnCache<T, B>,
    items: Vec<ItemCache<T, B>>,
    c3: ConvBnCache<T, B>,
}

impl<T: Real, B: Buffers<T>> Default for CspStageCache<T, B> {
    fn default() -> Self {
        Self {
            c1: Default::default(),
            c2: Default::default(),
            items: Default::default(),
            c3: Default::default(),
        }
    }
}

fn csp_forward<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &CspStageSpec,
    x: &Feat<T, B>,
) -> Result<(Feat<T, B>, CspStageCache<T, B>)> {
    // conv1 and conv2 read x: in training one shared copy serves both caches.
    let shared = match ctx.training() {
        true => Some(Arc::new(x.copy_on(ctx.backend())?)),
        false => None,
    };
    let ((y1, c1), (y2, c2)) = match shared {
        Some(xs) => (
            conv_bn::forward_shared(ctx, &s.conv1, &xs)?,
            conv_bn::forward_shared(ctx, &s.conv2, &xs)?,
        ),
        None => (
            conv_bn::forward(ctx, &s.conv1, x)?,
            conv_bn::forward(ctx, &s.conv2, x)?,
        ),
    };
    let mut y2 = Arc::new(y2);
    let mut items = Vec::with_capacity(s.convs.len());
    for it in &s.convs {
        match it {
            CspItemSpec::Block(b) => {
                let (y, c) = blocks::basic_forward_shared(ctx, b, &y2)?;
                y2 = Arc::new(y);
                items.push(ItemCache::Block(Box::new(c)));
            }
            CspItemSpec::Spp(p) => {
                let (y, c) = spp_forward(ctx, p, &y2)?;
                y2 = Arc::new(y);
                items.push(ItemCache::Spp(Box::new(c)));
            }
        }
    }
    let cat = ops::concat(ctx.backend(), &[&y1, &y2])?;
    let (y, c3) = conv_bn::forward(ctx, &s.conv3, &cat)?;
    Ok((y, CspStageCache { c1, c2, items, c3 }))
}

fn csp_backward<B: Backend<f32>>(
    ctx: &mut Bwd<B>,
    s: &CspStageSpec,
    c: &CspStageCache<f32, B>,
    dy: &Feat<f32, B>,
) -> Result<Feat<f32, B>> {
    let dcat = conv_bn::backward(ctx, &s.conv3, &c.c3, dy, true)?.ok_or_else(missing)?;
    let mut parts = ops::concat_backward(ctx.backend(), &dcat, &[s.conv1.cout, s.conv2.cout])?;
    let mut dy2 = parts.pop().ok_or_else(missing)?;
    let dy1 = parts.pop().ok_or_else(missing)?;
    for (it, ic) in s.convs.iter().zip(&c.items).rev() {
        dy2 = match (it, ic) {
            (CspItemSpec::Block(b), ItemCache::Block(bc)) => {
                blocks::basic_backward(ctx, b, bc, &dy2)?
            }
            (CspItemSpec::Spp(p), ItemCache::Spp(pc)) => spp_backward(ctx, p, pc, &dy2)?,
            _ => {
                return Err(DetectError::Input(
                    "neck cache does not match the spec".into(),
                ));
            }
        };
    }
    let mut dx = conv_bn::backward(ctx, &s.conv2, &c.c2, &dy2, true)?.ok_or_else(missing)?;
    let dx1 = conv_bn::backward(ctx, &s.conv1, &c.c1, &dy1, true)?.ok_or_else(missing)?;
    dx.add_assign_on(ctx.backend(), &dx1)?;
    Ok(dx)
}

/// Cache of the neck.
pub struct NeckCache<T: Real = f32, B: Buffers<T> = Cpu> {
    fpn: Vec<CspStageCache<T, B>>,
    fpn_routes: Vec<(ConvBnCache<T, B>, Feat<T, B>)>,
    pan: Vec<Option<CspStageCache<T, B>>>,
    pan_routes: Vec<Option<ConvBnCache<T, B>>>,
    lateral_channels: Vec<usize>,
}

impl<T: Real, B: Buffers<T>> Default for NeckCache<T, B> {
    fn default() -> Self {
        Self {
            fpn: Default::default(),
            fpn_routes: Default::default(),
            pan: Default::default(),
            pan_routes: Default::default(),
            lateral_channels: Default::default(),
        }
    }
}

/// The neck's outputs and its cache.
pub type NeckOutputs<T, B> = (Vec<Feat<T, B>>, NeckCache<T, B>);

/// Backbone features (shallowest first) → neck outputs (deepest first).
pub fn forward<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &NeckSpec,
    feats: &[Feat<T, B>],
) -> Result<NeckOutputs<T, B>> {
    let levels = s.fpn_stages.len();
    if feats.len() != levels {
        return Err(DetectError::Input(format!(
            "neck expects {levels} features, got {}",
            feats.len()
        )));
    }
    let mut cache = NeckCache::default();
    let mut fpn_feats: Vec<Feat<T, B>> = Vec::with_capacity(levels);
    let mut route: Option<Feat<T, B>> = None;
    for i in 0..levels {
        let lateral = &feats[levels - 1 - i];
        cache.lateral_channels.push(lateral.c);
        let block = match route.take() {
            Some(r) => ops::concat(ctx.backend(), &[&r, lateral])?,
            None => lateral.copy_on(ctx.backend())?,
        };
        let (out, c) = csp_forward(ctx, &s.fpn_stages[i], &block)?;
        cache.fpn.push(c);
        if i < levels - 1 {
            let (r, rc) = conv_bn::forward(ctx, &s.fpn_routes[i], &out)?;
            route = Some(ops::upsample2x(ctx.backend(), &r)?);
            let shape = Feat::zeros_on(ctx.backend(), r.n, r.c, r.h, r.w)?;
            cache.fpn_routes.push((rc, shape));
        }
        fpn_feats.push(out);
    }
    cache.pan = (0..levels - 1).map(|_| None).collect();
    cache.pan_routes = (0..levels - 1).map(|_| None).collect();
    let mut pan_feats = vec![fpn_feats[levels - 1].copy_on(ctx.backend())?];
    let mut r = fpn_feats[levels - 1].copy_on(ctx.backend())?;
    for i in (0..levels - 1).rev() {
        let (down, rc) = conv_bn::forward(ctx, &s.pan_routes[i], &r)?;
        let block = ops::concat(ctx.backend(), &[&down, &fpn_feats[i]])?;
        let (out, c) = csp_forward(ctx, &s.pan_stages[i], &block)?;
        cache.pan_routes[i] = Some(rc);
        cache.pan[i] = Some(c);
        pan_feats.push(out.copy_on(ctx.backend())?);
        r = out;
    }
    pan_feats.reverse();
    Ok((pan_feats, cache))
}

/// Backward from the gradients of the outputs (deepest first); returns the gradients of the
/// backbone features (shallowest first).
pub fn backward<B: Backend<f32>>(
    ctx: &mut Bwd<B>,
    s: &NeckSpec,
    c: &NeckCache<f32, B>,
    douts: Vec<Feat<f32, B>>,
) -> Result<Vec<Feat<f32, B>>> {
    let levels = s.fpn_stages.len();
    let mut dpan: Vec<Option<Feat<f32, B>>> = douts.into_iter().map(Some).collect();
    // Gradients of the FPN outputs F_i collected from the PAN path.
    let mut dfpn: Vec<Option<Feat<f32, B>>> = (0..levels).map(|_| None).collect();
    let be = ctx.backend();
    let add = |slot: &mut Option<Feat<f32, B>>, g: Feat<f32, B>| -> Result<()> {
        match slot {
            Some(acc) => acc.add_assign_on(be, &g)?,
            None => *slot = Some(g),
        }
        Ok(())
    };
    // PAN ran i = levels-2 … 0; undo it i = 0 … levels-2. Output i's route input was output i+1.
    for i in 0..levels - 1 {
        let (Some(pc), Some(rc)) = (&c.pan[i], &c.pan_routes[i]) else {
            return Err(missing());
        };
        let d = dpan[i].take().ok_or_else(missing)?;
        let dblock = csp_backward(ctx, &s.pan_stages[i], pc, &d)?;
        let mut parts = ops::concat_backward(
            ctx.backend(),
            &dblock,
            &[s.pan_routes[i].cout, s.fpn_stages[i].conv3.cout],
        )?;
        add(&mut dfpn[i], parts.pop().ok_or_else(missing)?)?;
        let ddown = parts.pop().ok_or_else(missing)?;
        let dr = conv_bn::backward(ctx, &s.pan_routes[i], rc, &ddown, true)?.ok_or_else(missing)?;
        add(&mut dpan[i + 1], dr)?;
    }
    // The last PAN output is F_{levels-1} itself.
    if let Some(d) = dpan[levels - 1].take() {
        add(&mut dfpn[levels - 1], d)?;
    }
    let mut dfeats: Vec<Option<Feat<f32, B>>> = (0..levels).map(|_| None).collect();
    for i in (0..levels).rev() {
        let d = dfpn[i].take().ok_or_else(missing)?;
        let dblock = csp_backward(ctx, &s.fpn_stages[i], &c.fpn[i], &d)?;
        let lateral_c = c.lateral_channels[i];
        if i == 0 {
            dfeats[levels - 1] = Some(dblock);
            continue;
        }
        let route_c = dblock.c - lateral_c;
        let mut parts = ops::concat_backward(ctx.backend(), &dblock, &[route_c, lateral_c])?;
        dfeats[levels - 1 - i] = Some(parts.pop().ok_or_else(missing)?);
        let dup = parts.pop().ok_or_else(missing)?;
        let (rc, shape) = &c.fpn_routes[i - 1];
        let mut dr = shape.zeros_like_on(ctx.backend())?;
        ops::upsample2x_backward(ctx.backend(), &mut dr, &dup)?;
        let df =
            conv_bn::backward(ctx, &s.fpn_routes[i - 1], rc, &dr, true)?.ok_or_else(missing)?;
        add(&mut dfpn[i - 1], df)?;
    }
    dfeats.into_iter().map(|d| d.ok_or_else(missing)).collect()
}
