//! The name of a device (`cpu`, `cuda:N`) as users write it. Probing for CUDA belongs to
//! `ringdet_kernels::runtime::probe`, so this crate builds without CUDA bindings.

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
