//! ConvBNLayer forward and backward: conv (no bias) → BN → optional swish (BN and swish fused).

use std::sync::Arc;

use ringdet_kernels::backend::{Backend, Buffers};
use ringdet_kernels::{Cpu, Real};

use super::ctx::{Bwd, Fwd};
use super::feat::Feat;
use super::norm::{self, BnBackwardInputs};
use super::ops;
use crate::arch::{Act, ConvBnSpec};
use crate::error::{DetectError, Result};

/// What the backward of one ConvBN needs (empty in eval). The input is shared, not copied,
/// when the caller hands it over as an `Arc` ([`forward_shared`]): sibling convs reading the
/// same map, or a map nothing else keeps, then cost no copy.
pub struct ConvBnCache<T: Real = f32, B: Buffers<T> = Cpu> {
    x: Option<Arc<Feat<T, B>>>,
    conv: Option<Feat<T, B>>,
    saved: Option<Feat<T, B>>,
}

impl<T: Real, B: Buffers<T>> Default for ConvBnCache<T, B> {
    fn default() -> Self {
        Self {
            x: None,
            conv: None,
            saved: None,
        }
    }
}

/// Forward; in training keeps the cache (with a copy of `x`).
pub fn forward<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &ConvBnSpec,
    x: &Feat<T, B>,
) -> Result<(Feat<T, B>, ConvBnCache<T, B>)> {
    let be = ctx.backend();
    forward_impl(ctx, s, x, || Ok(Arc::new(x.copy_on(be)?)))
}

/// [`forward`] on a shared input: the cache keeps another reference to `x`, not a copy.
pub fn forward_shared<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &ConvBnSpec,
    x: &Arc<Feat<T, B>>,
) -> Result<(Feat<T, B>, ConvBnCache<T, B>)> {
    forward_impl(ctx, s, x, || Ok(Arc::clone(x)))
}

fn forward_impl<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &ConvBnSpec,
    x: &Feat<T, B>,
    keep: impl FnOnce() -> Result<Arc<Feat<T, B>>>,
) -> Result<(Feat<T, B>, ConvBnCache<T, B>)> {
    let be = ctx.backend();
    let n = &s.name;
    let w = ctx.param(&format!("{n}.conv.weight"))?;
    let conv = ops::conv2d(be, x, w, None, s.cout, s.kernel, s.stride)?;
    let gamma = ctx.param(&format!("{n}.bn.weight"))?;
    let beta = ctx.param(&format!("{n}.bn.bias"))?;
    let bn_name = format!("{n}.bn");
    let silu = matches!(s.act, Act::Swish);
    let train = ctx.training();
    // BN and the SiLU after it run fused: one pass, no stored pre-activation.
    let (y, saved) = if train {
        let (mean, var, replicas) = ctx.running_mut(&bn_name)?.ok_or_else(|| {
            DetectError::Input(format!(
                "{bn_name}: no writable running statistics in training"
            ))
        })?;
        let bn = if silu {
            norm::bn_silu_train
        } else {
            norm::bn_train
        };
        let (y, saved) = bn(be, &conv, gamma, beta, (mean, var), replicas)?;
        (y, Some(saved))
    } else {
        let (mean, var) = ctx.running(&bn_name)?;
        let y = if silu {
            norm::bn_silu_eval(be, &conv, [gamma, beta, mean, var])?
        } else {
            norm::bn_eval(be, &conv, [gamma, beta, mean, var])?
        };
        (y, None)
    };
    let cache = if train {
        ConvBnCache {
            x: Some(keep()?),
            conv: Some(conv),
            saved,
        }
    } else {
        ConvBnCache::default()
    };
    Ok((y, cache))
}

/// Backward from the gradient of the output; returns the input gradient when `want_dx`.
pub fn backward<B: Backend<f32>>(
    ctx: &mut Bwd<B>,
    s: &ConvBnSpec,
    cache: &ConvBnCache<f32, B>,
    dy: &Feat<f32, B>,
    want_dx: bool,
) -> Result<Option<Feat<f32, B>>> {
    let be = ctx.backend();
    let (Some(x), Some(conv), Some(saved)) = (&cache.x, &cache.conv, &cache.saved) else {
        return Err(DetectError::Input(format!(
            "{}: backward without a training forward",
            s.name
        )));
    };
    let n = &s.name;
    let mut dgamma = Feat::vector_on(be, s.cout)?;
    let mut dbeta = Feat::vector_on(be, s.cout)?;
    let silu_beta = match s.act {
        Act::Swish => Some(ctx.param(&format!("{n}.bn.bias"))?),
        Act::Identity => None,
    };
    let inputs = BnBackwardInputs {
        x: conv,
        saved,
        gamma: ctx.param(&format!("{n}.bn.weight"))?,
        silu_beta,
    };
    let d_conv = norm::train_backward(
        be,
        dy,
        inputs,
        (B::view_mut(&mut dgamma.data), B::view_mut(&mut dbeta.data)),
        ctx.replicas,
    )?;
    ctx.add_grad(&format!("{n}.bn.weight"), &dgamma.data)?;
    ctx.add_grad(&format!("{n}.bn.bias"), &dbeta.data)?;
    let w = ctx.param(&format!("{n}.conv.weight"))?;
    let conv_w = format!("{n}.conv.weight");
    let dw = ctx.grad(&conv_w)?;
    let dx = ops::conv2d_backward(be, &d_conv, x, w, dw, None, s.kernel, s.stride, want_dx)?;
    ctx.release(&[&conv_w, &format!("{n}.bn.weight"), &format!("{n}.bn.bias")])?;
    Ok(dx)
}
