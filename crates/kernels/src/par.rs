//! Small helpers for elementwise loops split across the rayon pool.

use rayon::prelude::*;

use crate::simd::widest;

/// Elements per task: big enough that scheduling costs vanish.
pub(crate) const CHUNK: usize = 1 << 14;

/// `out[i] = f(a[i])` in parallel.
pub(crate) fn map1<T: Copy + Send + Sync>(out: &mut [T], a: &[T], f: impl Fn(T) -> T + Sync) {
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK))
        .for_each(|(o, a)| {
            widest(
                #[inline(always)]
                || o.iter_mut().zip(a).for_each(|(o, &a)| *o = f(a)),
            )
        });
}

/// `out[i] = f(out[i], a[i], b[i])` in parallel.
pub(crate) fn update2<T: Copy + Send + Sync>(
    out: &mut [T],
    a: &[T],
    b: &[T],
    f: impl Fn(T, T, T) -> T + Sync,
) {
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(o, (a, b))| {
            widest(
                #[inline(always)]
                || {
                    for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                        *o = f(*o, a, b);
                    }
                },
            )
        });
}

/// `out[i] = v` in parallel.
pub(crate) fn fill<T: Copy + Send + Sync>(out: &mut [T], v: T) {
    if out.len() <= CHUNK {
        out.fill(v);
        return;
    }
    out.par_chunks_mut(CHUNK).for_each(|o| o.fill(v));
}

/// `out[i] = a[i]` in parallel.
pub(crate) fn copy<T: Copy + Send + Sync>(out: &mut [T], a: &[T]) {
    if out.len() <= CHUNK {
        out.copy_from_slice(a);
        return;
    }
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK))
        .for_each(|(o, a)| o.copy_from_slice(a));
}

/// A buffer's raw pointer and length that rayon tasks may share, for outputs whose tasks write
/// disjoint parts that are not one contiguous slice each (a conv's row blocks across channels,
/// a BN channel's planes across images).
#[derive(Clone, Copy)]
pub(crate) struct Shared<T>(pub(crate) *mut T, pub(crate) usize);
// SAFETY: only used for disjoint writes, as argued at each use.
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    pub(crate) fn new(s: &mut [T]) -> Self {
        Self(s.as_mut_ptr(), s.len())
    }

    /// Elements `[off, off + len)`, mutable. Panics outside the buffer.
    ///
    /// # Safety
    /// No other task may touch these elements while the slice lives.
    pub(crate) unsafe fn slice_mut<'a>(self, off: usize, len: usize) -> &'a mut [T] {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.1),
            "shared slice"
        );
        // SAFETY: inside the buffer (asserted); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(off), len) }
    }
}
