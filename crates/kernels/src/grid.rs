//! What every `cuda.rs` shares: launch shapes and one launch macro, so each op's host side is
//! only its shape checks and its argument list.

use cudarc::driver::LaunchConfig;

/// Threads per block of the elementwise and reduction kernels.
pub(crate) const THREADS: u32 = 256;

/// A grid-stride launch over `n` items (the kernels loop, so the grid is capped).
pub(crate) fn grid_1d(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(THREADS as usize).clamp(1, 65_535 * 8) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One warp per row over `rows` rows (8 warps a block; the kernels loop over the rest).
pub(crate) fn warp_rows(rows: usize) -> LaunchConfig {
    let blocks = rows.div_ceil(8).clamp(1, 65_535 * 8) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block per row (channel reductions of batch norm, bias gradients).
pub(crate) fn block_rows(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.clamp(1, i32::MAX as usize) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A `usize` as the `long long` every kernel takes sizes in.
pub(crate) fn ll(v: usize) -> i64 {
    v as i64
}

/// `launch!(rt, SOURCE, "kernel", cfg, &arg, ...)`: looks the kernel up (compiling on first use),
/// pushes the arguments in order and launches on the runtime's stream; `?`-able
/// `Result<(), KernelError>`. Every argument must outlive the statement (bind scalars first).
/// The caller vouches, by the shape checks before it, that the argument list matches the
/// kernel's C signature and that every buffer holds what the kernel indexes.
macro_rules! launch {
    ($rt:expr, $src:expr, $name:literal, $cfg:expr $(, $arg:expr)* $(,)?) => {{
        use cudarc::driver::PushKernelArg as _;
        let cfg: cudarc::driver::LaunchConfig = $cfg;
        let f = $rt.function(&$src, $name)?;
        let mut b = $rt.stream().launch_builder(&f);
        $( b.arg($arg); )*
        // SAFETY: see the macro's doc: argument types and buffer sizes were checked by the caller
        // against the kernel's signature in the `.cu` file.
        unsafe { b.launch(cfg) }
            .map(|_| ())
            .map_err(|e| $crate::KernelError::launch($name, e))
    }};
}
pub(crate) use launch;

/// A device scratch buffer of `n` elements (contents unspecified until written).
pub(crate) fn scratch<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    rt: &crate::runtime::KernelRuntime,
    what: &'static str,
    n: usize,
) -> Result<cudarc::driver::CudaSlice<T>, crate::KernelError> {
    rt.stream()
        .alloc_zeros::<T>(n.max(1))
        .map_err(|e| crate::KernelError::launch(what, e))
}
