//! RepVgg block, BasicBlock and the two channel gates (backbone ESE with hardsigmoid, shared by
//! nothing else), forward and backward.

use std::sync::Arc;

use ringdet_kernels::backend::{Backend, Buffers};
use ringdet_kernels::{Cpu, Real};

use super::conv_bn::{self, ConvBnCache};
use super::ctx::{Bwd, Fwd};
use super::feat::Feat;
use super::ops;
use crate::arch::{BasicBlockSpec, ConvSpec, EseSpec, RepVggSpec};
use crate::error::Result;

/// Cache of a RepVgg block.
pub struct RepVggCache<T: Real = f32, B: Buffers<T> = Cpu> {
    c1: ConvBnCache<T, B>,
    c2: ConvBnCache<T, B>,
    sum: Option<Feat<T, B>>,
}

impl<T: Real, B: Buffers<T>> Default for RepVggCache<T, B> {
    fn default() -> Self {
        Self {
            c1: Default::default(),
            c2: Default::default(),
            sum: Default::default(),
        }
    }
}

/// `swish(BN(conv3x3 x) + BN(conv1x1 x))`, or `swish(conv3x3_fused x + b)` when the context holds
/// this block's fused conv.
pub fn repvgg_forward<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &RepVggSpec,
    x: &Feat<T, B>,
) -> Result<(Feat<T, B>, RepVggCache<T, B>)> {
    // Both branches read x: in training one shared copy serves both caches.
    let shared = match ctx.training() {
        true => Some(Arc::new(x.copy_on(ctx.backend())?)),
        false => None,
    };
    repvgg_impl(ctx, s, x, shared.as_ref())
}

/// [`repvgg_forward`] on a shared input (both branch caches keep a reference, no copy).
pub fn repvgg_forward_shared<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &RepVggSpec,
    x: &Arc<Feat<T, B>>,
) -> Result<(Feat<T, B>, RepVggCache<T, B>)> {
    repvgg_impl(ctx, s, x, Some(x))
}

fn repvgg_impl<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &RepVggSpec,
    x: &Feat<T, B>,
    shared: Option<&Arc<Feat<T, B>>>,
) -> Result<(Feat<T, B>, RepVggCache<T, B>)> {
    let be = ctx.backend();
    if let Some(rec) = ctx.repvgg_inputs.as_mut() {
        rec.push((crate::fuse::block_name(s).to_string(), x.copy_on(be)?));
    }
    if let Some((w, b)) = ctx.fused.and_then(|f| f.get(crate::fuse::block_name(s))) {
        let y = ops::conv2d(be, x, B::view(w), Some(B::view(b)), s.conv1.cout, 3, 1)?;
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
    a.add_assign_on(be, &b)?;
    let y = ops::silu(ctx.backend(), &a)?;
    let sum = ctx.training().then_some(a);
    Ok((y, RepVggCache { c1, c2, sum }))
}

/// Backward of [`repvgg_forward`].
pub fn repvgg_backward<B: Backend<f32>>(
    ctx: &mut Bwd<B>,
    s: &RepVggSpec,
    c: &RepVggCache<f32, B>,
    dy: &Feat<f32, B>,
) -> Result<Feat<f32, B>> {
    let sum = c
        .sum
        .as_ref()
        .ok_or_else(|| crate::DetectError::Input("repvgg backward without cache".into()))?;
    let mut ds = dy.zeros_like_on(ctx.backend())?;
    ops::silu_backward(ctx.backend(), &mut ds, dy, sum)?;
    // Backward runs in reverse: the 1×1 branch (used last) first.
    let dx2 = conv_bn::backward(ctx, &s.conv2, &c.c2, &ds, true)?;
    let mut dx = match conv_bn::backward(ctx, &s.conv1, &c.c1, &ds, true)? {
        Some(dx) => dx,
        None => ds.zeros_like_on(ctx.backend())?,
    };
    if let Some(d) = dx2 {
        dx.add_assign_on(ctx.backend(), &d)?;
    }
    Ok(dx)
}

/// Cache of a BasicBlock.
pub struct BasicBlockCache<T: Real = f32, B: Buffers<T> = Cpu> {
    c1: ConvBnCache<T, B>,
    rep: RepVggCache<T, B>,
}

impl<T: Real, B: Buffers<T>> Default for BasicBlockCache<T, B> {
    fn default() -> Self {
        Self {
            c1: Default::default(),
            rep: Default::default(),
        }
    }
}

/// `RepVgg(ConvBN3x3+swish(x))` (+ x with shortcut).
pub fn basic_forward<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &BasicBlockSpec,
    x: &Feat<T, B>,
) -> Result<(Feat<T, B>, BasicBlockCache<T, B>)> {
    let first = conv_bn::forward(ctx, &s.conv1, x)?;
    basic_rest(ctx, s, x, first)
}

