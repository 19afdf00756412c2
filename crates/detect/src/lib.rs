//! PP-YOLOE detector: model, losses, assigners, post-processing.
//!
//! The architecture is data ([`arch`]); all trainable parameters and all gradients live in one flat
//! buffer each ([`layout`], [`state`]), named with PaddleDetection's state-dict names.
#![warn(missing_docs)]
// Kernels index several arrays with one loop variable, llm.c style.
#![allow(clippy::needless_range_loop)]

pub mod arch;
pub mod error;
pub mod fuse;
pub mod init;
pub mod layout;
pub mod loss;
pub mod model;
pub mod parity;
pub mod state;
pub mod step;
pub mod train;

pub use error::{DetectError, Result};
pub mod anchors;
pub mod assign;
pub mod boxes;
pub mod checkpoint;
pub mod compare;
pub mod cross_replica;
pub mod decode;
pub mod detector;
pub mod nms;
