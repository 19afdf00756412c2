//! BatchNorm through the kernels: eval with running statistics; training with batch statistics
//! combined across replicas (SyncBN: per-rank means averaged with equal weight, as Paddle's 2022
//! SyncBatchNorm does), biased variance, running stats updated with momentum 0.9.

use ringdet_kernels::backend::HostBackend;
use ringdet_kernels::batchnorm::BatchNormParams;
use ringdet_kernels::{KernelError, Real};

use super::feat::Feat;
use crate::cross_replica::{CrossReplica, all_reduce_mean_real};
use crate::error::{DetectError, Result};

fn k(op: &'static str) -> impl Fn(KernelError) -> DetectError {
    move |e| DetectError::Kernel {
        op,
        message: e.to_string(),
    }
}

fn params<T: Real>(x: &Feat<T>) -> BatchNormParams {
    BatchNormParams::new(x.n, x.c, x.hw())
}

/// `y = γ (x − μ_run) / sqrt(σ²_run + eps) + β`.
pub fn bn_eval<T: Real, B: HostBackend<T>>(
    be: &B,
    x: &Feat<T>,
    gamma: &[T],
    beta: &[T],
    mean: &[T],
    var: &[T],
) -> Result<Feat<T>> {
    eval_impl(be, x, [gamma, beta, mean, var], false)
}

/// `silu(bn_eval(x))` in one fused pass.
pub fn bn_silu_eval<T: Real, B: HostBackend<T>>(
    be: &B,
    x: &Feat<T>,
    gamma: &[T],
    beta: &[T],
    mean: &[T],
    var: &[T],
) -> Result<Feat<T>> {
    eval_impl(be, x, [gamma, beta, mean, var], true)
}

fn eval_impl<T: Real, B: HostBackend<T>>(
    be: &B,
    x: &Feat<T>,
    [gamma, beta, mean, var]: [&[T]; 4],
    silu: bool,
) -> Result<Feat<T>> {
    let mut y = x.scratch_like();
    {
        let args = (
            B::host_mut(&mut y.data),
            B::host(&x.data),
            B::host(gamma),
            B::host(beta),
            B::host(mean),
            B::host(var),
        );
        let p = params(x);
        if silu {
            be.batchnorm_silu_forward_inference(args.0, args.1, args.2, args.3, args.4, args.5, &p)
                .map_err(k("batchnorm_silu_forward_inference"))?;
        } else {
            be.batchnorm_forward_inference(args.0, args.1, args.2, args.3, args.4, args.5, &p)
                .map_err(k("batchnorm_forward_inference"))?;
        }
    }
    Ok(y)
}

/// Training BN; returns the output and `saved` = (mean, inverse std) for the backward.
pub fn bn_train<T: Real, B: HostBackend<T>>(
    be: &B,
    x: &Feat<T>,
    gamma: &[T],
    beta: &[T],
    running_mean: &mut [T],
    running_var: &mut [T],
    replicas: &dyn CrossReplica,
) -> Result<(Feat<T>, Vec<T>)> {
    train_impl(
        be,
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        replicas,
        false,
    )
}

/// `silu(bn_train(x))` with BN and SiLU fused in one pass (the pre-activation is not kept:
/// [`bn_silu_train_backward`] recomputes it).
pub fn bn_silu_train<T: Real, B: HostBackend<T>>(
    be: &B,
    x: &Feat<T>,
    gamma: &[T],
    beta: &[T],
    running_mean: &mut [T],
    running_var: &mut [T],
    replicas: &dyn CrossReplica,
) -> Result<(Feat<T>, Vec<T>)> {
    train_impl(
        be,
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        replicas,
        true,
    )
}

