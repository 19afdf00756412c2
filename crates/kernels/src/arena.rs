//! Host buffers reused from one training step to the next, so that after the first step the CPU
//! path makes no large allocation: every activation, conv workspace and gradient temporary of a
//! step has the same sizes as in the step before, so a buffer freed in step `t` is handed out
//! again in step `t + 1` instead of going back to the allocator (large allocations are fresh
//! `mmap`s whose pages fault in on first touch, which the profile counted as `alloc`).
//!
//! One arena per element type ([`Real::arena`]), buckets keyed by exact length. Buffers come
//! back with [`Arena::give`] (the detect crate's `Feat` does it on drop). The pool holds at most
//! [`Arena::capacity_bytes`]; beyond that the buckets used longest ago are dropped, so that a
//! change of input size (multi-scale training) does not keep the old sizes forever.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::Real;
use crate::profile::{Family, OpTimer};

/// Buffers of one length waiting to be reused, how many of that length are out (taken and not
/// given back), and when that length was last asked for.
#[derive(Default)]
struct Bucket<T> {
    free: Vec<Vec<T>>,
    out: usize,
    last_use: u64,
}

struct Pool<T> {
    buckets: BTreeMap<usize, Bucket<T>>,
    /// Elements held in all buckets.
    held: usize,
    /// Counts `take` calls (the clock of `last_use`).
    tick: u64,
}

/// A recycling pool of `Vec<T>` keyed by length (see the module docs).
pub struct Arena<T> {
    pool: Mutex<Pool<T>>,
    /// Takes that found no buffer of their length and allocated.
    misses: AtomicU64,
    /// Takes served from the pool.
    hits: AtomicU64,
    /// Most bytes the pool keeps.
    cap_bytes: AtomicUsize,
}

/// Default [`Arena::capacity_bytes`]: 2 GiB.
pub const DEFAULT_CAPACITY_BYTES: usize = 2 << 30;

/// Buffers shorter than this are not worth pooling (the allocator's small bins serve them).
const MIN_POOLED: usize = 64;

