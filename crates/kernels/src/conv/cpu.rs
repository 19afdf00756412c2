//! CPU convolution: blocked im2col + GEMM, multi-threaded over (image, block of output rows).
//!
//! Each work item unfolds a block of output rows into its thread's slice of the workspace (sized
//! to stay in L2) and runs one single-threaded GEMM on it; pointwise convs multiply in place.
//! Backward-filter accumulates into per-thread partial gradients that are summed at the end in a
//! fixed order (deterministic for a given thread count). Backward-data runs even blocks, then odd
//! ones, so that the col2im scatters of concurrent blocks never overlap.
//!
//! Layouts: x `[N, C, H, W]`, w `[K, C, kh, kw]`, y `[N, K, OH, OW]`; the workspace holds at
//! least [`Conv2dParams::workspace_per_thread`] elements (see [`Conv2dParams::workspace_len`]).
//! Backward functions accumulate (`+=`) into their gradient outputs, llm.c style.

use rayon::prelude::*;

use super::{Conv2dParams, check_common, direct_filter, direct_forward};
use crate::error::{KernelError, check_len};
use crate::matmul::{DstPtr, View, matmul};
use crate::par::Shared;
use crate::real::Real;

impl<T> Shared<T> {
    /// A destination starting at `off`.
    fn dst(self, off: usize, rs: usize, cs: usize) -> DstPtr<T> {
        assert!(off <= self.1, "destination offset");
        // SAFETY: off is inside the buffer (asserted); matmul checks the extent against len.
        DstPtr {
            ptr: unsafe { self.0.add(off) },
            len: self.1 - off,
            rs,
            cs,
        }
    }
}

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

/// Input row read by output row `oy` through tap row `i`, if inside the image.
fn in_row(oy: usize, i: usize, p: &Conv2dParams) -> Option<usize> {
    let r = (oy * p.stride_h + i) as isize - p.pad_h as isize;
    (r >= 0 && r < p.in_h as isize).then_some(r as usize)
}

/// Unfolds output rows `[r0, r1)` of one image `[C, H, W]` into `col` `[C·kh·kw, (r1−r0)·OW]`.
fn im2col_block<T: Real>(col: &mut [T], x: &[T], p: &Conv2dParams, r0: usize, r1: usize) {
    let ow = p.out_w();
    let (hw, kk) = (p.in_h * p.in_w, p.kernel_h * p.kernel_w);
    let b = (r1 - r0) * ow;
    // stride 1 with the output as wide as the input: a tap's rows are one run of the input plane
    let flat = p.stride_h == 1 && p.stride_w == 1 && ow == p.in_w;
    for (row, dst) in col[..p.col_rows() * b].chunks_exact_mut(b).enumerate() {
        let (c, i, j) = (row / kk, (row % kk) / p.kernel_w, row % p.kernel_w);
        let src = &x[c * hw..(c + 1) * hw];
        if flat {
            im2col_tap_flat(dst, src, p, r0, i, j);
            continue;
        }
        let (x0, x1) = valid_range(ow, p.stride_w, j, p.pad_w, p.in_w);
        for (oy, out) in (r0..r1).zip(dst.chunks_exact_mut(ow)) {
            let Some(ih) = in_row(oy, i, p).filter(|_| x0 < x1) else {
                out.fill(T::ZERO);
                continue;
            };
            let srow = &src[ih * p.in_w..(ih + 1) * p.in_w];
            out[..x0].fill(T::ZERO);
            out[x1..].fill(T::ZERO);
            let start = x0 * p.stride_w + j - p.pad_w;
            let n = x1 - x0;
            match p.stride_w {
                1 => out[x0..x1].copy_from_slice(&srow[start..start + n]),
                // fixed-size chunks let the compiler turn the stride-2 gather into shuffles
                2 => {
                    let (pairs, last) = srow[start..start + 2 * n - 1].split_at(2 * (n - 1));
                    for (o, c) in out[x0..x1 - 1].iter_mut().zip(pairs.chunks_exact(2)) {
                        *o = c[0];
                    }
                    out[x1 - 1] = last[0];
                }
                s => {
                    for (o, v) in out[x0..x1].iter_mut().zip(srow[start..].iter().step_by(s)) {
                        *o = *v;
                    }
                }
            }
        }
    }
}

