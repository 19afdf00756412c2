//! Helpers of the GPU-vs-CPU parity tests: fresh random inputs, uploads, NaN-poisoned outputs
//! and the relative-L2 check with the bounds.

use cudarc::driver::CudaSlice;
use ringdet_kernels::runtime::KernelRuntime;
use ringdet_kernels::runtime::testing::{poison, rel_l2};
use ringdet_tensor::Rng;

/// The f32 bound of the issue.
pub const F32_TOL: f64 = 1e-5;
/// The bf16 bound of the issue.
pub const BF16_TOL: f64 = 1e-2;

pub struct Gpu<'a> {
    pub rt: &'a KernelRuntime,
    pub rng: Rng,
}

impl<'a> Gpu<'a> {
    pub fn new(rt: &'a KernelRuntime, seed: u64) -> Self {
        Gpu {
            rt,
            rng: Rng::new(seed),
        }
    }
    /// `n` normal values (std 1, mean 0).
    pub fn normal(&mut self, n: usize) -> Vec<f32> {
        let mut v = vec![0.0; n];
        self.rng.fill_normal(&mut v, 0.0, 1.0);
        v
    }
    /// `n` uniform values in `[lo, hi)`.
    pub fn uniform(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        let mut v = vec![0.0; n];
        self.rng.fill_uniform(&mut v, lo, hi);
        v
    }
    pub fn up<T: cudarc::driver::DeviceRepr>(&self, v: &[T]) -> CudaSlice<T> {
        self.rt.stream().clone_htod(v).expect("upload")
    }
    /// A device buffer of `n` NaNs: every element the kernel must write.
    pub fn poisoned(&self, n: usize) -> CudaSlice<f32> {
        self.up(&poison(n))
    }
    pub fn down<T: cudarc::driver::DeviceRepr + Default + Clone>(
        &self,
        d: &CudaSlice<T>,
    ) -> Vec<T> {
        let v = self.rt.stream().clone_dtoh(d).expect("download");
        self.rt.stream().synchronize().expect("synchronize");
        v
    }
}

/// Asserts `rel_l2(got, want) <= tol`, naming the case.
pub fn check(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let e = rel_l2(got, want);
    eprintln!("{what}: rel L2 {e:.3e}");
    assert!(e <= tol, "{what}: rel L2 {e:e} > {tol:e}");
}
