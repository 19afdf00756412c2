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
    let mut y = x.scratch_like();
    be.batchnorm_forward_inference(
        B::host_mut(&mut y.data),
        B::host(&x.data),
        B::host(gamma),
        B::host(beta),
        B::host(mean),
        B::host(var),
        &params(x),
    )
    .map_err(k("batchnorm_forward_inference"))?;
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
    be.batchnorm_forward_train(
        B::host_mut(&mut y.data),
        B::host_mut(&mut saved),
        B::host_mut(running_mean),
        B::host_mut(running_var),
        B::host(&x.data),
        B::host(gamma),
        B::host(beta),
        B::host(&stats),
        1,
        &p,
    )
    .map_err(k("batchnorm_forward_train"))?;
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
    let p = params(x);
    let mut local = vec![0.0f32; 2 * x.c];
    be.batchnorm_stats_backward(
        B::host_mut(&mut local),
        B::host(&dy.data),
        B::host(&x.data),
        B::host(saved),
        &p,
    )
    .map_err(k("batchnorm_stats_backward"))?;
    let mut global = local.clone();
    replicas.all_reduce_sum(&mut global)?;
    let count = p.count() * replicas.world_size().max(1);
    let mut dx = x.zeros_like();
    be.batchnorm_backward(
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
    .map_err(k("batchnorm_backward"))?;
    Ok(dx)
}
