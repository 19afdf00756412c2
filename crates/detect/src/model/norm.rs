//! BatchNorm through the kernels: eval with running statistics; training with batch statistics
//! combined across replicas (SyncBN: per-rank means averaged with equal weight, as Paddle's 2022
//! SyncBatchNorm does), biased variance, running stats updated with momentum 0.9. On a device the
//! per-channel sums make one trip to the host and back for the cross-replica step (2·C values).

use ringdet_kernels::Real;
use ringdet_kernels::backend::{Backend, Buffers};
use ringdet_kernels::batchnorm::BatchNormParams;

use super::feat::Feat;
use crate::cross_replica::{CrossReplica, all_reduce_mean_real};
use crate::error::{Result, kernel_error};

fn params<T: Real, B: Buffers<T>>(x: &Feat<T, B>) -> BatchNormParams {
    BatchNormParams::new(x.n, x.c, x.hw())
}

/// A device with no other replica: the cross-replica steps are identities, so the per-channel
/// sums need not visit the host (on the host backend they cost nothing either way, and the
/// reference keeps its order of operations).
fn device_alone<T: Real, B: Buffers<T>>(replicas: &dyn CrossReplica) -> bool {
    !B::HOST_MEMORY && replicas.world_size() <= 1
}

/// A BN's four per-channel vectors: γ, β and the running mean and variance.
pub type BnVectors<'v, T, B> = [<B as Buffers<T>>::View<'v>; 4];

/// `y = γ (x − μ_run) / sqrt(σ²_run + eps) + β`.
pub fn bn_eval<T: Real, B: Backend<T>>(
    be: &B,
    x: &Feat<T, B>,
    [gamma, beta, mean, var]: BnVectors<'_, T, B>,
) -> Result<Feat<T, B>> {
    eval_impl(be, x, [gamma, beta, mean, var], false)
}

/// `silu(bn_eval(x))` in one fused pass.
pub fn bn_silu_eval<T: Real, B: Backend<T>>(
    be: &B,
    x: &Feat<T, B>,
    v: BnVectors<'_, T, B>,
) -> Result<Feat<T, B>> {
    eval_impl(be, x, v, true)
}

fn eval_impl<T: Real, B: Backend<T>>(
    be: &B,
    x: &Feat<T, B>,
    [gamma, beta, mean, var]: BnVectors<'_, T, B>,
    silu: bool,
) -> Result<Feat<T, B>> {
    let mut y = x.scratch_like_on(be)?;
    let p = params(x);
    let (yv, xv) = (B::view_mut(&mut y.data), B::view(&x.data));
    if silu {
        be.batchnorm_silu_forward_inference(yv, xv, gamma, beta, mean, var, &p)
            .map_err(kernel_error("batchnorm_silu_forward_inference"))?;
    } else {
        be.batchnorm_forward_inference(yv, xv, gamma, beta, mean, var, &p)
            .map_err(kernel_error("batchnorm_forward_inference"))?;
    }
    Ok(y)
}

/// Training BN; returns the output and `saved` = (mean, inverse std) for the backward.
pub fn bn_train<T: Real, B: Backend<T>>(
    be: &B,
    x: &Feat<T, B>,
    gamma: B::View<'_>,
    beta: B::View<'_>,
    running: (B::ViewMut<'_>, B::ViewMut<'_>),
    replicas: &dyn CrossReplica,
) -> Result<(Feat<T, B>, Feat<T, B>)> {
    train_impl(be, x, gamma, beta, running, replicas, false)
}

/// `silu(bn_train(x))` with BN and SiLU fused in one pass (the pre-activation is not kept:
/// [`bn_silu_train_backward`] recomputes it).
pub fn bn_silu_train<T: Real, B: Backend<T>>(
    be: &B,
    x: &Feat<T, B>,
    gamma: B::View<'_>,
    beta: B::View<'_>,
    running: (B::ViewMut<'_>, B::ViewMut<'_>),
    replicas: &dyn CrossReplica,
) -> Result<(Feat<T, B>, Feat<T, B>)> {
    train_impl(be, x, gamma, beta, running, replicas, true)
}

