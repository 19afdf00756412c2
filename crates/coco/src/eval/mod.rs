//! Bounding-box evaluation that reproduces pycocotools 2.0.11 `COCOeval(gt, dt, "bbox")`: the 12
//! stats and per-category AP, every documented quirk included (see
//! `testdata/coco-eval/semantics.md`), computed in parallel without per-detection allocation.

mod accumulate;
mod id_index;
mod iou;
mod match_image;
pub mod params;
mod prepare;
mod summary;

pub use iou::bbox_iou;
pub use summary::STAT_NAMES;

use crate::json::{DetectionRecord, Instances};
use accumulate::{PRECISION_BLOCK, RECALL_BLOCK};
use params::{MAX_DETS, NUM_IOU, NUM_RECALL};
use rayon::prelude::*;

/// What to do with a detection whose `image_id` is not among the ground truth's images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownImages {
    /// Fail, as pycocotools' `loadRes` does.
    #[default]
    Error,
    /// Drop such detections; [`Evaluation::dropped_detections`] counts them.
    Drop,
}

/// Evaluation failed before any number was computed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A detection refers to an image the ground truth does not have.
    #[error(
        "detections[{index}]: image_id {image_id} is not among the ground-truth images \
         ({count} detection(s) on unknown images)"
    )]
    UnknownImage {
        /// Index of the first such detection in the results list.
        index: usize,
        /// Its image id.
        image_id: i64,
        /// How many detections lie on unknown images.
        count: usize,
    },
}

/// The accumulated precision and recall arrays of one evaluation.
#[derive(Debug, Clone)]
pub struct Evaluation {
    iou_thresholds: [f64; NUM_IOU],
    category_ids: Vec<i64>,
    /// `[category][area][maxDets][iou][recall]`, -1 where undefined.
    precision: Vec<f64>,
    /// `[category][area][maxDets][iou]`, -1 where undefined.
    recall: Vec<f64>,
    dropped_detections: usize,
}

impl Evaluation {
    /// Category ids evaluated, ascending (index k of [`Self::precision`]).
    pub fn category_ids(&self) -> &[i64] {
        &self.category_ids
    }

    /// pycocotools' `eval['precision'][t, r, k, a, m]`.
    pub fn precision(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        let block = (a * MAX_DETS.len() + m) * NUM_IOU + t;
        self.precision[k * PRECISION_BLOCK + block * NUM_RECALL + r]
    }

    /// pycocotools' `eval['recall'][t, k, a, m]`.
    pub fn recall(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        self.recall[k * RECALL_BLOCK + (a * MAX_DETS.len() + m) * NUM_IOU + t]
    }

    /// Detections dropped because their image is unknown (with [`UnknownImages::Drop`]).
    pub fn dropped_detections(&self) -> usize {
        self.dropped_detections
    }
}

/// Evaluates `detections` against the ground truth `gt` (pycocotools' evaluate + accumulate).
/// An empty detection list is valid: 0 where ground truth exists, -1 elsewhere.
pub fn evaluate(
    gt: &Instances,
    detections: &[DetectionRecord],
    unknown_images: UnknownImages,
) -> Result<Evaluation, EvalError> {
    let prepared = prepare::prepare(gt, detections, unknown_images)?;
    let n_images = prepared.images.len();
    let images: Vec<match_image::ImageResult> = (0..n_images)
        .into_par_iter()
        .with_min_len(16)
        .map_init(match_image::Scratch::default, |scratch, i| {
            let gts = &prepared.gt[prepared.gt_start[i]..prepared.gt_start[i + 1]];
            let dts = &prepared.dt[prepared.dt_start[i]..prepared.dt_start[i + 1]];
            match_image::match_image(&gt.annotations, detections, gts, dts, scratch)
        })
        .collect();
    let n_categories = prepared.categories.len();
    let (precision, recall) = accumulate::accumulate(&images, n_categories);
    Ok(Evaluation {
        iou_thresholds: params::iou_thresholds(),
        category_ids: prepared.categories.sorted,
        precision,
        recall,
        dropped_detections: prepared.dropped_unknown,
    })
}