/// One im2col row (tap `i`, `j` of one channel plane `src`) for output rows from `r0`, when
/// both strides are 1 and the output as wide as the input: output position `t` of the block reads
/// plane element `base + t`, so the row is one copy (clipped to the plane), and only the
/// positions whose tap falls left or right of the image (which the run wraps onto the
/// neighbouring row) are zeroed afterwards. Rows above or below the image fall outside the
/// plane or onto those wrapped columns. One `memcpy` instead of one small copy and up to two
/// fills per output row: the rows of the deep 10×10 and 20×20 maps are only 10–20 values long.
fn im2col_tap_flat<T: Real>(
    dst: &mut [T],
    src: &[T],
    p: &Conv2dParams,
    r0: usize,
    i: usize,
    j: usize,
) {
    let (w, b) = (p.in_w as isize, dst.len() as isize);
    let base = (r0 as isize + i as isize - p.pad_h as isize) * w + j as isize - p.pad_w as isize;
    let lo = (-base).clamp(0, b);
    let hi = (src.len() as isize - base).clamp(lo, b);
    let (lo, hi) = (lo as usize, hi as usize);
    dst[..lo].fill(T::ZERO);
    if hi > lo {
        let start = (base + lo as isize) as usize;
        dst[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
    }
    dst[hi..].fill(T::ZERO);
    let (x0, x1) = valid_range(p.in_w, 1, j, p.pad_w, p.in_w);
    if x0 > 0 || x1 < p.in_w {
        for out in dst.chunks_exact_mut(p.in_w) {
            out[..x0].iter_mut().for_each(|v| *v = T::ZERO);
            out[x1..].iter_mut().for_each(|v| *v = T::ZERO);
        }
    }
    // rows whose tap lies above or below the image: zero whole rows
    for (t, out) in dst.chunks_exact_mut(p.in_w).enumerate() {
        if in_row(r0 + t, i, p).is_none() {
            out.fill(T::ZERO);
        }
    }
}

/// Adds `col` `[C·kh·kw, (r1−r0)·OW]` back onto one image gradient `[C, H, W]`.
///
/// # Safety
/// `dx` must point to one image's `C·H·W` gradient, and no other thread may touch the input
/// rows that output rows `[r0, r1)` read while this runs.
unsafe fn col2im_block<T: Real>(dx: *mut T, col: &[T], p: &Conv2dParams, r0: usize, r1: usize) {
    let ow = p.out_w();
    let (hw, kk) = (p.in_h * p.in_w, p.kernel_h * p.kernel_w);
    let b = (r1 - r0) * ow;
    for (row, src) in col[..p.col_rows() * b].chunks_exact(b).enumerate() {
        let (c, i, j) = (row / kk, (row % kk) / p.kernel_w, row % p.kernel_w);
        let (x0, x1) = valid_range(ow, p.stride_w, j, p.pad_w, p.in_w);
        if x0 == x1 {
            continue;
        }
        let start = x0 * p.stride_w + j - p.pad_w;
        for (oy, s) in (r0..r1).zip(src.chunks_exact(ow)) {
            let Some(ih) = in_row(oy, i, p) else { continue };
            let base = c * hw + ih * p.in_w + start;
            for (t, v) in s[x0..x1].iter().enumerate() {
                // SAFETY: base + t·stride < c·hw + (ih + 1)·W ≤ C·H·W (valid_range keeps the
                // column inside the row); exclusive per the caller's contract.
                unsafe { *dx.add(base + t * p.stride_w) += *v };
            }
        }
    }
}

/// Runs `f(slot_workspace, item)` for every item on `slots` threads, each owning `per`
/// workspace elements. `dynamic`: threads take the next free item (robust when a core is busy
/// elsewhere; only for items whose result does not depend on the thread); otherwise items are
/// dealt round-robin, so each thread's share is fixed (for per-thread partial sums).
fn run_items<T: Real>(
    workspace: &mut [T],
    per: usize,
    slots: usize,
    items: Items,
    dynamic: bool,
    f: impl Fn(&mut [T], (usize, usize, usize)) + Sync,
) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let run = |s: usize, ws: &mut [T]| {
        if dynamic {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(it) = items.get(i) else { break };
                f(ws, it);
            }
        } else {
            for i in (s..items.len()).step_by(slots) {
                if let Some(it) = items.get(i) {
                    f(ws, it);
                }
            }
        }
    };
    if per == 0 {
        (0..slots).into_par_iter().for_each(|s| run(s, &mut []));
    } else {
        workspace[..slots * per]
            .par_chunks_mut(per)
            .enumerate()
            .for_each(|(s, ws)| run(s, ws));
    }
}

