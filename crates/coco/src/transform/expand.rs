//! RandomExpand: with probability ½, paste the image at a random offset on a canvas up to 4× larger
//! filled with the ImageNet mean (RGB, ×255), shifting the boxes with it.

use super::{AugRng, Sample};

/// RandomExpand parameters (PaddleDetection defaults).
#[derive(Clone, Debug)]
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

/// `u < prob` skips; else `r ~ U(1, ratio)`, canvas `int(H·r) × int(W·r)`, offset
/// `y ~ randint[0, H'−H)`, `x ~ randint[0, W'−W)`.
pub fn random_expand(sample: &mut Sample, params: &RandomExpand, rng: &mut AugRng) {
    if rng.uniform(0.0, 1.0) < params.prob {
        return;
    }
    let (height, width) = (sample.image.height, sample.image.width);
    let ratio = rng.uniform(1.0, params.ratio);
    let (h, w) = (
        (height as f64 * ratio) as usize,
        (width as f64 * ratio) as usize,
    );
    if h <= height || w <= width {
        return;
    }
    let y = rng.randint(0, (h - height) as i64) as usize;
    let x = rng.randint(0, (w - width) as i64) as usize;
    expand_to(sample, h, w, y, x, params.fill_value);
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
