//! CPU convolution: im2col (skipped for pointwise convs) and one GEMM per image, multi-threaded.
//!
//! Layouts: x `[N, C, H, W]`, w `[K, C, kh, kw]`, y `[N, K, OH, OW]`, workspace at least
//! [`Conv2dParams::workspace_len`] elements (reused across calls; nothing is allocated here).
//! Backward functions accumulate (`+=`) into their gradient outputs, llm.c style.

use rayon::prelude::*;

use super::Conv2dParams;
use crate::error::{KernelError, check_len, check_min_len};
use crate::matmul::{View, matmul};
use crate::real::Real;

/// Range `[lo, hi)` of output positions whose tap `k` lands inside the input.
fn valid_range(out: usize, stride: usize, k: usize, pad: usize, inp: usize) -> (usize, usize) {
    let lo = if pad > k {
        (pad - k).div_ceil(stride)
    } else {
        0
    };
    let hi = if inp + pad > k {
        (inp + pad - k).div_ceil(stride)
    } else {
        0
    };
    let hi = hi.min(out);
    (lo.min(hi), hi)
}

/// Unfolds one image `[C, H, W]` into `col` `[C·kh·kw, OH·OW]`.
fn im2col<T: Real>(col: &mut [T], x: &[T], p: &Conv2dParams) {
    let (oh, ow) = (p.out_h(), p.out_w());
    let (ohw, hw, kk) = (oh * ow, p.in_h * p.in_w, p.kernel_h * p.kernel_w);
    let rows = p.in_channels * kk;
    let min_rows = (16384 / ohw.max(1)).max(1);
    col[..rows * ohw]
        .par_chunks_mut(ohw)
        .with_min_len(min_rows)
        .enumerate()
        .for_each(|(row, dst)| {
            let (c, i, j) = (row / kk, (row % kk) / p.kernel_w, row % p.kernel_w);
            let src = &x[c * hw..(c + 1) * hw];
            let (x0, x1) = valid_range(ow, p.stride_w, j, p.pad_w, p.in_w);
            for (oy, out) in dst.chunks_exact_mut(ow).enumerate() {
                let ih = (oy * p.stride_h + i) as isize - p.pad_h as isize;
                if ih < 0 || ih >= p.in_h as isize {
                    out.fill(T::ZERO);
                    continue;
                }
                let srow = &src[ih as usize * p.in_w..(ih as usize + 1) * p.in_w];
                out[..x0].fill(T::ZERO);
                out[x1..].fill(T::ZERO);
                if x0 == x1 {
                    continue;
                }
                let start = x0 * p.stride_w + j - p.pad_w;
                if p.stride_w == 1 {
                    out[x0..x1].copy_from_slice(&srow[start..start + (x1 - x0)]);
                } else {
                    for (o, s) in out[x0..x1]
                        .iter_mut()
                        .zip(srow[start..].iter().step_by(p.stride_w))
                    {
                        *o = *s;
                    }
                }
            }
        });
}

/// Folds `col` `[C·kh·kw, OH·OW]` back onto one image gradient `[C, H, W]`, accumulating.
fn col2im<T: Real>(dx: &mut [T], col: &[T], p: &Conv2dParams) {
    let (oh, ow) = (p.out_h(), p.out_w());
    let (ohw, hw, kk) = (oh * ow, p.in_h * p.in_w, p.kernel_h * p.kernel_w);
    dx[..p.in_channels * hw]
        .par_chunks_mut(hw)
        .zip(col[..p.in_channels * kk * ohw].par_chunks(kk * ohw))
        .for_each(|(dst, rows)| {
            for (r, row) in rows.chunks_exact(ohw).enumerate() {
                let (i, j) = (r / p.kernel_w, r % p.kernel_w);
                let (x0, x1) = valid_range(ow, p.stride_w, j, p.pad_w, p.in_w);
                if x0 == x1 {
                    continue;
                }
                for (oy, src) in row.chunks_exact(ow).enumerate() {
                    let ih = (oy * p.stride_h + i) as isize - p.pad_h as isize;
                    if ih < 0 || ih >= p.in_h as isize {
                        continue;
                    }
                    let drow = &mut dst[ih as usize * p.in_w..(ih as usize + 1) * p.in_w];
                    let start = x0 * p.stride_w + j - p.pad_w;
                    if p.stride_w == 1 {
                        for (d, s) in drow[start..start + (x1 - x0)].iter_mut().zip(&src[x0..x1]) {
                            *d += *s;
                        }
                    } else {
                        for (d, s) in drow[start..]
                            .iter_mut()
                            .step_by(p.stride_w)
                            .zip(&src[x0..x1])
                        {
                            *d += *s;
                        }
                    }
                }
            }
        });
}

fn check_common<T>(
    op: &'static str,
    workspace: &[T],
    x_len: usize,
    w_len: usize,
    y_len: usize,
    p: &Conv2dParams,
) -> Result<(), KernelError> {
    p.validate(op)?;
    check_len(op, "x", x_len, &p.x_shape())?;
    check_len(op, "w", w_len, &p.w_shape())?;
    check_len(op, "y", y_len, &p.y_shape())?;
    check_min_len(op, "workspace", workspace.len(), p.workspace_len())
}

