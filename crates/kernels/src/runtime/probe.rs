//! The CUDA probes and per-device contexts (through cudarc, loaded at run time) that the kernel
//! runtime and `ringdet info` build on. They live here, not in `ringdet-tensor`, so that the
//! crates below the kernels (tensor, and the collective through it) build without CUDA bindings.
//! Every entry point probes for the driver first, so a machine without a GPU gets an error, never
//! cudarc's panic.

use super::RuntimeError;
use cudarc::driver::CudaContext;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Whether the CUDA driver library can be loaded. cudarc panics on first use when it cannot, so
/// every CUDA entry point of ringdet asks this first.
pub fn cuda_driver_present() -> bool {
    // SAFETY: only tries to dlopen the library by name; no symbol is called.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether the NVRTC library can be loaded (it compiles kernels; no GPU needed).
pub fn nvrtc_present() -> bool {
    // SAFETY: as above.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// The number of visible CUDA devices, or why none can be used.
pub fn device_count() -> Result<usize, RuntimeError> {
    if !cuda_driver_present() {
        return Err(RuntimeError::CudaUnavailable(
            "libcuda.so (the NVIDIA driver) was not found: this machine has no usable GPU driver"
                .into(),
        ));
    }
    cudarc::driver::result::init()
        .and_then(|_| cudarc::driver::result::device::get_count())
        .map(|n| n as usize)
        .map_err(|e| RuntimeError::CudaUnavailable(format!("cuInit failed: {e}")))
}

/// Checks that CUDA device `ordinal` can be used, with a reason when it cannot.
pub fn check_cuda(ordinal: usize) -> Result<(), RuntimeError> {
    let count = device_count()?;
    if ordinal >= count {
        return Err(RuntimeError::CudaUnavailable(format!(
            "cuda:{ordinal} asked for, but {count} CUDA device(s) are visible"
        )));
    }
    Ok(())
}

/// The process-wide context of CUDA device `ordinal`, created on first use.
pub fn context(ordinal: usize) -> Result<Arc<CudaContext>, RuntimeError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<usize, Arc<CudaContext>>>> = OnceLock::new();
    let mut map = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = map.get(&ordinal) {
        return Ok(ctx.clone());
    }
    check_cuda(ordinal)?;
    let ctx = CudaContext::new(ordinal).map_err(|e| RuntimeError::Driver {
        op: "CudaContext::new".into(),
        msg: e.to_string(),
    })?;
    map.insert(ordinal, ctx.clone());
    Ok(ctx)
}
