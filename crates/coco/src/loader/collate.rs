//! PadGT and collation: samples of one size become flat NCHW/`[B, M, …]` buffers.

use crate::transform::{Sample, normalize_permute};

/// One collated batch, PaddleDetection's field names, flat row-major buffers with their shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Position of this batch in the epoch, 0-based.
    pub index: usize,
    /// `[B, 3, H, W]` normalised RGB images.
    pub image: Vec<f32>,
    /// `[B, 3, H, W]`.
    pub image_shape: [usize; 4],
    /// Largest box count in the batch (M); the gt buffers are padded to it.
    pub max_boxes: usize,
    /// `[B, M, 1]` class indices, 0 where padded.
    pub gt_class: Vec<i32>,
    /// `[B, M, 4]` boxes `x1, y1, x2, y2` in input pixels, 0 where padded.
    pub gt_bbox: Vec<f32>,
    /// `[B, M, 1]` 1.0 for a real box, 0.0 for padding.
    pub pad_gt_mask: Vec<f32>,
    /// `[B, 2]` `[h, w]` of each image as fed to the network.
    pub im_shape: Vec<f32>,
    /// `[B, 2]` `[scale_y, scale_x]` from the (last) decoded image to the network input.
    pub scale_factor: Vec<f32>,
    /// `[B]` COCO image ids.
    pub im_id: Vec<i64>,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.image_shape[0]
    }

    /// True when the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.image_shape[0] == 0
    }
}

/// Why samples could not be collated.
#[derive(Debug, thiserror::Error)]
#[error("collate: image {index} is {got_h}x{got_w}, the batch is {h}x{w}")]
pub struct CollateError {
    index: usize,
    got_h: usize,
    got_w: usize,
    h: usize,
    w: usize,
}

/// NormalizeImage + Permute + PadGT + stacking, for samples that all have the same size.
pub fn collate(
    index: usize,
    samples: &[Sample],
    mean: [f32; 3],
    std: [f32; 3],
) -> Result<Batch, CollateError> {
    let (h, w) = samples
        .first()
        .map_or((0, 0), |s| (s.image.height, s.image.width));
    let b = samples.len();
    let max_boxes = samples.iter().map(|s| s.gt_bbox.len()).max().unwrap_or(0);
    let plane = 3 * h * w;
    let mut batch = Batch {
        index,
        image: vec![0.0; b * plane],
        image_shape: [b, 3, h, w],
        max_boxes,
        gt_class: vec![0; b * max_boxes],
        gt_bbox: vec![0.0; b * max_boxes * 4],
        pad_gt_mask: vec![0.0; b * max_boxes],
        im_shape: Vec::with_capacity(2 * b),
        scale_factor: Vec::with_capacity(2 * b),
        im_id: Vec::with_capacity(b),
    };
    for (i, s) in samples.iter().enumerate() {
        if (s.image.height, s.image.width) != (h, w) {
            return Err(CollateError {
                index: i,
                got_h: s.image.height,
                got_w: s.image.width,
                h,
                w,
            });
        }
        normalize_permute(
            &s.image,
            mean,
            std,
            &mut batch.image[i * plane..(i + 1) * plane],
        );
        for (k, (bbox, &class)) in s.gt_bbox.iter().zip(&s.gt_class).enumerate() {
            let slot = i * max_boxes + k;
            batch.gt_class[slot] = class;
            batch.gt_bbox[slot * 4..slot * 4 + 4].copy_from_slice(bbox);
            batch.pad_gt_mask[slot] = 1.0;
        }
        batch.im_shape.extend_from_slice(&s.im_shape);
        batch.scale_factor.extend_from_slice(&s.scale_factor);
        batch.im_id.push(s.im_id);
    }
    Ok(batch)
}
