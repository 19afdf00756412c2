//! PaddleDetection's training view of an instances file (`COCODataSet` with `load_crowd: False`,
//! `allow_empty: False`): which boxes and images a training epoch sees.

use super::category_map::CategoryMap;
use super::instances::Instances;
use super::types::ImageRecord;

/// One training image with its kept boxes.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSample {
    /// The image record (id, size, file name).
    pub image: ImageRecord,
    /// Kept boxes as `[x1, y1, x2, y2]`, each coordinate rounded to 3 decimals as PaddleDetection does.
    pub gt_bbox: Vec<[f32; 4]>,
    /// Class index (0..K-1) of each box.
    pub gt_class: Vec<u32>,
}

/// What the training filter dropped, for the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterCounts {
    /// Crowd annotations (not loaded in training).
    pub crowd: usize,
    /// Annotations with `ignore` set or an all-zero bbox.
    pub ignored: usize,
    /// Annotations with `area <= 0` or a width or height of at most 1e-5.
    pub degenerate: usize,
    /// Annotations on image ids absent from `images`, or with category ids absent from `categories`.
    pub orphan: usize,
    /// Images left without any box.
    pub empty_images: usize,
}

/// Applies PaddleDetection's training filter: images sorted by id; crowd, `ignore`d, all-zero,
/// zero-area and thinner than 1e-5 boxes dropped; images left without boxes dropped.
pub fn training_samples(
    instances: &Instances,
    categories: &CategoryMap,
) -> (Vec<TrainSample>, FilterCounts) {
    let mut counts = FilterCounts::default();
    let mut order: Vec<usize> = (0..instances.images.len()).collect();
    order.sort_by_key(|&i| instances.images[i].id);
    order.dedup_by_key(|i| instances.images[*i].id);
    let mut samples: Vec<TrainSample> = order
        .iter()
        .map(|&i| TrainSample {
            image: instances.images[i].clone(),
            gt_bbox: Vec::new(),
            gt_class: Vec::new(),
        })
        .collect();
    for ann in &instances.annotations {
        let slot = samples.binary_search_by_key(&ann.image_id, |s| s.image.id);
        let (Ok(slot), Some(class)) = (slot, categories.class_of(ann.category_id)) else {
            counts.orphan += 1;
            continue;
        };
        if ann.iscrowd {
            counts.crowd += 1;
            continue;
        }
        if ann.ignore || ann.bbox.iter().all(|&v| v == 0.0) {
            counts.ignored += 1;
            continue;
        }
        let [x1, y1, w, h] = ann.bbox;
        let (x2, y2) = (x1 + w, y1 + h);
        let eps = 1e-5;
        if !(ann.area > 0.0 && x2 - x1 > eps && y2 - y1 > eps) {
            counts.degenerate += 1;
            continue;
        }
        let sample = &mut samples[slot];
        sample
            .gt_bbox
            .push([x1, y1, x2, y2].map(|v| round3(v) as f32));
        sample.gt_class.push(class as u32);
    }
    let before = samples.len();
    samples.retain(|s| !s.gt_bbox.is_empty());
    counts.empty_images = before - samples.len();
    (samples, counts)
}

/// Python's `round(x, 3)`: the double nearest to `x` rounded to 3 decimals (half to even on the exact
/// binary value).
fn round3(v: f64) -> f64 {
    let scaled = v * 1000.0;
    let nearest = scaled.round();
    // Far from a tie, the product's rounding error (about 1e-13 here) cannot change the decimal, and
    // an integer divided by 1000 is the double nearest to that decimal.
    if (scaled - nearest).abs() < 0.5 - 1e-6 && scaled.abs() < 1e15 {
        return nearest / 1000.0;
    }
    // Near a tie, or huge: format the exact binary value, as CPython does.
    format!("{v:.3}").parse().unwrap_or(v)
}