fn train_impl<T: Real, B: Backend<T>>(
    be: &B,
    x: &Feat<T, B>,
    gamma: B::View<'_>,
    beta: B::View<'_>,
    (rm, rv): (B::ViewMut<'_>, B::ViewMut<'_>),
    replicas: &dyn CrossReplica,
    silu: bool,
) -> Result<(Feat<T, B>, Feat<T, B>)> {
    let p = params(x);
    let mut stats = Feat::vector_on(be, 2 * x.c)?;
    be.batchnorm_stats_forward(B::view_mut(&mut stats.data), B::view(&x.data), &p)
        .map_err(kernel_error("batchnorm_stats_forward"))?;
    // Local (Σx, Σx²) → local (E[x], E[x²]) → mean over ranks with equal weight; count 1.
    // A device alone keeps the sums where they are (no host round trip per BN): the kernel
    // divides by the count itself.
    let count = if device_alone::<T, B>(replicas) {
        p.count()
    } else {
        let n = T::from_usize(p.count());
        be.with_host_mut(&mut stats.data, |s| {
            s.iter_mut().for_each(|v| *v /= n);
            all_reduce_mean_real(replicas, s)
        })
        .map_err(kernel_error("batch statistics to the host"))??;
        1
    };
    let mut y = x.scratch_like_on(be)?;
    let mut saved = Feat::vector_on(be, 2 * x.c)?;
    let (yv, sv) = (B::view_mut(&mut y.data), B::view_mut(&mut saved.data));
    let (xv, st) = (B::view(&x.data), B::view(&stats.data));
    if silu {
        be.batchnorm_silu_forward_train(yv, sv, rm, rv, xv, gamma, beta, st, count, &p)
            .map_err(kernel_error("batchnorm_silu_forward_train"))?;
    } else {
        be.batchnorm_forward_train(yv, sv, rm, rv, xv, gamma, beta, st, count, &p)
            .map_err(kernel_error("batchnorm_forward_train"))?;
    }
    Ok((y, saved))
}

/// What the training backward of one BN reads: its input, the `saved` (mean, inverse std) of
/// the forward, γ, and β when a fused SiLU follows (the fused ops recompute the pre-activation
/// from it).
pub struct BnBackwardInputs<'c, 'v, B: Buffers<f32>> {
    /// The BN's input (the conv output).
    pub x: &'c Feat<f32, B>,
    /// `saved` of the training forward.
    pub saved: &'c Feat<f32, B>,
    /// γ.
    pub gamma: B::View<'v>,
    /// β, when SiLU follows BN (fused).
    pub silu_beta: Option<B::View<'v>>,
}

/// Training BN backward (followed by SiLU when `inputs.silu_beta` holds β): `dγ += …`,
/// `dβ += …`, returns `dx`. The statistics gradient is summed across replicas; each rank's
/// elements weigh `1 / (world · local count)` in the equal-weight mean.
pub fn train_backward<B: Backend<f32>>(
    be: &B,
    dy: &Feat<f32, B>,
    inputs: BnBackwardInputs<'_, '_, B>,
    (dgamma, dbeta): (B::ViewMut<'_>, B::ViewMut<'_>),
    replicas: &dyn CrossReplica,
) -> Result<Feat<f32, B>> {
    let BnBackwardInputs {
        x,
        saved,
        gamma,
        silu_beta,
    } = inputs;
    let p = params(x);
    let mut local = Feat::vector_on(be, 2 * x.c)?;
    // dx: overwritten by the finish, and before that (where the backend keeps it) holding
    // dz = dy·silu'(z) from the sums, so that the finish need not compute it again
    let mut dx = x.scratch_like_on(be)?;
    let (dyv, xv, sv) = (B::view(&dy.data), B::view(&x.data), B::view(&saved.data));
    let kept_dz = match &silu_beta {
        Some(beta) => be
            .batchnorm_silu_stats_backward_keep(
                B::view_mut(&mut local.data),
                B::view_mut(&mut dx.data),
                dyv,
                xv,
                sv,
                B::reborrow(&gamma),
                B::reborrow(beta),
                &p,
            )
            .map_err(kernel_error("batchnorm_silu_stats_backward"))?,
        None => {
            be.batchnorm_stats_backward(B::view_mut(&mut local.data), dyv, xv, sv, &p)
                .map_err(kernel_error("batchnorm_stats_backward"))?;
            false
        }
    };
    // The sums over every replica; a lone device's are its own (no copy, no host trip).
    let global = if device_alone::<f32, B>(replicas) {
        None
    } else {
        let mut g = local.copy_on(be)?;
        be.with_host_mut(&mut g.data, |g| replicas.all_reduce_sum(g))
            .map_err(kernel_error("statistics gradient to the host"))??;
        Some(g)
    };
    let count = p.count() * replicas.world_size().max(1);
    let (dxv, dyv, xv, sv) = (
        B::view_mut(&mut dx.data),
        B::view(&dy.data),
        B::view(&x.data),
        B::view(&saved.data),
    );
    let (lv, gv) = (
        B::view(&local.data),
        B::view(&global.as_ref().unwrap_or(&local).data),
    );
    match silu_beta {
        Some(_) if kept_dz => be
            .batchnorm_backward_in_place(dxv, dgamma, dbeta, xv, sv, gamma, lv, gv, count, &p)
            .map_err(kernel_error("batchnorm_backward_in_place"))?,
        Some(beta) => be
            .batchnorm_silu_backward(
                dxv, dgamma, dbeta, dyv, xv, sv, gamma, beta, lv, gv, count, &p,
            )
            .map_err(kernel_error("batchnorm_silu_backward"))?,
        None => be
            .batchnorm_backward(dxv, dgamma, dbeta, dyv, xv, sv, gamma, lv, gv, count, &p)
            .map_err(kernel_error("batchnorm_backward"))?,
    }
    Ok(dx)
}
