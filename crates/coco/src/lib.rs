//! COCO detection data for training and evaluation.
//!
//! Data side: [`image`] decodes JPEG/PNG to RGB; [`transform`] holds PP-YOLOE's augmentations;
//! [`loader`] runs them on worker threads and collates batches; [`sampler`] deals indices to ranks
//! the way PaddlePaddle's DistributedBatchSampler does; [`synth`] writes a synthetic shapes dataset.

pub mod image;
pub mod loader;
pub mod sampler;
pub mod synth;
pub mod transform;
