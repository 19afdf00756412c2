//! CPU pooling, parallel over `[H, W]` planes. Backward accumulates into `dx`.

use rayon::prelude::*;

use super::{PoolParams, check_gap, check_max_pool};
use crate::error::KernelError;
use crate::real::Real;

/// `y[n, c] = mean over H·W of x[n, c]`; `y` is `[N, C]` (= `[N, C, 1, 1]`).
pub fn global_avg_pool_forward<T: Real>(
    y: &mut [T],
    x: &[T],
    p: &PoolParams,
) -> Result<(), KernelError> {
    const OP: &str = "global_avg_pool_forward";
    check_gap(OP, p, ("x", x.len()), ("y", y.len()))?;
    let hw = (p.h * p.w).max(1);
    let inv = T::from_f64(1.0 / hw as f64);
    y.par_iter_mut()
        .zip(x.par_chunks(hw))
        .for_each(|(o, plane)| *o = plane.iter().copied().sum::<T>() * inv);
    Ok(())
}

/// `dx[n, c, :, :] += dy[n, c] / (H·W)`.
pub fn global_avg_pool_backward<T: Real>(
    dx: &mut [T],
    dy: &[T],
    p: &PoolParams,
) -> Result<(), KernelError> {
    const OP: &str = "global_avg_pool_backward";
    check_gap(OP, p, ("dx", dx.len()), ("dy", dy.len()))?;
    let hw = (p.h * p.w).max(1);
    let inv = T::from_f64(1.0 / hw as f64);
    dx.par_chunks_mut(hw)
        .zip(dy.par_iter())
        .for_each(|(plane, &g)| {
            let v = g * inv;
            plane.iter_mut().for_each(|d| *d += v);
        });
    Ok(())
}

/// Max pool, window `k×k`, stride 1, padding `k/2` (padding never wins), output `[N, C, H, W]`.
/// Separable: a row pass into `workspace` (`[N·C·H·W]` elements) then a column pass.
pub fn max_pool_forward<T: Real>(
    y: &mut [T],
    workspace: &mut [T],
    x: &[T],
    p: &PoolParams,
) -> Result<(), KernelError> {
    const OP: &str = "max_pool_forward";
    check_max_pool(OP, p, &[("x", x.len()), ("y", y.len())])?;
    crate::error::check_min_len(OP, "workspace", workspace.len(), x.len())?;
    let (h, w, r) = (p.h, p.w, p.kernel / 2);
    let hw = (h * w).max(1);
    workspace[..x.len()]
        .par_chunks_mut(hw)
        .zip(y.par_chunks_mut(hw))
        .zip(x.par_chunks(hw))
        .for_each(|((tmp, out), inp)| {
            for i in 0..h {
                for j in 0..w {
                    let row = &inp[i * w + j.saturating_sub(r)..i * w + (j + r + 1).min(w)];
                    tmp[i * w + j] = row.iter().copied().fold(T::MIN, T::max);
                }
            }
            for i in 0..h {
                for j in 0..w {
                    let mut m = T::MIN;
                    for ii in i.saturating_sub(r)..(i + r + 1).min(h) {
                        m = m.max(tmp[ii * w + j]);
                    }
                    out[i * w + j] = m;
                }
            }
        });
    Ok(())
}

/// Max-pool backward: each output's gradient goes to the first input (row-major scan of its
/// window) equal to the output, as Paddle's CPU kernel does.
pub fn max_pool_backward<T: Real>(
    dx: &mut [T],
    dy: &[T],
    x: &[T],
    y: &[T],
    p: &PoolParams,
) -> Result<(), KernelError> {
    const OP: &str = "max_pool_backward";
    check_max_pool(
        OP,
        p,
        &[
            ("dx", dx.len()),
            ("dy", dy.len()),
            ("x", x.len()),
            ("y", y.len()),
        ],
    )?;
    let (h, w, r) = (p.h, p.w, p.kernel / 2);
    let hw = (h * w).max(1);
    dx.par_chunks_mut(hw)
        .zip(
            dy.par_chunks(hw)
                .zip(x.par_chunks(hw).zip(y.par_chunks(hw))),
        )
        .for_each(|(d, (g, (inp, out)))| {
            for i in 0..h {
                for j in 0..w {
                    let m = out[i * w + j];
                    'win: for ii in i.saturating_sub(r)..(i + r + 1).min(h) {
                        for jj in j.saturating_sub(r)..(j + r + 1).min(w) {
                            if inp[ii * w + jj] == m {
                                d[ii * w + jj] += g[i * w + j];
                                break 'win;
                            }
                        }
                    }
                }
            }
        });
    Ok(())
}
