//! Channel concat/split on a CUDA device (kernel in `concat.cu`): one strided block copy per
//! part, same contracts as [`super::cpu`] (forward overwrites, backward accumulates).

use super::{ConcatParams, check_parts};
use crate::KernelError;
use crate::error::check_len;
use crate::grid::{grid_1d, launch, ll};
use crate::runtime::{KernelRuntime, KernelSource};
use cudarc::driver::{CudaView, CudaViewMut};

/// The embedded `.cu` source of this module's kernels (compiled by NVRTC on first use).
pub static SOURCE: KernelSource = crate::kernel_source!("concat/concat.cu");

/// Copies part `i` (offset `off` elements into each image of the whole) between a part and the
/// whole: `into_whole` picks the direction.
#[allow(clippy::too_many_arguments)]
fn copy(
    rt: &KernelRuntime,
    dst: &mut CudaViewMut<'_, f32>,
    src: &CudaView<'_, f32>,
    block: usize,
    off: usize,
    p: &ConcatParams,
    into_whole: bool,
    accumulate: bool,
) -> Result<(), KernelError> {
    if block == 0 || p.batch == 0 {
        return Ok(());
    }
    let whole = ll(p.total_channels() * p.spatial);
    let (rows, cols, part, off, zero) = (ll(p.batch), ll(block), ll(block), ll(off), 0i64);
    let acc = accumulate as i32;
    let cfg = grid_1d(p.batch * block);
    if into_whole {
        launch!(
            rt,
            SOURCE,
            "copy_block_f32",
            cfg,
            dst,
            src,
            &rows,
            &cols,
            &whole,
            &off,
            &part,
            &zero,
            &acc
        )
    } else {
        launch!(
            rt,
            SOURCE,
            "copy_block_f32",
            cfg,
            dst,
            src,
            &rows,
            &cols,
            &part,
            &zero,
            &whole,
            &off,
            &acc
        )
    }
}

/// `y = concat(xs, channel axis)`.
pub fn concat_channels_forward(
    rt: &KernelRuntime,
    y: &mut CudaViewMut<'_, f32>,
    xs: &[&CudaView<'_, f32>],
    p: &ConcatParams,
) -> Result<(), KernelError> {
    const OP: &str = "concat_channels_forward";
    check_parts(OP, "xs[i]", xs.iter().map(|x| x.len()), p)?;
    check_len(OP, "y", y.len(), &[p.batch, p.total_channels(), p.spatial])?;
    let mut off = 0;
    for (x, &c) in xs.iter().zip(p.channels) {
        copy(rt, y, x, c * p.spatial, off, p, true, false)?;
        off += c * p.spatial;
    }
    Ok(())
}

/// `dxs[i] += the channel block i of dy`.
pub fn concat_channels_backward(
    rt: &KernelRuntime,
    dxs: &mut [&mut CudaViewMut<'_, f32>],
    dy: &CudaView<'_, f32>,
    p: &ConcatParams,
) -> Result<(), KernelError> {
    const OP: &str = "concat_channels_backward";
    check_parts(OP, "dxs[i]", dxs.iter().map(|x| x.len()), p)?;
    check_len(
        OP,
        "dy",
        dy.len(),
        &[p.batch, p.total_channels(), p.spatial],
    )?;
    let mut off = 0;
    for (dx, &c) in dxs.iter_mut().zip(p.channels) {
        copy(rt, dx, dy, c * p.spatial, off, p, false, true)?;
        off += c * p.spatial;
    }
    Ok(())
}

/// `ys[i] = the channel block i of x`.
pub fn split_channels_forward(
    rt: &KernelRuntime,
    ys: &mut [&mut CudaViewMut<'_, f32>],
    x: &CudaView<'_, f32>,
    p: &ConcatParams,
) -> Result<(), KernelError> {
    const OP: &str = "split_channels_forward";
    check_parts(OP, "ys[i]", ys.iter().map(|y| y.len()), p)?;
    check_len(OP, "x", x.len(), &[p.batch, p.total_channels(), p.spatial])?;
    let mut off = 0;
    for (y, &c) in ys.iter_mut().zip(p.channels) {
        copy(rt, y, x, c * p.spatial, off, p, false, false)?;
        off += c * p.spatial;
    }
    Ok(())
}

/// `dx += concat(dys)`.
pub fn split_channels_backward(
    rt: &KernelRuntime,
    dx: &mut CudaViewMut<'_, f32>,
    dys: &[&CudaView<'_, f32>],
    p: &ConcatParams,
) -> Result<(), KernelError> {
    const OP: &str = "split_channels_backward";
    check_parts(OP, "dys[i]", dys.iter().map(|y| y.len()), p)?;
    check_len(
        OP,
        "dx",
        dx.len(),
        &[p.batch, p.total_channels(), p.spatial],
    )?;
    let mut off = 0;
    for (dy, &c) in dys.iter().zip(p.channels) {
        copy(rt, dx, dy, c * p.spatial, off, p, true, true)?;
        off += c * p.spatial;
    }
    Ok(())
}
