//! CPU channel concat/split: plain copies of contiguous `[C_i, H·W]` blocks per image, cut
//! into cache-sized chunks spread over the rayon pool (not one task per image: a batch of one
//! or two would leave cores idle).
//! Forward functions overwrite; backward functions accumulate.

use rayon::prelude::*;

use super::{ConcatParams, check_parts};
use crate::error::{KernelError, check_len};
use crate::par::CHUNK;
use crate::real::Real;

/// Runs `f(part, image, start, dst)` over the whole buffer cut into cache-sized chunks, in
/// parallel: `dst` is the piece of part `part`'s block of image `image` that begins `start`
/// elements into that block (a chunk that straddles blocks is handed out piece by piece).
fn blocks<T: Real>(
    whole: &mut [T],
    p: &ConcatParams,
    f: impl Fn(usize, usize, usize, &mut [T]) + Sync,
) {
    let per_image = p.total_channels() * p.spatial;
    if per_image == 0 {
        return;
    }
    whole
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(ci, mut chunk)| {
            let mut g = ci * CHUNK;
            while !chunk.is_empty() {
                let (n, mut o) = (g / per_image, g % per_image);
                let mut part = 0;
                for (i, &c) in p.channels.iter().enumerate() {
                    part = i;
                    if o < c * p.spatial {
                        break;
                    }
                    o -= c * p.spatial;
                }
                let take = (p.channels[part] * p.spatial - o).min(chunk.len());
                let (head, rest) = chunk.split_at_mut(take);
                f(part, n, o, head);
                chunk = rest;
                g += take;
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
    blocks(y, p, |i, n, start, dst| {
        let o = n * p.channels[i] * p.spatial + start;
        dst.copy_from_slice(&xs[i][o..o + dst.len()]);
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
            // Cache-sized chunks of this part, each cut where an image's block ends.
            dx.par_chunks_mut(CHUNK)
                .enumerate()
                .for_each(|(ci, mut d)| {
                    let mut e = ci * CHUNK;
                    while !d.is_empty() {
                        let (n, r) = (e / block, e % block);
                        let take = (block - r).min(d.len());
                        let (head, rest) = d.split_at_mut(take);
                        let src = &dy[n * per_image + off + r..][..take];
                        head.iter_mut().zip(src).for_each(|(d, &g)| *d += g);
                        d = rest;
                        e += take;
                    }
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
    blocks(dx, p, |i, n, start, dst| {
        let (o, len) = (n * p.channels[i] * p.spatial + start, dst.len());
        dst.iter_mut()
            .zip(&dys[i][o..o + len])
            .for_each(|(d, &g)| *d += g);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts whose blocks straddle the parallel chunks (and an empty part).
    #[test]
    fn chunked_copies_match_the_per_image_layout() {
        let channels = [1usize, 0, 5, 2];
        let (batch, spatial) = (3, 1500);
        let p = ConcatParams {
            batch,
            spatial,
            channels: &channels,
        };
        let parts: Vec<Vec<f32>> = channels
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                (0..batch * c * spatial)
                    .map(|e| (i * 1_000_000 + e) as f32)
                    .collect()
            })
            .collect();
        let mut want = Vec::new();
        for n in 0..batch {
            for (part, &c) in parts.iter().zip(&channels) {
                want.extend_from_slice(&part[n * c * spatial..(n + 1) * c * spatial]);
            }
        }
        let xs: Vec<&[f32]> = parts.iter().map(Vec::as_slice).collect();
        let mut y = vec![0.0f32; want.len()];
        concat_channels_forward(&mut y, &xs, &p).unwrap();
        assert_eq!(y, want);

        let mut dxs: Vec<Vec<f32>> = parts.iter().map(|v| vec![1.0; v.len()]).collect();
        let mut refs: Vec<&mut [f32]> = dxs.iter_mut().map(Vec::as_mut_slice).collect();
        concat_channels_backward(&mut refs, &want, &p).unwrap();
        for (d, x) in dxs.iter().zip(&parts) {
            assert!(d.iter().zip(x).all(|(d, x)| *d == x + 1.0));
        }

        let mut dx = vec![1.0f32; want.len()];
        split_channels_backward(&mut dx, &xs, &p).unwrap();
        assert!(dx.iter().zip(&want).all(|(d, w)| *d == w + 1.0));
    }
}