struct Plan {
    ohw: usize,
    ow: usize,
    ckk: usize,
    k: usize,
    chw: usize,
    rows: usize,
    per: usize,
    slots: usize,
}

fn plan<T>(
    op: &'static str,
    with_acc: bool,
    workspace: &[T],
    x_len: usize,
    w_len: usize,
    y_len: usize,
    p: &Conv2dParams,
) -> Result<Plan, KernelError> {
    check_common(op, x_len, w_len, y_len, p)?;
    let per = if with_acc {
        p.workspace_per_thread()
    } else {
        p.col_block_len()
    };
    crate::error::check_min_len(op, "workspace", workspace.len(), per)?;
    let threads = rayon::current_num_threads();
    let slots = workspace
        .len()
        .checked_div(per)
        .map_or(threads, |fit| threads.min(fit))
        .max(1);
    Ok(Plan {
        ohw: p.out_h() * p.out_w(),
        ow: p.out_w(),
        ckk: p.col_rows(),
        k: p.out_channels,
        chw: p.in_channels * p.in_h * p.in_w,
        rows: p.block_rows(),
        per,
        slots,
    })
}

/// Work items `(image, first output row, end row)`, optionally only even or odd blocks,
/// computed on demand (no allocation per call).
#[derive(Clone, Copy)]
struct Items {
    rows: usize,
    out_h: usize,
    /// Blocks per image.
    blocks: usize,
    /// Blocks split the rows evenly (heights differ by at most one) instead of `rows` each.
    even: bool,
    first: usize,
    step: usize,
    per_image: usize,
    batch: usize,
}

impl Items {
    /// Blocks of `rows` output rows (the last one shorter), all or only even/odd ones.
    fn new(p: &Conv2dParams, rows: usize, parity: Option<usize>) -> Self {
        let nb = p.out_h().div_ceil(rows.max(1));
        let (first, step) = parity.map_or((0, 1), |q| (q, 2));
        let per_image = if nb > first {
            (nb - first).div_ceil(step)
        } else {
            0
        };
        Self {
            rows,
            out_h: p.out_h(),
            blocks: nb,
            even: false,
            first,
            step,
            per_image,
            batch: p.batch,
        }
    }

    /// Blocks of at most `rows` output rows, split evenly, and a block count that `slots`
    /// divides across the batch where the image has rows for it: for items dealt to the
    /// threads in a fixed order, where a short block or a spare item would leave a thread idle.
    fn even(p: &Conv2dParams, rows: usize, slots: usize) -> Self {
        let oh = p.out_h().max(1);
        let mut nb = oh.div_ceil(rows.max(1));
        while !(p.batch * nb).is_multiple_of(slots.max(1)) && nb < oh {
            nb += 1;
        }
        let mut items = Self::new(p, rows, None);
        (items.blocks, items.per_image, items.even) = (nb, nb, true);
        items
    }

    fn len(&self) -> usize {
        self.batch * self.per_image
    }

    fn get(&self, i: usize) -> Option<(usize, usize, usize)> {
        (i < self.len()).then(|| {
            let (n, j) = (i / self.per_image, i % self.per_image);
            let b = self.first + j * self.step;
            if self.even {
                (
                    n,
                    b * self.out_h / self.blocks,
                    (b + 1) * self.out_h / self.blocks,
                )
            } else {
                (n, b * self.rows, ((b + 1) * self.rows).min(self.out_h))
            }
        })
    }
}

/// Threads each GEMM may use when there are fewer items than slots.
fn gemm_threads(slots: usize, n_items: usize) -> usize {
    (slots / n_items.max(1)).max(1)
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
    forward_impl("conv2d_forward", y, workspace, x, w, bias, false, p)
}

