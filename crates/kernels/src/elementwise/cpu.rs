//! CPU add/mul with broadcasting. Forward overwrites `y`; backward accumulates into the operand
//! gradients (either may be `None` when not needed). Rows of the output are processed in
//! parallel; gradients of broadcast operands are reduced plane by plane.

use rayon::prelude::*;

use super::{BroadcastParams, check_backward, check_forward};
use crate::error::KernelError;
use crate::real::Real;

/// Strides of `shape` inside a contiguous tensor, 0 on axes of size 1 that `out` broadcasts.
fn bstrides(shape: [usize; 4], out: [usize; 4]) -> [usize; 4] {
    let full = [
        shape[1] * shape[2] * shape[3],
        shape[2] * shape[3],
        shape[3],
        1,
    ];
    let mut s = [0; 4];
    for i in 0..4 {
        s[i] = if shape[i] == 1 && out[i] != 1 {
            0
        } else {
            full[i]
        };
    }
    s
}

/// Offset of plane `pl` (= n·C + c of the output) inside an operand with strides `s`.
fn plane_off(pl: usize, out: [usize; 4], s: [usize; 4]) -> usize {
    (pl / out[1]) * s[0] + (pl % out[1]) * s[1]
}

fn forward<T: Real>(
    op: &'static str,
    y: &mut [T],
    a: &[T],
    b: &[T],
    p: &BroadcastParams,
    f: impl Fn(T, T) -> T + Sync,
) -> Result<(), KernelError> {
    let out = check_forward(op, p, y.len(), a.len(), b.len())?;
    if p.a == p.b {
        crate::par::update2(y, a, b, |_, x, z| f(x, z));
        return Ok(());
    }
    let (sa, sb) = (bstrides(p.a, out), bstrides(p.b, out));
    let plane = (out[2] * out[3]).max(1);
    y.par_chunks_mut(plane).enumerate().for_each(|(pl, yp)| {
        let (oa, ob) = (plane_off(pl, out, sa), plane_off(pl, out, sb));
        for (h, row) in yp.chunks_exact_mut(out[3].max(1)).enumerate() {
            let (ra, rb) = (oa + h * sa[2], ob + h * sb[2]);
            for (w, o) in row.iter_mut().enumerate() {
                *o = f(a[ra + w * sa[3]], b[rb + w * sb[3]]);
            }
        }
    });
    Ok(())
}

/// `dx[bcast] += g(plane, h, w)` summed over every output element that reads `x`.
fn reduce_into<T: Real>(
    dx: &mut [T],
    xs: [usize; 4],
    out: [usize; 4],
    g: impl Fn(usize, usize, usize) -> T + Sync,
) {
    let s = bstrides(xs, out);
    let planes = out[0] * out[1];
    let accumulate_plane = |dxp: &mut [T], pl: usize| {
        for h in 0..out[2] {
            for w in 0..out[3] {
                dxp[h * s[2] + w * s[3]] += g(pl, h, w);
            }
        }
    };
    if xs[0] == out[0] && xs[1] == out[1] {
        let xplane = (xs[2] * xs[3]).max(1);
        dx.par_chunks_mut(xplane)
            .enumerate()
            .for_each(|(pl, dxp)| accumulate_plane(dxp, pl));
    } else {
        for pl in 0..planes {
            let off = plane_off(pl, out, s);
            accumulate_plane(&mut dx[off..], pl);
        }
    }
}

/// `y = a + b`.
pub fn add_forward<T: Real>(
    y: &mut [T],
    a: &[T],
    b: &[T],
    p: &BroadcastParams,
) -> Result<(), KernelError> {
    forward("add_forward", y, a, b, p, |x, z| x + z)
}

/// `y = a · b`.
pub fn mul_forward<T: Real>(
    y: &mut [T],
    a: &[T],
    b: &[T],
    p: &BroadcastParams,
) -> Result<(), KernelError> {
    forward("mul_forward", y, a, b, p, |x, z| x * z)
}

