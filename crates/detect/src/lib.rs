#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
// Kernels index several arrays with one loop variable, llm.c style.
#![allow(clippy::needless_range_loop)]

pub mod arch;
pub mod error;
pub mod fuse;
pub mod grad_sink;
pub mod init;
pub mod layout;
pub mod loss;
pub mod model;
pub mod state;
pub mod step;
pub mod synthetic;
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
pub mod pretrained;
