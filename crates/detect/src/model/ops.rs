//! Thin wrappers over the CPU kernels of `ringdet-kernels`: shapes from [`Feat`]s, errors mapped to
//! [`DetectError`]. Every backward accumulates (`+=`) like the kernels.

use ringdet_kernels::activation::cpu as act;
use ringdet_kernels::concat::{ConcatParams, cpu as cat};
use ringdet_kernels::conv::{Conv2dParams, cpu as conv};
use ringdet_kernels::elementwise::{BroadcastParams, cpu as ew};
use ringdet_kernels::pool::{PoolParams, cpu as pool};
use ringdet_kernels::resize::{UpsampleParams, cpu as resize};
use ringdet_kernels::{KernelError, Real};

use super::feat::Feat;
use crate::error::{DetectError, Result};

fn k(op: &'static str) -> impl Fn(KernelError) -> DetectError {
    move |e| DetectError::Kernel {
        op,
        message: e.to_string(),
    }
}

/// Conv geometry for an input.
pub fn conv_params<T: Real>(
    x: &Feat<T>,
    cout: usize,
    kernel: usize,
    stride: usize,
) -> Conv2dParams {
    Conv2dParams::square(x.n, x.c, cout, x.h, x.w, kernel, stride, kernel / 2)
}

/// `conv(x, w) + b`.
pub fn conv2d<T: Real>(
    x: &Feat<T>,
    w: &[T],
    b: Option<&[T]>,
    cout: usize,
    kernel: usize,
    stride: usize,
) -> Result<Feat<T>> {
    let p = conv_params(x, cout, kernel, stride);
    let mut y = Feat::zeros(x.n, cout, p.out_h(), p.out_w());
    let mut ws = vec![T::ZERO; p.workspace_len()];
    conv::conv2d_forward(&mut y.data, &mut ws, &x.data, w, b, &p).map_err(k("conv2d_forward"))?;
    Ok(y)
}

/// Conv backward: `dw += …`, `db += …`, and `dx` when asked.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    dy: &Feat,
    x: &Feat,
    w: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    kernel: usize,
    stride: usize,
    want_dx: bool,
) -> Result<Option<Feat>> {
    let p = conv_params(x, dy.c, kernel, stride);
    let mut ws = vec![0.0f32; p.workspace_len()];
    conv::conv2d_backward_filter(dw, db, &mut ws, &dy.data, &x.data, &p)
        .map_err(k("conv2d_backward_filter"))?;
    if !want_dx {
        return Ok(None);
    }
    let mut dx = x.zeros_like();
    conv::conv2d_backward_data(&mut dx.data, &mut ws, &dy.data, w, &p)
        .map_err(k("conv2d_backward_data"))?;
    Ok(Some(dx))
}

/// Swish / SiLU.
pub fn silu<T: Real>(x: &Feat<T>) -> Result<Feat<T>> {
    let mut y = x.zeros_like();
    act::silu_forward(&mut y.data, &x.data).map_err(k("silu_forward"))?;
    Ok(y)
}

/// `dx += silu'(x)·dy`.
pub fn silu_backward(dx: &mut Feat, dy: &Feat, x: &Feat) -> Result<()> {
    act::silu_backward(&mut dx.data, &dy.data, &x.data).map_err(k("silu_backward"))
}

/// Sigmoid of a slice.
pub fn sigmoid<T: Real>(x: &[T]) -> Result<Vec<T>> {
    let mut y = vec![T::ZERO; x.len()];
    act::sigmoid_forward(&mut y, x).map_err(k("sigmoid_forward"))?;
    Ok(y)
}

/// `dx += y(1 − y)·dy`.
pub fn sigmoid_backward(dx: &mut [f32], dy: &[f32], y: &[f32]) -> Result<()> {
    act::sigmoid_backward(dx, dy, y).map_err(k("sigmoid_backward"))
}

/// Paddle hardsigmoid of a slice.
pub fn hardsigmoid<T: Real>(x: &[T]) -> Result<Vec<T>> {
    let mut y = vec![T::ZERO; x.len()];
    act::hardsigmoid_forward(&mut y, x).map_err(k("hardsigmoid_forward"))?;
    Ok(y)
}

/// `dx += hardsigmoid'·dy` (read from the output).
pub fn hardsigmoid_backward(dx: &mut [f32], dy: &[f32], y: &[f32]) -> Result<()> {
    act::hardsigmoid_backward(dx, dy, y).map_err(k("hardsigmoid_backward"))
}

fn pool_params<T: Real>(x: &Feat<T>, kernel: usize) -> PoolParams {
    PoolParams {
        batch: x.n,
        channels: x.c,
        h: x.h,
        w: x.w,
        kernel,
    }
}

/// Mean over H·W: `[n, c, 1, 1]`.
pub fn global_avg_pool<T: Real>(x: &Feat<T>) -> Result<Feat<T>> {
    let mut y = Feat::zeros(x.n, x.c, 1, 1);
    pool::global_avg_pool_forward(&mut y.data, &x.data, &pool_params(x, 1))
        .map_err(k("global_avg_pool_forward"))?;
    Ok(y)
}

