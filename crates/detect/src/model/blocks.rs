//! RepVgg block, BasicBlock and the two channel gates (backbone ESE with hardsigmoid, shared by
//! nothing else), forward and backward.

use std::sync::Arc;

use ringdet_kernels::{HostBackend, Real};

use super::conv_bn::{self, ConvBnCache};
use super::ctx::{Bwd, Fwd};
use super::feat::Feat;
use super::ops;
use crate::arch::{BasicBlockSpec, ConvSpec, EseSpec, RepVggSpec};
use crate::error::Result;

/// Cache of a RepVgg block.
#[derive(Debug, Default)]
pub struct RepVggCache<T: Real = f32> {
    c1: ConvBnCache<T>,
    c2: ConvBnCache<T>,
    sum: Option<Feat<T>>,
}

/// `swish(BN(conv3x3 x) + BN(conv1x1 x))`, or `swish(conv3x3_fused x + b)` when the context holds
/// this block's fused conv.
pub fn repvgg_forward<T: Real, B: HostBackend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &RepVggSpec,
    x: &Feat<T>,
) -> Result<(Feat<T>, RepVggCache<T>)> {
    // Both branches read x: in training one shared copy serves both caches.
    let shared = ctx.training().then(|| Arc::new(x.clone()));
    repvgg_impl(ctx, s, x, shared.as_ref())
}

/// [`repvgg_forward`] on a shared input (both branch caches keep a reference, no copy).
pub fn repvgg_forward_shared<T: Real, B: HostBackend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &RepVggSpec,
    x: &Arc<Feat<T>>,
) -> Result<(Feat<T>, RepVggCache<T>)> {
    repvgg_impl(ctx, s, x, Some(x))
}

fn repvgg_impl<T: Real, B: HostBackend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &RepVggSpec,
    x: &Feat<T>,
    shared: Option<&Arc<Feat<T>>>,
) -> Result<(Feat<T>, RepVggCache<T>)> {
    if let Some(rec) = ctx.repvgg_inputs.as_mut() {
        rec.push((crate::fuse::block_name(s).to_string(), x.clone()));
    }
    if let Some((w, b)) = ctx.fused.and_then(|f| f.get(crate::fuse::block_name(s))) {
        let y = ops::conv2d(ctx.backend(), x, w, Some(b), s.conv1.cout, 3, 1)?;
        return Ok((ops::silu(ctx.backend(), &y)?, RepVggCache::default()));
    }
    let ((mut a, c1), (b, c2)) = match shared {
        Some(xs) => (
            conv_bn::forward_shared(ctx, &s.conv1, xs)?,
            conv_bn::forward_shared(ctx, &s.conv2, xs)?,
        ),
        None => (
            conv_bn::forward(ctx, &s.conv1, x)?,
            conv_bn::forward(ctx, &s.conv2, x)?,
        ),
    };
    a.add_assign(&b);
    let y = ops::silu(ctx.backend(), &a)?;
    let sum = ctx.training().then_some(a);
    Ok((y, RepVggCache { c1, c2, sum }))
}

/// Backward of [`repvgg_forward`].
pub fn repvgg_backward<B: HostBackend<f32>>(
    ctx: &mut Bwd<B>,
    s: &RepVggSpec,
    c: &RepVggCache,
    dy: &Feat,
) -> Result<Feat> {
    let sum = c
        .sum
        .as_ref()
        .ok_or_else(|| crate::DetectError::Input("repvgg backward without cache".into()))?;
    let mut ds = dy.zeros_like();
    ops::silu_backward(ctx.backend(), &mut ds, dy, sum)?;
    // Backward runs in reverse: the 1×1 branch (used last) first.
    let dx2 = conv_bn::backward(ctx, &s.conv2, &c.c2, &ds, true)?;
    let mut dx =
        conv_bn::backward(ctx, &s.conv1, &c.c1, &ds, true)?.unwrap_or_else(|| ds.zeros_like());
    if let Some(d) = dx2 {
        dx.add_assign(&d);
    }
    Ok(dx)
}

