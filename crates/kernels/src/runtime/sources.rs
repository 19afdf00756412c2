//! The registry of embedded `.cu` sources. Each op family adds its file here with
//! [`kernel_source!`](crate::kernel_source); the compile test walks this list, so no kernel can
//! be left uncompiled in CI.

/// One embedded CUDA source file.
#[derive(Clone, Copy, Debug)]
pub struct KernelSource {
    /// Path relative to `crates/kernels/src`, e.g. `scale/scale.cu`; NVRTC reports errors with it.
    pub name: &'static str,
    /// The CUDA C++ text.
    pub code: &'static str,
}

/// Embeds a `.cu` file (path relative to `crates/kernels/src`) as a [`KernelSource`].
#[macro_export]
macro_rules! kernel_source {
    ($path:literal) => {
        $crate::runtime::KernelSource {
            name: $path,
            code: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/", $path)),
        }
    };
}

static SOURCES: &[KernelSource] = &[crate::scale::cuda::SOURCE];

/// Every embedded kernel source.
pub fn all_sources() -> &'static [KernelSource] {
    SOURCES
}

/// The embedded source called `name`.
pub fn find_source(name: &str) -> Option<&'static KernelSource> {
    SOURCES.iter().find(|s| s.name == name)
}
