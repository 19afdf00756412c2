//! CPU batch norm: per-channel sums in f64, parallel over channels. The `batchnorm_silu_*`
//! ops fuse the SiLU that follows most BNs of PP-YOLOE: one pass over memory where BN then SiLU
//! take two (three counting the backward's activation gradient), and no stored pre-activation.
//!
//! Buffers: `stats`/`dstats` `[2, C]`; `saved` `[2, C]` = (batch mean, 1/sqrt(var + eps)),
//! written by the training forward and read by the backward.

use rayon::prelude::*;

use crate::simd::widest;

use super::{
    BatchNormParams, check_backward, check_forward_inference, check_forward_train,
    check_stats_backward, check_stats_forward,
};
use crate::error::{KernelError, check_len};
use crate::real::Real;

/// Independent f64 accumulators of the per-channel sums: one running sum would chain every
/// addition on the previous one (latency-bound, not vectorised); sixteen lanes (two AVX-512
/// registers of f64, fed by one register of f32) are added at the end.
const LANES: usize = 16;

/// Elements per lane that the backward sums add in `T` before moving into their `f64`
/// accumulators: the `T` lanes run at the full SIMD width (sixteen `f32`s a register, where
/// converting every element to `f64` halved it), and a partial sum of 32 values loses at most
/// a few `f32` ulps before the `f64` carries it on.
const BLOCK: usize = LANES * 32;

/// `(Σ a, Σ a·(x − mean))` over one channel's planes of `(g, x)`, with `a = f(g, x)`: partial
/// sums in `T` over blocks of [`BLOCK`] elements, carried in `f64` between blocks. Where a plane
/// comes with an output, `a` is also written there (the fused backward keeps `dz` so that its
/// finish need not compute it again).
#[inline(always)]
fn backward_sums<'a, T: Real>(
    planes: impl Iterator<Item = (&'a [T], &'a [T], Option<&'a mut [T]>)>,
    mean: T,
    f: impl Fn(T, T) -> T,
) -> (f64, f64) {
    let (mut s64, mut sx64) = ([0.0f64; LANES], [0.0f64; LANES]);
    let mut block = [T::ZERO; BLOCK];
    for (gp, xp, mut kept) in planes {
        for (bi, (gb, xb)) in gp.chunks(BLOCK).zip(xp.chunks(BLOCK)).enumerate() {
            let a = &mut block[..gb.len()];
            for ((a, &g), &v) in a.iter_mut().zip(gb).zip(xb) {
                *a = f(g, v);
            }
            if let Some(k) = kept.as_deref_mut() {
                k[bi * BLOCK..bi * BLOCK + a.len()].copy_from_slice(a);
            }
            let (mut s, mut sx) = ([T::ZERO; LANES], [T::ZERO; LANES]);
            let (mut ai, mut xi) = (a.chunks_exact(LANES), xb.chunks_exact(LANES));
            for (ac, xc) in (&mut ai).zip(&mut xi) {
                for l in 0..LANES {
                    s[l] += ac[l];
                    sx[l] += ac[l] * (xc[l] - mean);
                }
            }
            for (l, (&a, &v)) in ai.remainder().iter().zip(xi.remainder()).enumerate() {
                s[l] += a;
                sx[l] += a * (v - mean);
            }
            for l in 0..LANES {
                s64[l] += s[l].to_f64();
                sx64[l] += sx[l].to_f64();
            }
        }
    }
    (s64.iter().sum(), sx64.iter().sum())
}

/// The `[H·W]` planes of channel `c`, image by image.
fn planes<'a, T>(x: &'a [T], c: usize, p: &BatchNormParams) -> impl Iterator<Item = &'a [T]> {
    let (channels, spatial) = (p.channels, p.spatial);
    (0..p.batch).map(move |n| {
        let o = (n * channels + c) * spatial;
        &x[o..o + spatial]
    })
}

/// This rank's per-channel `[Σx, Σx²]` into `stats` `[2, C]` (overwritten).
pub fn batchnorm_stats_forward<T: Real>(
    stats: &mut [T],
    x: &[T],
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_stats_forward";
    check_stats_forward(OP, p, stats.len(), x.len())?;
    let (sum, sq) = stats.split_at_mut(p.channels);
    sum.par_iter_mut()
        .zip(sq.par_iter_mut())
        .enumerate()
        .for_each(|(c, (sum_c, sq_c))| {
            widest(
                #[inline(always)]
                || {
                    let (mut s, mut q) = ([0.0f64; LANES], [0.0f64; LANES]);
                    for plane in planes(x, c, p) {
                        let mut it = plane.chunks_exact(LANES);
                        for ch in &mut it {
                            for l in 0..LANES {
                                let v = ch[l].to_f64();
                                s[l] += v;
                                q[l] += v * v;
                            }
                        }
                        for &v in it.remainder() {
                            let v = v.to_f64();
                            s[0] += v;
                            q[0] += v * v;
                        }
                    }
                    *sum_c = T::from_f64(s.iter().sum());
                    *sq_c = T::from_f64(q.iter().sum());
                },
            )
        });
    Ok(())
}

