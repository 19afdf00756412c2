//! bf16 ⇄ f32 casts on a CUDA device (kernels in `cast.cu`), bit-identical to [`super::cpu`].

use crate::KernelError;
use crate::error::check_len;
use crate::grid::{grid_1d, launch, ll};
use crate::runtime::{KernelRuntime, KernelSource};
use cudarc::driver::{CudaView, CudaViewMut};
use half::bf16;

/// The embedded `.cu` source of this module's kernels (compiled by NVRTC on first use).
pub static SOURCE: KernelSource = crate::kernel_source!("cast/cast.cu");

/// `out[i] = bf16(x[i])`, round to nearest even.
pub fn f32_to_bf16(
    rt: &KernelRuntime,
    out: &mut CudaViewMut<'_, bf16>,
    x: &CudaView<'_, f32>,
) -> Result<(), KernelError> {
    check_len("f32_to_bf16", "x", x.len(), &[out.len()])?;
    if x.is_empty() {
        return Ok(());
    }
    let n = ll(x.len());
    launch!(rt, SOURCE, "f32_to_bf16", grid_1d(x.len()), out, x, &n)
}

/// `out[i] = f32(x[i])`.
pub fn bf16_to_f32(
    rt: &KernelRuntime,
    out: &mut CudaViewMut<'_, f32>,
    x: &CudaView<'_, bf16>,
) -> Result<(), KernelError> {
    check_len("bf16_to_f32", "x", x.len(), &[out.len()])?;
    if x.is_empty() {
        return Ok(());
    }
    let n = ll(x.len());
    launch!(rt, SOURCE, "bf16_to_f32", grid_1d(x.len()), out, x, &n)
}