/// [`basic_forward`] on a shared input (the first conv's cache keeps a reference, no copy).
pub fn basic_forward_shared<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &BasicBlockSpec,
    x: &Arc<Feat<T, B>>,
) -> Result<(Feat<T, B>, BasicBlockCache<T, B>)> {
    let first = conv_bn::forward_shared(ctx, &s.conv1, x)?;
    basic_rest(ctx, s, x, first)
}

/// The RepVgg half of a BasicBlock, after its first ConvBN gave `h`.
fn basic_rest<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &BasicBlockSpec,
    x: &Feat<T, B>,
    (h, c1): (Feat<T, B>, ConvBnCache<T, B>),
) -> Result<(Feat<T, B>, BasicBlockCache<T, B>)> {
    // h is this block's own: both RepVgg branches keep it without a copy.
    let (mut y, rep) = repvgg_forward_shared(ctx, &s.conv2, &Arc::new(h))?;
    if s.shortcut {
        y.add_assign_on(ctx.backend(), x)?;
    }
    Ok((y, BasicBlockCache { c1, rep }))
}

/// Backward of [`basic_forward`].
pub fn basic_backward<B: Backend<f32>>(
    ctx: &mut Bwd<B>,
    s: &BasicBlockSpec,
    c: &BasicBlockCache<f32, B>,
    dy: &Feat<f32, B>,
) -> Result<Feat<f32, B>> {
    let dh = repvgg_backward(ctx, &s.conv2, &c.rep, dy)?;
    let mut dx = match conv_bn::backward(ctx, &s.conv1, &c.c1, &dh, true)? {
        Some(dx) => dx,
        None => dy.zeros_like_on(ctx.backend())?,
    };
    if s.shortcut {
        dx.add_assign_on(ctx.backend(), dy)?;
    }
    Ok(dx)
}

/// Cache of a channel gate `x · gate(fc(avg))`.
pub struct GateCache<T: Real = f32, B: Buffers<T> = Cpu> {
    x: Option<Arc<Feat<T, B>>>,
    avg: Option<Feat<T, B>>,
    gate: Option<Feat<T, B>>,
}

