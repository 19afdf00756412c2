//! A safe, bounds-checked front to the `gemm` crate for strided matrices.
//!
//! Every conv direction is one call of [`matmul`] per image; keeping the unsafe pointer call
//! in one place lets the rest of the crate stay safe.

use crate::real::Real;

/// A read-only strided matrix view: element (i, j) is at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

/// Index one past the last element a `rows x cols` view with these strides touches.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `dst = (accumulate ? dst : 0) + lhs * rhs`, with `dst` a `lhs.rows x rhs.cols` strided matrix.
///
/// Panics (a programming error inside this crate, never input-dependent) if a view does not fit
/// its slice or the inner dimensions differ; callers validate shapes first.
pub(crate) fn matmul<T: Real>(
    dst: &mut [T],
    dst_rs: usize,
    dst_cs: usize,
    accumulate: bool,
    lhs: View<'_, T>,
    rhs: View<'_, T>,
    threads: usize,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "matmul inner dimensions");
    assert!(
        extent(m, n, dst_rs, dst_cs) <= dst.len(),
        "matmul dst extent"
    );
    assert!(
        extent(m, k, lhs.rs, lhs.cs) <= lhs.data.len(),
        "matmul lhs extent"
    );
    assert!(
        extent(k, n, rhs.rs, rhs.cs) <= rhs.data.len(),
        "matmul rhs extent"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_rs + j * dst_cs] = T::ZERO;
                }
            }
        }
        return;
    }
    let flops = 2 * m * n * k;
    let parallelism = if threads > 1 && flops > 2_000_000 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above prove every (i, j) index of each view lies inside its slice,
    // the views do not alias `dst` (it is borrowed mutably), and T is f32 or f64 (sealed trait).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}
