//! Nearest ×2 upsampling on a CUDA device (kernels in `resize.cu`), same contracts as
//! [`super::cpu`].

use super::{UpsampleParams, check_resize};
use crate::KernelError;
use crate::grid::{grid_1d, launch, ll};
use crate::runtime::{KernelRuntime, KernelSource};
use cudarc::driver::{CudaView, CudaViewMut};

/// The embedded `.cu` source of this module's kernels (compiled by NVRTC on first use).
pub static SOURCE: KernelSource = crate::kernel_source!("resize/resize.cu");

/// `y[.., 2i+a, 2j+b] = x[.., i, j]`.
pub fn upsample_nearest2x_forward(
    rt: &KernelRuntime,
    y: &mut CudaViewMut<'_, f32>,
    x: &CudaView<'_, f32>,
    p: &UpsampleParams,
) -> Result<(), KernelError> {
    const OP: &str = "upsample_nearest2x_forward";
    check_resize(OP, p, ("x", x.len()), ("y", y.len()))?;
    if y.is_empty() {
        return Ok(());
    }
    let (h, w, n) = (ll(p.h), ll(p.w), ll(y.len()));
    launch!(
        rt,
        SOURCE,
        "upsample2x_forward_f32",
        grid_1d(y.len()),
        y,
        x,
        &h,
        &w,
        &n
    )
}

/// `dx[.., i, j] += Σ of the 2×2 block of dy`.
pub fn upsample_nearest2x_backward(
    rt: &KernelRuntime,
    dx: &mut CudaViewMut<'_, f32>,
    dy: &CudaView<'_, f32>,
    p: &UpsampleParams,
) -> Result<(), KernelError> {
    const OP: &str = "upsample_nearest2x_backward";
    check_resize(OP, p, ("dx", dx.len()), ("dy", dy.len()))?;
    if dx.is_empty() {
        return Ok(());
    }
    let (h, w, n) = (ll(p.h), ll(p.w), ll(dx.len()));
    launch!(
        rt,
        SOURCE,
        "upsample2x_backward_f32",
        grid_1d(dx.len()),
        dx,
        dy,
        &h,
        &w,
        &n
    )
}