/// `dx += dy / (H·W)` broadcast.
pub fn global_avg_pool_backward(dx: &mut Feat, dy: &Feat) -> Result<()> {
    let p = pool_params(dx, 1);
    pool::global_avg_pool_backward(&mut dx.data, &dy.data, &p)
        .map_err(k("global_avg_pool_backward"))
}

/// Max pool `k×k`, stride 1, padding `k/2`.
pub fn max_pool<T: Real>(x: &Feat<T>, kernel: usize) -> Result<Feat<T>> {
    let mut y = x.zeros_like();
    let mut ws = vec![T::ZERO; x.data.len()];
    pool::max_pool_forward(&mut y.data, &mut ws, &x.data, &pool_params(x, kernel))
        .map_err(k("max_pool_forward"))?;
    Ok(y)
}

/// `dx +=` the max-pool gradient.
pub fn max_pool_backward(
    dx: &mut Feat,
    dy: &Feat,
    x: &Feat,
    y: &Feat,
    kernel: usize,
) -> Result<()> {
    let p = pool_params(x, kernel);
    pool::max_pool_backward(&mut dx.data, &dy.data, &x.data, &y.data, &p)
        .map_err(k("max_pool_backward"))
}

/// Nearest ×2 upsample.
pub fn upsample2x<T: Real>(x: &Feat<T>) -> Result<Feat<T>> {
    let mut y = Feat::zeros(x.n, x.c, x.h * 2, x.w * 2);
    let p = UpsampleParams {
        batch: x.n,
        channels: x.c,
        h: x.h,
        w: x.w,
    };
    resize::upsample_nearest2x_forward(&mut y.data, &x.data, &p)
        .map_err(k("upsample_nearest2x_forward"))?;
    Ok(y)
}

/// `dx +=` sums of 2×2 blocks of `dy`.
pub fn upsample2x_backward(dx: &mut Feat, dy: &Feat) -> Result<()> {
    let p = UpsampleParams {
        batch: dx.n,
        channels: dx.c,
        h: dx.h,
        w: dx.w,
    };
    resize::upsample_nearest2x_backward(&mut dx.data, &dy.data, &p)
        .map_err(k("upsample_nearest2x_backward"))
}

/// Channel concat of maps of equal n, h, w.
pub fn concat<T: Real>(xs: &[&Feat<T>]) -> Result<Feat<T>> {
    let f = xs[0];
    let channels: Vec<usize> = xs.iter().map(|x| x.c).collect();
    let mut y = Feat::zeros(f.n, channels.iter().sum(), f.h, f.w);
    let slices: Vec<&[T]> = xs.iter().map(|x| x.data.as_slice()).collect();
    let p = ConcatParams {
        batch: f.n,
        spatial: f.hw(),
        channels: &channels,
    };
    cat::concat_channels_forward(&mut y.data, &slices, &p).map_err(k("concat_channels_forward"))?;
    Ok(y)
}

/// Split the gradient of a concat into fresh parts of the given channel counts.
pub fn concat_backward(dy: &Feat, channels: &[usize]) -> Result<Vec<Feat>> {
    let mut parts: Vec<Feat> = channels
        .iter()
        .map(|&c| Feat::zeros(dy.n, c, dy.h, dy.w))
        .collect();
    let mut refs: Vec<&mut [f32]> = parts.iter_mut().map(|p| p.data.as_mut_slice()).collect();
    let p = ConcatParams {
        batch: dy.n,
        spatial: dy.hw(),
        channels,
    };
    cat::concat_channels_backward(&mut refs, &dy.data, &p)
        .map_err(k("concat_channels_backward"))?;
    Ok(parts)
}

/// `x · s` with `s` `[n, c, 1, 1]` broadcast over H·W.
pub fn mul_channel<T: Real>(x: &Feat<T>, s: &Feat<T>) -> Result<Feat<T>> {
    let mut y = x.zeros_like();
    let p = BroadcastParams {
        a: x.shape(),
        b: s.shape(),
    };
    ew::mul_forward(&mut y.data, &x.data, &s.data, &p).map_err(k("mul_forward"))?;
    Ok(y)
}

/// Gradients of [`mul_channel`]: `dx += dy·s`, `ds += Σ_hw dy·x`.
pub fn mul_channel_backward(
    dx: &mut Feat,
    ds: &mut Feat,
    dy: &Feat,
    x: &Feat,
    s: &Feat,
) -> Result<()> {
    let p = BroadcastParams {
        a: x.shape(),
        b: s.shape(),
    };
    ew::mul_backward(
        Some(&mut dx.data),
        Some(&mut ds.data),
        &dy.data,
        &x.data,
        &s.data,
        &p,
    )
    .map_err(k("mul_backward"))
}
