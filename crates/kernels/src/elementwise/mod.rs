//! Elementwise add and multiply of two NCHW tensors with numpy-style broadcasting over the four
//! axes (each axis of an operand is either the output's size or 1). The channel gate `x·s` of
//! the ESE blocks is `mul` with `b = [N, C, 1, 1]`.

pub mod cpu;
pub mod cuda;

use crate::error::KernelError;

/// The two operand shapes; the output shape is their broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastParams {
    /// Shape of `a`, `[N, C, H, W]` (use 1 for broadcast axes).
    pub a: [usize; 4],
    /// Shape of `b`.
    pub b: [usize; 4],
}

impl BroadcastParams {
    /// Both operands of the same shape.
    pub fn same(shape: [usize; 4]) -> Self {
        Self { a: shape, b: shape }
    }

    /// The broadcast output shape, or an error naming both shapes.
    pub fn out_shape(&self, op: &'static str) -> Result<[usize; 4], KernelError> {
        let mut out = [0; 4];
        for (o, (&x, &y)) in out.iter_mut().zip(self.a.iter().zip(&self.b)) {
            *o = if x == y || y == 1 {
                x
            } else if x == 1 {
                y
            } else {
                return Err(KernelError::Mismatch {
                    op,
                    a: "a",
                    a_shape: self.a.to_vec(),
                    b: "b",
                    b_shape: self.b.to_vec(),
                });
            };
        }
        Ok(out)
    }
}

/// Checks a broadcast forward's buffers and returns the output shape; shared by the CPU and CUDA
/// versions.
pub(crate) fn check_forward(
    op: &'static str,
    p: &BroadcastParams,
    y: usize,
    a: usize,
    b: usize,
) -> Result<[usize; 4], KernelError> {
    let out = p.out_shape(op)?;
    crate::error::check_len(op, "a", a, &p.a)?;
    crate::error::check_len(op, "b", b, &p.b)?;
    crate::error::check_len(op, "y", y, &out)?;
    Ok(out)
}

/// Checks a broadcast backward's buffers (`da`/`db` when given, `a`/`b` for mul) and returns
/// the output shape; shared by the CPU and CUDA versions.
pub(crate) fn check_backward(
    op: &'static str,
    p: &BroadcastParams,
    dy: usize,
    [da, db]: [Option<usize>; 2],
    ab: Option<(usize, usize)>,
) -> Result<[usize; 4], KernelError> {
    let out = p.out_shape(op)?;
    crate::error::check_len(op, "dy", dy, &out)?;
    if let Some((a, b)) = ab {
        crate::error::check_len(op, "a", a, &p.a)?;
        crate::error::check_len(op, "b", b, &p.b)?;
    }
    for (what, len, shape) in [("da", da, p.a), ("db", db, p.b)] {
        if let Some(len) = len {
            crate::error::check_len(op, what, len, &shape)?;
        }
    }
    Ok(out)
}
