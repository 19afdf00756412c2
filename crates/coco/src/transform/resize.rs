//! Resizing as OpenCV's `cv2.resize` does it (pixel-centre mapping, border replicate, OpenCV's
//! coefficient formulas for each interpolation), plus the two resize transforms of PP-YOLOE:
//! BatchRandomResize for training and the fixed 640×640 bicubic Resize for evaluation.
//!
//! Arithmetic is float32 throughout. An image that is still integral (what would be `uint8` in
//! PaddleDetection) is rounded half-to-even and saturated to 0..=255 afterwards; OpenCV's 8-bit
//! paths use 11-bit fixed-point weights instead, so such outputs may differ from OpenCV by ±1.

use super::{AugRng, Sample};
use crate::image::Image;

/// OpenCV's interpolation flags that PP-YOLOE draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interp {
    /// `INTER_NEAREST` (0): `src = floor(dst · scale)`.
    Nearest,
    /// `INTER_LINEAR` (1).
    Linear,
    /// `INTER_CUBIC` (2), A = −0.75.
    Cubic,
    /// `INTER_AREA` (3): pixel-area averaging when shrinking both axes, else a bilinear variant.
    Area,
    /// `INTER_LANCZOS4` (4): 8 taps.
    Lanczos4,
}

impl Interp {
    /// BatchRandomResize's list, in PaddleDetection's order.
    pub const RANDOM: [Interp; 5] = [
        Interp::Nearest,
        Interp::Linear,
        Interp::Area,
        Interp::Cubic,
        Interp::Lanczos4,
    ];
}

/// BatchRandomResize's 15 square target sizes, 320..=768 step 32.
pub const BATCH_SIZES: [usize; 15] = [
    320, 352, 384, 416, 448, 480, 512, 544, 576, 608, 640, 672, 704, 736, 768,
];

/// Per output index along one axis: `taps` source indices and weights.
struct AxisTable {
    taps: usize,
    index: Vec<usize>,
    weight: Vec<f32>,
}

fn cubic_coeffs(x: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let c0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let c1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    [c0, c1, c2, 1.0 - c0 - c1 - c2]
}

fn lanczos4_coeffs(x: f32) -> [f32; 8] {
    if x < f32::EPSILON {
        let mut c = [0.0; 8];
        c[3] = 1.0;
        return c;
    }
    const S45: f64 = std::f64::consts::FRAC_1_SQRT_2;
    const CS: [[f64; 2]; 8] = [
        [1.0, 0.0],
        [-S45, -S45],
        [0.0, 1.0],
        [S45, -S45],
        [-1.0, 0.0],
        [S45, S45],
        [0.0, -1.0],
        [-S45, S45],
    ];
    let pi4 = std::f64::consts::PI * 0.25;
    let y0 = -(x as f64 + 3.0) * pi4;
    let (s0, c0) = y0.sin_cos();
    let mut c = [0.0f32; 8];
    let mut sum = 0.0f32;
    for i in 0..8 {
        let y = -(x as f64 + 3.0 - i as f64) * pi4;
        c[i] = ((CS[i][0] * s0 + CS[i][1] * c0) / (y * y)) as f32;
        sum += c[i];
    }
    let inv = 1.0 / sum;
    c.map(|v| v * inv)
}

/// Interpolating kernels (linear, cubic, Lanczos4, and INTER_AREA's bilinear variant).
fn kernel_table(interp: Interp, src: usize, dst: usize, scale: f64, inv_scale: f64) -> AxisTable {
    let area_mode = interp == Interp::Area;
    let taps = match interp {
        Interp::Cubic => 4,
        Interp::Lanczos4 => 8,
        _ => 2,
    };
    let half = (taps / 2) as i64;
    let clamps = !matches!(interp, Interp::Cubic | Interp::Lanczos4);
    let mut index = Vec::with_capacity(dst * taps);
    let mut weight = Vec::with_capacity(dst * taps);
    for d in 0..dst {
        let (mut s, mut f) = if area_mode {
            let s = (d as f64 * scale).floor() as i64;
            let f = ((d + 1) as f64 - (s + 1) as f64 * inv_scale) as f32;
            (s, if f <= 0.0 { 0.0 } else { f - f.floor() })
        } else {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = f.floor() as i64;
            (s, f - s as f32)
        };
        if s < 0 && clamps {
            (s, f) = (0, 0.0);
        }
        if s >= src as i64 - 1 && clamps {
            (s, f) = (src as i64 - 1, 0.0);
        }
        let coeffs: Vec<f32> = match interp {
            Interp::Cubic => cubic_coeffs(f).to_vec(),
            Interp::Lanczos4 => lanczos4_coeffs(f).to_vec(),
            _ => vec![1.0 - f, f],
        };
        for (k, c) in coeffs.into_iter().enumerate() {
            let i = (s + k as i64 - half + 1).clamp(0, src as i64 - 1);
            index.push(i as usize);
            weight.push(c);
        }
    }
    AxisTable {
        taps,
        index,
        weight,
    }
}

