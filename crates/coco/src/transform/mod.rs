//! PP-YOLOE's data transforms (ppyoloe-spec §9), each in its own file, drawing from an [`AugRng`].
//!
//! Train, per sample: [`decode`](crate::image::read_image) → [`random_distort`] → [`random_expand`] →
//! [`random_crop`] → [`random_flip`]. Train, per batch: [`batch_random_resize`] →
//! [`normalize_permute`] (NormalizeImage + Permute) → PadGT (done by the loader when it collates
//! the batch; this module does not depend on the loader).
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
pub use expand::{CanvasView, ExpandPlan, RandomExpand, draw_expand, random_expand};
pub use flip::{flip, flip_boxes, random_flip};
pub use normalize::{IMAGENET_MEAN, IMAGENET_STD, normalize_permute};
pub use resize::{
    BATCH_SIZES, Interp, RowSource, batch_random_resize, draw_batch_resize, draw_batch_resize_from,
    eval_resize, resize_sample, scale_boxes,
};
pub use rng::AugRng;

use crate::image::RgbImage;

/// One image with its ground truth, as the transforms pass it along.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The pixels (RGB, HWC).
    pub image: RgbImage,
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
    pub fn decoded(
        image: RgbImage,
        gt_bbox: Vec<[f32; 4]>,
        gt_class: Vec<i32>,
        im_id: i64,
    ) -> Sample {
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
#[derive(Clone, Debug, Default, PartialEq)]
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
#[derive(Clone, Copy, Debug, PartialEq)]
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
    /// (up to 16× the image) is never built: only the part RandomCrop keeps is, mirrored on the
    /// way when RandomFlip fires (its draw comes last either way).
    pub fn apply(&self, sample: &mut Sample, rng: &mut AugRng) {
        if let Some(view) = self.plan(sample, rng) {
            sample.image = view.to_image();
        }
    }

    /// [`apply`](Self::apply) followed by a resize to `size_h × size_w` with `interp`, reading the
    /// cropped canvas row by row without ever building it (the fast path of the loader).
    pub fn apply_and_resize(
        &self,
        sample: &mut Sample,
        rng: &mut AugRng,
        size_h: usize,
        size_w: usize,
        interp: Interp,
    ) {
        let (from_h, from_w) = match self.plan(sample, rng) {
            Some(view) => {
                let dims = (view.height(), view.width());
                sample.image = resize::resize_rows(&view, size_h, size_w, interp);
                dims
            }
            None => {
                let dims = (sample.image.height, sample.image.width);
                sample.image = resize::resize_image(&sample.image, size_h, size_w, interp);
                dims
            }
        };
        scale_boxes(sample, from_h, from_w, size_h, size_w);
    }

    /// Runs RandomDistort on the image, draws expand, crop and flip, moves the boxes, and returns
    /// the view of the canvas the image becomes (`None`: the image stays as it is).
    fn plan<'a>(&self, sample: &'a mut Sample, rng: &mut AugRng) -> Option<CanvasView<'a>> {
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
        let mirrored = rng.uniform(0.0, 1.0) < self.flip_prob.0;
        let region = crop.as_ref().map_or([0, 0, cw, ch], |c| c.rect);
        if let Some(plan) = &crop {
            keep_cropped_boxes(sample, plan);
        }
        if mirrored {
            let wf = (region[2] - region[0]) as f32;
            for b in &mut sample.gt_bbox {
                *b = [wf - b[2], b[1], wf - b[0], b[3]];
            }
        }
        if expand.is_none() && crop.is_none() && !mirrored {
            return None;
        }
        let fill = self.expand.fill_value;
        Some(CanvasView {
            image: &sample.image,
            plan: expand,
            region,
            fill,
            mirrored,
        })
    }
}