/// The forward, overwriting `y` (`accumulate` false) or adding to it (true, no bias).
#[allow(clippy::too_many_arguments)]
fn forward_impl<T: Real>(
    op: &'static str,
    y: &mut [T],
    workspace: &mut [T],
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    accumulate: bool,
    p: &Conv2dParams,
) -> Result<(), KernelError> {
    let pl = plan(op, false, workspace, x.len(), w.len(), y.len(), p)?;
    if let Some(b) = bias {
        check_len(op, "bias", b.len(), &[p.out_channels])?;
    }
    let its = Items::new(p, pl.rows, None);
    let gt = gemm_threads(pl.slots, its.len());
    // the few-channel stem convs, f32 only (the casts below give None for f64): outer products
    // in registers in place of a GEMM
    let direct = direct_forward::serves(pl.ckk, pl.k);
    let out = Shared::new(y);
    run_items(workspace, pl.per, pl.slots, its, true, |ws, (n, r0, r1)| {
        let (o0, b) = (r0 * pl.ow, (r1 - r0) * pl.ow);
        let yoff = n * pl.k * pl.ohw + o0;
        if let Some(bv) = bias {
            for (kk, &v) in bv.iter().enumerate() {
                // SAFETY: this item alone writes positions [o0, o0 + b) of every channel of image n.
                unsafe { std::slice::from_raw_parts_mut(out.0.add(yoff + kk * pl.ohw), b) }.fill(v);
            }
        }
        let xn = &x[n * pl.chw..(n + 1) * pl.chw];
        let lhs = if p.is_pointwise() {
            View {
                data: &xn[o0..],
                rows: b,
                cols: pl.ckk,
                rs: 1,
                cs: pl.ohw,
            }
        } else {
            im2col_block(ws, xn, p, r0, r1);
            View {
                data: &ws[..pl.ckk * b],
                rows: b,
                cols: pl.ckk,
                rs: 1,
                cs: b,
            }
        };
        if let (true, Some(w32), Some(col)) = (direct, as_f32(w), as_f32(lhs.data)) {
            let add = bias.is_some() || accumulate;
            // SAFETY: T is f32 here (w's cast succeeded); this item alone writes positions
            // [o0, o0 + b) of every channel of image n, which y holds.
            unsafe {
                let y32 = out.0.add(yoff).cast::<f32>();
                direct_forward::forward(y32, pl.ohw, add, w32, col, lhs.cs, (pl.ckk, pl.k, b));
            }
            return;
        }
        // y_nᵀ[o0..o0+b, :] = colᵀ [b, CKK] · wᵀ [CKK, K]
        let rhs = View {
            data: w,
            rows: pl.ckk,
            cols: pl.k,
            rs: 1,
            cs: pl.ckk,
        };
        // SAFETY: items write disjoint (image, row-block) parts of y.
        unsafe {
            matmul(
                out.dst(yoff, 1, pl.ohw),
                bias.is_some() || accumulate,
                lhs,
                rhs,
                gt,
            )
        };
    });
    Ok(())
}

