//! The filter gradient of the few-channel stem convolutions without a GEMM library:
//! `acc[k, r] += Σ_q col[r, q] · dy[k, q]` over one block of output positions `q`, as dot
//! products of rows that are both contiguous along `q` (the im2col block and dy's own planes), in
//! AVX-512 registers of sixteen positions, six im2col rows by four output channels at a time.
//!
//! Why: in the stem and the first stage (3, 16 or 24 input channels, 16 to 32 output channels)
//! the GEMM of the filter gradient is `[C·9, b] · [b, K]` with a 16- to 32-wide output: the
//! `gemm` crate packs both operands for an output tile that small and reached 65–130 GFLOP/s
//! there, against 150–190 on the wide layers. Reading the operands where they lie needs no
//! packing and no transpose of `dy`.
//!
//! Only for `f32` on machines with AVX-512 (the caller falls back to the GEMM otherwise); the
//! sums are in another order than the GEMM's, so the two paths agree to rounding, not bit for bit.

/// Rows of the im2col block per register tile.
const ROWS: usize = 6;
/// Output channels per register tile.
const CHANNELS: usize = 4;

/// Whether the direct path serves a conv of `ckk` = C·kh·kw im2col rows and `k` output
/// channels: up to 24 input channels of a 3×3 kernel and 32 output channels, where the GEMM's
/// output tile is too small to pay for its packing. Measured on PP-YOLOE-s's shapes (b2, 320²,
/// 2 threads, GFLOP/s GEMM → direct): 16→16 3×3 on 160² 84–92 → 146–152, 16→32 118–129 →
/// 154–161, 24→24 3×3 on 80² 64–74 → 145–153; at 48 channels (432 rows, 48 outputs) the two
/// are level (133–147 against 143–144), so the GEMM keeps those.
pub(crate) fn serves(ckk: usize, k: usize) -> bool {
    ckk <= 24 * 9 && k <= 32 && available()
}

/// Panics with `what` unless a slice of `len` elements holds `rows` rows of `b` elements each,
/// `stride` apart (the operands of both direct paths).
pub(crate) fn assert_rows(len: usize, rows: usize, stride: usize, b: usize, what: &str) {
    if rows > 0 && b > 0 {
        assert!(len >= (rows - 1) * stride + b, "{what}");
    }
}

