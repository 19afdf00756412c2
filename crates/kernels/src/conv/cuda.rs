//! Convolution on a CUDA device (kernels in `conv.cu`): implicit GEMM tiled through shared
//! memory, no im2col buffer, so the CPU signature's `workspace` argument is absent here.
//!
//! Two engines: [`ConvMath::F32`] (SIMT FMA, the reference and fallback, any device) and
//! [`ConvMath::Bf16TensorCore`] (`mma.sync` m16n8k16 with f32 accumulation on sm_80 and newer;
//! operands are rounded to bf16 as they are loaded, buffers stay f32). 1×1 stride-1 unpadded
//! convs take a fast path with plain strided reads instead of the im2col index arithmetic.
//! Forward overwrites `y`; the backward functions accumulate, as on the CPU.

use super::{Conv2dParams, check_common};
use crate::KernelError;
use crate::error::{check_len, param};
use crate::grid::{block_rows, launch, ll};
use crate::runtime::{KernelRuntime, KernelSource};
use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr, LaunchConfig};

/// The embedded `.cu` source of this module's kernels (compiled by NVRTC on first use).
pub static SOURCE: KernelSource = crate::kernel_source!("conv/conv.cu");

/// Which GEMM engine a convolution runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvMath {
    /// f32 SIMT: matches the CPU reference to rounding (rel. L2 ≤ 1e-5).
    F32,
    /// bf16 tensor cores with f32 accumulation (sm_80+): rel. L2 about 3e-3 against f32.
    Bf16TensorCore,
}

/// The kernels' `ConvGeom` struct.
#[repr(C)]
#[derive(Clone, Copy)]
struct ConvGeom {
    n: i32,
    c: i32,
    k: i32,
    h: i32,
    w: i32,
    kh: i32,
    kw: i32,
    sh: i32,
    sw: i32,
    ph: i32,
    pw: i32,
    oh: i32,
    ow: i32,
}
// SAFETY: thirteen `i32`s, `#[repr(C)]`, laid out as the C struct in `conv.cu`.
unsafe impl DeviceRepr for ConvGeom {}

#[derive(Clone, Copy)]
enum Dir {
    Forward,
    Data,
    Filter,
}

/// The geometry as `i32`s, refusing sizes whose GEMM extents or tensors overflow them.
fn geom(op: &'static str, p: &Conv2dParams) -> Result<ConvGeom, KernelError> {
    p.validate(op)?;
    let sizes = [
        p.batch * p.in_channels * p.in_h * p.in_w,
        p.batch * p.out_channels * p.out_h() * p.out_w(),
        p.out_channels * p.in_channels * p.kernel_h * p.kernel_w,
    ];
    if sizes.iter().any(|&s| s > i32::MAX as usize) {
        return Err(param(
            op,
            format!("a tensor of {p:?} exceeds 2^31 elements"),
        ));
    }
    let i = |v: usize| v as i32;
    Ok(ConvGeom {
        n: i(p.batch),
        c: i(p.in_channels),
        k: i(p.out_channels),
        h: i(p.in_h),
        w: i(p.in_w),
        kh: i(p.kernel_h),
        kw: i(p.kernel_w),
        sh: i(p.stride_h),
        sw: i(p.stride_w),
        ph: i(p.pad_h),
        pw: i(p.pad_w),
        oh: i(p.out_h()),
        ow: i(p.out_w()),
    })
}

/// GEMM extents (M, N) of a direction.
fn extents(d: Dir, p: &Conv2dParams) -> (usize, usize) {
    match d {
        Dir::Forward => (p.out_channels, p.batch * p.out_h() * p.out_w()),
        Dir::Data => (p.in_channels, p.batch * p.in_h * p.in_w),
        Dir::Filter => (p.out_channels, p.in_channels * p.kernel_h * p.kernel_w),
    }
}

fn tensor_cores_available(op: &'static str, rt: &KernelRuntime) -> Result<(), KernelError> {
    let cc: u32 = rt
        .options()
        .arch
        .trim_start_matches("compute_")
        .parse()
        .unwrap_or(0);
    if cc >= 80 {
        Ok(())
    } else {
        Err(param(
            op,
            format!(
                "bf16 tensor cores need sm_80 or newer, the device is {}",
                rt.options().arch
            ),
        ))
    }
}