/// Cache of a BasicBlock.
#[derive(Debug, Default)]
pub struct BasicBlockCache<T: Real = f32> {
    c1: ConvBnCache<T>,
    rep: RepVggCache<T>,
}

/// `RepVgg(ConvBN3x3+swish(x))` (+ x with shortcut).
pub fn basic_forward<T: Real, B: HostBackend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &BasicBlockSpec,
    x: &Feat<T>,
) -> Result<(Feat<T>, BasicBlockCache<T>)> {
    let first = conv_bn::forward(ctx, &s.conv1, x)?;
    basic_rest(ctx, s, x, first)
}

/// [`basic_forward`] on a shared input (the first conv's cache keeps a reference, no copy).
pub fn basic_forward_shared<T: Real, B: HostBackend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &BasicBlockSpec,
    x: &Arc<Feat<T>>,
) -> Result<(Feat<T>, BasicBlockCache<T>)> {
    let first = conv_bn::forward_shared(ctx, &s.conv1, x)?;
    basic_rest(ctx, s, x, first)
}

/// The RepVgg half of a BasicBlock, after its first ConvBN gave `h`.
fn basic_rest<T: Real, B: HostBackend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &BasicBlockSpec,
    x: &Feat<T>,
    (h, c1): (Feat<T>, ConvBnCache<T>),
) -> Result<(Feat<T>, BasicBlockCache<T>)> {
    // h is this block's own: both RepVgg branches keep it without a copy.
    let (mut y, rep) = repvgg_forward_shared(ctx, &s.conv2, &Arc::new(h))?;
    if s.shortcut {
        y.add_assign(x);
    }
    Ok((y, BasicBlockCache { c1, rep }))
}

/// Backward of [`basic_forward`].
pub fn basic_backward<B: HostBackend<f32>>(
    ctx: &mut Bwd<B>,
    s: &BasicBlockSpec,
    c: &BasicBlockCache,
    dy: &Feat,
) -> Result<Feat> {
    let dh = repvgg_backward(ctx, &s.conv2, &c.rep, dy)?;
    let mut dx =
        conv_bn::backward(ctx, &s.conv1, &c.c1, &dh, true)?.unwrap_or_else(|| dy.zeros_like());
    if s.shortcut {
        dx.add_assign(dy);
    }
    Ok(dx)
}

/// Cache of a channel gate `x · gate(fc(avg))`.
#[derive(Debug, Default)]
pub struct GateCache<T: Real = f32> {
    x: Option<Arc<Feat<T>>>,
    avg: Option<Feat<T>>,
    gate: Option<Feat<T>>,
}

/// Which squashing function a gate uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateFn {
    /// Backbone ESE.
    HardSigmoid,
    /// Head ESEAttn.
    Sigmoid,
}

/// `x · g(fc(avg))` where `avg` is the global average of `x` (or given); returns the gated map.
pub fn gate_forward<T: Real, B: HostBackend<T>>(
    ctx: &Fwd<T, B>,
    fc: &ConvSpec,
    f: GateFn,
    x: &Feat<T>,
    avg: &Feat<T>,
) -> Result<(Feat<T>, GateCache<T>)> {
    gate_impl(ctx, fc, f, x, avg, || Arc::new(x.clone()))
}

/// [`gate_forward`] on a shared input: the cache keeps a reference to `x`, not a copy.
pub fn gate_forward_shared<T: Real, B: HostBackend<T>>(
    ctx: &Fwd<T, B>,
    fc: &ConvSpec,
    f: GateFn,
    x: &Arc<Feat<T>>,
    avg: &Feat<T>,
) -> Result<(Feat<T>, GateCache<T>)> {
    gate_impl(ctx, fc, f, x, avg, || Arc::clone(x))
}