/// Training forward with the combined `stats` over `count` elements per channel:
/// writes `y`, `saved` (mean, inverse std) and updates `running_mean`/`running_var`
/// (biased batch variance, Paddle's momentum convention).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_forward_train<T: Real>(
    y: &mut [T],
    saved: &mut [T],
    running_mean: &mut [T],
    running_var: &mut [T],
    x: &[T],
    gamma: &[T],
    beta: &[T],
    stats: &[T],
    count: usize,
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_forward_train";
    let c = p.channels;
    check_forward_train(
        OP,
        p,
        [y.len(), saved.len(), running_mean.len(), running_var.len()],
        [x.len(), gamma.len(), beta.len(), stats.len()],
        count,
    )?;
    finish_stats(saved, running_mean, running_var, stats, count, p);
    let (mean, invstd) = saved.split_at(c);
    normalise(
        y,
        x,
        |ch| {
            let scale = gamma[ch] * invstd[ch];
            (scale, beta[ch] - mean[ch] * scale)
        },
        p,
    );
    Ok(())
}

/// `y = x·scale(c) + shift(c)`, parallel over planes.
fn normalise<T: Real>(
    y: &mut [T],
    x: &[T],
    coef: impl Fn(usize) -> (T, T) + Sync,
    p: &BatchNormParams,
) {
    y.par_chunks_mut(p.spatial.max(1))
        .zip(x.par_chunks(p.spatial.max(1)))
        .enumerate()
        .for_each(|(plane, (yo, xi))| {
            widest(
                #[inline(always)]
                || {
                    let (scale, shift) = coef(plane % p.channels);
                    for (o, &v) in yo.iter_mut().zip(xi) {
                        *o = v * scale + shift;
                    }
                },
            )
        });
}

/// Inference forward with the running statistics.
pub fn batchnorm_forward_inference<T: Real>(
    y: &mut [T],
    x: &[T],
    gamma: &[T],
    beta: &[T],
    running_mean: &[T],
    running_var: &[T],
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_forward_inference";
    check_forward_inference(
        OP,
        p,
        y.len(),
        [
            x.len(),
            gamma.len(),
            beta.len(),
            running_mean.len(),
            running_var.len(),
        ],
    )?;
    let eps = T::from_f64(p.eps);
    normalise(
        y,
        x,
        |ch| {
            let scale = gamma[ch] / (running_var[ch] + eps).sqrt();
            (scale, beta[ch] - running_mean[ch] * scale)
        },
        p,
    );
    Ok(())
}

/// This rank's per-channel `[Σdy, Σdy·x̂]` into `dstats` `[2, C]` (overwritten).
pub fn batchnorm_stats_backward<T: Real>(
    dstats: &mut [T],
    dy: &[T],
    x: &[T],
    saved: &[T],
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_stats_backward";
    let c = p.channels;
    check_stats_backward(OP, p, dstats.len(), [dy.len(), x.len(), saved.len()], &[])?;
    let (s_dy, s_dyx) = dstats.split_at_mut(c);
    s_dy.par_iter_mut()
        .zip(s_dyx.par_iter_mut())
        .enumerate()
        .for_each(|(ch, (out_s, out_sx))| {
            widest(
                #[inline(always)]
                || {
                    let (mean, invstd) = (saved[ch], saved[c + ch].to_f64());
                    let dy_x = planes(dy, ch, p).zip(planes(x, ch, p));
                    let (s, sx) = backward_sums(dy_x.map(|(g, v)| (g, v, None)), mean, |g, _| g);
                    *out_s = T::from_f64(s);
                    *out_sx = T::from_f64(sx * invstd);
                },
            )
        });
    Ok(())
}

