//! RandomFlip: with probability `prob`, mirror horizontally; `x1' = W − x2`, `x2' = W − x1`.

use super::{AugRng, Sample};

/// Draws `u ~ U(0,1)` and flips when `u < prob`.
pub fn random_flip(sample: &mut Sample, prob: f64, rng: &mut AugRng) {
    if rng.uniform(0.0, 1.0) < prob {
        flip(sample);
    }
}

/// Mirrors the image and its boxes horizontally.
pub fn flip(sample: &mut Sample) {
    let image = &mut sample.image;
    let w = image.width;
    for row in image.pixels.chunks_exact_mut(w * 3) {
        for x in 0..w / 2 {
            let (a, b) = (x * 3, (w - 1 - x) * 3);
            for c in 0..3 {
                row.swap(a + c, b + c);
            }
        }
    }
    let wf = w as f32;
    for b in &mut sample.gt_bbox {
        *b = [wf - b[2], b[1], wf - b[0], b[3]];
    }
}
