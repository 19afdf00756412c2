//! ConvBNLayer forward and backward: conv (no bias) → BN → optional swish (BN and swish fused).

use std::sync::Arc;

use ringdet_kernels::{HostBackend, Real};

use super::ctx::{Bwd, Fwd};
use super::feat::Feat;
use super::{norm, ops};
use crate::arch::{Act, ConvBnSpec};
use crate::error::Result;

/// What the backward of one ConvBN needs (empty in eval). The input is shared, not copied,
/// when the caller hands it over as an `Arc` ([`forward_shared`]): sibling convs reading the
/// same map, or a map nothing else keeps, then cost no copy.
#[derive(Debug, Default)]
pub struct ConvBnCache<T: Real = f32> {
    x: Option<Arc<Feat<T>>>,
    conv: Option<Feat<T>>,
    saved: Vec<T>,
}

/// Forward; in training keeps the cache (with a copy of `x`).
pub fn forward<T: Real, B: HostBackend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &ConvBnSpec,
    x: &Feat<T>,
) -> Result<(Feat<T>, ConvBnCache<T>)> {
    forward_impl(ctx, s, x, || Arc::new(x.clone()))
}

/// [`forward`] on a shared input: the cache keeps another reference to `x`, not a copy.
pub fn forward_shared<T: Real, B: HostBackend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &ConvBnSpec,
    x: &Arc<Feat<T>>,
) -> Result<(Feat<T>, ConvBnCache<T>)> {
    forward_impl(ctx, s, x, || Arc::clone(x))
}

fn forward_impl<T: Real, B: HostBackend<T>>(
    ctx: &mut Fwd<T, B>,
    s: &ConvBnSpec,
    x: &Feat<T>,
    keep: impl FnOnce() -> Arc<Feat<T>>,
) -> Result<(Feat<T>, ConvBnCache<T>)> {
    let be = ctx.backend();
    let n = &s.name;
    let w = ctx.param(&format!("{n}.conv.weight"))?;
    let conv = ops::conv2d(ctx.backend(), x, w, None, s.cout, s.kernel, s.stride)?;
    let gamma = ctx.param(&format!("{n}.bn.weight"))?;
    let beta = ctx.param(&format!("{n}.bn.bias"))?;
    let bn_name = format!("{n}.bn");
    let silu = matches!(s.act, Act::Swish);
    let train = ctx.training();
    // BN and the SiLU after it run fused: one pass, no stored pre-activation.
    let (y, saved) = match ctx.running_mut(&bn_name)? {
        Some((mean, var, replicas)) if silu => {
            norm::bn_silu_train(be, &conv, gamma, beta, mean, var, replicas)?
        }
        Some((mean, var, replicas)) => norm::bn_train(be, &conv, gamma, beta, mean, var, replicas)?,
        None => {
            let (mean, var) = ctx.running(&bn_name)?;
            let y = if silu {
                norm::bn_silu_eval(be, &conv, gamma, beta, mean, var)?
            } else {
                norm::bn_eval(be, &conv, gamma, beta, mean, var)?
            };
            (y, Vec::new())
        }
    };
    let cache = if train {
        ConvBnCache {
            x: Some(keep()),
            conv: Some(conv),
            saved,
        }
    } else {
        ConvBnCache::default()
    };
    Ok((y, cache))
}

/// Backward from the gradient of the output; returns the input gradient when `want_dx`.
pub fn backward<B: HostBackend<f32>>(
    ctx: &mut Bwd<B>,
    s: &ConvBnSpec,
    cache: &ConvBnCache,
    dy: &Feat,
    want_dx: bool,
) -> Result<Option<Feat>> {
    let be = ctx.backend();
    let (Some(x), Some(conv)) = (&cache.x, &cache.conv) else {
        return Err(crate::DetectError::Input(format!(
            "{}: backward without a training forward",
            s.name
        )));
    };
    let n = &s.name;
    let gamma = ctx.param(&format!("{n}.bn.weight"))?;
    let mut dgamma = vec![0.0f32; s.cout];
    let mut dbeta = vec![0.0f32; s.cout];
    let d_conv = match s.act {
        Act::Swish => {
            let beta = ctx.param(&format!("{n}.bn.bias"))?;
            norm::bn_silu_train_backward(
                be,
                dy,
                conv,
                &cache.saved,
                gamma,
                beta,
                &mut dgamma,
                &mut dbeta,
                ctx.replicas,
            )?
        }
        Act::Identity => norm::bn_train_backward(
            be,
            dy,
            conv,
            &cache.saved,
            gamma,
            &mut dgamma,
            &mut dbeta,
            ctx.replicas,
        )?,
    };
    ctx.add_grad(&format!("{n}.bn.weight"), &dgamma)?;
    ctx.add_grad(&format!("{n}.bn.bias"), &dbeta)?;
    let w = ctx.param(&format!("{n}.conv.weight"))?;
    let conv_w = format!("{n}.conv.weight");
    let dw = ctx.grad(&conv_w)?;
    let dx = ops::conv2d_backward(be, &d_conv, x, w, dw, None, s.kernel, s.stride, want_dx)?;
    ctx.release(&[&conv_w, &format!("{n}.bn.weight"), &format!("{n}.bn.bias")])?;
    Ok(dx)
}
