//! Label assignment for one image: ATSS (static, for early epochs) and TAL (task-aligned), with
//! PaddleDetection's exact tie and threshold rules. Both run without gradients.

mod atss;
mod common;
mod tal;

pub use atss::{AtssParams, atss_assign};
pub use tal::{TalParams, tal_assign};

use crate::boxes::Box4;
use crate::error::{DetectError, Result};

/// Ground truth of one image, padded like PaddleDetection's `PadGT` (padded rows have mask 0).
#[derive(Clone, Copy, Debug)]
pub struct GroundTruth<'a> {
    /// Boxes in input pixels.
    pub boxes: &'a [Box4],
    /// Class of each box.
    pub labels: &'a [usize],
    /// 1 for a real box, 0 for padding.
    pub pad_mask: &'a [f32],
}

impl GroundTruth<'_> {
    /// Number of (padded) rows.
    pub fn len(&self) -> usize {
        self.boxes.len()
    }
    /// Whether there are no rows at all.
    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }
    pub(crate) fn validate(&self, num_classes: usize) -> Result<()> {
        if self.labels.len() != self.boxes.len() || self.pad_mask.len() != self.boxes.len() {
            return Err(DetectError::Input(format!(
                "ground truth has {} boxes, {} labels and {} mask entries",
                self.boxes.len(),
                self.labels.len(),
                self.pad_mask.len()
            )));
        }
        for (g, (&l, &m)) in self.labels.iter().zip(self.pad_mask).enumerate() {
            if m > 0.0 && l >= num_classes {
                return Err(DetectError::Input(format!(
                    "gt {g} has class {l} but there are {num_classes} classes"
                )));
            }
        }
        Ok(())
    }
}

/// Targets for every anchor of one image.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    /// Assigned class per anchor; `num_classes` (background) for negatives.
    pub labels: Vec<usize>,
    /// Assigned gt box per anchor in input pixels (for negatives: gt 0's box, never used).
    pub bboxes: Vec<Box4>,
    /// Soft targets `[anchors × num_classes]`, row-major.
    pub scores: Vec<f32>,
    /// Final gt × anchor positive mask `[gts × anchors]`.
    pub mask_positive: Vec<f32>,
    /// Number of classes (the background index).
    pub num_classes: usize,
}

impl Assignment {
    /// Whether anchor `a` is positive.
    pub fn is_positive(&self, a: usize) -> bool {
        self.labels[a] != self.num_classes
    }
    /// Sum of all soft targets (this image's share of the loss normaliser).
    pub fn score_sum(&self) -> f32 {
        self.scores.iter().sum()
    }
}
