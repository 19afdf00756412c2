//! An NCHW activation owned by the forward pass, on the backend the pass runs on: host memory
//! ([`Cpu`], f32 for training and inference, f64 for checking the numerics of the evaluation
//! forward, e.g. RepVGG fusion, without float32 noise) or a device's. On the host its values live
//! in a buffer of the kernels' [`ringdet_kernels::arena`]: taken from it when made and given back
//! when dropped, so that a training step reuses the previous step's activations instead of
//! allocating them again.

use ringdet_kernels::backend::Buffers;
use ringdet_kernels::profile::{Family, OpTimer};
use ringdet_kernels::{Cpu, Real, arena};

use crate::error::{DetectError, Result, kernel_error};

/// A dense `[n, c, h, w]` feature map (f32 unless asked otherwise).
pub struct Feat<T: Real = f32, B: Buffers<T> = Cpu> {
    /// Values, NCHW.
    pub data: B::Buf,
    /// Images.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl<T: Real> Feat<T, Cpu> {
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
    /// A copy of this host map on backend `be` (an upload on a device).
    pub fn upload_to<B: Buffers<T>>(&self, be: &B) -> Result<Feat<T, B>> {
        let data = be.upload(&self.data).map_err(kernel_error("upload"))?;
        Feat::from_buf(data, self.n, self.c, self.h, self.w)
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

impl<T: Real, B: Buffers<T>> Feat<T, B> {
    /// Zeros of a shape on `be`.
    pub fn zeros_on(be: &B, n: usize, c: usize, h: usize, w: usize) -> Result<Self> {
        let _t = OpTimer::new(Family::Alloc);
        Ok(Self {
            data: be.zeros(n * c * h * w).map_err(kernel_error("zeros"))?,
            n,
            c,
            h,
            w,
        })
    }
    /// A map of a shape on `be` whose values are unspecified: only for the output of an op that
    /// overwrites every element.
    pub fn scratch_on(be: &B, n: usize, c: usize, h: usize, w: usize) -> Result<Self> {
        Ok(Self {
            data: be.scratch(n * c * h * w).map_err(kernel_error("scratch"))?,
            n,
            c,
            h,
            w,
        })
    }
    /// `len` zeros on `be` as a `[1, len, 1, 1]` map: a per-channel vector (BN statistics, a
    /// bias gradient) that goes back to the arena when dropped, like every map.
    pub fn vector_on(be: &B, len: usize) -> Result<Self> {
        Self::zeros_on(be, 1, len, 1, 1)
    }
    /// [`Self::zeros_on`] shaped like `self`.
    pub fn zeros_like_on(&self, be: &B) -> Result<Self> {
        Self::zeros_on(be, self.n, self.c, self.h, self.w)
    }
    /// [`Self::scratch_on`] shaped like `self`.
    pub fn scratch_like_on(&self, be: &B) -> Result<Self> {
        Self::scratch_on(be, self.n, self.c, self.h, self.w)
    }
    /// A copy of `self` on `be`.
    pub fn copy_on(&self, be: &B) -> Result<Self> {
        Ok(Self {
            data: be.copy(&self.data).map_err(kernel_error("copy"))?,
            n: self.n,
            c: self.c,
            h: self.h,
            w: self.w,
        })
    }
    /// Wrap a buffer of `be`, checking the length.
    pub fn from_buf(data: B::Buf, n: usize, c: usize, h: usize, w: usize) -> Result<Self> {
        if B::len(&data) != n * c * h * w {
            return Err(DetectError::Input(format!(
                "{} values for a [{n}, {c}, {h}, {w}] feature map",
                B::len(&data)
            )));
        }
        Ok(Self { data, n, c, h, w })
    }
    /// `[n, c, h, w]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }
    /// `h · w`.
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    /// Elements.
    pub fn len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    /// Whether the map holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Element-wise `self += other` on `be`.
    pub fn add_assign_on(&mut self, be: &B, other: &Feat<T, B>) -> Result<()>
    where
        B: ringdet_kernels::backend::ElementwiseOps<T>,
    {
        if other.shape() != self.shape() {
            return Err(DetectError::Input(format!(
                "adding a {:?} map into a {:?} one",
                other.shape(),
                self.shape()
            )));
        }
        let len = self.len();
        be.accumulate(B::view_mut(&mut self.data), B::view(&other.data), len)
            .map_err(kernel_error("accumulate"))
    }
}

impl<T: Real, B: Buffers<T>> std::fmt::Debug for Feat<T, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feat")
            .field("shape", &self.shape())
            .finish_non_exhaustive()
    }
}

impl<T: Real> PartialEq for Feat<T, Cpu> {
    fn eq(&self, other: &Self) -> bool {
        self.shape() == other.shape() && self.data == other.data
    }
}

impl<T: Real> Clone for Feat<T, Cpu> {
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

impl<T: Real, B: Buffers<T>> Drop for Feat<T, B> {
    fn drop(&mut self) {
        B::recycle(&mut self.data);
    }
}
