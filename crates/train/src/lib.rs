//! Training PP-YOLOE: the recipe side. [`config`] reads PaddleDetection's YAML configs unchanged
//! (`_BASE_` includes, anchors, scheduler tags, `-o` overrides, the origin of every value) and
//! its [`TrainRecipe`] hands the detector (`ringdet_detect`) its own types: model size, assigner
//! and loss settings, NMS, learning-rate schedule, SGD and EMA.
//!
//! [`trainer`] is the training loop (`ringdet train`): one rank, or data parallel under
//! `ringdet launch` through the collective.
#![warn(missing_docs)]

pub mod config;
pub mod trainer;

pub use config::{Config, ConfigError, TrainRecipe};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
