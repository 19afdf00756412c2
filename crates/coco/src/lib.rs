//! COCO detection data for training and evaluation.

pub mod json;

pub use json::{
    Annotation, Category, CategoryMap, Detection, Image, Instances, JsonError, load_detections,
};