/// Backward finish: `dgamma += local Σdy·x̂`, `dbeta += local Σdy`, and
/// `dx = γ·invstd·(dy − Σdy/M − x̂·Σdy·x̂/M)` with the combined sums over `count` = M elements.
/// `dx` is overwritten (its old values are never read: no zero fill, no read of it).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward<T: Real>(
    dx: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
    dy: &[T],
    x: &[T],
    saved: &[T],
    gamma: &[T],
    dstats_local: &[T],
    dstats: &[T],
    count: usize,
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    let stats = [saved, gamma, dstats_local, dstats];
    finish(
        "batchnorm_backward",
        dx,
        Some(dy),
        (dgamma, dbeta),
        x,
        stats,
        count,
        p,
    )
}

/// [`batchnorm_backward`] with `dy` read from `dx` itself, which it then overwrites: the finish
/// of the fused BN + SiLU backward after [`batchnorm_silu_stats_backward_keep`] left `dz` in
/// `dx` (the same result as [`batchnorm_silu_backward`], bit for bit, without computing the
/// SiLU derivative again).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward_in_place<T: Real>(
    dx: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
    x: &[T],
    saved: &[T],
    gamma: &[T],
    dstats_local: &[T],
    dstats: &[T],
    count: usize,
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    let stats = [saved, gamma, dstats_local, dstats];
    finish(
        "batchnorm_backward_in_place",
        dx,
        None,
        (dgamma, dbeta),
        x,
        stats,
        count,
        p,
    )
}

/// The body of [`batchnorm_backward`] (`dy` given) and [`batchnorm_backward_in_place`] (`dy`
/// in `dx`); `[saved, gamma, dstats_local, dstats]`.
#[allow(clippy::too_many_arguments)]
fn finish<T: Real>(
    op: &'static str,
    dx: &mut [T],
    dy: Option<&[T]>,
    (dgamma, dbeta): (&mut [T], &mut [T]),
    x: &[T],
    [saved, gamma, dstats_local, dstats]: [&[T]; 4],
    count: usize,
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    let c = p.channels;
    check_backward(
        op,
        p,
        [dx.len(), dy.map_or(dx.len(), <[T]>::len), x.len()],
        [saved.len(), dstats_local.len(), dstats.len()],
        &[
            ("dgamma", dgamma.len()),
            ("dbeta", dbeta.len()),
            ("gamma", gamma.len()),
        ],
        count,
    )?;
    for ch in 0..c {
        dbeta[ch] += dstats_local[ch];
        dgamma[ch] += dstats_local[c + ch];
    }
    let inv_m = T::from_f64(1.0 / count as f64);
    let s = p.spatial.max(1);
    let plane_finish = |plane: usize, dxp: &mut [T], dyp: Option<&[T]>, xp: &[T]| {
        widest(
            #[inline(always)]
            || {
                let ch = plane % c;
                let (mean, invstd) = (saved[ch], saved[c + ch]);
                let k = gamma[ch] * invstd;
                let mdy = dstats[ch] * inv_m;
                let mdyx = dstats[c + ch] * inv_m;
                let f = |g: T, v: T| k * (g - mdy - (v - mean) * invstd * mdyx);
                match dyp {
                    Some(dyp) => {
                        for ((d, &g), &v) in dxp.iter_mut().zip(dyp).zip(xp) {
                            *d = f(g, v);
                        }
                    }
                    None => {
                        for (d, &v) in dxp.iter_mut().zip(xp) {
                            *d = f(*d, v);
                        }
                    }
                }
            },
        )
    };
    match dy {
        Some(dy) => dx
            .par_chunks_mut(s)
            .zip(dy.par_chunks(s).zip(x.par_chunks(s)))
            .enumerate()
            .for_each(|(pl, (dxp, (dyp, xp)))| plane_finish(pl, dxp, Some(dyp), xp)),
        None => dx
            .par_chunks_mut(s)
            .zip(x.par_chunks(s))
            .enumerate()
            .for_each(|(pl, (dxp, xp))| plane_finish(pl, dxp, None, xp)),
    }
    Ok(())
}

use crate::activation::cpu::sigmoid;

/// `dy·silu'(z)`, with the SiLU backward kernel's operation order (so the fused ops round
/// exactly as the composition does).
#[inline]
fn silu_dz<T: Real>(g: T, z: T) -> T {
    let s = sigmoid(z);
    g * s * (T::ONE + z * (T::ONE - s))
}

/// Per-channel `(scale, shift)` of the training normalisation: `z = x·scale + shift`.
#[inline]
fn train_coef<T: Real>(ch: usize, c: usize, saved: &[T], gamma: &[T], beta: &[T]) -> (T, T) {
    let scale = gamma[ch] * saved[c + ch];
    (scale, beta[ch] - saved[ch] * scale)
}

