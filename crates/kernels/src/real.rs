//! The float types the CPU kernels run on: `f32` for training, `f64` for gradient checks.
//!
//! The trait is sealed: the GEMM backend only knows these two types.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A real scalar (`f32` or `f64`) with the handful of functions the kernels need.
pub trait Real:
    sealed::Sealed
    + Copy
    + Send
    + Sync
    + 'static
    + Debug
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// The most negative finite value.
    const MIN: Self;
    /// The workspace-wide tag of this type (`DType::F32` or `DType::F64`).
    const DTYPE: ringdet_tensor::DType;
    /// Converts (rounding for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Widens to `f64`.
    fn to_f64(self) -> f64;
    /// Converts a count.
    fn from_usize(v: usize) -> Self {
        Self::from_f64(v as f64)
    }
    /// e^x.
    fn exp(self) -> Self;
    /// e^x in a form that vectorises, for the activations: `f32` computes it in `f64` with a
    /// polynomial and rounds once (the correctly rounded value but in rare near-ties, as
    /// [`Real::exp`]); `f64` (gradient checks) is [`Real::exp`].
    fn exp_vectorisable(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// ln x in a form that vectorises, for the losses: `f32` is Cephes' `logf` in `f32` lanes
    /// ([`crate::simd::ln_f32`]); `f64` is [`Real::ln`].
    fn ln_vectorisable(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Largest integer not above.
    fn floor(self) -> Self;
    /// x^e.
    fn powf(self, e: Self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// The process-wide pool of reusable buffers of this type.
    fn arena() -> &'static crate::arena::Arena<Self>;
    /// Larger of two (the first if equal).
    #[inline]
    fn max(self, o: Self) -> Self {
        if o > self { o } else { self }
    }
    /// Smaller of two (the first if equal).
    #[inline]
    fn min(self, o: Self) -> Self {
        if o < self { o } else { self }
    }
}

macro_rules! impl_real {
    ($t:ty, $dtype:ident, $arena:ident, $exp_vectorisable:path, $ln_vectorisable:path) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const MIN: Self = <$t>::MIN;
            const DTYPE: ringdet_tensor::DType = ringdet_tensor::DType::$dtype;
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn exp_vectorisable(self) -> Self {
                $exp_vectorisable(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn ln_vectorisable(self) -> Self {
                $ln_vectorisable(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            #[inline]
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn arena() -> &'static crate::arena::Arena<Self> {
                &crate::arena::$arena
            }
        }
    };
}
impl_real!(f32, F32, F32, crate::simd::exp_f32, crate::simd::ln_f32);
impl_real!(f64, F64, F64, f64::exp, f64::ln);

#[cfg(test)]
mod tests {
    use super::Real;
    use ringdet_tensor::DType;

    #[test]
    fn each_real_names_its_workspace_dtype() {
        assert_eq!(f32::DTYPE, DType::F32);
        assert_eq!(f64::DTYPE, DType::F64);
        assert_eq!(f64::DTYPE.size(), std::mem::size_of::<f64>());
    }
}
