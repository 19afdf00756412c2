//! An NCHW activation owned by the forward pass: f32 for training and inference, f64 for
//! checking the numerics of the evaluation forward (e.g. RepVGG fusion) without float32 noise.
//! Its values live in a buffer of the kernels' [`ringdet_kernels::arena`]: taken from it when
//! made and given back when dropped, so that a training step reuses the previous step's
//! activations instead of allocating them again.

use rayon::prelude::*;
use ringdet_kernels::profile::{Family, OpTimer};
use ringdet_kernels::{Real, arena};

use crate::error::{DetectError, Result};

/// A dense `[n, c, h, w]` feature map (f32 unless asked otherwise).
#[derive(Debug, PartialEq)]
pub struct Feat<T: Real = f32> {
    /// Values, NCHW.
    pub data: Vec<T>,
    /// Images.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl<T: Real> Feat<T> {
    /// Zeros of a shape.
    pub fn zeros(n: usize, c: usize, h: usize, w: usize) -> Self {
        let _t = OpTimer::new(Family::Alloc);
        Self {
            data: arena::take_zeroed(n * c * h * w),
            n,
            c,
            h,
            w,
        }
    }
    /// A map of a shape whose values are unspecified (a reused buffer): only for the output of an
    /// op that overwrites every element.
    pub fn scratch(n: usize, c: usize, h: usize, w: usize) -> Self {
        Self {
            data: arena::take(n * c * h * w),
            n,
            c,
            h,
            w,
        }
    }
    /// [`Self::scratch`] shaped like `self`.
    pub fn scratch_like(&self) -> Self {
        Self::scratch(self.n, self.c, self.h, self.w)
    }
    /// Wrap values, checking the length.
    pub fn from_vec(data: Vec<T>, n: usize, c: usize, h: usize, w: usize) -> Result<Self> {
        if data.len() != n * c * h * w {
            return Err(DetectError::Input(format!(
                "{} values for a [{n}, {c}, {h}, {w}] feature map",
                data.len()
            )));
        }
        Ok(Self { data, n, c, h, w })
    }
    /// Zeros shaped like `self`.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.n, self.c, self.h, self.w)
    }
    /// `[n, c, h, w]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }
    /// `h · w`.
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    /// Element-wise `self += other`, in cache-sized chunks over the rayon pool.
    pub fn add_assign(&mut self, other: &Feat<T>) {
        const CHUNK: usize = 1 << 14;
        let _t = OpTimer::new(Family::Elementwise);
        self.data
            .par_chunks_mut(CHUNK)
            .zip(other.data.par_chunks(CHUNK))
            .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, &b)| *a += b));
    }
    /// The same map in another float type (`f32` ↔ `f64`).
    pub fn cast<U: Real>(&self) -> Feat<U> {
        Feat {
            data: self.data.iter().map(|&v| U::from_f64(v.to_f64())).collect(),
            n: self.n,
            c: self.c,
            h: self.h,
            w: self.w,
        }
    }
}

impl<T: Real> Clone for Feat<T> {
    fn clone(&self) -> Self {
        Self {
            data: arena::take_copy(&self.data),
            n: self.n,
            c: self.c,
            h: self.h,
            w: self.w,
        }
    }
}

impl<T: Real> Drop for Feat<T> {
    fn drop(&mut self) {
        arena::give(std::mem::take(&mut self.data));
    }
}
