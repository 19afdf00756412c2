//! `ringdet-kernels`: the ops PP-YOLOE training needs, each with a CPU implementation (the
//! numerical reference) and a CUDA one of the same signature: outputs first, then inputs, then a
//! params struct; argument checks live once in each op's module. Models call them through the
//! [`backend`] seam (`Cpu` for f32/f64, `Cuda` for f32), which owns the buffers.
//!
//! CUDA kernels are `.cu` files next to their Rust module, embedded at build time and compiled by
//! NVRTC at run time for the device's compute capability (see [`runtime`]). Nothing needs a GPU
//! or the CUDA toolkit to build.
//!
//! ```
//! use ringdet_kernels::scale::{ScaleParams, cpu};
//! let mut out = vec![0.0; 3];
//! cpu::scale(&mut out, &[1.0, 2.0, 4.0], &ScaleParams { alpha: 0.5 })?;
//! assert_eq!(out, [0.5, 1.0, 2.0]);
//! # Ok::<(), ringdet_kernels::KernelError>(())
//! ```
#![warn(missing_docs)]

pub mod arena;
pub mod error;
pub mod real;
pub mod runtime;

mod grid;
mod matmul;
mod par;
mod simd;

pub mod activation;
pub mod backend;
pub mod batchnorm;
pub mod cast;
pub mod concat;
pub mod conv;
pub mod dfl;
pub mod elementwise;
pub mod fuse;
pub mod loss;
pub mod optimizer;
pub mod pool;
pub mod profile;
pub mod resize;
pub mod scale;

pub use backend::{Backend, Cpu, Cuda, HostBackend};
pub use error::KernelError;
pub use real::Real;
