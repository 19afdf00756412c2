//! The forward of the few-channel convolutions without a GEMM library:
//! `y[k, q] (+)= Σ_r w[k, r] · col[r, q]` over one block of output positions `q`, as outer
//! products in AVX-512 registers: eight output channels by 32 positions at a time, each im2col
//! row loaded once per tile and each weight broadcast from memory.
//!
//! Why: the stem's GEMM `[b, C·9] · [C·9, K]` has a 16- or 32-wide output and a 27–144 deep
//! inner dimension, too small for the `gemm` crate's packing to pay (3→16 stride 2 at about
//! 110 GFLOP/s). The companion of [`super::direct_filter`], for the same convs and machines.

use super::direct_filter::{assert_rows, available};

/// Output channels per register tile.
const CHANNELS: usize = 8;

/// Whether the direct forward serves a conv of `ckk` im2col rows and `k` output channels:
/// up to 16 input channels of a 3×3 kernel and 32 output channels (the stem; measured against
/// the GEMM in docs/performance.md, "Session 8").
pub(crate) fn serves(ckk: usize, k: usize) -> bool {
    ckk <= 16 * 9 && k <= 32 && available()
}

/// `y[k·y_stride + q] = (add ? y[…] : 0) + Σ_r w[k·ckk + r] · col[r·col_stride + q]` for
/// `k < channels`, `q < b`.
///
/// # Safety
/// `y` must be valid for reads and writes at every `k·y_stride + q` above, and no other thread
/// may touch those elements while this runs. Panics if `w` or `col` is too short, or if
/// [`available`] is false.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn forward(
    y: *mut f32,
    y_stride: usize,
    add: bool,
    w: &[f32],
    col: &[f32],
    col_stride: usize,
    (ckk, channels, b): (usize, usize, usize),
) {
    assert!(w.len() >= ckk * channels, "direct forward: w");
    assert_rows(col.len(), ckk, col_stride, b, "direct forward: col");
    assert!(available(), "direct forward path without AVX-512");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (asserted); w and col are long enough (asserted); y as the
    // caller guarantees.
    unsafe {
        avx512::forward(y, y_stride, add, w, col, col_stride, (ckk, channels, b))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::CHANNELS;
    use std::arch::x86_64::*;

    /// Mask of the lanes of positions `q..q + 16` below `b`.
    #[inline(always)]
    fn lanes(q: usize, b: usize) -> __mmask16 {
        if q >= b {
            0
        } else if b - q >= 16 {
            0xffff
        } else {
            (1u16 << (b - q)) - 1
        }
    }

    /// One tile: `K` channels from `k0` by 32 positions from `q`.
    ///
    /// # Safety
    /// As [`super::forward`]; the tile lies inside the channels and positions.
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const K: usize>(
        y: *mut f32,
        y_stride: usize,
        add: bool,
        w: &[f32],
        col: &[f32],
        col_stride: usize,
        (ckk, b): (usize, usize),
        (k0, q): (usize, usize),
    ) {
        let (m0, m1) = (lanes(q, b), lanes(q + 16, b));
        let mut acc = [[_mm512_setzero_ps(); 2]; K];
        for r in 0..ckk {
            // SAFETY: row r's positions q..q+32, masked to b, lie inside col (asserted).
            let (c0, c1) = unsafe {
                let at = col.as_ptr().add(r * col_stride + q);
                (
                    _mm512_maskz_loadu_ps(m0, at),
                    _mm512_maskz_loadu_ps(m1, at.add(16)),
                )
            };
            for (j, a) in acc.iter_mut().enumerate() {
                let wk = _mm512_set1_ps(w[(k0 + j) * ckk + r]);
                a[0] = _mm512_fmadd_ps(wk, c0, a[0]);
                a[1] = _mm512_fmadd_ps(wk, c1, a[1]);
            }
        }
        for (j, a) in acc.iter().enumerate() {
            // SAFETY: channel k0 + j's positions q..q+32, masked to b, as the caller guarantees.
            unsafe {
                let at = y.add((k0 + j) * y_stride + q);
                let (mut v0, mut v1) = (a[0], a[1]);
                if add {
                    v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, at), v0);
                    v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, at.add(16)), v1);
                }
                _mm512_mask_storeu_ps(at, m0, v0);
                _mm512_mask_storeu_ps(at.add(16), m1, v1);
            }
        }
    }

    /// See [`super::forward`].
    ///
    /// # Safety
    /// As [`super::forward`], with AVX-512F available.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn forward(
        y: *mut f32,
        y_stride: usize,
        add: bool,
        w: &[f32],
        col: &[f32],
        col_stride: usize,
        (ckk, channels, b): (usize, usize, usize),
    ) {
        let mut q = 0;
        while q < b {
            let mut k0 = 0;
            while k0 < channels {
                let full = channels - k0 >= CHANNELS;
                let shape = (ckk, b);
                // SAFETY: the tile lies inside the channels and positions (caller's contract).
                unsafe {
                    if full {
                        tile::<CHANNELS>(y, y_stride, add, w, col, col_stride, shape, (k0, q));
                    } else {
                        tile::<1>(y, y_stride, add, w, col, col_stride, shape, (k0, q));
                    }
                }
                k0 += if full { CHANNELS } else { 1 };
            }
            q += 32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full and partial channel tiles, a masked tail, overwrite and add, against an f64 sum.
    #[test]
    fn forward_matches_a_plain_sum() {
        if !available() {
            eprintln!("no AVX-512 here: the direct path is never taken");
            return;
        }
        for (ckk, k, b, stride) in [(27, 16, 100, 100), (144, 32, 1600, 1700), (13, 11, 37, 40)] {
            let col: Vec<f32> = (0..(ckk - 1) * stride + b)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0)
                .collect();
            let w: Vec<f32> = (0..ckk * k)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 32.0)
                .collect();
            let y_stride = b + 5;
            for add in [false, true] {
                let mut y = vec![0.25f32; k * y_stride];
                // SAFETY: y holds k rows of y_stride ≥ b values, this thread's alone.
                unsafe { forward(y.as_mut_ptr(), y_stride, add, &w, &col, stride, (ckk, k, b)) };
                for kk in 0..k {
                    for q in 0..y_stride {
                        let want = if q >= b {
                            0.25
                        } else {
                            (if add { 0.25 } else { 0.0 })
                                + (0..ckk)
                                    .map(|r| w[kk * ckk + r] as f64 * col[r * stride + q] as f64)
                                    .sum::<f64>()
                        };
                        let got = y[kk * y_stride + q] as f64;
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "{ckk} {k} {b} add {add}: [{kk}, {q}] {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
