//! Activations on a CUDA device (kernels in `activation.cu`), f32, same contracts as [`super::cpu`].

use super::{HARDSIGMOID_OFFSET, HARDSIGMOID_SLOPE, same};
use crate::KernelError;
use crate::grid::{grid_1d, launch, ll};
use crate::runtime::{KernelRuntime, KernelSource};
use cudarc::driver::{CudaView, CudaViewMut};

/// The embedded `.cu` source of this module's kernels (compiled by NVRTC on first use).
pub static SOURCE: KernelSource = crate::kernel_source!("activation/activation.cu");

/// `y = x·sigmoid(x)`.
pub fn silu_forward(
    rt: &KernelRuntime,
    y: &mut CudaViewMut<'_, f32>,
    x: &CudaView<'_, f32>,
) -> Result<(), KernelError> {
    same("silu_forward", ["y", "x"], y.len(), x.len())?;
    let n = ll(x.len());
    launch!(rt, SOURCE, "silu_forward_f32", grid_1d(x.len()), y, x, &n)
}

/// `dx += dy·s·(1 + x·(1 − s))`, `s = sigmoid(x)`.
pub fn silu_backward(
    rt: &KernelRuntime,
    dx: &mut CudaViewMut<'_, f32>,
    dy: &CudaView<'_, f32>,
    x: &CudaView<'_, f32>,
) -> Result<(), KernelError> {
    same("silu_backward", ["dx", "dy"], dx.len(), dy.len())?;
    same("silu_backward", ["dx", "x"], dx.len(), x.len())?;
    let n = ll(x.len());
    launch!(
        rt,
        SOURCE,
        "silu_backward_f32",
        grid_1d(x.len()),
        dx,
        dy,
        x,
        &n
    )
}

/// `y = 1 / (1 + e^−x)`.
pub fn sigmoid_forward(
    rt: &KernelRuntime,
    y: &mut CudaViewMut<'_, f32>,
    x: &CudaView<'_, f32>,
) -> Result<(), KernelError> {
    same("sigmoid_forward", ["y", "x"], y.len(), x.len())?;
    let n = ll(x.len());
    launch!(
        rt,
        SOURCE,
        "sigmoid_forward_f32",
        grid_1d(x.len()),
        y,
        x,
        &n
    )
}

/// `dx += dy·y·(1 − y)`.
pub fn sigmoid_backward(
    rt: &KernelRuntime,
    dx: &mut CudaViewMut<'_, f32>,
    dy: &CudaView<'_, f32>,
    y: &CudaView<'_, f32>,
) -> Result<(), KernelError> {
    same("sigmoid_backward", ["dx", "dy"], dx.len(), dy.len())?;
    same("sigmoid_backward", ["dx", "y"], dx.len(), y.len())?;
    let n = ll(y.len());
    launch!(
        rt,
        SOURCE,
        "sigmoid_backward_f32",
        grid_1d(y.len()),
        dx,
        dy,
        y,
        &n
    )
}

/// `y = clip(slope·x + offset, 0, 1)` (Paddle's constants).
pub fn hardsigmoid_forward(
    rt: &KernelRuntime,
    y: &mut CudaViewMut<'_, f32>,
    x: &CudaView<'_, f32>,
) -> Result<(), KernelError> {
    same("hardsigmoid_forward", ["y", "x"], y.len(), x.len())?;
    let (n, a, b) = (
        ll(x.len()),
        HARDSIGMOID_SLOPE as f32,
        HARDSIGMOID_OFFSET as f32,
    );
    launch!(
        rt,
        SOURCE,
        "hardsigmoid_forward_f32",
        grid_1d(x.len()),
        y,
        x,
        &a,
        &b,
        &n
    )
}

/// `dx += dy·slope` where `0 < y < 1`.
pub fn hardsigmoid_backward(
    rt: &KernelRuntime,
    dx: &mut CudaViewMut<'_, f32>,
    dy: &CudaView<'_, f32>,
    y: &CudaView<'_, f32>,
) -> Result<(), KernelError> {
    same("hardsigmoid_backward", ["dx", "dy"], dx.len(), dy.len())?;
    same("hardsigmoid_backward", ["dx", "y"], dx.len(), y.len())?;
    let (n, a) = (ll(y.len()), HARDSIGMOID_SLOPE as f32);
    launch!(
        rt,
        SOURCE,
        "hardsigmoid_backward_f32",
        grid_1d(y.len()),
        dx,
        dy,
        y,
        &a,
        &n
    )
}
