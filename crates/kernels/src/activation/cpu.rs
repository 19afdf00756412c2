//! CPU activations. Forward overwrites `y`; backward accumulates into `dx`.
//! Sigmoid and hardsigmoid backward read the forward output `y`; SiLU reads the input `x`.

use super::{HARDSIGMOID_OFFSET, HARDSIGMOID_SLOPE, same};
use crate::error::KernelError;
use crate::par::{map1, update2};
use crate::real::Real;

/// `1 / (1 + e^−x)` (shared with the fused BN + SiLU ops, so that they round alike).
#[inline]
pub(crate) fn sigmoid<T: Real>(x: T) -> T {
    T::ONE / (T::ONE + (-x).exp_vectorisable())
}

/// `y = x·sigmoid(x)`.
pub fn silu_forward<T: Real>(y: &mut [T], x: &[T]) -> Result<(), KernelError> {
    same("silu_forward", ["y", "x"], y.len(), x.len())?;
    map1(y, x, |v| v * sigmoid(v));
    Ok(())
}

/// `dx += dy·s·(1 + x·(1 − s))`, `s = sigmoid(x)`.
pub fn silu_backward<T: Real>(dx: &mut [T], dy: &[T], x: &[T]) -> Result<(), KernelError> {
    same("silu_backward", ["dx", "dy"], dx.len(), dy.len())?;
    same("silu_backward", ["dx", "x"], dx.len(), x.len())?;
    update2(dx, dy, x, |d, g, v| {
        let s = sigmoid(v);
        d + g * s * (T::ONE + v * (T::ONE - s))
    });
    Ok(())
}

/// `y = 1 / (1 + e^−x)`.
pub fn sigmoid_forward<T: Real>(y: &mut [T], x: &[T]) -> Result<(), KernelError> {
    same("sigmoid_forward", ["y", "x"], y.len(), x.len())?;
    map1(y, x, sigmoid);
    Ok(())
}

/// `dx += dy·y·(1 − y)`.
pub fn sigmoid_backward<T: Real>(dx: &mut [T], dy: &[T], y: &[T]) -> Result<(), KernelError> {
    same("sigmoid_backward", ["dx", "dy"], dx.len(), dy.len())?;
    same("sigmoid_backward", ["dx", "y"], dx.len(), y.len())?;
    update2(dx, dy, y, |d, g, s| d + g * s * (T::ONE - s));
    Ok(())
}

/// `y = clip(slope·x + offset, 0, 1)` with Paddle's slope 0.1666667 and offset 0.5.
pub fn hardsigmoid_forward<T: Real>(y: &mut [T], x: &[T]) -> Result<(), KernelError> {
    same("hardsigmoid_forward", ["y", "x"], y.len(), x.len())?;
    let (a, b) = (
        T::from_f64(HARDSIGMOID_SLOPE),
        T::from_f64(HARDSIGMOID_OFFSET),
    );
    map1(y, x, |v| (v * a + b).max(T::ZERO).min(T::ONE));
    Ok(())
}

/// `dx += dy·slope` where `0 < y < 1` (Paddle's rule, read from the output).
pub fn hardsigmoid_backward<T: Real>(dx: &mut [T], dy: &[T], y: &[T]) -> Result<(), KernelError> {
    same("hardsigmoid_backward", ["dx", "dy"], dx.len(), dy.len())?;
    same("hardsigmoid_backward", ["dx", "y"], dx.len(), y.len())?;
    let a = T::from_f64(HARDSIGMOID_SLOPE);
    update2(dx, dy, y, |d, g, s| {
        if s > T::ZERO && s < T::ONE {
            d + g * a
        } else {
            d
        }
    });
    Ok(())
}