/// AVX-512 at run time (x86-64 only).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `acc[k·ckk + r] += Σ_{q<b} col[r·col_stride + q] · dy[k·dy_stride + q]` for `r < ckk`,
/// `k < channels` (`col` an im2col block with `col_stride` = b, or a pointwise conv's input
/// planes with `col_stride` = H·W).
///
/// Panics if a slice is shorter than those indices need, or if [`available`] is false (callers
/// check [`serves`] first).
pub(crate) fn accumulate(
    acc: &mut [f32],
    col: &[f32],
    dy: &[f32],
    ckk: usize,
    channels: usize,
    b: usize,
    (col_stride, dy_stride): (usize, usize),
) {
    assert!(acc.len() >= ckk * channels, "direct filter: acc");
    assert_rows(col.len(), ckk, col_stride, b, "direct filter: col");
    assert_rows(dy.len(), channels, dy_stride, b, "direct filter: dy");
    assert!(available(), "direct filter path without AVX-512");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (asserted); every index below is inside the lengths asserted.
    unsafe {
        avx512::accumulate(acc, col, dy, ckk, channels, b, (col_stride, dy_stride))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{CHANNELS, ROWS};
    use std::arch::x86_64::*;

    /// Sixteen lanes of `s[at..]`, the lanes `mask` leaves out zero (and not read).
    ///
    /// # Safety
    /// AVX-512F; the unmasked lanes lie inside `s`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load(s: &[f32], at: usize, mask: __mmask16) -> __m512 {
        // SAFETY: the caller keeps the unmasked lanes inside `s` (masked lanes are not read).
        unsafe { _mm512_maskz_loadu_ps(mask, s.as_ptr().add(at)) }
    }

    /// One register tile: `R` im2col rows from `r0` by `K` output channels from `k0`, summed
    /// over the block's `b` positions (fixed-size loops, so the sums stay in registers).
    ///
    /// # Safety
    /// As [`accumulate`]; the tile lies inside `ckk` rows and the channels `dy` holds.
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize, const K: usize>(
        acc: &mut [f32],
        col: &[f32],
        dy: &[f32],
        ckk: usize,
        b: usize,
        (col_stride, dy_stride): (usize, usize),
        r0: usize,
        k0: usize,
    ) {
        let mut sums = [[_mm512_setzero_ps(); K]; R];
        let mut q = 0;
        while q < b {
            let mask: __mmask16 = if b - q >= 16 {
                0xffff
            } else {
                (1u16 << (b - q)) - 1
            };
            let mut d = [_mm512_setzero_ps(); K];
            for (j, dj) in d.iter_mut().enumerate() {
                // SAFETY: (k0 + j)·dy_stride + q + 16 lanes, masked to b.
                *dj = unsafe { load(dy, (k0 + j) * dy_stride + q, mask) };
            }
            for (i, row) in sums.iter_mut().enumerate() {
                // SAFETY: (r0 + i)·col_stride + q + 16 lanes, masked to b.
                let c = unsafe { load(col, (r0 + i) * col_stride + q, mask) };
                for (s, &dj) in row.iter_mut().zip(&d) {
                    *s = _mm512_fmadd_ps(c, dj, *s);
                }
            }
            q += 16;
        }
        for (i, row) in sums.iter().enumerate() {
            for (j, s) in row.iter().enumerate() {
                acc[(k0 + j) * ckk + r0 + i] += _mm512_reduce_add_ps(*s);
            }
        }
    }

    /// See [`super::accumulate`].
    ///
    /// # Safety
    /// AVX-512F must be available and the slices as long as [`super::accumulate`] asserts.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn accumulate(
        acc: &mut [f32],
        col: &[f32],
        dy: &[f32],
        ckk: usize,
        channels: usize,
        b: usize,
        strides: (usize, usize),
    ) {
        let args = (ckk, b, strides);
        let mut r0 = 0;
        while r0 < ckk {
            let full_rows = ckk - r0 >= ROWS;
            let mut k0 = 0;
            while k0 < channels {
                let full_k = channels - k0 >= CHANNELS;
                // SAFETY: the tiles stay inside ckk rows and `channels` channels.
                unsafe {
                    match (full_rows, full_k) {
                        (true, true) => {
                            tile::<ROWS, CHANNELS>(acc, col, dy, args.0, args.1, args.2, r0, k0)
                        }
                        (true, false) => {
                            tile::<ROWS, 1>(acc, col, dy, args.0, args.1, args.2, r0, k0)
                        }
                        (false, true) => {
                            tile::<1, CHANNELS>(acc, col, dy, args.0, args.1, args.2, r0, k0)
                        }
                        (false, false) => {
                            tile::<1, 1>(acc, col, dy, args.0, args.1, args.2, r0, k0)
                        }
                    }
                }
                k0 += if full_k { CHANNELS } else { 1 };
            }
            r0 += if full_rows { ROWS } else { 1 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tile shape (full, row remainder, channel remainder) and a masked tail of positions,
    /// against a direct f64 sum.
    #[test]
    fn accumulate_matches_a_plain_sum() {
        if !available() {
            eprintln!("no AVX-512 here: the direct path is never taken");
            return;
        }
        for (ckk, k, b, stride) in [(27, 16, 100, 131), (144, 32, 1600, 1600), (13, 7, 37, 40)] {
            let col: Vec<f32> = (0..ckk * b)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0)
                .collect();
            let dy: Vec<f32> = (0..k * stride)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 32.0)
                .collect();
            let mut acc = vec![0.5f32; ckk * k];
            accumulate(&mut acc, &col, &dy, ckk, k, b, (b, stride));
            for kk in 0..k {
                for r in 0..ckk {
                    let want: f64 = 0.5
                        + (0..b)
                            .map(|q| col[r * b + q] as f64 * dy[kk * stride + q] as f64)
                            .sum::<f64>();
                    let got = acc[kk * ckk + r] as f64;
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{ckk} {k} {b}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
