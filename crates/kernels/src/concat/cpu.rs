//! CPU channel concat/split: plain copies of contiguous `[C_i, H·W]` blocks per image.
//! Forward functions overwrite; backward functions accumulate.

use rayon::prelude::*;

use super::{ConcatParams, check_parts};
use crate::error::{KernelError, check_len};
use crate::real::Real;

/// Runs `f(part, image, whole_block, part_block)` for every part block, images in parallel.
fn blocks<T: Real>(whole: &mut [T], p: &ConcatParams, f: impl Fn(usize, usize, &mut [T]) + Sync) {
    let per_image = p.total_channels() * p.spatial;
    if per_image == 0 {
        return;
    }
    whole
        .par_chunks_mut(per_image)
        .enumerate()
        .for_each(|(n, img)| {
            let mut off = 0;
            for (i, &c) in p.channels.iter().enumerate() {
                f(i, n, &mut img[off..off + c * p.spatial]);
                off += c * p.spatial;
            }
        });
}

/// `y = concat(xs, channel axis)`.
pub fn concat_channels_forward<T: Real>(
    y: &mut [T],
    xs: &[&[T]],
    p: &ConcatParams,
) -> Result<(), KernelError> {
    const OP: &str = "concat_channels_forward";
    check_parts(OP, "xs[i]", xs.iter().map(|x| x.len()), p)?;
    check_len(OP, "y", y.len(), &[p.batch, p.total_channels(), p.spatial])?;
    blocks(y, p, |i, n, dst| {
        let len = dst.len();
        dst.copy_from_slice(&xs[i][n * len..(n + 1) * len]);
    });
    Ok(())
}

/// `dxs[i] += the channel block i of dy`.
pub fn concat_channels_backward<T: Real>(
    dxs: &mut [&mut [T]],
    dy: &[T],
    p: &ConcatParams,
) -> Result<(), KernelError> {
    const OP: &str = "concat_channels_backward";
    check_parts(OP, "dxs[i]", dxs.iter().map(|x| x.len()), p)?;
    check_len(
        OP,
        "dy",
        dy.len(),
        &[p.batch, p.total_channels(), p.spatial],
    )?;
    let per_image = p.total_channels() * p.spatial;
    let mut off = 0;
    for (dx, &c) in dxs.iter_mut().zip(p.channels) {
        let block = c * p.spatial;
        if block > 0 {
            dx.par_chunks_mut(block).enumerate().for_each(|(n, d)| {
                let src = &dy[n * per_image + off..n * per_image + off + block];
                d.iter_mut().zip(src).for_each(|(d, &g)| *d += g);
            });
        }
        off += block;
    }
    Ok(())
}

/// `ys[i] = the channel block i of x` (the inverse of concat).
pub fn split_channels_forward<T: Real>(
    ys: &mut [&mut [T]],
    x: &[T],
    p: &ConcatParams,
) -> Result<(), KernelError> {
    const OP: &str = "split_channels_forward";
    check_parts(OP, "ys[i]", ys.iter().map(|y| y.len()), p)?;
    check_len(OP, "x", x.len(), &[p.batch, p.total_channels(), p.spatial])?;
    let per_image = p.total_channels() * p.spatial;
    let mut off = 0;
    for (y, &c) in ys.iter_mut().zip(p.channels) {
        let block = c * p.spatial;
        for n in 0..p.batch {
            y[n * block..(n + 1) * block]
                .copy_from_slice(&x[n * per_image + off..n * per_image + off + block]);
        }
        off += block;
    }
    Ok(())
}

/// `dx += concat(dys)`.
pub fn split_channels_backward<T: Real>(
    dx: &mut [T],
    dys: &[&[T]],
    p: &ConcatParams,
) -> Result<(), KernelError> {
    const OP: &str = "split_channels_backward";
    check_parts(OP, "dys[i]", dys.iter().map(|y| y.len()), p)?;
    check_len(
        OP,
        "dx",
        dx.len(),
        &[p.batch, p.total_channels(), p.spatial],
    )?;
    blocks(dx, p, |i, n, dst| {
        let len = dst.len();
        dst.iter_mut()
            .zip(&dys[i][n * len..(n + 1) * len])
            .for_each(|(d, &g)| *d += g);
    });
    Ok(())
}