/// Fused training forward `y = silu(BN(x))` in one pass over memory (the pre-activation is
/// never stored; the backward recomputes it). `saved` and the running statistics are updated
/// exactly as by [`batchnorm_forward_train`], and `y` equals that op followed by SiLU.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_silu_forward_train<T: Real>(
    y: &mut [T],
    saved: &mut [T],
    running_mean: &mut [T],
    running_var: &mut [T],
    x: &[T],
    gamma: &[T],
    beta: &[T],
    stats: &[T],
    count: usize,
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_silu_forward_train";
    let c = p.channels;
    check_forward_train(
        OP,
        p,
        [y.len(), saved.len(), running_mean.len(), running_var.len()],
        [x.len(), gamma.len(), beta.len(), stats.len()],
        count,
    )?;
    finish_stats(saved, running_mean, running_var, stats, count, p);
    let saved = &*saved;
    normalise_act(y, x, |ch| train_coef(ch, c, saved, gamma, beta), p);
    Ok(())
}

/// Fused eval forward `y = silu(BN(x))` with the running statistics, in one pass.
pub fn batchnorm_silu_forward_inference<T: Real>(
    y: &mut [T],
    x: &[T],
    gamma: &[T],
    beta: &[T],
    running_mean: &[T],
    running_var: &[T],
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_silu_forward_inference";
    check_forward_inference(
        OP,
        p,
        y.len(),
        [
            x.len(),
            gamma.len(),
            beta.len(),
            running_mean.len(),
            running_var.len(),
        ],
    )?;
    let eps = T::from_f64(p.eps);
    normalise_act(
        y,
        x,
        |ch| {
            let scale = gamma[ch] / (running_var[ch] + eps).sqrt();
            (scale, beta[ch] - running_mean[ch] * scale)
        },
        p,
    );
    Ok(())
}

/// `saved` = (mean, inverse std) from the combined sums; running statistics updated.
fn finish_stats<T: Real>(
    saved: &mut [T],
    running_mean: &mut [T],
    running_var: &mut [T],
    stats: &[T],
    count: usize,
    p: &BatchNormParams,
) {
    let (c, m) = (p.channels, p.momentum);
    let inv_count = 1.0 / count as f64;
    for ch in 0..c {
        let mean = stats[ch].to_f64() * inv_count;
        let var = (stats[c + ch].to_f64() * inv_count - mean * mean).max(0.0);
        saved[ch] = T::from_f64(mean);
        saved[c + ch] = T::from_f64(1.0 / (var + p.eps).sqrt());
        running_mean[ch] = T::from_f64(m * running_mean[ch].to_f64() + (1.0 - m) * mean);
        running_var[ch] = T::from_f64(m * running_var[ch].to_f64() + (1.0 - m) * var);
    }
}

/// `y = silu(x·scale(c) + shift(c))`, parallel over planes.
fn normalise_act<T: Real>(
    y: &mut [T],
    x: &[T],
    coef: impl Fn(usize) -> (T, T) + Sync,
    p: &BatchNormParams,
) {
    y.par_chunks_mut(p.spatial.max(1))
        .zip(x.par_chunks(p.spatial.max(1)))
        .enumerate()
        .for_each(|(plane, (yo, xi))| {
            widest(
                #[inline(always)]
                || {
                    let (scale, shift) = coef(plane % p.channels);
                    for (o, &v) in yo.iter_mut().zip(xi) {
                        let z = v * scale + shift;
                        *o = z * sigmoid(z);
                    }
                },
            )
        });
}

/// Fused backward sums: this rank's per-channel `[Σdz, Σdz·x̂]` with `dz = dy·silu'(z)` and the
/// pre-activation `z` recomputed from `x` and `saved` (overwrites `dstats`). Equals
/// [`batchnorm_stats_backward`] given the SiLU backward's `dz`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_silu_stats_backward<T: Real>(
    dstats: &mut [T],
    dy: &[T],
    x: &[T],
    saved: &[T],
    gamma: &[T],
    beta: &[T],
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    silu_stats_backward(
        "batchnorm_silu_stats_backward",
        dstats,
        None,
        dy,
        x,
        saved,
        gamma,
        beta,
        p,
    )
}

