//! Thin wrappers over the backend seam of `ringdet-kernels`: shapes from [`Feat`]s, errors
//! mapped to [`DetectError`]. Every op goes through a [`Backend`] (the host [`Cpu`] one or a
//! device's), on [`Feat`]s of that backend; every backward accumulates (`+=`) like the kernels.

use ringdet_kernels::Real;
use ringdet_kernels::backend::{Backend, Buffers};
use ringdet_kernels::concat::ConcatParams;
use ringdet_kernels::conv::Conv2dParams;
use ringdet_kernels::elementwise::BroadcastParams;
use ringdet_kernels::pool::PoolParams;
use ringdet_kernels::resize::UpsampleParams;

#[cfg(doc)]
use ringdet_kernels::Cpu;

use super::feat::Feat;
use crate::error::{DetectError, Result, kernel_error};

/// Conv geometry for an input.
pub fn conv_params<T: Real, B: Buffers<T>>(
    x: &Feat<T, B>,
    cout: usize,
    kernel: usize,
    stride: usize,
) -> Conv2dParams {
    Conv2dParams::square(x.n, x.c, cout, x.h, x.w, kernel, stride, kernel / 2)
}

/// `conv(x, w) + b`.
pub fn conv2d<T: Real, B: Backend<T>>(
    be: &B,
    x: &Feat<T, B>,
    w: B::View<'_>,
    b: Option<B::View<'_>>,
    cout: usize,
    kernel: usize,
    stride: usize,
) -> Result<Feat<T, B>> {
    let p = conv_params(x, cout, kernel, stride);
    let mut y = Feat::scratch_on(be, x.n, cout, p.out_h(), p.out_w())?;
    be.conv2d_forward(B::view_mut(&mut y.data), B::view(&x.data), w, b, &p)
        .map_err(kernel_error("conv2d_forward"))?;
    Ok(y)
}

/// Conv backward: `dw += …`, `db += …`, and a new `dx` when asked.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward<B: Backend<f32>>(
    be: &B,
    dy: &Feat<f32, B>,
    x: &Feat<f32, B>,
    w: B::View<'_>,
    dw: B::ViewMut<'_>,
    db: Option<B::ViewMut<'_>>,
    kernel: usize,
    stride: usize,
    want_dx: bool,
) -> Result<Option<Feat<f32, B>>> {
    let p = conv_params(x, dy.c, kernel, stride);
    be.conv2d_backward_filter(dw, db, B::view(&dy.data), B::view(&x.data), &p)
        .map_err(kernel_error("conv2d_backward_filter"))?;
    if !want_dx {
        return Ok(None);
    }
    // overwritten by the kernel: no zero fill
    let mut dx = x.scratch_like_on(be)?;
    be.conv2d_backward_data(B::view_mut(&mut dx.data), B::view(&dy.data), w, &p)
        .map_err(kernel_error("conv2d_backward_data"))?;
    Ok(Some(dx))
}

/// Swish / SiLU.
pub fn silu<T: Real, B: Backend<T>>(be: &B, x: &Feat<T, B>) -> Result<Feat<T, B>> {
    let mut y = x.scratch_like_on(be)?;
    be.silu_forward(B::view_mut(&mut y.data), B::view(&x.data))
        .map_err(kernel_error("silu_forward"))?;
    Ok(y)
}

/// `dx += silu'(x)·dy`.
pub fn silu_backward<B: Backend<f32>>(
    be: &B,
    dx: &mut Feat<f32, B>,
    dy: &Feat<f32, B>,
    x: &Feat<f32, B>,
) -> Result<()> {
    be.silu_backward(
        B::view_mut(&mut dx.data),
        B::view(&dy.data),
        B::view(&x.data),
    )
    .map_err(kernel_error("silu_backward"))
}

/// Sigmoid of a map.
pub fn sigmoid<T: Real, B: Backend<T>>(be: &B, x: &Feat<T, B>) -> Result<Feat<T, B>> {
    let mut y = x.scratch_like_on(be)?;
    be.sigmoid_forward(B::view_mut(&mut y.data), B::view(&x.data))
        .map_err(kernel_error("sigmoid_forward"))?;
    Ok(y)
}

