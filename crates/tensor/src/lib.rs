//! `ringdet-tensor`: the minimal tensor ringdet is built on.
//!
//! A [`Tensor`] is a [`DType`], a strided [`Layout`] and shared [`HostStorage`] (aligned memory
//! or a memory-mapped file): the host interchange type of the workspace (safetensors entries,
//! golden reference data, seeded draws). Model buffers are not tensors: the kernel backends own
//! them (`ringdet_kernels::backend`). Views (reshape, permute, narrow, broadcast, squeeze,
//! unsqueeze) share storage; [`Tensor::contiguous`] and [`Tensor::to_vec`] copy. [`SafeTensors`]
//! reads safetensors files without copying, [`save`] writes them atomically, and [`Rng`] draws
//! seeded numbers that do not depend on thread count. [`DType`] is the one element-type tag of
//! the workspace.
//!
//! No CUDA bindings: device buffers and the CUDA probes belong to `ringdet-kernels`, so this
//! crate (and `ringdet-collective`, which shares its [`DType`]) builds and runs anywhere.
//!
//! ```
//! use ringdet_tensor::{DType, Tensor};
//! let t = Tensor::from_vec((0..6).map(|x| x as f32).collect(), &[2, 3])?;
//! let tt = t.permute(&[1, 0])?; // a view: no copy
//! assert_eq!(tt.shape(), &[3, 2]);
//! assert_eq!(tt.to_vec::<f32>()?, vec![0., 3., 1., 4., 2., 5.]);
//! assert_eq!(Tensor::zeros(&[2], DType::I64).to_vec::<i64>()?, vec![0, 0]);
//! # Ok::<(), ringdet_tensor::TensorError>(())
//! ```

mod device;
mod dtype;
mod error;
pub mod layout;
pub mod pdparams;
pub mod rng;
pub mod safetensors;
pub mod storage;
mod tensor;

pub use device::Device;
pub use dtype::{DType, Element};
pub use error::{Result, TensorError};
pub use layout::Layout;
pub use pdparams::PdParams;
pub use rng::Rng;
pub use safetensors::{SafeTensors, TensorInfo, save};
pub use storage::{AlignedBytes, HostStorage};
pub use tensor::Tensor;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
