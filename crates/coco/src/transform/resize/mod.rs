//! Resizing as OpenCV's `cv2.resize` does it (pixel-centre mapping, border replicate, OpenCV's
//! coefficient formulas for each interpolation), plus the two resize transforms of PP-YOLOE:
//! BatchRandomResize for training and the fixed 640×640 bicubic Resize for evaluation.
//!
//! Arithmetic is float32 throughout. An image that is still integral (what would be `uint8` in
//! PaddleDetection) is rounded half-to-even and saturated to 0..=255 afterwards; OpenCV's 8-bit
//! paths use 11-bit fixed-point weights instead, so such outputs may differ from OpenCV by ±1.

mod separable;
mod tables;

pub use separable::{RowSource, resize_image, resize_rows};

use super::{AugRng, Sample};

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
    draw_batch_resize_from(rng, &BATCH_SIZES)
}

/// Draws a size from `sizes` (a config's `target_size` list; [`BATCH_SIZES`] when empty) and an
/// interpolation, as [`draw_batch_resize`] does from PP-YOLOE's list.
pub fn draw_batch_resize_from(rng: &mut AugRng, sizes: &[usize]) -> (usize, Interp) {
    let sizes = if sizes.is_empty() {
        &BATCH_SIZES[..]
    } else {
        sizes
    };
    let size = sizes[rng.index(sizes.len())];
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