/// [`batchnorm_silu_stats_backward`] that also writes `dz = dy·silu'(z)` into `dz` (the same
/// values its sums add up), for [`batchnorm_backward_in_place`]: the SiLU derivative, an `exp`
/// per element, is then computed once instead of twice. The sums equal
/// [`batchnorm_silu_stats_backward`]'s bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_silu_stats_backward_keep<T: Real>(
    dstats: &mut [T],
    dz: &mut [T],
    dy: &[T],
    x: &[T],
    saved: &[T],
    gamma: &[T],
    beta: &[T],
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_silu_stats_backward_keep";
    check_len(OP, "dz", dz.len(), &[x.len()])?;
    silu_stats_backward(OP, dstats, Some(dz), dy, x, saved, gamma, beta, p)
}

#[allow(clippy::too_many_arguments)]
fn silu_stats_backward<T: Real>(
    op: &'static str,
    dstats: &mut [T],
    dz: Option<&mut [T]>,
    dy: &[T],
    x: &[T],
    saved: &[T],
    gamma: &[T],
    beta: &[T],
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    let c = p.channels;
    check_stats_backward(
        op,
        p,
        dstats.len(),
        [dy.len(), x.len(), saved.len()],
        &[("gamma", gamma.len()), ("beta", beta.len())],
    )?;
    let kept = dz.map(crate::par::Shared::new);
    let (s_dz, s_dzx) = dstats.split_at_mut(c);
    s_dz.par_iter_mut()
        .zip(s_dzx.par_iter_mut())
        .enumerate()
        .for_each(|(ch, (out_s, out_sx))| {
            widest(
                #[inline(always)]
                || {
                    let (scale, shift) = train_coef(ch, c, saved, gamma, beta);
                    let (mean, invstd) = (saved[ch], saved[c + ch].to_f64());
                    let dy_x = planes(dy, ch, p).zip(planes(x, ch, p)).enumerate();
                    let with_out = dy_x.map(|(n, (g, v))| {
                        let plane = (n * c + ch) * p.spatial;
                        // SAFETY: only this channel's task writes its planes of dz.
                        (g, v, kept.map(|k| unsafe { k.slice_mut(plane, p.spatial) }))
                    });
                    let (s, sx) =
                        backward_sums(with_out, mean, |g, v| silu_dz(g, v * scale + shift));
                    *out_s = T::from_f64(s);
                    *out_sx = T::from_f64(sx * invstd);
                },
            )
        });
    Ok(())
}

/// Fused backward finish: `dgamma += local Σdz·x̂`, `dbeta += local Σdz`, and
/// `dx = γ·invstd·(dz − Σdz/M − x̂·Σdz·x̂/M)` with `dz = dy·silu'(z)` recomputed, in one pass
/// (`dx` overwritten, as in [`batchnorm_backward`]).
/// Equals the SiLU backward followed by [`batchnorm_backward`].
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_silu_backward<T: Real>(
    dx: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
    dy: &[T],
    x: &[T],
    saved: &[T],
    gamma: &[T],
    beta: &[T],
    dstats_local: &[T],
    dstats: &[T],
    count: usize,
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_silu_backward";
    let c = p.channels;
    check_backward(
        OP,
        p,
        [dx.len(), dy.len(), x.len()],
        [saved.len(), dstats_local.len(), dstats.len()],
        &[
            ("dgamma", dgamma.len()),
            ("dbeta", dbeta.len()),
            ("gamma", gamma.len()),
            ("beta", beta.len()),
        ],
        count,
    )?;
    for ch in 0..c {
        dbeta[ch] += dstats_local[ch];
        dgamma[ch] += dstats_local[c + ch];
    }
    let inv_m = T::from_f64(1.0 / count as f64);
    let s = p.spatial.max(1);
    dx.par_chunks_mut(s)
        .zip(dy.par_chunks(s).zip(x.par_chunks(s)))
        .enumerate()
        .for_each(|(plane, (dxp, (dyp, xp)))| {
            widest(
                #[inline(always)]
                || {
                    let ch = plane % c;
                    let (scale, shift) = train_coef(ch, c, saved, gamma, beta);
                    let (mean, invstd) = (saved[ch], saved[c + ch]);
                    let k = gamma[ch] * invstd;
                    let mdz = dstats[ch] * inv_m;
                    let mdzx = dstats[c + ch] * inv_m;
                    for ((d, &g), &v) in dxp.iter_mut().zip(dyp).zip(xp) {
                        let dz = silu_dz(g, v * scale + shift);
                        let xhat = (v - mean) * invstd;
                        *d = k * (dz - mdz - xhat * mdzx);
                    }
                },
            )
        });
    Ok(())
}
