//! CustomCSPPAN forward and backward (FPN top-down with SPP on the deepest stage, then PAN bottom-up).

use std::sync::Arc;

use ringdet_kernels::{HostBackend, Real};

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
#[derive(Debug, Default)]
pub struct SppCache<T: Real = f32> {
    x: Option<Feat<T>>,
    pools: Vec<Feat<T>>,
    conv: ConvBnCache<T>,
}

fn spp_forward<T: Real, B: HostBackend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &SppSpec,
    x: &Feat<T>,
) -> Result<(Feat<T>, SppCache<T>)> {
    let pools = s
        .pool_sizes
        .iter()
        .map(|&k| ops::max_pool(ctx.backend(), x, k))
        .collect::<Result<Vec<_>>>()?;
    let mut parts: Vec<&Feat<T>> = vec![x];
    parts.extend(pools.iter());
    let cat = ops::concat(ctx.backend(), &parts)?;
    let (y, conv) = conv_bn::forward(ctx, &s.conv, &cat)?;
    let train = ctx.training();
    Ok((
        y,
        SppCache {
            x: train.then(|| x.clone()),
            pools: if train { pools } else { Vec::new() },
            conv,
        },
    ))
}

fn spp_backward<B: HostBackend<f32>>(
    ctx: &mut Bwd<B>,
    s: &SppSpec,
    c: &SppCache,
    dy: &Feat,
) -> Result<Feat> {
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
#[derive(Debug)]
pub enum ItemCache<T: Real = f32> {
    /// BasicBlock.
    Block(Box<BasicBlockCache<T>>),
    /// SPP.
    Spp(Box<SppCache<T>>),
}

/// Cache of a CSPStage.
#[derive(Debug, Default)]
pub struct CspStageCache<T: Real = f32> {
    c1: ConvBnCache<T>,
    c2: ConvBnCache<T>,
    items: Vec<ItemCache<T>>,
    c3: ConvBnCache<T>,
}

fn csp_forward<T: Real, B: HostBackend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &CspStageSpec,
    x: &Feat<T>,
) -> Result<(Feat<T>, CspStageCache<T>)> {
    // conv1 and conv2 read x: in training one shared copy serves both caches.
    let ((y1, c1), (y2, c2)) = match ctx.training().then(|| Arc::new(x.clone())) {
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

fn csp_backward<B: HostBackend<f32>>(
    ctx: &mut Bwd<B>,
    s: &CspStageSpec,
    c: &CspStageCache,
    dy: &Feat,
) -> Result<Feat> {
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
    dx.add_assign(&conv_bn::backward(ctx, &s.conv1, &c.c1, &dy1, true)?.ok_or_else(missing)?);
    Ok(dx)
}

/// Cache of the neck.
#[derive(Debug, Default)]
pub struct NeckCache<T: Real = f32> {
    fpn: Vec<CspStageCache<T>>,
    fpn_routes: Vec<(ConvBnCache<T>, Feat<T>)>,
    pan: Vec<Option<CspStageCache<T>>>,
    pan_routes: Vec<Option<ConvBnCache<T>>>,
    lateral_channels: Vec<usize>,
}

/// Backbone features (shallowest first) → neck outputs (deepest first).
pub fn forward<T: Real, B: HostBackend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &NeckSpec,
    feats: &[Feat<T>],
) -> Result<(Vec<Feat<T>>, NeckCache<T>)> {
    let levels = s.fpn_stages.len();
    if feats.len() != levels {
        return Err(DetectError::Input(format!(
            "neck expects {levels} features, got {}",
            feats.len()
        )));
    }
    let mut cache = NeckCache::default();
    let mut fpn_feats: Vec<Feat<T>> = Vec::with_capacity(levels);
    let mut route: Option<Feat<T>> = None;
    for i in 0..levels {
        let lateral = &feats[levels - 1 - i];
        cache.lateral_channels.push(lateral.c);
        let block = match route.take() {
            Some(r) => ops::concat(ctx.backend(), &[&r, lateral])?,
            None => lateral.clone(),
        };
        let (out, c) = csp_forward(ctx, &s.fpn_stages[i], &block)?;
        cache.fpn.push(c);
        if i < levels - 1 {
            let (r, rc) = conv_bn::forward(ctx, &s.fpn_routes[i], &out)?;
            route = Some(ops::upsample2x(ctx.backend(), &r)?);
            let shape = Feat::zeros(r.n, r.c, r.h, r.w);
            cache.fpn_routes.push((rc, shape));
        }
        fpn_feats.push(out);
    }
    cache.pan = (0..levels - 1).map(|_| None).collect();
    cache.pan_routes = (0..levels - 1).map(|_| None).collect();
    let mut pan_feats = vec![fpn_feats[levels - 1].clone()];
    let mut r = fpn_feats[levels - 1].clone();
    for i in (0..levels - 1).rev() {
        let (down, rc) = conv_bn::forward(ctx, &s.pan_routes[i], &r)?;
        let block = ops::concat(ctx.backend(), &[&down, &fpn_feats[i]])?;
        let (out, c) = csp_forward(ctx, &s.pan_stages[i], &block)?;
        cache.pan_routes[i] = Some(rc);
        cache.pan[i] = Some(c);
        pan_feats.push(out.clone());
        r = out;
    }
    pan_feats.reverse();
    Ok((pan_feats, cache))
}

/// Backward from the gradients of the outputs (deepest first); returns the gradients of the
/// backbone features (shallowest first).
pub fn backward<B: HostBackend<f32>>(
    ctx: &mut Bwd<B>,
    s: &NeckSpec,
    c: &NeckCache,
    douts: Vec<Feat>,
) -> Result<Vec<Feat>> {
    let levels = s.fpn_stages.len();
    let mut dpan: Vec<Option<Feat>> = douts.into_iter().map(Some).collect();
    // Gradients of the FPN outputs F_i collected from the PAN path.
    let mut dfpn: Vec<Option<Feat>> = (0..levels).map(|_| None).collect();
    let add = |slot: &mut Option<Feat>, g: Feat| match slot {
        Some(acc) => acc.add_assign(&g),
        None => *slot = Some(g),
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
        add(&mut dfpn[i], parts.pop().ok_or_else(missing)?);
        let ddown = parts.pop().ok_or_else(missing)?;
        let dr = conv_bn::backward(ctx, &s.pan_routes[i], rc, &ddown, true)?.ok_or_else(missing)?;
        add(&mut dpan[i + 1], dr);
    }
    // The last PAN output is F_{levels-1} itself.
    if let Some(d) = dpan[levels - 1].take() {
        add(&mut dfpn[levels - 1], d);
    }
    let mut dfeats: Vec<Option<Feat>> = (0..levels).map(|_| None).collect();
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
        let mut dr = shape.zeros_like();
        ops::upsample2x_backward(ctx.backend(), &mut dr, &dup)?;
        let df =
            conv_bn::backward(ctx, &s.fpn_routes[i - 1], rc, &dr, true)?.ok_or_else(missing)?;
        add(&mut dfpn[i - 1], df);
    }
    dfeats.into_iter().map(|d| d.ok_or_else(missing)).collect()
}
