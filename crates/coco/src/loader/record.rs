//! What the loader needs to know about one image: its file and its (already filtered) boxes.

use std::path::PathBuf;

/// One image of a detection dataset, with boxes in `x1, y1, x2, y2` pixels and 0-based classes.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The image file (JPEG or PNG).
    pub image_path: PathBuf,
    /// The COCO image id.
    pub im_id: i64,
    /// Boxes `x1, y1, x2, y2`.
    pub gt_bbox: Vec<[f32; 4]>,
    /// Class index 0..K−1 of each box.
    pub gt_class: Vec<i32>,
}