impl<T: Real> Arena<T> {
    /// An empty arena.
    pub const fn new() -> Self {
        Self {
            pool: Mutex::new(Pool {
                buckets: BTreeMap::new(),
                held: 0,
                tick: 0,
            }),
            misses: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            cap_bytes: AtomicUsize::new(DEFAULT_CAPACITY_BYTES),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool<T>> {
        // A panic while holding the lock leaves only buffers behind: keep using them.
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of `n` elements whose values are unspecified (whatever its last user left):
    /// for outputs an op overwrites completely.
    pub fn take(&self, n: usize) -> Vec<T> {
        if n < MIN_POOLED {
            return vec![T::ZERO; n];
        }
        let found = {
            let mut pool = self.lock();
            pool.tick += 1;
            let tick = pool.tick;
            let b = pool.buckets.entry(n).or_default();
            b.last_use = tick;
            b.out += 1;
            let v = b.free.pop();
            if v.is_some() {
                pool.held -= n;
            }
            v
        };
        match found {
            Some(v) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                v
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                let _a = OpTimer::new(Family::Alloc);
                vec![T::ZERO; n]
            }
        }
    }

    /// A buffer of `n` zeros.
    pub fn take_zeroed(&self, n: usize) -> Vec<T> {
        let mut v = self.take(n);
        crate::par::fill(&mut v, T::ZERO);
        v
    }

    /// A copy of `src` in a pooled buffer.
    pub fn take_copy(&self, src: &[T]) -> Vec<T> {
        let mut v = self.take(src.len());
        crate::par::copy(&mut v, src);
        v
    }

    /// Returns a buffer to the pool (its length is its bucket). A buffer that the pool did not
    /// hand out (no buffer of its length is out) is dropped instead: buffers made elsewhere,
    /// e.g. a new input image each step, would otherwise pile up.
    pub fn give(&self, mut v: Vec<T>) {
        let n = v.len();
        if n < MIN_POOLED {
            return;
        }
        let cap = self.cap_bytes.load(Ordering::Relaxed) / std::mem::size_of::<T>().max(1);
        let mut pool = self.lock();
        match pool.buckets.get_mut(&n) {
            Some(b) if b.out > 0 => b.out -= 1,
            _ => return,
        }
        if n > cap || v.capacity() != n {
            return;
        }
        while pool.held + n > cap {
            // Drop the buffers of the length used longest ago (never this one's).
            let Some(oldest) = pool
                .buckets
                .iter()
                .filter(|(len, b)| **len != n && !b.free.is_empty())
                .min_by_key(|(_, b)| b.last_use)
                .map(|(len, _)| *len)
            else {
                return;
            };
            if let Some(b) = pool.buckets.get_mut(&oldest) {
                let freed = b.free.len() * oldest;
                b.free.clear();
                pool.held -= freed;
            }
        }
        pool.held += n;
        if let Some(b) = pool.buckets.get_mut(&n) {
            b.free.push(std::mem::take(&mut v));
        }
    }

    /// Takes that had to allocate since the start (a step that allocates nothing adds none).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Takes served from the pool since the start.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Most bytes the pool keeps.
    pub fn capacity_bytes(&self) -> usize {
        self.cap_bytes.load(Ordering::Relaxed)
    }

    /// Sets the most bytes the pool keeps (0 turns pooling off); drops what is above it.
    pub fn set_capacity_bytes(&self, bytes: usize) {
        self.cap_bytes.store(bytes, Ordering::Relaxed);
        let cap = bytes / std::mem::size_of::<T>().max(1);
        let mut pool = self.lock();
        if pool.held > cap {
            pool.buckets.clear();
            pool.held = 0;
        }
    }

    /// Elements held in the pool now.
    pub fn held(&self) -> usize {
        self.lock().held
    }
}

impl<T: Real> Default for Arena<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The `f32` arena.
pub(crate) static F32: Arena<f32> = Arena::new();
/// The `f64` arena.
pub(crate) static F64: Arena<f64> = Arena::new();

/// [`Arena::take`] on `T`'s arena.
pub fn take<T: Real>(n: usize) -> Vec<T> {
    T::arena().take(n)
}

/// [`Arena::take_zeroed`] on `T`'s arena.
pub fn take_zeroed<T: Real>(n: usize) -> Vec<T> {
    T::arena().take_zeroed(n)
}

/// [`Arena::take_copy`] on `T`'s arena.
pub fn take_copy<T: Real>(src: &[T]) -> Vec<T> {
    T::arena().take_copy(src)
}

/// [`Arena::give`] on `T`'s arena.
pub fn give<T: Real>(v: Vec<T>) {
    T::arena().give(v)
}

/// A buffer of `T`'s arena that goes back to it when dropped (for host temporaries that are
/// plain vectors rather than feature maps). Dereferences to the `Vec`.
#[derive(Debug)]
pub struct Pooled<T: Real>(Vec<T>);

impl<T: Real> Pooled<T> {
    /// `n` zeros.
    pub fn zeroed(n: usize) -> Self {
        Self(take_zeroed(n))
    }
    /// `n` unspecified values (for a buffer the next op overwrites).
    pub fn scratch(n: usize) -> Self {
        Self(take(n))
    }
    /// The vector, no longer returned to the arena on drop.
    pub fn into_vec(mut self) -> Vec<T> {
        std::mem::take(&mut self.0)
    }
}

impl<T: Real> std::ops::Deref for Pooled<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T: Real> std::ops::DerefMut for Pooled<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}

impl<T: Real> Drop for Pooled<T> {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_by_length_and_counts_misses() {
        let a = Arena::<f32>::new();
        let v = a.take(1000);
        assert_eq!((a.misses(), a.hits()), (1, 0));
        let p = v.as_ptr();
        a.give(v);
        assert_eq!(a.held(), 1000);
        let w = a.take_zeroed(1000);
        assert_eq!((a.misses(), a.hits()), (1, 1));
        assert_eq!(w.as_ptr(), p);
        assert!(w.iter().all(|&x| x == 0.0));
        let u = a.take(999);
        assert_eq!(a.misses(), 2);
        a.give(w);
        a.give(u);
        assert_eq!(a.held(), 1999);
    }

    #[test]
    fn capacity_evicts_the_oldest_length() {
        let a = Arena::<f64>::new();
        a.set_capacity_bytes(8 * 250);
        let (x, y) = (a.take(100), a.take(200));
        a.give(x);
        assert_eq!(a.held(), 100);
        a.give(y); // 300 > 250: the 100 bucket (used first) goes
        assert_eq!(a.held(), 200);
        a.give(a.take_copy(&[1.0; 300])); // larger than the pool: dropped
        assert_eq!(a.held(), 200);
    }

    #[test]
    fn buffers_from_elsewhere_do_not_pile_up() {
        let a = Arena::<f32>::new();
        let v = a.take(500);
        a.give(vec![0.0; 500]); // one of this length is out: pooled in its place
        a.give(vec![0.0; 500]); // none out any more: dropped
        a.give(vec![0.0; 700]); // never taken: dropped
        assert_eq!(a.held(), 500);
        a.give(v); // the pool's own buffer, now foreign: dropped
        assert_eq!(a.held(), 500);
    }

    #[test]
    fn small_buffers_bypass_the_pool() {
        let a = Arena::<f32>::new();
        a.give(a.take(3));
        assert_eq!((a.held(), a.misses()), (0, 0));
    }
}