/// `INTER_NEAREST`: `min(floor(d · scale), src − 1)`.
fn nearest_table(src: usize, dst: usize, scale: f64) -> AxisTable {
    let index = (0..dst)
        .map(|d| ((d as f64 * scale).floor() as usize).min(src - 1))
        .collect();
    AxisTable {
        taps: 1,
        index,
        weight: vec![1.0; dst],
    }
}

/// OpenCV's `computeResizeAreaTab`: the source cells each output cell covers, by coverage.
fn area_table(src: usize, dst: usize, scale: f64) -> AxisTable {
    let mut cells: Vec<Vec<(usize, f32)>> = Vec::with_capacity(dst);
    for d in 0..dst {
        let fs1 = d as f64 * scale;
        let fs2 = fs1 + scale;
        let cell = scale.min(src as f64 - fs1);
        let s2 = (fs2.floor() as i64).min(src as i64 - 1);
        let s1 = (fs1.ceil() as i64).min(s2);
        let mut taps = Vec::new();
        if s1 as f64 - fs1 > 1e-3 {
            taps.push(((s1 - 1) as usize, ((s1 as f64 - fs1) / cell) as f32));
        }
        for s in s1..s2 {
            taps.push((s as usize, (1.0 / cell) as f32));
        }
        if fs2 - s2 as f64 > 1e-3 {
            taps.push((
                s2 as usize,
                ((fs2 - s2 as f64).min(1.0).min(cell) / cell) as f32,
            ));
        }
        cells.push(taps);
    }
    let taps = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut index = Vec::with_capacity(dst * taps);
    let mut weight = Vec::with_capacity(dst * taps);
    for c in cells {
        let pad = taps - c.len();
        let first = c.first().map_or(0, |t| t.0);
        for (i, w) in c {
            index.push(i);
            weight.push(w);
        }
        index.extend(std::iter::repeat_n(first, pad));
        weight.extend(std::iter::repeat_n(0.0, pad));
    }
    AxisTable {
        taps,
        index,
        weight,
    }
}

/// `cv2.resize(image, (out_w, out_h), interpolation)` on an RGB image.
pub fn resize_image(image: &Image, out_h: usize, out_w: usize, interp: Interp) -> Image {
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

struct ImageRows<'a>(&'a Image);

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
pub fn resize_rows(src: &dyn RowSource, out_h: usize, out_w: usize, interp: Interp) -> Image {
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
    Image {
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

/// Resizes a sample to exactly `size_h × size_w` (ratio not kept); boxes are scaled and clipped
/// to the new image, `im_shape` set to it and `scale_factor` multiplied by `[fy, fx]`.
pub fn resize_sample(sample: &mut Sample, size_h: usize, size_w: usize, interp: Interp) {
    let (from_h, from_w) = (sample.image.height, sample.image.width);
    sample.image = resize_image(&sample.image, size_h, size_w, interp);
    scale_boxes(sample, from_h, from_w, size_h, size_w);
}

/// The bookkeeping of a resize from `from_h × from_w` to `size_h × size_w`: boxes scaled per axis
/// and clipped to the new image, `im_shape` set, `scale_factor` multiplied by `[fy, fx]`.
pub fn scale_boxes(
    sample: &mut Sample,
    from_h: usize,
    from_w: usize,
    size_h: usize,
    size_w: usize,
) {
    let fy = size_h as f64 / from_h as f64;
    let fx = size_w as f64 / from_w as f64;
    sample.im_shape = [size_h as f32, size_w as f32];
    sample.scale_factor = [
        (sample.scale_factor[0] as f64 * fy) as f32,
        (sample.scale_factor[1] as f64 * fx) as f32,
    ];
    let (fx, fy, wf, hf) = (fx as f32, fy as f32, size_w as f32, size_h as f32);
    for b in &mut sample.gt_bbox {
        *b = [
            (b[0] * fx).clamp(0.0, wf),
            (b[1] * fy).clamp(0.0, hf),
            (b[2] * fx).clamp(0.0, wf),
            (b[3] * fy).clamp(0.0, hf),
        ];
    }
}

/// Draws BatchRandomResize's size and interpolation for one batch.
pub fn draw_batch_resize(rng: &mut AugRng) -> (usize, Interp) {
    let size = BATCH_SIZES[rng.index(BATCH_SIZES.len())];
    let interp = Interp::RANDOM[rng.index(Interp::RANDOM.len())];
    (size, interp)
}

/// BatchRandomResize: one size and one interpolation for the whole batch, every image to s×s.
pub fn batch_random_resize(samples: &mut [Sample], rng: &mut AugRng) -> (usize, Interp) {
    let (size, interp) = draw_batch_resize(rng);
    for s in samples {
        resize_sample(s, size, size, interp);
    }
    (size, interp)
}

/// The eval Resize: 640×640 bicubic, ratio not kept (boxes, if any, follow).
pub fn eval_resize(sample: &mut Sample) {
    resize_sample(sample, 640, 640, Interp::Cubic);
}