impl<T: Real, B: Buffers<T>> Default for GateCache<T, B> {
    fn default() -> Self {
        Self {
            x: Default::default(),
            avg: Default::default(),
            gate: Default::default(),
        }
    }
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
pub fn gate_forward<T: Real, B: Backend<T>>(
    ctx: &Fwd<T, B>,
    fc: &ConvSpec,
    f: GateFn,
    x: &Feat<T, B>,
    avg: &Feat<T, B>,
) -> Result<(Feat<T, B>, GateCache<T, B>)> {
    gate_impl(ctx, fc, f, x, avg, || {
        Ok(Arc::new(x.copy_on(ctx.backend())?))
    })
}

/// [`gate_forward`] on a shared input: the cache keeps a reference to `x`, not a copy.
pub fn gate_forward_shared<T: Real, B: Backend<T>>(
    ctx: &Fwd<T, B>,
    fc: &ConvSpec,
    f: GateFn,
    x: &Arc<Feat<T, B>>,
    avg: &Feat<T, B>,
) -> Result<(Feat<T, B>, GateCache<T, B>)> {
    gate_impl(ctx, fc, f, x, avg, || Ok(Arc::clone(x)))
}

fn gate_impl<T: Real, B: Backend<T>>(
    ctx: &Fwd<T, B>,
    fc: &ConvSpec,
    f: GateFn,
    x: &Feat<T, B>,
    avg: &Feat<T, B>,
    keep: impl FnOnce() -> Result<Arc<Feat<T, B>>>,
) -> Result<(Feat<T, B>, GateCache<T, B>)> {
    let w = ctx.param(&format!("{}.weight", fc.name))?;
    let b = ctx.param(&format!("{}.bias", fc.name))?;
    let z = ops::conv2d(ctx.backend(), avg, w, Some(b), fc.cout, 1, 1)?;
    let gate = match f {
        GateFn::HardSigmoid => ops::hardsigmoid(ctx.backend(), &z)?,
        GateFn::Sigmoid => ops::sigmoid(ctx.backend(), &z)?,
    };
    let y = ops::mul_channel(ctx.backend(), x, &gate)?;
    let cache = if ctx.training() {
        GateCache {
            x: Some(keep()?),
            avg: Some(avg.copy_on(ctx.backend())?),
            gate: Some(gate),
        }
    } else {
        GateCache::default()
    };
    Ok((y, cache))
}

/// Backward of [`gate_forward`]: returns `(dx, davg)` (the caller routes `davg` to the pooling).
pub fn gate_backward<B: Backend<f32>>(
    ctx: &mut Bwd<B>,
    fc: &ConvSpec,
    f: GateFn,
    c: &GateCache<f32, B>,
    dy: &Feat<f32, B>,
) -> Result<(Feat<f32, B>, Feat<f32, B>)> {
    let be = ctx.backend();
    let (Some(x), Some(avg), Some(gate)) = (&c.x, &c.avg, &c.gate) else {
        return Err(crate::DetectError::Input(format!(
            "{}: backward without cache",
            fc.name
        )));
    };
    let mut dx = x.zeros_like_on(ctx.backend())?;
    let mut dgate = gate.zeros_like_on(ctx.backend())?;
    ops::mul_channel_backward(ctx.backend(), &mut dx, &mut dgate, dy, x, gate)?;
    let mut dz = gate.zeros_like_on(ctx.backend())?;
    match f {
        GateFn::HardSigmoid => ops::hardsigmoid_backward(ctx.backend(), &mut dz, &dgate, gate)?,
        GateFn::Sigmoid => ops::sigmoid_backward(ctx.backend(), &mut dz, &dgate, gate)?,
    }
    let w = ctx.param(&format!("{}.weight", fc.name))?;
    let mut db = Feat::vector_on(be, fc.cout)?;
    let dw = ctx.grad(&format!("{}.weight", fc.name))?;
    let davg = ops::conv2d_backward(
        be,
        &dz,
        avg,
        w,
        dw,
        Some(B::view_mut(&mut db.data)),
        1,
        1,
        true,
    )?;
    let davg = match davg {
        Some(d) => d,
        None => avg.zeros_like_on(be)?,
    };
    let bias = format!("{}.bias", fc.name);
    ctx.add_grad(&bias, &db.data)?;
    ctx.release(&[&format!("{}.weight", fc.name), &bias])?;
    Ok((dx, davg))
}

/// Backbone ESE: gate with hardsigmoid on the input's own average.
pub fn ese_forward<T: Real, B: Backend<T>>(
    ctx: &Fwd<T, B>,
    s: &EseSpec,
    x: &Feat<T, B>,
) -> Result<(Feat<T, B>, GateCache<T, B>)> {
    let avg = ops::global_avg_pool(ctx.backend(), x)?;
    gate_forward(ctx, &s.fc, GateFn::HardSigmoid, x, &avg)
}

/// [`ese_forward`] on a shared input (the cache keeps a reference, no copy).
pub fn ese_forward_shared<T: Real, B: Backend<T>>(
    ctx: &Fwd<T, B>,
    s: &EseSpec,
    x: &Arc<Feat<T, B>>,
) -> Result<(Feat<T, B>, GateCache<T, B>)> {
    let avg = ops::global_avg_pool(ctx.backend(), x)?;
    gate_forward_shared(ctx, &s.fc, GateFn::HardSigmoid, x, &avg)
}

/// Backward of [`ese_forward`].
pub fn ese_backward<B: Backend<f32>>(
    ctx: &mut Bwd<B>,
    s: &EseSpec,
    c: &GateCache<f32, B>,
    dy: &Feat<f32, B>,
) -> Result<Feat<f32, B>> {
    let (mut dx, davg) = gate_backward(ctx, &s.fc, GateFn::HardSigmoid, c, dy)?;
    ops::global_avg_pool_backward(ctx.backend(), &mut dx, &davg)?;
    Ok(dx)
}
