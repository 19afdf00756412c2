//! After the first training step, a step makes no large allocation: activations, conv
//! workspaces and gradient temporaries come from the kernels' arena, reused step to step.
//! Counted with a counting global allocator (this test binary only). The `gemm` crate's own
//! packing buffers are not counted: it allocates them inside each GEMM call (sized from the
//! cache sizes, out of our hands; the allocator's heap serves them again without page faults),
//! so an allocation whose backtrace passes through `gemm_common` (in a debug build; `gemm_f32` and
//! `dyn_stack` in a release build, which inlines it) is left out.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::cross_replica::SingleReplica;
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{TrainSettings, forward_backward};
use ringdet_detect::synthetic;
use ringdet_kernels::Real;

/// Allocations of at least this many bytes count as large.
const LARGE: usize = 64 << 10;

struct Counting;
static ON: AtomicBool = AtomicBool::new(false);
static LARGE_ALLOCS: AtomicUsize = AtomicUsize::new(0);
static LARGE_BYTES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set while this thread inspects an allocation (whose own allocations are not counted).
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize) {
    if size < LARGE || !ON.load(Ordering::Relaxed) || INSIDE.with(Cell::get) {
        return;
    }
    INSIDE.with(|i| i.set(true));
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    // debug builds name gemm_common's frames; release builds inline them into gemm_f32's and
    // dyn_stack's (the crate's buffer type)
    let in_gemm = ["gemm_common", "gemm_f32", "gemm_f64", "dyn_stack::"]
        .iter()
        .any(|frame| trace.contains(frame));
    if !in_gemm {
        LARGE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        LARGE_BYTES.fetch_add(size, Ordering::Relaxed);
        if std::env::var_os("RINGDET_ALLOC_TRACE").is_some() {
            eprintln!("{size} bytes:\n{trace}");
        }
    }
    INSIDE.with(|i| i.set(false));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size());
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count(l.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count(n);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steps_after_the_first_make_no_large_allocation() {
    let arch = Arch::new(ModelConfig::new(0.125, 0.33).with_classes(3)).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(3));
    let data = synthetic::batch(2, 128, 96, 3, 3, 5);
    let batch = data.train_batch();
    let settings = TrainSettings::default();
    let mut counts = Vec::new();
    let mut arena_growths = Vec::new();
    for epoch in [0, 0, 0, 200, 200] {
        LARGE_ALLOCS.store(0, Ordering::Relaxed);
        LARGE_BYTES.store(0, Ordering::Relaxed);
        let misses = f32::arena().misses();
        ON.store(true, Ordering::Relaxed);
        let out = forward_backward(&arch, &mut state, &batch, epoch, &settings, &SingleReplica);
        ON.store(false, Ordering::Relaxed);
        let out = out.unwrap();
        assert!(out.losses.cls.is_finite());
        counts.push((
            LARGE_ALLOCS.load(Ordering::Relaxed),
            LARGE_BYTES.load(Ordering::Relaxed),
        ));
        arena_growths.push(f32::arena().misses() - misses);
    }
    eprintln!(
        "large allocations (count, bytes) per step: {counts:?}; arena growths {arena_growths:?}"
    );
    assert!(arena_growths[0] > 0, "{arena_growths:?}");
    assert_eq!(arena_growths[2], 0, "{arena_growths:?}");
    assert_eq!(arena_growths[4], 0, "{arena_growths:?}");
    assert!(counts[0].0 > 0, "the first step allocates: {counts:?}");
    // Steps 3 and 5: the same assigner as the step before (ATSS, then TAL).
    assert_eq!(counts[2], (0, 0), "{counts:?}");
    assert_eq!(counts[4], (0, 0), "{counts:?}");
}
