//! What the loader needs to know about one image: its file and its (already filtered) boxes, built
//! from an instances file with [`training_records`] or [`eval_records`].

use std::path::{Path, PathBuf};

use crate::json::{CategoryMap, FilterCounts, Instances, TrainSample, training_samples};

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

impl Record {
    /// A training sample whose file lies in `image_dir`.
    pub fn from_train_sample(sample: &TrainSample, image_dir: &Path) -> Record {
        Record {
            image_path: image_dir.join(&sample.image.file_name),
            im_id: sample.image.id,
            gt_bbox: sample.gt_bbox.clone(),
            gt_class: sample.gt_class.iter().map(|&c| c as i32).collect(),
        }
    }
}

/// PaddleDetection's training records: crowd/ignored/degenerate boxes and images left without
/// boxes dropped, images sorted by id, files in `image_dir`.
pub fn training_records(instances: &Instances, image_dir: &Path) -> (Vec<Record>, FilterCounts) {
    let categories = CategoryMap::new(&instances.categories);
    let (samples, counts) = training_samples(instances, &categories);
    let records = samples
        .iter()
        .map(|s| Record::from_train_sample(s, image_dir))
        .collect();
    (records, counts)
}

/// Evaluation records: every image, sorted by id, without boxes (the evaluator reads them from the
/// instances file itself).
pub fn eval_records(instances: &Instances, image_dir: &Path) -> Vec<Record> {
    let mut images: Vec<_> = instances.images.iter().collect();
    images.sort_by_key(|i| i.id);
    images
        .iter()
        .map(|i| Record {
            image_path: image_dir.join(&i.file_name),
            im_id: i.id,
            gt_bbox: vec![],
            gt_class: vec![],
        })
        .collect()
}