/// `dx += y(1 − y)·dy`.
pub fn sigmoid_backward<B: Backend<f32>>(
    be: &B,
    dx: &mut Feat<f32, B>,
    dy: &Feat<f32, B>,
    y: &Feat<f32, B>,
) -> Result<()> {
    be.sigmoid_backward(
        B::view_mut(&mut dx.data),
        B::view(&dy.data),
        B::view(&y.data),
    )
    .map_err(kernel_error("sigmoid_backward"))
}

/// Paddle hardsigmoid of a map.
pub fn hardsigmoid<T: Real, B: Backend<T>>(be: &B, x: &Feat<T, B>) -> Result<Feat<T, B>> {
    let mut y = x.scratch_like_on(be)?;
    be.hardsigmoid_forward(B::view_mut(&mut y.data), B::view(&x.data))
        .map_err(kernel_error("hardsigmoid_forward"))?;
    Ok(y)
}

/// `dx += hardsigmoid'·dy` (read from the output).
pub fn hardsigmoid_backward<B: Backend<f32>>(
    be: &B,
    dx: &mut Feat<f32, B>,
    dy: &Feat<f32, B>,
    y: &Feat<f32, B>,
) -> Result<()> {
    be.hardsigmoid_backward(
        B::view_mut(&mut dx.data),
        B::view(&dy.data),
        B::view(&y.data),
    )
    .map_err(kernel_error("hardsigmoid_backward"))
}

fn pool_params<T: Real, B: Buffers<T>>(x: &Feat<T, B>, kernel: usize) -> PoolParams {
    PoolParams {
        batch: x.n,
        channels: x.c,
        h: x.h,
        w: x.w,
        kernel,
    }
}

/// Mean over H·W: `[n, c, 1, 1]`.
pub fn global_avg_pool<T: Real, B: Backend<T>>(be: &B, x: &Feat<T, B>) -> Result<Feat<T, B>> {
    let mut y = Feat::scratch_on(be, x.n, x.c, 1, 1)?;
    be.global_avg_pool_forward(
        B::view_mut(&mut y.data),
        B::view(&x.data),
        &pool_params(x, 1),
    )
    .map_err(kernel_error("global_avg_pool_forward"))?;
    Ok(y)
}

/// `dx += dy / (H·W)` broadcast.
pub fn global_avg_pool_backward<B: Backend<f32>>(
    be: &B,
    dx: &mut Feat<f32, B>,
    dy: &Feat<f32, B>,
) -> Result<()> {
    let p = pool_params(dx, 1);
    be.global_avg_pool_backward(B::view_mut(&mut dx.data), B::view(&dy.data), &p)
        .map_err(kernel_error("global_avg_pool_backward"))
}

/// Max pool `k×k`, stride 1, padding `k/2`.
pub fn max_pool<T: Real, B: Backend<T>>(
    be: &B,
    x: &Feat<T, B>,
    kernel: usize,
) -> Result<Feat<T, B>> {
    let mut y = x.scratch_like_on(be)?;
    be.max_pool_forward(
        B::view_mut(&mut y.data),
        B::view(&x.data),
        &pool_params(x, kernel),
    )
    .map_err(kernel_error("max_pool_forward"))?;
    Ok(y)
}

/// `dx +=` the max-pool gradient.
pub fn max_pool_backward<B: Backend<f32>>(
    be: &B,
    dx: &mut Feat<f32, B>,
    dy: &Feat<f32, B>,
    x: &Feat<f32, B>,
    y: &Feat<f32, B>,
    kernel: usize,
) -> Result<()> {
    let p = pool_params(x, kernel);
    be.max_pool_backward(
        B::view_mut(&mut dx.data),
        B::view(&dy.data),
        B::view(&x.data),
        B::view(&y.data),
        &p,
    )
    .map_err(kernel_error("max_pool_backward"))
}

fn upsample_params<T: Real, B: Buffers<T>>(x: &Feat<T, B>) -> UpsampleParams {
    UpsampleParams {
        batch: x.n,
        channels: x.c,
        h: x.h,
        w: x.w,
    }
}

