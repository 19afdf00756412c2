//! PP-YOLOE's data transforms (ppyoloe-spec §9), each in its own file, drawing from an [`AugRng`].
//!
//! Train, per sample: [`decode`](crate::image::read_image) → [`random_distort`] → [`random_expand`] →
//! [`random_crop`] → [`random_flip`]. Train, per batch: [`batch_random_resize`] →
//! [`normalize_permute`] (NormalizeImage + Permute) → [`pad_gt`](crate::loader::collate).
//! Eval: decode → [`eval_resize`] (640×640 bicubic, ratio not kept) → normalize_permute.

mod crop;
mod distort;
mod expand;
mod flip;
mod normalize;
pub mod resize;
mod rng;

pub use crop::{CropPlan, RandomCrop, draw_crop, keep_cropped_boxes, random_crop};
pub use distort::{RandomDistort, hue_matrix, random_distort};
pub use expand::{ExpandPlan, RandomExpand, canvas_region, draw_expand, random_expand};
pub use flip::random_flip;
pub use normalize::{IMAGENET_MEAN, IMAGENET_STD, normalize_permute};
pub use resize::{BATCH_SIZES, Interp, batch_random_resize, eval_resize, resize_sample};
pub use rng::AugRng;

use crate::image::Image;

/// One image with its ground truth, as the transforms pass it along.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The pixels (RGB, HWC).
    pub image: Image,
    /// Boxes as `x1, y1, x2, y2` in pixels of `image`.
    pub gt_bbox: Vec<[f32; 4]>,
    /// Class index (0..K−1) of each box.
    pub gt_class: Vec<i32>,
    /// `[h, w]` of the decoded image; set to the output size by a resize.
    pub im_shape: [f32; 2],
    /// `[scale_y, scale_x]`: product of the resizes applied so far.
    pub scale_factor: [f32; 2],
    /// The COCO image id, passed through.
    pub im_id: i64,
}

impl Sample {
    /// A freshly decoded sample (`Decode`): `im_shape = [h, w]`, `scale_factor = [1, 1]`.
    pub fn decoded(image: Image, gt_bbox: Vec<[f32; 4]>, gt_class: Vec<i32>, im_id: i64) -> Sample {
        let im_shape = [image.height as f32, image.width as f32];
        Sample {
            image,
            gt_bbox,
            gt_class,
            im_shape,
            scale_factor: [1.0, 1.0],
            im_id,
        }
    }
}

/// The per-sample train transforms and their parameters (PaddleDetection's defaults).
#[derive(Clone, Debug, Default)]
pub struct TrainSampleTransforms {
    /// RandomDistort parameters.
    pub distort: RandomDistort,
    /// RandomExpand parameters.
    pub expand: RandomExpand,
    /// RandomCrop parameters.
    pub crop: RandomCrop,
    /// RandomFlip probability is fixed at 0.5 (the config's value).
    pub flip_prob: FlipProb,
}

/// Probability of a horizontal flip.
#[derive(Clone, Copy, Debug)]
pub struct FlipProb(pub f64);

impl Default for FlipProb {
    fn default() -> Self {
        FlipProb(0.5)
    }
}

impl TrainSampleTransforms {
    /// RandomDistort → RandomExpand → RandomCrop → RandomFlip, in place.
    ///
    /// Same draws and same result as calling the four transforms in turn, but the expanded canvas
    /// (up to 16× the image) is never built: only the part RandomCrop keeps is.
    pub fn apply(&self, sample: &mut Sample, rng: &mut AugRng) {
        random_distort(&mut sample.image, &self.distort, rng);
        let (h, w) = (sample.image.height, sample.image.width);
        let expand = draw_expand(h, w, &self.expand, rng);
        let (ch, cw) = match expand {
            Some(p) => {
                let (dx, dy) = (p.x as f32, p.y as f32);
                for b in &mut sample.gt_bbox {
                    *b = [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy];
                }
                (p.height, p.width)
            }
            None => (h, w),
        };
        let crop = draw_crop(ch, cw, &sample.gt_bbox, &self.crop, rng);
        if expand.is_some() || crop.is_some() {
            let region = crop.as_ref().map_or([0, 0, cw, ch], |c| c.rect);
            sample.image = canvas_region(&sample.image, expand, region, self.expand.fill_value);
        }
        if let Some(plan) = &crop {
            keep_cropped_boxes(sample, plan);
        }
        random_flip(sample, self.flip_prob.0, rng);
    }
}