/// `dx = convᵀ(dy, w)`: the gradient with respect to the input. `dx` is overwritten; the
/// stride-1 and pointwise paths write it without reading it (no zero fill first).
pub fn conv2d_backward_data<T: Real>(
    dx: &mut [T],
    workspace: &mut [T],
    dy: &[T],
    w: &[T],
    p: &Conv2dParams,
) -> Result<(), KernelError> {
    const OP: &str = "conv2d_backward_data";
    if let Some(q) = transposed(p) {
        check_common(OP, dx.len(), w.len(), dy.len(), p)?;
        return backward_data_as_conv(dx, workspace, dy, w, p, &q);
    }
    let pl = plan(OP, false, workspace, dx.len(), w.len(), dy.len(), p)?;
    if !p.is_pointwise() {
        // col2im adds each block's columns onto the image
        crate::par::fill(dx, T::ZERO);
    }
    let out = Shared::new(dx);
    let rhs = View {
        data: w,
        rows: pl.k,
        cols: pl.ckk,
        rs: pl.ckk,
        cs: 1,
    };
    // pointwise blocks write disjoint positions; otherwise even blocks, then odd blocks
    let phases: &[Option<usize>] = if p.is_pointwise() {
        &[None]
    } else {
        &[Some(0), Some(1)]
    };
    for &parity in phases {
        let its = Items::new(p, pl.rows, parity);
        let gt = gemm_threads(pl.slots, its.len());
        run_items(workspace, pl.per, pl.slots, its, true, |ws, (n, r0, r1)| {
            let (o0, b) = (r0 * pl.ow, (r1 - r0) * pl.ow);
            let dyn_ = &dy[n * pl.k * pl.ohw + o0..(n + 1) * pl.k * pl.ohw];
            let lhs = View {
                data: dyn_,
                rows: b,
                cols: pl.k,
                rs: 1,
                cs: pl.ohw,
            };
            // dcolᵀ [b, CKK] = dy_nᵀ[o0.., :] [b, K] · w [K, CKK]
            if p.is_pointwise() {
                // SAFETY: items write disjoint (image, position-block) parts of dx.
                unsafe { matmul(out.dst(n * pl.chw + o0, 1, pl.ohw), false, lhs, rhs, gt) };
            } else {
                let col = &mut ws[..pl.ckk * b];
                let dst = DstPtr {
                    ptr: col.as_mut_ptr(),
                    len: col.len(),
                    rs: 1,
                    cs: b,
                };
                // SAFETY: col is this slot's own workspace.
                unsafe { matmul(dst, false, lhs, rhs, gt) };
                // SAFETY: same-parity blocks are ≥ kernel_h output rows apart, so their input
                // rows never overlap; dx image n starts at n·C·H·W.
                unsafe { col2im_block(out.dst(n * pl.chw, 1, 1).ptr, col, p, r0, r1) };
            }
        });
    }
    Ok(())
}

/// For a stride-1, non-pointwise conv, the geometry of the conv whose forward is this conv's
/// backward-data: input `dy` `[N, K, OH, OW]`, weights flipped and transposed to
/// `[C, K, kh, kw]`, padding `k − 1 − pad`, output `dx` `[N, C, H, W]`.
fn transposed(p: &Conv2dParams) -> Option<Conv2dParams> {
    let fits = p.stride_h == 1
        && p.stride_w == 1
        && !p.is_pointwise()
        && p.pad_h < p.kernel_h
        && p.pad_w < p.kernel_w
        && p.out_h() > 0
        && p.out_w() > 0;
    fits.then(|| Conv2dParams {
        batch: p.batch,
        in_channels: p.out_channels,
        out_channels: p.in_channels,
        in_h: p.out_h(),
        in_w: p.out_w(),
        kernel_h: p.kernel_h,
        kernel_w: p.kernel_w,
        stride_h: 1,
        stride_w: 1,
        pad_h: p.kernel_h - 1 - p.pad_h,
        pad_w: p.kernel_w - 1 - p.pad_w,
    })
}

