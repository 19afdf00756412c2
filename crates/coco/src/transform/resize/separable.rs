//! The separable resize itself: horizontal pass into a small ring of rows, vertical pass per
//! output row, reading the source through [`RowSource`] so a view never has to be built.

use super::Interp;
use super::tables::{AxisTable, area_table, kernel_table, nearest_table};
use crate::image::RgbImage;

/// `cv2.resize(image, (out_w, out_h), interpolation)` on an RGB image.
pub fn resize_image(image: &RgbImage, out_h: usize, out_w: usize, interp: Interp) -> RgbImage {
    resize_rows(&ImageRows(image), out_h, out_w, interp)
}

/// Rows of an RGB image, produced on demand (a real image, or a view that is never materialised).
pub trait RowSource {
    /// Rows.
    fn height(&self) -> usize;
    /// Columns.
    fn width(&self) -> usize;
    /// True while the values are whole numbers in 0..=255.
    fn integral(&self) -> bool;
    /// Row `y` (`width·3` values), borrowed from the source or written into `scratch`.
    fn row<'a>(&'a self, y: usize, scratch: &'a mut [f32]) -> &'a [f32];
}

struct ImageRows<'a>(&'a RgbImage);

impl RowSource for ImageRows<'_> {
    fn height(&self) -> usize {
        self.0.height
    }
    fn width(&self) -> usize {
        self.0.width
    }
    fn integral(&self) -> bool {
        self.0.integral
    }
    fn row<'a>(&'a self, y: usize, _scratch: &'a mut [f32]) -> &'a [f32] {
        let len = self.0.width * 3;
        &self.0.pixels[y * len..(y + 1) * len]
    }
}

/// `cv2.resize` of any [`RowSource`].
pub fn resize_rows(src: &dyn RowSource, out_h: usize, out_w: usize, interp: Interp) -> RgbImage {
    let (h, w) = (src.height(), src.width());
    let inv_x = out_w as f64 / w as f64;
    let inv_y = out_h as f64 / h as f64;
    let (sx, sy) = (1.0 / inv_x, 1.0 / inv_y);
    let (tx, ty) = match interp {
        Interp::Nearest => (nearest_table(w, out_w, sx), nearest_table(h, out_h, sy)),
        Interp::Area if sx >= 1.0 && sy >= 1.0 => {
            (area_table(w, out_w, sx), area_table(h, out_h, sy))
        }
        _ => (
            kernel_table(interp, w, out_w, sx, inv_x),
            kernel_table(interp, h, out_h, sy, inv_y),
        ),
    };
    let integral = src.integral();
    let mut pixels = separable(src, &tx, &ty, out_w);
    if integral {
        for v in &mut pixels {
            *v = v.round_ties_even().clamp(0.0, 255.0);
        }
    }
    RgbImage {
        height: out_h,
        width: out_w,
        pixels,
        integral,
    }
}

/// Output row by output row: the source rows it needs are resized horizontally into a small ring
/// of row buffers (source rows are needed in increasing order), then combined vertically.
fn separable(src: &dyn RowSource, tx: &AxisTable, ty: &AxisTable, out_w: usize) -> Vec<f32> {
    let row_len = out_w * 3;
    let mut scratch = vec![0.0f32; src.width() * 3];
    let slots = 2 * ty.taps.max(1);
    let mut ring = vec![0.0f32; slots * row_len];
    let mut tag = vec![usize::MAX; slots];
    let out_h = ty.index.len() / ty.taps;
    let mut out = vec![0.0f32; out_h * row_len];
    for (d, orow) in out.chunks_exact_mut(row_len).enumerate() {
        let taps = &ty.index[d * ty.taps..(d + 1) * ty.taps];
        let weights = &ty.weight[d * ty.taps..(d + 1) * ty.taps];
        for &y in taps {
            let slot = y % slots;
            if tag[slot] != y {
                tag[slot] = y;
                let s = src.row(y, &mut scratch);
                let row = &mut ring[slot * row_len..(slot + 1) * row_len];
                match tx.taps {
                    1 => hpass::<1>(s, row, tx),
                    2 => hpass::<2>(s, row, tx),
                    4 => hpass::<4>(s, row, tx),
                    8 => hpass::<8>(s, row, tx),
                    _ => hpass_any(s, row, tx),
                }
            }
        }
        let row = |k: usize| &ring[(taps[k] % slots) * row_len..(taps[k] % slots + 1) * row_len];
        match ty.taps {
            1 => orow.copy_from_slice(row(0)),
            2 => {
                let (r0, r1, w0, w1) = (row(0), row(1), weights[0], weights[1]);
                for (x, o) in orow.iter_mut().enumerate() {
                    *o = r0[x] * w0 + r1[x] * w1;
                }
            }
            4 => {
                let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
                let w = [weights[0], weights[1], weights[2], weights[3]];
                for (x, o) in orow.iter_mut().enumerate() {
                    *o = r0[x] * w[0] + r1[x] * w[1] + r2[x] * w[2] + r3[x] * w[3];
                }
            }
            _ => {
                for (k, &wgt) in weights.iter().enumerate() {
                    for (o, &v) in orow.iter_mut().zip(row(k)) {
                        *o += v * wgt;
                    }
                }
            }
        }
    }
    out
}

/// One row, `T` taps per output pixel.
fn hpass<const T: usize>(s: &[f32], row: &mut [f32], tx: &AxisTable) {
    let index = tx.index.chunks_exact(T);
    let weight = tx.weight.chunks_exact(T);
    for ((out, idx), wgt) in row.chunks_exact_mut(3).zip(index).zip(weight) {
        let mut acc = [0.0f32; 3];
        for k in 0..T {
            let i = idx[k] * 3;
            let p = &s[i..i + 3];
            acc[0] += p[0] * wgt[k];
            acc[1] += p[1] * wgt[k];
            acc[2] += p[2] * wgt[k];
        }
        out.copy_from_slice(&acc);
    }
}

fn hpass_any(s: &[f32], row: &mut [f32], tx: &AxisTable) {
    let index = tx.index.chunks_exact(tx.taps);
    let weight = tx.weight.chunks_exact(tx.taps);
    for ((out, idx), wgt) in row.chunks_exact_mut(3).zip(index).zip(weight) {
        let mut acc = [0.0f32; 3];
        for (&i, &w) in idx.iter().zip(wgt) {
            let p = &s[i * 3..i * 3 + 3];
            acc[0] += p[0] * w;
            acc[1] += p[1] * w;
            acc[2] += p[2] * w;
        }
        out.copy_from_slice(&acc);
    }
}
