//! Where a tensor's storage lives, and the probe that tells whether CUDA can be used at all.

use crate::{Result, TensorError};
use std::fmt;

/// A device that holds tensor storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// Host memory.
    Cpu,
    /// A CUDA device, by ordinal.
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = TensorError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || TensorError::InvalidShape {
            op: "Device::from_str",
            shape: vec![],
            msg: format!("unknown device {s:?}: expected cpu, cuda or cuda:N"),
        };
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(bad),
        }
    }
}

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

/// Checks that CUDA device `ordinal` can be used, with a reason when it cannot.
pub fn check_cuda(ordinal: usize) -> Result<()> {
    let count = crate::cuda::device_count()?;
    if ordinal >= count {
        return Err(TensorError::CudaUnavailable(format!(
            "cuda:{ordinal} asked for, but {count} CUDA device(s) are visible"
        )));
    }
    Ok(())
}