/// Stride-1 backward-data as the forward conv `q` (see [`transposed`]) writing `dx`:
/// an im2col gather and one GEMM over `K·kh·kw` instead of a GEMM over `K` and a col2im
/// scatter run in two phases.
fn backward_data_as_conv<T: Real>(
    dx: &mut [T],
    workspace: &mut [T],
    dy: &[T],
    w: &[T],
    p: &Conv2dParams,
    q: &Conv2dParams,
) -> Result<(), KernelError> {
    let (k, c, kh, kw) = (p.out_channels, p.in_channels, p.kernel_h, p.kernel_w);
    let mut wt = crate::arena::take::<T>(w.len());
    wt.par_chunks_mut(k * kh * kw)
        .enumerate()
        .for_each(|(ci, dst)| {
            for ko in 0..k {
                for i in 0..kh {
                    for j in 0..kw {
                        dst[(ko * kh + i) * kw + j] =
                            w[((ko * c + ci) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
                    }
                }
            }
        });
    // one im2col block of q per thread (fewer would cut the threads the forward uses)
    let need = q.col_block_len() * rayon::current_num_threads();
    let r = if workspace.len() >= need {
        forward_impl(
            "conv2d_backward_data",
            dx,
            workspace,
            dy,
            &wt,
            None,
            false,
            q,
        )
    } else {
        let mut own = crate::arena::take::<T>(need);
        let r = forward_impl(
            "conv2d_backward_data",
            dx,
            &mut own,
            dy,
            &wt,
            None,
            false,
            q,
        );
        crate::arena::give(own);
        r
    };
    crate::arena::give(wt);
    r
}

/// `s` as `f32`s when `T` is `f32`.
fn as_f32<T: Real>(s: &[T]) -> Option<&[f32]> {
    (T::DTYPE == ringdet_tensor::DType::F32 && std::mem::size_of::<T>() == 4).then(|| {
        // SAFETY: T is f32 (its dtype says so and the sizes agree), so the memory is f32s.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) }
    })
}

/// `s` as `f32`s when `T` is `f32`.
fn as_f32_mut<T: Real>(s: &mut [T]) -> Option<&mut [f32]> {
    (T::DTYPE == ringdet_tensor::DType::F32 && std::mem::size_of::<T>() == 4).then(|| {
        // SAFETY: as in as_f32; the borrow is exclusive.
        unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len()) }
    })
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
    let pl = plan(OP, true, workspace, x.len(), dw.len(), dy.len(), p)?;
    if let Some(db) = dbias {
        check_len(OP, "dbias", db.len(), &[pl.k])?;
        db.par_iter_mut().enumerate().for_each(|(c, d)| {
            let mut s = T::ZERO;
            for n in 0..p.batch {
                s += dy[(n * pl.k + c) * pl.ohw..(n * pl.k + c + 1) * pl.ohw]
                    .iter()
                    .copied()
                    .sum::<T>();
            }
            *d += s;
        });
    }
    let wlen = pl.k * pl.ckk;
    let its = Items::even(p, pl.rows, pl.slots);
    let slots = pl.slots.min(its.len()).max(1);
    let gt = gemm_threads(pl.slots, its.len());
    // the few-channel stem convs, f32 only (the casts below give None for f64): dot products
    // in place of a GEMM with a tiny output tile
    let direct = direct_filter::serves(pl.ckk, pl.k);
    for ws in workspace[..slots * pl.per].chunks_exact_mut(pl.per) {
        ws[..wlen].fill(T::ZERO);
    }
    run_items(workspace, pl.per, slots, its, false, |ws, (n, r0, r1)| {
        let (o0, b) = (r0 * pl.ow, (r1 - r0) * pl.ow);
        let (acc, colbuf) = ws.split_at_mut(wlen);
        let xn = &x[n * pl.chw..(n + 1) * pl.chw];
        let lhs = if p.is_pointwise() {
            View {
                data: &xn[o0..],
                rows: pl.ckk,
                cols: b,
                rs: pl.ohw,
                cs: 1,
            }
        } else {
            im2col_block(colbuf, xn, p, r0, r1);
            View {
                data: &colbuf[..pl.ckk * b],
                rows: pl.ckk,
                cols: b,
                rs: b,
                cs: 1,
            }
        };
        let dyn_ = &dy[n * pl.k * pl.ohw + o0..(n + 1) * pl.k * pl.ohw];
        let operands = (as_f32_mut(acc), as_f32(lhs.data), as_f32(dyn_));
        if let (true, (Some(acc), Some(col), Some(dyn_))) = (direct, operands) {
            let strides = (lhs.rs, pl.ohw);
            direct_filter::accumulate(acc, col, dyn_, pl.ckk, pl.k, b, strides);
            return;
        }
        let rhs = View {
            data: dyn_,
            rows: b,
            cols: pl.k,
            rs: 1,
            cs: pl.ohw,
        };
        // accᵀ [CKK, K] += col [CKK, b] · dy_nᵀ[o0.., :] [b, K]
        let dst = DstPtr {
            ptr: acc.as_mut_ptr(),
            len: acc.len(),
            rs: 1,
            cs: pl.ckk,
        };
        // SAFETY: acc is this slot's own accumulator.
        unsafe { matmul(dst, true, lhs, rhs, gt) };
    });
    let parts = &workspace[..slots * pl.per];
    dw.par_chunks_mut(4096).enumerate().for_each(|(ci, d)| {
        for s in 0..slots {
            let src = &parts[s * pl.per + ci * 4096..];
            d.iter_mut().zip(src).for_each(|(o, &v)| *o += v);
        }
    });
    Ok(())
}
