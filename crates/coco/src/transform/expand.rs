//! RandomExpand: with probability ½, paste the image at a random offset on a canvas up to 4× larger
//! filled with the ImageNet mean (RGB, ×255), shifting the boxes with it.

use super::resize::RowSource;
use super::{AugRng, Sample};
use crate::image::RgbImage;

/// RandomExpand parameters (PaddleDetection defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct RandomExpand {
    /// Largest side ratio: 4.0.
    pub ratio: f64,
    /// Skip probability: 0.5.
    pub prob: f64,
    /// Canvas colour: `[123.675, 116.28, 103.53]`.
    pub fill_value: [f32; 3],
}

impl Default for RandomExpand {
    fn default() -> Self {
        RandomExpand {
            ratio: 4.0,
            prob: 0.5,
            fill_value: [123.675, 116.28, 103.53],
        }
    }
}

/// Where RandomExpand puts the image: an `height × width` canvas with the image at (`y`, `x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpandPlan {
    /// Canvas rows.
    pub height: usize,
    /// Canvas columns.
    pub width: usize,
    /// Row of the image's top-left corner.
    pub y: usize,
    /// Column of the image's top-left corner.
    pub x: usize,
}

/// RandomExpand's draws for an `h × w` image: `u < prob` skips; else `r ~ U(1, ratio)`, canvas
/// `int(H·r) × int(W·r)` (skipped unless both grow), offset `y ~ randint[0, H'−H)`,
/// `x ~ randint[0, W'−W)`.
pub fn draw_expand(
    h: usize,
    w: usize,
    params: &RandomExpand,
    rng: &mut AugRng,
) -> Option<ExpandPlan> {
    if rng.uniform(0.0, 1.0) < params.prob {
        return None;
    }
    let ratio = rng.uniform(1.0, params.ratio);
    let (eh, ew) = ((h as f64 * ratio) as usize, (w as f64 * ratio) as usize);
    if eh <= h || ew <= w {
        return None;
    }
    let y = rng.randint(0, (eh - h) as i64) as usize;
    let x = rng.randint(0, (ew - w) as i64) as usize;
    Some(ExpandPlan {
        height: eh,
        width: ew,
        y,
        x,
    })
}

/// RandomExpand on its own (materialises the whole canvas).
pub fn random_expand(sample: &mut Sample, params: &RandomExpand, rng: &mut AugRng) {
    if let Some(p) = draw_expand(sample.image.height, sample.image.width, params, rng) {
        expand_to(sample, p.height, p.width, p.y, p.x, params.fill_value);
    }
}

/// The `[x0, y0, x1, y1)` part of the canvas of `plan` (or of the image itself when `None`),
/// mirrored when `mirrored`: what RandomExpand → RandomCrop → RandomFlip leave, described without
/// building it. [`CanvasView::to_image`] builds it; a resize can read its rows directly.
#[derive(Clone, Copy, Debug)]
pub struct CanvasView<'a> {
    /// The image pasted on the canvas.
    pub image: &'a RgbImage,
    /// Where it is pasted (`None`: the canvas is the image).
    pub plan: Option<ExpandPlan>,
    /// The part of the canvas kept, `[x0, y0, x1, y1)`.
    pub region: [usize; 4],
    /// Canvas colour.
    pub fill: [f32; 3],
    /// Mirror horizontally.
    pub mirrored: bool,
}

impl CanvasView<'_> {
    /// Writes row `r` of the view into `out` (`width·3` values).
    pub fn write_row(&self, r: usize, out: &mut [f32]) {
        let (image, fill) = (self.image, self.fill);
        let (oy, ox) = self.plan.map_or((0, 0), |p| (p.y, p.x));
        let [x0, y0, x1, _] = self.region;
        // Columns of the region that the image covers, in region coordinates.
        let img_x0 = ox.clamp(x0, x1) - x0;
        let img_x1 = (ox + image.width).clamp(x0, x1) - x0;
        let cy = y0 + r;
        if cy < oy || cy >= oy + image.height || img_x0 == img_x1 {
            for px in out.chunks_exact_mut(3) {
                px.copy_from_slice(&fill);
            }
            return;
        }
        let (left, rest) = out.split_at_mut(img_x0 * 3);
        let right = &mut rest[(img_x1 - img_x0) * 3..];
        for px in left.chunks_exact_mut(3).chain(right.chunks_exact_mut(3)) {
            px.copy_from_slice(&fill);
        }
        let src = ((cy - oy) * image.width + img_x0 + x0 - ox) * 3;
        out[img_x0 * 3..img_x1 * 3]
            .copy_from_slice(&image.pixels[src..src + (img_x1 - img_x0) * 3]);
        if self.mirrored {
            super::flip::mirror_row(out);
        }
    }

    /// Builds the view as an image.
    pub fn to_image(&self) -> RgbImage {
        let row_len = self.width() * 3;
        let mut pixels = vec![0.0f32; self.height() * row_len];
        for (r, out) in pixels.chunks_exact_mut(row_len).enumerate() {
            self.write_row(r, out);
        }
        RgbImage {
            height: self.height(),
            width: self.width(),
            pixels,
            integral: self.integral(),
        }
    }
}

impl super::resize::RowSource for CanvasView<'_> {
    fn height(&self) -> usize {
        self.region[3] - self.region[1]
    }
    fn width(&self) -> usize {
        self.region[2] - self.region[0]
    }
    fn integral(&self) -> bool {
        self.image.integral && self.plan.is_none()
    }
    fn row<'a>(&'a self, y: usize, scratch: &'a mut [f32]) -> &'a [f32] {
        self.write_row(y, scratch);
        scratch
    }
}

/// Pastes the image at (`y`, `x`) on an `h × w` canvas of `fill` and shifts the boxes.
pub fn expand_to(sample: &mut Sample, h: usize, w: usize, y: usize, x: usize, fill: [f32; 3]) {
    let image = &mut sample.image;
    let mut pixels = Vec::with_capacity(h * w * 3);
    let row_fill: Vec<f32> = fill.iter().copied().cycle().take(w * 3).collect();
    for _ in 0..y {
        pixels.extend_from_slice(&row_fill);
    }
    let src_row = image.width * 3;
    for r in 0..image.height {
        pixels.extend_from_slice(&row_fill[..x * 3]);
        pixels.extend_from_slice(&image.pixels[r * src_row..(r + 1) * src_row]);
        pixels.extend_from_slice(&row_fill[(x + image.width) * 3..]);
    }
    for _ in y + image.height..h {
        pixels.extend_from_slice(&row_fill);
    }
    image.pixels = pixels;
    image.height = h;
    image.width = w;
    image.integral = false;
    let (dx, dy) = (x as f32, y as f32);
    for b in &mut sample.gt_bbox {
        *b = [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy];
    }
}
