//! Broadcast add/mul on a CUDA device (kernels in `elementwise.cu`), f32, same contracts as
//! [`super::cpu`]: forward overwrites, backward accumulates.

use super::{BroadcastParams, check_backward, check_forward};
use crate::KernelError;
use crate::grid::{grid_1d, launch, ll, warp_rows};
use crate::runtime::{KernelRuntime, KernelSource};
use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr};

/// The embedded `.cu` source of this module's kernels (compiled by NVRTC on first use).
pub static SOURCE: KernelSource = crate::kernel_source!("elementwise/elementwise.cu");

/// The kernels' `Bcast` struct.
#[repr(C)]
#[derive(Clone, Copy)]
struct Bcast {
    out: [i64; 4],
    sa: [i64; 4],
    sb: [i64; 4],
}
// SAFETY: plain `#[repr(C)]` integers, laid out as the C struct in `elementwise.cu`.
unsafe impl DeviceRepr for Bcast {}

/// Strides of `shape` in output coordinates, 0 on broadcast axes.
fn strides(shape: [usize; 4], out: [usize; 4]) -> [i64; 4] {
    let full = [
        shape[1] * shape[2] * shape[3],
        shape[2] * shape[3],
        shape[3],
        1,
    ];
    std::array::from_fn(|i| {
        if shape[i] == 1 && out[i] != 1 {
            0
        } else {
            full[i] as i64
        }
    })
}

fn bcast(a: [usize; 4], b: [usize; 4], out: [usize; 4]) -> Bcast {
    Bcast {
        out: out.map(|v| v as i64),
        sa: strides(a, out),
        sb: strides(b, out),
    }
}

fn forward(
    rt: &KernelRuntime,
    op: &'static str,
    code: i32,
    y: &mut CudaViewMut<'_, f32>,
    a: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    p: &BroadcastParams,
) -> Result<(), KernelError> {
    let out = check_forward(op, p, y.len(), a.len(), b.len())?;
    if y.is_empty() {
        return Ok(());
    }
    let (g, n) = (bcast(p.a, p.b, out), ll(y.len()));
    launch!(
        rt,
        SOURCE,
        "bcast_forward_f32",
        grid_1d(y.len()),
        y,
        a,
        b,
        &g,
        &code,
        &n
    )
}

/// `y = a + b`.
pub fn add_forward(
    rt: &KernelRuntime,
    y: &mut CudaViewMut<'_, f32>,
    a: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    p: &BroadcastParams,
) -> Result<(), KernelError> {
    forward(rt, "add_forward", 0, y, a, b, p)
}

/// `y = a · b`.
pub fn mul_forward(
    rt: &KernelRuntime,
    y: &mut CudaViewMut<'_, f32>,
    a: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    p: &BroadcastParams,
) -> Result<(), KernelError> {
    forward(rt, "mul_forward", 1, y, a, b, p)
}

/// `d += Σ dy·other` over the broadcast contributors of each element of `d` (shape `shape`);
/// `other` (shape `oshape`) is `None` for add.
fn reduce_into(
    rt: &KernelRuntime,
    d: &mut CudaViewMut<'_, f32>,
    shape: [usize; 4],
    dy: &CudaView<'_, f32>,
    other: Option<(&CudaView<'_, f32>, [usize; 4])>,
    out: [usize; 4],
) -> Result<(), KernelError> {
    if d.is_empty() || dy.is_empty() {
        return Ok(());
    }
    let g = bcast(shape, other.map_or(shape, |o| o.1), out);
    // A null pointer tells the kernel there is no other operand (add).
    let null: u64 = 0;
    if shape == out {
        let n = ll(d.len());
        match other {
            Some((o, _)) => {
                launch!(
                    rt,
                    SOURCE,
                    "bcast_backward_full_f32",
                    grid_1d(d.len()),
                    d,
                    dy,
                    o,
                    &g,
                    &n
                )
            }
            None => launch!(
                rt,
                SOURCE,
                "bcast_backward_full_f32",
                grid_1d(d.len()),
                d,
                dy,
                &null,
                &g,
                &n
            ),
        }
    } else {
        let [s0, s1, s2, s3] = shape.map(|v| v as i64);
        let dn = ll(d.len());
        let cfg = warp_rows(d.len());
        match other {
            Some((o, _)) => launch!(
                rt,
                SOURCE,
                "bcast_backward_reduce_f32",
                cfg,
                d,
                dy,
                o,
                &g,
                &s0,
                &s1,
                &s2,
                &s3,
                &dn
            ),
            None => launch!(
                rt,
                SOURCE,
                "bcast_backward_reduce_f32",
                cfg,
                d,
                dy,
                &null,
                &g,
                &s0,
                &s1,
                &s2,
                &s3,
                &dn
            ),
        }
    }
}

/// `da += Σ dy`, `db += Σ dy` (summed over the axes each one was broadcast along).
pub fn add_backward(
    rt: &KernelRuntime,
    da: Option<&mut CudaViewMut<'_, f32>>,
    db: Option<&mut CudaViewMut<'_, f32>>,
    dy: &CudaView<'_, f32>,
    p: &BroadcastParams,
) -> Result<(), KernelError> {
    const OP: &str = "add_backward";
    let out = check_backward(
        OP,
        p,
        dy.len(),
        [da.as_ref().map(|d| d.len()), db.as_ref().map(|d| d.len())],
        None,
    )?;
    if let Some(d) = da {
        reduce_into(rt, d, p.a, dy, None, out)?;
    }
    if let Some(d) = db {
        reduce_into(rt, d, p.b, dy, None, out)?;
    }
    Ok(())
}

/// `da += Σ dy·b`, `db += Σ dy·a` (summed over broadcast axes).
pub fn mul_backward(
    rt: &KernelRuntime,
    da: Option<&mut CudaViewMut<'_, f32>>,
    db: Option<&mut CudaViewMut<'_, f32>>,
    dy: &CudaView<'_, f32>,
    a: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    p: &BroadcastParams,
) -> Result<(), KernelError> {
    const OP: &str = "mul_backward";
    let out = check_backward(
        OP,
        p,
        dy.len(),
        [da.as_ref().map(|d| d.len()), db.as_ref().map(|d| d.len())],
        Some((a.len(), b.len())),
    )?;
    if let Some(d) = da {
        reduce_into(rt, d, p.a, dy, Some((b, p.b)), out)?;
    }
    if let Some(d) = db {
        reduce_into(rt, d, p.b, dy, Some((a, p.a)), out)?;
    }
    Ok(())
}
