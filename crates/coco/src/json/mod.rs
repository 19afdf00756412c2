//! COCO JSON: serde types of instances files and results lists, fast parallel loading with bounded
//! memory, the category-id to class-index map, and PaddleDetection's training filter.

mod array;
mod category_map;
mod error;
mod instances;
mod results;
mod source;
mod train_filter;
mod types;

pub use category_map::CategoryMap;
pub use error::{InvalidJson, JsonError};
pub use instances::Instances;
pub use results::{detections_from_slice, load_detections, write_detections};
pub use train_filter::{FilterCounts, TrainSample, training_samples};
pub use types::{Annotation, Category, DetectionRecord, ImageRecord};