/// Nearest ×2 upsample.
pub fn upsample2x<T: Real, B: Backend<T>>(be: &B, x: &Feat<T, B>) -> Result<Feat<T, B>> {
    let mut y = Feat::scratch_on(be, x.n, x.c, x.h * 2, x.w * 2)?;
    be.upsample_nearest2x_forward(
        B::view_mut(&mut y.data),
        B::view(&x.data),
        &upsample_params(x),
    )
    .map_err(kernel_error("upsample_nearest2x_forward"))?;
    Ok(y)
}

/// `dx +=` sums of 2×2 blocks of `dy`.
pub fn upsample2x_backward<B: Backend<f32>>(
    be: &B,
    dx: &mut Feat<f32, B>,
    dy: &Feat<f32, B>,
) -> Result<()> {
    let p = upsample_params(dx);
    be.upsample_nearest2x_backward(B::view_mut(&mut dx.data), B::view(&dy.data), &p)
        .map_err(kernel_error("upsample_nearest2x_backward"))
}

/// Channel concat of maps of equal n, h, w.
pub fn concat<T: Real, B: Backend<T>>(be: &B, xs: &[&Feat<T, B>]) -> Result<Feat<T, B>> {
    let Some(f) = xs.first() else {
        return Err(DetectError::Input("concat of no feature maps".into()));
    };
    let channels: Vec<usize> = xs.iter().map(|x| x.c).collect();
    let mut y = Feat::scratch_on(be, f.n, channels.iter().sum(), f.h, f.w)?;
    let parts = xs.iter().map(|x| B::view(&x.data)).collect();
    let p = ConcatParams {
        batch: f.n,
        spatial: f.hw(),
        channels: &channels,
    };
    be.concat_channels_forward(B::view_mut(&mut y.data), parts, &p)
        .map_err(kernel_error("concat_channels_forward"))?;
    Ok(y)
}

/// Split the gradient of a concat into fresh parts of the given channel counts.
pub fn concat_backward<B: Backend<f32>>(
    be: &B,
    dy: &Feat<f32, B>,
    channels: &[usize],
) -> Result<Vec<Feat<f32, B>>> {
    let mut parts: Vec<Feat<f32, B>> = channels
        .iter()
        .map(|&c| Feat::zeros_on(be, dy.n, c, dy.h, dy.w))
        .collect::<Result<_>>()?;
    let refs = parts.iter_mut().map(|p| B::view_mut(&mut p.data)).collect();
    let p = ConcatParams {
        batch: dy.n,
        spatial: dy.hw(),
        channels,
    };
    be.concat_channels_backward(refs, B::view(&dy.data), &p)
        .map_err(kernel_error("concat_channels_backward"))?;
    Ok(parts)
}

/// `x · s` with `s` `[n, c, 1, 1]` broadcast over H·W.
pub fn mul_channel<T: Real, B: Backend<T>>(
    be: &B,
    x: &Feat<T, B>,
    s: &Feat<T, B>,
) -> Result<Feat<T, B>> {
    let mut y = x.scratch_like_on(be)?;
    let p = BroadcastParams {
        a: x.shape(),
        b: s.shape(),
    };
    be.mul_forward(
        B::view_mut(&mut y.data),
        B::view(&x.data),
        B::view(&s.data),
        &p,
    )
    .map_err(kernel_error("mul_forward"))?;
    Ok(y)
}

/// Gradients of [`mul_channel`]: `dx += dy·s`, `ds += Σ_hw dy·x`.
pub fn mul_channel_backward<B: Backend<f32>>(
    be: &B,
    dx: &mut Feat<f32, B>,
    ds: &mut Feat<f32, B>,
    dy: &Feat<f32, B>,
    x: &Feat<f32, B>,
    s: &Feat<f32, B>,
) -> Result<()> {
    let p = BroadcastParams {
        a: x.shape(),
        b: s.shape(),
    };
    be.mul_backward(
        Some(B::view_mut(&mut dx.data)),
        Some(B::view_mut(&mut ds.data)),
        B::view(&dy.data),
        B::view(&x.data),
        B::view(&s.data),
        &p,
    )
    .map_err(kernel_error("mul_backward"))
}
