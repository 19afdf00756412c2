//! RandomCrop (SSD-style): try IoU thresholds in random order (plus "no crop"); for each, up to 50
//! random crops; keep the first whose best IoU with a box reaches the threshold and that keeps at
//! least one box whose original centre lies inside it.

use super::{AugRng, Sample};
use crate::image::RgbImage;

/// RandomCrop parameters (PaddleDetection defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct RandomCrop {
    /// Aspect-ratio bounds `[0.5, 2.0]`.
    pub aspect_ratio: [f64; 2],
    /// IoU thresholds `[0.0, 0.1, 0.3, 0.5, 0.7, 0.9]`.
    pub thresholds: Vec<f64>,
    /// Scale bounds `[0.3, 1.0]`.
    pub scaling: [f64; 2],
    /// Attempts per threshold: 50.
    pub num_attempts: usize,
    /// Add a "no crop" entry to the thresholds: true.
    pub allow_no_crop: bool,
    /// Require every box to reach the threshold: false.
    pub cover_all_box: bool,
}

impl Default for RandomCrop {
    fn default() -> Self {
        RandomCrop {
            aspect_ratio: [0.5, 2.0],
            thresholds: vec![0.0, 0.1, 0.3, 0.5, 0.7, 0.9],
            scaling: [0.3, 1.0],
            num_attempts: 50,
            allow_no_crop: true,
            cover_all_box: false,
        }
    }
}

/// The crop rectangle `[x0, y0, x0+w, y0+h]` in pixels.
type CropBox = [usize; 4];

/// What RandomCrop chose: the crop rectangle and the kept boxes (original index, clipped box).
#[derive(Clone, Debug, PartialEq)]
pub struct CropPlan {
    /// `[x0, y0, x0+w, y0+h]`.
    pub rect: [usize; 4],
    /// Kept boxes in crop coordinates, with their index before the crop.
    pub kept: Vec<(usize, [f32; 4])>,
}

/// RandomCrop's draws for an `h × w` image with `boxes` (`None`: leave the sample alone).
pub fn draw_crop(
    h: usize,
    w: usize,
    boxes: &[[f32; 4]],
    params: &RandomCrop,
    rng: &mut AugRng,
) -> Option<CropPlan> {
    if boxes.is_empty() {
        return None;
    }
    let mut entries: Vec<Option<f64>> = params.thresholds.iter().copied().map(Some).collect();
    if params.allow_no_crop {
        entries.push(None);
    }
    rng.shuffle(&mut entries);
    for entry in entries {
        let thresh = entry?;
        for _ in 0..params.num_attempts {
            let scale = rng.uniform(params.scaling[0], params.scaling[1]);
            let [min_ar, max_ar] = params.aspect_ratio;
            let ar = rng.uniform(min_ar.max(scale * scale), max_ar.min(1.0 / (scale * scale)));
            let crop_h = (h as f64 * (scale / ar.sqrt())) as usize;
            let crop_w = (w as f64 * (scale * ar.sqrt())) as usize;
            let y0 = rng.randint(0, h as i64 - crop_h as i64).max(0) as usize;
            let x0 = rng.randint(0, w as i64 - crop_w as i64).max(0) as usize;
            let (crop_h, crop_w) = (crop_h.min(h), crop_w.min(w));
            if crop_h == 0 || crop_w == 0 {
                continue;
            }
            let rect = [x0, y0, x0 + crop_w, y0 + crop_h];
            let ious: Vec<f64> = boxes.iter().map(|b| iou(b, &rect)).collect();
            if ious.iter().copied().fold(f64::MIN, f64::max) < thresh {
                continue;
            }
            if params.cover_all_box && ious.iter().copied().fold(f64::MAX, f64::min) < thresh {
                continue;
            }
            let kept = boxes_in_crop(boxes, &rect);
            if !kept.is_empty() {
                return Some(CropPlan { rect, kept });
            }
        }
    }
    None
}

/// Keeps the boxes (and their classes) of a crop plan.
pub fn keep_cropped_boxes(sample: &mut Sample, plan: &CropPlan) {
    sample.gt_class = plan.kept.iter().map(|&(i, _)| sample.gt_class[i]).collect();
    sample.gt_bbox = plan.kept.iter().map(|&(_, b)| b).collect();
}

/// RandomCrop on its own, in place (samples without boxes are left alone).
pub fn random_crop(sample: &mut Sample, params: &RandomCrop, rng: &mut AugRng) {
    let (h, w) = (sample.image.height, sample.image.width);
    if let Some(plan) = draw_crop(h, w, &sample.gt_bbox, params, rng) {
        sample.image = crop_image(&sample.image, &plan.rect);
        keep_cropped_boxes(sample, &plan);
    }
}

fn iou(b: &[f32; 4], crop: &CropBox) -> f64 {
    let c = crop.map(|v| v as f32);
    let (ix1, iy1, ix2, iy2) = (
        b[0].max(c[0]),
        b[1].max(c[1]),
        b[2].min(c[2]),
        b[3].min(c[3]),
    );
    let inter = if ix1 < ix2 && iy1 < iy2 {
        (ix2 - ix1) * (iy2 - iy1)
    } else {
        0.0
    };
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    let area_c = (c[2] - c[0]) * (c[3] - c[1]);
    (inter / (area_b + area_c - inter + 1e-10)) as f64
}

/// Boxes clipped to the crop and shifted, kept when their original centre is inside the crop
/// (`x0 ≤ cx < x1`) and the clipped box is not empty; with their original index.
fn boxes_in_crop(boxes: &[[f32; 4]], crop: &CropBox) -> Vec<(usize, [f32; 4])> {
    let c = crop.map(|v| v as f32);
    let mut kept = Vec::new();
    for (i, b) in boxes.iter().enumerate() {
        let (cx, cy) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
        let inside = c[0] <= cx && cx < c[2] && c[1] <= cy && cy < c[3];
        let clipped = [
            b[0].max(c[0]) - c[0],
            b[1].max(c[1]) - c[1],
            b[2].min(c[2]) - c[0],
            b[3].min(c[3]) - c[1],
        ];
        if inside && clipped[0] < clipped[2] && clipped[1] < clipped[3] {
            kept.push((i, clipped));
        }
    }
    kept
}

/// Copies `image[y0..y1, x0..x1]`.
pub fn crop_image(image: &RgbImage, crop: &CropBox) -> RgbImage {
    let [x0, y0, x1, y1] = *crop;
    let mut pixels = Vec::with_capacity((y1 - y0) * (x1 - x0) * 3);
    for y in y0..y1 {
        let row = y * image.width * 3;
        pixels.extend_from_slice(&image.pixels[row + x0 * 3..row + x1 * 3]);
    }
    RgbImage {
        height: y1 - y0,
        width: x1 - x0,
        pixels,
        integral: image.integral,
    }
}
