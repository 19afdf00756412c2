//! The CUDA probes and per-device contexts (through cudarc, loaded at run time) that the kernel
//! runtime and `ringdet info` build on. Every entry point probes for the driver
//! first, so a machine without a GPU gets an error, never cudarc's panic.

use crate::{Result, TensorError, device::check_cuda};
use cudarc::driver::CudaContext;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

fn cuda_err(op: &'static str) -> impl Fn(cudarc::driver::DriverError) -> TensorError {
    move |e| TensorError::Cuda {
        op,
        msg: e.to_string(),
    }
}

/// The process-wide context of CUDA device `ordinal`, created on first use.
pub fn context(ordinal: usize) -> Result<Arc<CudaContext>> {
    static CONTEXTS: OnceLock<Mutex<HashMap<usize, Arc<CudaContext>>>> = OnceLock::new();
    let mut map = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = map.get(&ordinal) {
        return Ok(ctx.clone());
    }
    check_cuda(ordinal)?;
    let ctx = CudaContext::new(ordinal).map_err(cuda_err("CudaContext::new"))?;
    map.insert(ordinal, ctx.clone());
    Ok(ctx)
}

/// The number of visible CUDA devices, or why none can be used.
pub fn device_count() -> Result<usize> {
    if !crate::cuda_driver_present() {
        return Err(TensorError::CudaUnavailable(
            "libcuda.so (the NVIDIA driver) was not found: this machine has no usable GPU driver"
                .into(),
        ));
    }
    cudarc::driver::result::init()
        .and_then(|_| cudarc::driver::result::device::get_count())
        .map(|n| n as usize)
        .map_err(|e| TensorError::CudaUnavailable(format!("cuInit failed: {e}")))
}
