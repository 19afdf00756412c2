//! `scale` on a CUDA device (kernel in `scale.cu`).

use super::ScaleParams;
use crate::KernelError;
use crate::runtime::{KernelRuntime, KernelSource};
use cudarc::driver::{CudaView, CudaViewMut, PushKernelArg};

/// The embedded `.cu` source of this module's kernels (compiled by NVRTC on first use).
pub static SOURCE: KernelSource = crate::kernel_source!("scale/scale.cu");

/// `out[i] = alpha * x[i]` on the runtime's stream.
pub fn scale(
    rt: &KernelRuntime,
    out: &mut CudaViewMut<'_, f32>,
    x: &CudaView<'_, f32>,
    p: &ScaleParams,
) -> Result<(), KernelError> {
    if out.len() != x.len() {
        return Err(KernelError::shape("scale", &[out.len()], &[x.len()]));
    }
    let n = x.len() as u64;
    if n == 0 {
        return Ok(());
    }
    let f = rt.function(&SOURCE, "scale_f32")?;
    let cfg = crate::grid::grid_1d(x.len());
    let mut launch = rt.stream().launch_builder(&f);
    launch.arg(out).arg(x).arg(&p.alpha).arg(&n);
    // SAFETY: the kernel's signature is (float*, const float*, float, unsigned long long) and
    // both buffers hold n elements.
    unsafe { launch.launch(cfg) }.map_err(|e| KernelError::launch("scale_f32", e))?;
    Ok(())
}
