//! COCO detection data for training and evaluation.

pub mod eval;
pub mod json;

pub use eval::{EvalError, Evaluation, UnknownImages, evaluate};
pub use json::{
    Annotation, Category, CategoryMap, Detection, Image, Instances, JsonError, load_detections,
};
