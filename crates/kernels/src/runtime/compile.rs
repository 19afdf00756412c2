//! NVRTC compilation of one source for one virtual architecture, with errors that keep NVRTC's
//! `file(line): error` messages.

use super::{KernelSource, RuntimeError};
use cudarc::nvrtc::{CompileError, CompileOptions as NvrtcOptions};

/// What a kernel is compiled with, besides its source.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CompileOptions {
    /// Virtual architecture, e.g. `compute_90`.
    pub arch: String,
    /// Extra NVRTC flags.
    pub flags: Vec<String>,
}

impl CompileOptions {
    /// The options ringdet uses for compute capability `major.minor`: exact IEEE division and
    /// square root (the CPU path is the reference), C++17.
    pub fn for_capability(major: i32, minor: i32) -> Self {
        CompileOptions {
            arch: format!("compute_{major}{minor}"),
            flags: vec![
                "--std=c++17".into(),
                "--prec-div=true".into(),
                "--prec-sqrt=true".into(),
                "--fmad=true".into(),
            ],
        }
    }
}

/// NVRTC's version as (major, minor), or why it cannot be loaded.
pub fn nvrtc_version() -> Result<(i32, i32), RuntimeError> {
    if !super::probe::nvrtc_present() {
        return Err(RuntimeError::NvrtcUnavailable(
            "libnvrtc.so was not found on the library path (install the nvidia-cuda-nvrtc wheel \
             or the CUDA toolkit and add its lib folder to LD_LIBRARY_PATH)"
                .into(),
        ));
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present; nvrtcVersion only writes the two integers.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if status != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(RuntimeError::NvrtcUnavailable(format!(
            "nvrtcVersion: {status:?}"
        )));
    }
    Ok((major, minor))
}

/// Compiles `source` to PTX text.
pub fn compile_ptx(source: &KernelSource, opts: &CompileOptions) -> Result<String, RuntimeError> {
    nvrtc_version()?;
    // cudarc takes the architecture as a `&'static str`; the set of names is tiny, so leaking
    // each distinct one once is bounded.
    let arch: &'static str = Box::leak(opts.arch.clone().into_boxed_str());
    let nvrtc = NvrtcOptions {
        arch: Some(arch),
        options: opts.flags.clone(),
        name: Some(source.name.to_string()),
        ..Default::default()
    };
    match cudarc::nvrtc::compile_ptx_with_opts(source.code, nvrtc) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(CompileError::CompileError { log, .. }) => Err(RuntimeError::Compile {
            file: source.name.to_string(),
            arch: opts.arch.clone(),
            log: log.to_string_lossy().trim_end().to_string(),
        }),
        Err(e) => Err(RuntimeError::Compile {
            file: source.name.to_string(),
            arch: opts.arch.clone(),
            log: e.to_string(),
        }),
    }
}
