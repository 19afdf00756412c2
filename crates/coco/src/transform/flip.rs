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
    let w = sample.image.width;
    for row in sample.image.pixels.chunks_exact_mut(w * 3) {
        mirror_row(row);
    }
    flip_boxes(sample);
}

/// Mirrors one RGB row in place: reverse the values, then put each pixel's channels back in order.
pub fn mirror_row(row: &mut [f32]) {
    row.reverse();
    for px in row.chunks_exact_mut(3) {
        px.swap(0, 2);
    }
}

/// Mirrors the boxes of a sample whose image is `sample.image.width` wide.
pub fn flip_boxes(sample: &mut Sample) {
    let wf = sample.image.width as f32;
    for b in &mut sample.gt_bbox {
        *b = [wf - b[2], b[1], wf - b[0], b[3]];
    }
}
