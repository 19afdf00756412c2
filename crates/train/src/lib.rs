//! Training PP-YOLOE: the recipe side. [`config`] reads PaddleDetection's YAML configs unchanged
//! (`_BASE_` includes, anchors, scheduler tags, `-o` overrides, the origin of every value) and
//! its [`TrainRecipe`] hands the detector (`ringdet_detect`) its own types: model size, assigner
//! and loss settings, NMS, learning-rate schedule, SGD and EMA.
//!
//! [`trainer`] is the training loop (`ringdet train`): one rank, or data parallel under
//! `ringdet launch` through the collective; [`device`] decides where each rank trains
//! (`use_gpu`, the launcher's `--gpus`) and which backend carries its gradients
//! (`comm_backend`). [`eval`] evaluates a model on the config's
//! `EvalDataset` (COCO bbox, pycocotools-exact), alone or data-parallel. [`checkpoint`] saves
//! and loads checkpoints in PaddleDetection's layout, with everything an exact resume needs.
//! [`infer`] runs a model on image files and draws its detections (`ringdet infer`), and exports
//! it with the RepVGG blocks fused (`ringdet export`).
#![warn(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod device;
pub mod eval;
pub mod infer;
pub mod trainer;

pub use config::{Config, ConfigError, OptimizerSpec, TrainRecipe};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