/// `y = conv(x, w) + bias`. Overwrites `y`.
pub fn conv2d_forward<T: Real>(
    y: &mut [T],
    workspace: &mut [T],
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    p: &Conv2dParams,
) -> Result<(), KernelError> {
    const OP: &str = "conv2d_forward";
    check_common(OP, workspace, x.len(), w.len(), y.len(), p)?;
    if let Some(b) = bias {
        check_len(OP, "bias", b.len(), &[p.out_channels])?;
    }
    let (ohw, chw) = (p.out_h() * p.out_w(), p.in_channels * p.in_h * p.in_w);
    let ckk = p.in_channels * p.kernel_h * p.kernel_w;
    let k = p.out_channels;
    let threads = rayon::current_num_threads();
    for n in 0..p.batch {
        let xn = &x[n * chw..(n + 1) * chw];
        let yn = &mut y[n * k * ohw..(n + 1) * k * ohw];
        if let Some(b) = bias {
            for (row, &bv) in yn.chunks_exact_mut(ohw).zip(b) {
                row.fill(bv);
            }
        }
        let col: &[T] = if p.is_pointwise() {
            xn
        } else {
            im2col(workspace, xn, p);
            &workspace[..ckk * ohw]
        };
        // y_nᵀ [OHW, K] = colᵀ [OHW, CKK] · wᵀ [CKK, K]
        matmul(
            yn,
            1,
            ohw,
            bias.is_some(),
            View {
                data: col,
                rows: ohw,
                cols: ckk,
                rs: 1,
                cs: ohw,
            },
            View {
                data: w,
                rows: ckk,
                cols: k,
                rs: 1,
                cs: ckk,
            },
            threads,
        );
    }
    Ok(())
}

/// `dx += convᵀ(dy, w)`: the gradient with respect to the input.
pub fn conv2d_backward_data<T: Real>(
    dx: &mut [T],
    workspace: &mut [T],
    dy: &[T],
    w: &[T],
    p: &Conv2dParams,
) -> Result<(), KernelError> {
    const OP: &str = "conv2d_backward_data";
    check_common(OP, workspace, dx.len(), w.len(), dy.len(), p)?;
    let (ohw, chw) = (p.out_h() * p.out_w(), p.in_channels * p.in_h * p.in_w);
    let ckk = p.in_channels * p.kernel_h * p.kernel_w;
    let k = p.out_channels;
    let threads = rayon::current_num_threads();
    for n in 0..p.batch {
        let dyn_ = &dy[n * k * ohw..(n + 1) * k * ohw];
        let dxn = &mut dx[n * chw..(n + 1) * chw];
        let lhs = View {
            data: dyn_,
            rows: ohw,
            cols: k,
            rs: 1,
            cs: ohw,
        };
        let rhs = View {
            data: w,
            rows: k,
            cols: ckk,
            rs: ckk,
            cs: 1,
        };
        // dcolᵀ [OHW, CKK] = dy_nᵀ [OHW, K] · w [K, CKK]
        if p.is_pointwise() {
            matmul(dxn, 1, ohw, true, lhs, rhs, threads);
        } else {
            matmul(workspace, 1, ohw, false, lhs, rhs, threads);
            col2im(dxn, workspace, p);
        }
    }
    Ok(())
}

/// `dw += dy ⋆ x` and, when given, `dbias += Σ dy`: the parameter gradients.
pub fn conv2d_backward_filter<T: Real>(
    dw: &mut [T],
    dbias: Option<&mut [T]>,
    workspace: &mut [T],
    dy: &[T],
    x: &[T],
    p: &Conv2dParams,
) -> Result<(), KernelError> {
    const OP: &str = "conv2d_backward_filter";
    check_common(OP, workspace, x.len(), dw.len(), dy.len(), p)?;
    let (ohw, chw) = (p.out_h() * p.out_w(), p.in_channels * p.in_h * p.in_w);
    let ckk = p.in_channels * p.kernel_h * p.kernel_w;
    let k = p.out_channels;
    let threads = rayon::current_num_threads();
    if let Some(db) = dbias {
        check_len(OP, "dbias", db.len(), &[k])?;
        db.par_iter_mut().enumerate().for_each(|(c, d)| {
            let mut s = T::ZERO;
            for n in 0..p.batch {
                s += dy[(n * k + c) * ohw..(n * k + c + 1) * ohw]
                    .iter()
                    .copied()
                    .sum::<T>();
            }
            *d += s;
        });
    }
    for n in 0..p.batch {
        let xn = &x[n * chw..(n + 1) * chw];
        let dyn_ = &dy[n * k * ohw..(n + 1) * k * ohw];
        let col: &[T] = if p.is_pointwise() {
            xn
        } else {
            im2col(workspace, xn, p);
            &workspace[..ckk * ohw]
        };
        // dwᵀ [CKK, K] += col [CKK, OHW] · dy_nᵀ [OHW, K]
        matmul(
            dw,
            1,
            ckk,
            true,
            View {
                data: col,
                rows: ckk,
                cols: ohw,
                rs: ohw,
                cs: 1,
            },
            View {
                data: dyn_,
                rows: ohw,
                cols: k,
                rs: 1,
                cs: ohw,
            },
            threads,
        );
    }
    Ok(())
}
