//! CPU nearest ×2 upsampling, parallel over planes. Backward accumulates into `dx`.

use rayon::prelude::*;

use super::{UpsampleParams, check_resize};
use crate::error::KernelError;
use crate::real::Real;

/// `y[.., 2i+a, 2j+b] = x[.., i, j]` for a, b in {0, 1}.
pub fn upsample_nearest2x_forward<T: Real>(
    y: &mut [T],
    x: &[T],
    p: &UpsampleParams,
) -> Result<(), KernelError> {
    const OP: &str = "upsample_nearest2x_forward";
    check_resize(OP, p, ("x", x.len()), ("y", y.len()))?;
    let (h, w) = (p.h, p.w);
    if h * w == 0 {
        return Ok(());
    }
    y.par_chunks_mut(4 * h * w)
        .zip(x.par_chunks(h * w))
        .for_each(|(out, inp)| {
            for (i, row) in inp.chunks_exact(w).enumerate() {
                let (top, bottom) = out[4 * i * w..4 * (i + 1) * w].split_at_mut(2 * w);
                for (j, &v) in row.iter().enumerate() {
                    top[2 * j] = v;
                    top[2 * j + 1] = v;
                }
                bottom.copy_from_slice(top);
            }
        });
    Ok(())
}

/// `dx[.., i, j] += Σ of the 2×2 block of dy`.
pub fn upsample_nearest2x_backward<T: Real>(
    dx: &mut [T],
    dy: &[T],
    p: &UpsampleParams,
) -> Result<(), KernelError> {
    const OP: &str = "upsample_nearest2x_backward";
    check_resize(OP, p, ("dx", dx.len()), ("dy", dy.len()))?;
    let (h, w) = (p.h, p.w);
    if h * w == 0 {
        return Ok(());
    }
    dx.par_chunks_mut(h * w)
        .zip(dy.par_chunks(4 * h * w))
        .for_each(|(d, g)| {
            for i in 0..h {
                let (top, bottom) = (&g[2 * i * 2 * w..], &g[(2 * i + 1) * 2 * w..]);
                for j in 0..w {
                    d[i * w + j] += top[2 * j] + top[2 * j + 1] + bottom[2 * j] + bottom[2 * j + 1];
                }
            }
        });
    Ok(())
}