/// `da += Σ dy`, `db += Σ dy` (summed over the axes each one was broadcast along).
pub fn add_backward<T: Real>(
    da: Option<&mut [T]>,
    db: Option<&mut [T]>,
    dy: &[T],
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
    let (plane, w) = (out[2] * out[3], out[3]);
    let g = |pl: usize, h: usize, x: usize| dy[pl * plane + h * w + x];
    for (d, shape) in [(da, p.a), (db, p.b)] {
        if let Some(d) = d {
            if shape == out {
                d.par_chunks_mut(crate::par::CHUNK)
                    .zip(dy.par_chunks(crate::par::CHUNK))
                    .for_each(|(d, g)| d.iter_mut().zip(g).for_each(|(d, &g)| *d += g));
            } else {
                reduce_into(d, shape, out, g);
            }
        }
    }
    Ok(())
}

/// `da += Σ dy·b`, `db += Σ dy·a` (summed over broadcast axes).
pub fn mul_backward<T: Real>(
    da: Option<&mut [T]>,
    db: Option<&mut [T]>,
    dy: &[T],
    a: &[T],
    b: &[T],
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
    let (plane, w) = (out[2] * out[3], out[3]);
    for (d, shape, other, oshape) in [(da, p.a, b, p.b), (db, p.b, a, p.a)] {
        let Some(d) = d else { continue };
        let so = bstrides(oshape, out);
        // row `h` of output plane `pl`: dy's values and where the other operand's start
        let dy_row = |pl: usize, h: usize| &dy[pl * plane + h * w..pl * plane + (h + 1) * w];
        let other_at = |pl: usize, h: usize| plane_off(pl, out, so) + h * so[2];
        if shape == out {
            // the gradient of an unbroadcast operand: dy times the other, row by row (no
            // index arithmetic per element; contiguous or constant rows vectorise)
            d.par_chunks_mut(plane.max(1))
                .enumerate()
                .for_each(|(pl, dp)| {
                    for (h, row) in dp.chunks_exact_mut(w.max(1)).enumerate() {
                        let (g, o) = (dy_row(pl, h), other_at(pl, h));
                        match so[3] {
                            0 => {
                                let s = other[o];
                                row.iter_mut().zip(g).for_each(|(v, &g)| *v += g * s);
                            }
                            1 => row
                                .iter_mut()
                                .zip(g.iter().zip(&other[o..o + w]))
                                .for_each(|(v, (&g, &s))| *v += g * s),
                            st => row
                                .iter_mut()
                                .enumerate()
                                .for_each(|(x, v)| *v += g[x] * other[o + x * st]),
                        }
                    }
                });
        } else if shape[0] == out[0]
            && shape[1] == out[1]
            && shape[2] == 1
            && shape[3] == 1
            && so[3] == 1
        {
            // a per-channel gate's gradient: one dot product of contiguous rows per plane
            d.par_iter_mut().enumerate().for_each(|(pl, v)| {
                let mut acc = [T::ZERO; 8];
                for h in 0..out[2] {
                    let (g, o) = (dy_row(pl, h), other_at(pl, h));
                    let (gc, oc) = (g.chunks_exact(8), other[o..o + w].chunks_exact(8));
                    let (gr, or) = (gc.remainder(), oc.remainder());
                    for (g8, o8) in gc.zip(oc) {
                        for l in 0..8 {
                            acc[l] += g8[l] * o8[l];
                        }
                    }
                    for (l, (&g, &s)) in gr.iter().zip(or).enumerate() {
                        acc[l] += g * s;
                    }
                }
                *v += acc.iter().copied().sum::<T>();
            });
        } else {
            let g = |pl: usize, h: usize, x: usize| {
                dy_row(pl, h)[x] * other[other_at(pl, h) + x * so[3]]
            };
            reduce_into(d, shape, out, g);
        }
    }
    Ok(())
}
