//! The CUDA kernel runtime: embedded `.cu` sources are compiled by NVRTC at run time for the
//! device's compute capability, the PTX is cached on disk, and modules are loaded lazily on
//! first use. Nothing here needs a GPU until a kernel is launched.

mod cache;
mod compile;
mod device;
pub mod probe;
mod sources;
pub mod testing;

pub use cache::{PtxCache, cache_dir};
pub use compile::{CompileOptions, compile_ptx, nvrtc_version};
pub use device::KernelRuntime;
pub use sources::{KernelSource, all_sources, find_source};

/// Errors of the kernel runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// NVRTC (the run-time CUDA compiler) cannot be loaded.
    #[error("NVRTC unavailable: {0}")]
    NvrtcUnavailable(String),
    /// A kernel source failed to compile; `log` holds NVRTC's messages (file(line): error: ...).
    #[error("NVRTC failed to compile {file} for {arch}:\n{log}")]
    Compile {
        /// The `.cu` file.
        file: String,
        /// The target architecture (`compute_XY`).
        arch: String,
        /// NVRTC's log.
        log: String,
    },
    /// CUDA (the driver, or the asked-for device) cannot be used here.
    #[error("CUDA unavailable: {0}")]
    CudaUnavailable(String),
    /// A driver call (module load, function lookup, launch) failed.
    #[error("CUDA {op}: {msg}")]
    Driver {
        /// The driver call.
        op: String,
        /// The driver's message.
        msg: String,
    },
    /// No embedded source has this name.
    #[error("no kernel source named {0:?}")]
    UnknownSource(String),
    /// The on-disk PTX cache could not be used.
    #[error("kernel cache {path}: {error}")]
    Cache {
        /// The cache file or directory.
        path: std::path::PathBuf,
        /// The I/O error (in the message, not chained as a source: printed once).
        error: std::io::Error,
    },
}