fn gate_impl<T: Real, B: HostBackend<T>>(
    ctx: &Fwd<T, B>,
    fc: &ConvSpec,
    f: GateFn,
    x: &Feat<T>,
    avg: &Feat<T>,
    keep: impl FnOnce() -> Arc<Feat<T>>,
) -> Result<(Feat<T>, GateCache<T>)> {
    let w = ctx.param(&format!("{}.weight", fc.name))?;
    let b = ctx.param(&format!("{}.bias", fc.name))?;
    let z = ops::conv2d(ctx.backend(), avg, w, Some(b), fc.cout, 1, 1)?;
    let g = match f {
        GateFn::HardSigmoid => ops::hardsigmoid(ctx.backend(), &z.data)?,
        GateFn::Sigmoid => ops::sigmoid(ctx.backend(), &z.data)?,
    };
    let gate = Feat::from_vec(g, z.n, z.c, 1, 1)?;
    let y = ops::mul_channel(ctx.backend(), x, &gate)?;
    let cache = if ctx.training() {
        GateCache {
            x: Some(keep()),
            avg: Some(avg.clone()),
            gate: Some(gate),
        }
    } else {
        GateCache::default()
    };
    Ok((y, cache))
}

/// Backward of [`gate_forward`]: returns `(dx, davg)` (the caller routes `davg` to the pooling).
pub fn gate_backward<B: HostBackend<f32>>(
    ctx: &mut Bwd<B>,
    fc: &ConvSpec,
    f: GateFn,
    c: &GateCache,
    dy: &Feat,
) -> Result<(Feat, Feat)> {
    let be = ctx.backend();
    let (Some(x), Some(avg), Some(gate)) = (&c.x, &c.avg, &c.gate) else {
        return Err(crate::DetectError::Input(format!(
            "{}: backward without cache",
            fc.name
        )));
    };
    let mut dx = x.zeros_like();
    let mut dgate = gate.zeros_like();
    ops::mul_channel_backward(ctx.backend(), &mut dx, &mut dgate, dy, x, gate)?;
    let mut dz = gate.zeros_like();
    match f {
        GateFn::HardSigmoid => {
            ops::hardsigmoid_backward(ctx.backend(), &mut dz.data, &dgate.data, &gate.data)?
        }
        GateFn::Sigmoid => {
            ops::sigmoid_backward(ctx.backend(), &mut dz.data, &dgate.data, &gate.data)?
        }
    }
    let w = ctx.param(&format!("{}.weight", fc.name))?;
    let mut db = vec![0.0f32; fc.cout];
    let dw = ctx.grad(&format!("{}.weight", fc.name))?;
    let davg = ops::conv2d_backward(be, &dz, avg, w, dw, Some(&mut db), 1, 1, true)?
        .unwrap_or_else(|| avg.zeros_like());
    let bias = format!("{}.bias", fc.name);
    ctx.add_grad(&bias, &db)?;
    ctx.release(&[&format!("{}.weight", fc.name), &bias])?;
    Ok((dx, davg))
}

/// Backbone ESE: gate with hardsigmoid on the input's own average.
pub fn ese_forward<T: Real, B: HostBackend<T>>(
    ctx: &Fwd<T, B>,
    s: &EseSpec,
    x: &Feat<T>,
) -> Result<(Feat<T>, GateCache<T>)> {
    let avg = ops::global_avg_pool(ctx.backend(), x)?;
    gate_forward(ctx, &s.fc, GateFn::HardSigmoid, x, &avg)
}

/// [`ese_forward`] on a shared input (the cache keeps a reference, no copy).
pub fn ese_forward_shared<T: Real, B: HostBackend<T>>(
    ctx: &Fwd<T, B>,
    s: &EseSpec,
    x: &Arc<Feat<T>>,
) -> Result<(Feat<T>, GateCache<T>)> {
    let avg = ops::global_avg_pool(ctx.backend(), x)?;
    gate_forward_shared(ctx, &s.fc, GateFn::HardSigmoid, x, &avg)
}

/// Backward of [`ese_forward`].
pub fn ese_backward<B: HostBackend<f32>>(
    ctx: &mut Bwd<B>,
    s: &EseSpec,
    c: &GateCache,
    dy: &Feat,
) -> Result<Feat> {
    let (mut dx, davg) = gate_backward(ctx, &s.fc, GateFn::HardSigmoid, c, dy)?;
    ops::global_avg_pool_backward(ctx.backend(), &mut dx, &davg)?;
    Ok(dx)
}
