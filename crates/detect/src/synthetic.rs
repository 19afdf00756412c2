//! Deterministic synthetic batches (smooth gradients, textured boxes, noise; a few padded gts) for
//! benchmarks and demos that need no files.

use crate::boxes::Box4;
use crate::init::SeededNormal;
use crate::model::Feat;

/// A synthetic padded training batch.
#[derive(Clone, Debug)]
pub struct SyntheticBatch {
    /// Normalised images `[n, 3, h, w]`.
    pub image: Feat,
    /// `[n × max_boxes]`.
    pub gt_boxes: Vec<Box4>,
    /// `[n × max_boxes]`.
    pub gt_labels: Vec<usize>,
    /// `[n × max_boxes]`.
    pub pad_mask: Vec<f32>,
    /// Boxes per image.
    pub max_boxes: usize,
}

impl SyntheticBatch {
    /// The batch as the training step takes it.
    pub fn train_batch(&self) -> crate::step::TrainBatch<'_> {
        crate::step::TrainBatch {
            image: &self.image,
            gt_boxes: &self.gt_boxes,
            gt_labels: &self.gt_labels,
            pad_mask: &self.pad_mask,
            max_boxes: self.max_boxes,
        }
    }
}

/// `n` images of `h × w` with up to `max_boxes` boxes each (image i has `1 + i % max_boxes`).
pub fn batch(
    n: usize,
    h: usize,
    w: usize,
    max_boxes: usize,
    classes: usize,
    seed: u64,
) -> SyntheticBatch {
    let mut rng = SeededNormal::new(seed);
    let mut image = Feat::zeros(n, 3, h, w);
    let mut gt_boxes = vec![[0.0f32; 4]; n * max_boxes];
    let mut gt_labels = vec![0usize; n * max_boxes];
    let mut pad_mask = vec![0.0f32; n * max_boxes];
    for b in 0..n {
        let real = 1 + b % max_boxes.max(1);
        for g in 0..real.min(max_boxes) {
            let u = |r: &mut SeededNormal| (r.sample().abs() * 0.25).min(0.9) as f32;
            let (cx, cy) = (
                w as f32 * (0.2 + 0.6 * u(&mut rng)),
                h as f32 * (0.2 + 0.6 * u(&mut rng)),
            );
            let (bw, bh) = (
                w as f32 * (0.1 + 0.4 * u(&mut rng)),
                h as f32 * (0.1 + 0.4 * u(&mut rng)),
            );
            let i = b * max_boxes + g;
            gt_boxes[i] = [
                (cx - bw / 2.0).max(0.0),
                (cy - bh / 2.0).max(0.0),
                (cx + bw / 2.0).min(w as f32),
                (cy + bh / 2.0).min(h as f32),
            ];
            gt_labels[i] = (b * 7 + g * 13) % classes.max(1);
            pad_mask[i] = 1.0;
        }
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    let base = (x as f32 / w as f32 - 0.5) * (c as f32 + 1.0)
                        + (y as f32 / h as f32 - 0.5);
                    let inside = (0..real.min(max_boxes)).any(|g| {
                        let bx = gt_boxes[b * max_boxes + g];
                        (x as f32) >= bx[0]
                            && (x as f32) < bx[2]
                            && (y as f32) >= bx[1]
                            && (y as f32) < bx[3]
                    });
                    let tex = if inside {
                        ((x / 4 + y / 4) % 2) as f32 - 0.5
                    } else {
                        0.0
                    };
                    image.data[((b * 3 + c) * h + y) * w + x] =
                        base + tex + 0.1 * rng.sample() as f32;
                }
            }
        }
    }
    SyntheticBatch {
        image,
        gt_boxes,
        gt_labels,
        pad_mask,
        max_boxes,
    }
}