/// Runs one direction: `out` (y, dx or dw), GEMM operands `a` and `b`, optional bias.
#[allow(clippy::too_many_arguments)]
fn gemm(
    rt: &KernelRuntime,
    op: &'static str,
    dir: Dir,
    math: ConvMath,
    out: &mut CudaViewMut<'_, f32>,
    a: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    bias: Option<&CudaView<'_, f32>>,
    p: &Conv2dParams,
) -> Result<(), KernelError> {
    let g = geom(op, p)?;
    let (m, n) = extents(dir, p);
    if m == 0 || n == 0 {
        return Ok(());
    }
    if math == ConvMath::Bf16TensorCore {
        tensor_cores_available(op, rt)?;
    }
    let (threads, tile) = match math {
        ConvMath::F32 => (256, 64),
        ConvMath::Bf16TensorCore => (128, 64),
    };
    let cfg = LaunchConfig {
        grid_dim: (n.div_ceil(tile) as u32, m.div_ceil(tile) as u32, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    };
    if cfg.grid_dim.1 > 65_535 {
        return Err(param(op, format!("{m} GEMM rows exceed the grid")));
    }
    let null: u64 = 0;
    macro_rules! go {
        ($name:literal) => {
            match bias {
                Some(bias) => launch!(rt, SOURCE, $name, cfg, out, a, b, bias, &g),
                None => launch!(rt, SOURCE, $name, cfg, out, a, b, &null, &g),
            }
        };
    }
    match (dir, math, p.is_pointwise()) {
        (Dir::Forward, ConvMath::F32, false) => go!("conv_fwd_simt"),
        (Dir::Forward, ConvMath::F32, true) => go!("conv_fwd_simt_1x1"),
        (Dir::Data, ConvMath::F32, false) => go!("conv_bwd_data_simt"),
        (Dir::Data, ConvMath::F32, true) => go!("conv_bwd_data_simt_1x1"),
        (Dir::Filter, ConvMath::F32, false) => go!("conv_bwd_filter_simt"),
        (Dir::Filter, ConvMath::F32, true) => go!("conv_bwd_filter_simt_1x1"),
        (Dir::Forward, ConvMath::Bf16TensorCore, false) => go!("conv_fwd_bf16"),
        (Dir::Forward, ConvMath::Bf16TensorCore, true) => go!("conv_fwd_bf16_1x1"),
        (Dir::Data, ConvMath::Bf16TensorCore, false) => go!("conv_bwd_data_bf16"),
        (Dir::Data, ConvMath::Bf16TensorCore, true) => go!("conv_bwd_data_bf16_1x1"),
        (Dir::Filter, ConvMath::Bf16TensorCore, false) => go!("conv_bwd_filter_bf16"),
        (Dir::Filter, ConvMath::Bf16TensorCore, true) => go!("conv_bwd_filter_bf16_1x1"),
    }
}

/// `y = conv(x, w) + bias`. Overwrites `y`.
pub fn conv2d_forward(
    rt: &KernelRuntime,
    y: &mut CudaViewMut<'_, f32>,
    x: &CudaView<'_, f32>,
    w: &CudaView<'_, f32>,
    bias: Option<&CudaView<'_, f32>>,
    p: &Conv2dParams,
    math: ConvMath,
) -> Result<(), KernelError> {
    const OP: &str = "conv2d_forward";
    check_common(OP, x.len(), w.len(), y.len(), p)?;
    if let Some(b) = bias {
        check_len(OP, "bias", b.len(), &[p.out_channels])?;
    }
    gemm(rt, OP, Dir::Forward, math, y, w, x, bias, p)
}

/// `dx = convᵀ(dy, w)`: the gradient with respect to the input (`dx` overwritten, as on the
/// CPU: zeroed on the stream, then the implicit GEMM adds into it).
pub fn conv2d_backward_data(
    rt: &KernelRuntime,
    dx: &mut CudaViewMut<'_, f32>,
    dy: &CudaView<'_, f32>,
    w: &CudaView<'_, f32>,
    p: &Conv2dParams,
    math: ConvMath,
) -> Result<(), KernelError> {
    const OP: &str = "conv2d_backward_data";
    check_common(OP, dx.len(), w.len(), dy.len(), p)?;
    rt.stream()
        .memset_zeros(dx)
        .map_err(|e| KernelError::launch(OP, e))?;
    gemm(rt, OP, Dir::Data, math, dx, w, dy, None, p)
}

/// `dw += dy ⋆ x` and, when given, `dbias += Σ dy`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_filter(
    rt: &KernelRuntime,
    dw: &mut CudaViewMut<'_, f32>,
    dbias: Option<&mut CudaViewMut<'_, f32>>,
    dy: &CudaView<'_, f32>,
    x: &CudaView<'_, f32>,
    p: &Conv2dParams,
    math: ConvMath,
) -> Result<(), KernelError> {
    const OP: &str = "conv2d_backward_filter";
    check_common(OP, x.len(), dw.len(), dy.len(), p)?;
    if let Some(db) = dbias {
        check_len(OP, "dbias", db.len(), &[p.out_channels])?;
        if p.out_channels > 0 {
            let (n, k, ohw) = (
                p.batch as i32,
                p.out_channels as i32,
                ll(p.out_h() * p.out_w()),
            );
            launch!(
                rt,
                SOURCE,
                "conv_bias_grad",
                block_rows(p.out_channels),
                db,
                dy,
                &n,
                &k,
                &ohw
            )?;
        }
    }
    gemm(rt, OP, Dir::Filter, math, dw, dy, x, None, p)
}
