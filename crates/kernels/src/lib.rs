//! Kernels.
pub mod error;
pub mod real;

mod matmul;
mod par;

pub mod activation;
pub mod batchnorm;
pub mod concat;
pub mod conv;
pub mod dfl;
pub mod elementwise;
pub mod fuse;
pub mod loss;
pub mod optimizer;
pub mod pool;
pub mod resize;

pub use error::KernelError;
pub use real::Real;
