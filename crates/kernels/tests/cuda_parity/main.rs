//! GPU-vs-CPU parity of every CUDA kernel, one test binary (the GPU bundle carries each test
//! binary, so they are kept together). Every test name contains `cuda`; without a GPU each one
//! prints `SKIP <test>: <reason>` and passes, with `REQUIRE_GPU=1` it fails instead.
#![allow(dead_code)]

mod batchnorm;
mod common;
mod conv;
mod head_optim;
mod pointwise;
