//! A bounds-checked front to the `gemm` crate for strided matrices.
//!
//! The conv kernels run several GEMMs at once on disjoint parts of one output, so the
//! destination is a raw pointer; the other operands are slices. Every access is checked
//! against the extent the caller says the pointer may touch.

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

/// A strided destination: element (i, j) is at `ptr + i * rs + j * cs`, valid for `len` elements.
#[derive(Clone, Copy)]
pub(crate) struct DstPtr<T> {
    pub ptr: *mut T,
    pub len: usize,
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

/// `dst = (accumulate ? dst : 0) + lhs · rhs`, `dst` being `lhs.rows x rhs.cols`.
///
/// Panics on inconsistent views (a bug inside this crate; shapes are validated before).
///
/// # Safety
/// `dst.ptr` must be valid for reads and writes of `dst.len` elements, and no other thread may
/// access the elements this call writes while it runs.
pub(crate) unsafe fn matmul<T: Real>(
    dst: DstPtr<T>,
    accumulate: bool,
    lhs: View<'_, T>,
    rhs: View<'_, T>,
    threads: usize,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "matmul inner dimensions");
    assert!(extent(m, n, dst.rs, dst.cs) <= dst.len, "matmul dst extent");
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
                    // SAFETY: (i, j) lies inside the checked extent.
                    unsafe { *dst.ptr.add(i * dst.rs + j * dst.cs) = T::ZERO };
                }
            }
        }
        return;
    }
    let parallelism = if threads > 1 && 2 * m * n * k > 4_000_000 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts prove every (i, j) of each view lies inside its buffer; the caller
    // guarantees exclusive access to dst's elements; T is f32 or f64 (sealed trait).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            dst.cs as isize,
            dst.rs as isize,
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
