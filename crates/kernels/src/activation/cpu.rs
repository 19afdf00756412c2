//! CPU activations. Forward overwrites `y`; backward accumulates into `dx`.
//! Sigmoid and hardsigmoid backward read the forward output `y`; SiLU reads the input `x`.

use super::{HARDSIGMOID_OFFSET, HARDSIGMOID_SLOPE};
use crate::error::{KernelError, check_len};
use crate::par::{map1, update2};
use crate::real::Real;

fn same<T>(
    op: &'static str,
    names: [&'static str; 2],
    a: &[T],
    b: &[T],
) -> Result<(), KernelError> {
    check_len(op, names[1], b.len(), &[a.len()]).map_err(|_| KernelError::Mismatch {
        op,
        a: names[0],
        a_shape: vec![a.len()],
        b: names[1],
        b_shape: vec![b.len()],
    })
}

#[inline]
fn sigmoid<T: Real>(x: T) -> T {
    T::ONE / (T::ONE + (-x).exp())
}

/// `y = x·sigmoid(x)`.
pub fn silu_forward<T: Real>(y: &mut [T], x: &[T]) -> Result<(), KernelError> {
    same("silu_forward", ["y", "x"], y, x)?;
    map1(y, x, |v| v * sigmoid(v));
    Ok(())
}

/// `dx += dy·s·(1 + x·(1 − s))`, `s = sigmoid(x)`.
pub fn silu_backward<T: Real>(dx: &mut [T], dy: &[T], x: &[T]) -> Result<(), KernelError> {
    same("silu_backward", ["dx", "dy"], dx, dy)?;
    same("silu_backward", ["dx", "x"], dx, x)?;
    update2(dx, dy, x, |d, g, v| {
        let s = sigmoid(v);
        d + g * s * (T::ONE + v * (T::ONE - s))
    });
    Ok(())
}

/// `y = 1 / (1 + e^−x)`.
pub fn sigmoid_forward<T: Real>(y: &mut [T], x: &[T]) -> Result<(), KernelError> {
    same("sigmoid_forward", ["y", "x"], y, x)?;
    map1(y, x, sigmoid);
    Ok(())
}

/// `dx += dy·y·(1 − y)`.
pub fn sigmoid_backward<T: Real>(dx: &mut [T], dy: &[T], y: &[T]) -> Result<(), KernelError> {
    same("sigmoid_backward", ["dx", "dy"], dx, dy)?;
    same("sigmoid_backward", ["dx", "y"], dx, y)?;
    update2(dx, dy, y, |d, g, s| d + g * s * (T::ONE - s));
    Ok(())
}

/// `y = clip(slope·x + offset, 0, 1)` with Paddle's slope 0.1666667 and offset 0.5.
pub fn hardsigmoid_forward<T: Real>(y: &mut [T], x: &[T]) -> Result<(), KernelError> {
    same("hardsigmoid_forward", ["y", "x"], y, x)?;
    let (a, b) = (
        T::from_f64(HARDSIGMOID_SLOPE),
        T::from_f64(HARDSIGMOID_OFFSET),
    );
    map1(y, x, |v| (v * a + b).max(T::ZERO).min(T::ONE));
    Ok(())
}

/// `dx += dy·slope` where `0 < y < 1` (Paddle's rule, read from the output).
pub fn hardsigmoid_backward<T: Real>(dx: &mut [T], dy: &[T], y: &[T]) -> Result<(), KernelError> {
    same("hardsigmoid_backward", ["dx", "dy"], dx, dy)?;
    same("hardsigmoid_backward", ["dx", "y"], dx, y)?;
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