#[allow(clippy::too_many_arguments)]
fn train_impl<T: Real, B: HostBackend<T>>(
    be: &B,
    x: &Feat<T>,
    gamma: &[T],
    beta: &[T],
    running_mean: &mut [T],
    running_var: &mut [T],
    replicas: &dyn CrossReplica,
    silu: bool,
) -> Result<(Feat<T>, Vec<T>)> {
    let p = params(x);
    let mut stats = vec![T::ZERO; 2 * x.c];
    be.batchnorm_stats_forward(B::host_mut(&mut stats), B::host(&x.data), &p)
        .map_err(k("batchnorm_stats_forward"))?;
    // Local (Σx, Σx²) → local (E[x], E[x²]) → mean over ranks with equal weight; count 1.
    let n = T::from_usize(p.count());
    stats.iter_mut().for_each(|v| *v /= n);
    all_reduce_mean_real(replicas, &mut stats)?;
    let mut y = x.scratch_like();
    let mut saved = vec![T::ZERO; 2 * x.c];
    let (yv, sv) = (B::host_mut(&mut y.data), B::host_mut(&mut saved));
    let (rm, rv) = (B::host_mut(running_mean), B::host_mut(running_var));
    let (xv, g, b, st) = (
        B::host(&x.data),
        B::host(gamma),
        B::host(beta),
        B::host(&stats),
    );
    if silu {
        be.batchnorm_silu_forward_train(yv, sv, rm, rv, xv, g, b, st, 1, &p)
            .map_err(k("batchnorm_silu_forward_train"))?;
    } else {
        be.batchnorm_forward_train(yv, sv, rm, rv, xv, g, b, st, 1, &p)
            .map_err(k("batchnorm_forward_train"))?;
    }
    Ok((y, saved))
}

/// Training BN backward: `dγ += …`, `dβ += …`, returns `dx`. The statistics gradient is summed across
/// replicas; each rank's elements weigh `1 / (world · local count)` in the equal-weight mean.
#[allow(clippy::too_many_arguments)]
pub fn bn_train_backward<B: HostBackend<f32>>(
    be: &B,
    dy: &Feat,
    x: &Feat,
    saved: &[f32],
    gamma: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    replicas: &dyn CrossReplica,
) -> Result<Feat> {
    train_backward(be, dy, x, saved, gamma, None, dgamma, dbeta, replicas)
}

/// Backward of [`bn_silu_train`] from the gradient of its output: the SiLU gradient and the BN
/// backward fused (one pass for the sums, one for `dx`); `dγ += …`, `dβ += …`, returns `dx`.
/// Replicas combine the sums as in [`bn_train_backward`].
#[allow(clippy::too_many_arguments)]
pub fn bn_silu_train_backward<B: HostBackend<f32>>(
    be: &B,
    dy: &Feat,
    x: &Feat,
    saved: &[f32],
    gamma: &[f32],
    beta: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    replicas: &dyn CrossReplica,
) -> Result<Feat> {
    train_backward(be, dy, x, saved, gamma, Some(beta), dgamma, dbeta, replicas)
}

/// The training backward of BN, followed by SiLU when `silu_beta` holds β (the fused ops
/// recompute the pre-activation from it): local sums, summed across replicas, then `dx`.
#[allow(clippy::too_many_arguments)]
fn train_backward<B: HostBackend<f32>>(
    be: &B,
    dy: &Feat,
    x: &Feat,
    saved: &[f32],
    gamma: &[f32],
    silu_beta: Option<&[f32]>,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    replicas: &dyn CrossReplica,
) -> Result<Feat> {
    let p = params(x);
    let mut local = vec![0.0f32; 2 * x.c];
    match silu_beta {
        Some(beta) => be
            .batchnorm_silu_stats_backward(
                B::host_mut(&mut local),
                B::host(&dy.data),
                B::host(&x.data),
                B::host(saved),
                B::host(gamma),
                B::host(beta),
                &p,
            )
            .map_err(k("batchnorm_silu_stats_backward"))?,
        None => be
            .batchnorm_stats_backward(
                B::host_mut(&mut local),
                B::host(&dy.data),
                B::host(&x.data),
                B::host(saved),
                &p,
            )
            .map_err(k("batchnorm_stats_backward"))?,
    }
    let mut global = local.clone();
    replicas.all_reduce_sum(&mut global)?;
    let count = p.count() * replicas.world_size().max(1);
    let mut dx = x.zeros_like();
    match silu_beta {
        Some(beta) => be
            .batchnorm_silu_backward(
                B::host_mut(&mut dx.data),
                B::host_mut(dgamma),
                B::host_mut(dbeta),
                B::host(&dy.data),
                B::host(&x.data),
                B::host(saved),
                B::host(gamma),
                B::host(beta),
                B::host(&local),
                B::host(&global),
                count,
                &p,
            )
            .map_err(k("batchnorm_silu_backward"))?,
        None => be
            .batchnorm_backward(
                B::host_mut(&mut dx.data),
                B::host_mut(dgamma),
                B::host_mut(dbeta),
                B::host(&dy.data),
                B::host(&x.data),
                B::host(saved),
                B::host(gamma),
                B::host(&local),
                B::host(&global),
                count,
                &p,
            )
            .map_err(k("batchnorm_backward"))?,
    }
    Ok(dx)
}
