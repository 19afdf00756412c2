//! COCO detection data for training and evaluation.
//!
//! Data side: [`json`] reads instances files; [`image`] decodes JPEG/PNG to RGB; [`transform`]
//! holds PP-YOLOE's augmentations; [`loader`] runs them on worker threads and collates batches;
//! [`sampler`] deals indices to ranks the way PaddlePaddle's DistributedBatchSampler does;
//! [`synth`] writes a synthetic shapes dataset. Evaluation: [`eval`]. Pictures: [`draw`] draws
//! detections on images and writes JPEG or PNG.

pub mod draw;
pub mod eval;
pub mod image;
pub mod json;
pub mod loader;
pub mod sampler;
pub mod synth;
pub mod transform;

pub use eval::{EvalError, Evaluation, UnknownImages, evaluate};
pub use json::{
    Annotation, Category, CategoryMap, DetectionRecord, ImageRecord, Instances, JsonError,
    load_detections,
};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
