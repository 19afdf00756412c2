//! Per-op-family wall-clock accounting for the CPU path (`ringdet perf-detect --profile`, issue
//! #18): where a training step's time goes. A scoped [`OpTimer`] guard adds its *exclusive* time
//! (its own span minus the spans of timers nested inside it on the same thread) to one
//! [`Family`], so nested timers are attributed once and the families sum to at most the wall time
//! of the region profiled. Off by default: [`OpTimer::new`] then costs one relaxed atomic load and
//! records nothing.
//!
//! Timers are meant for the thread that drives the step (the kernels parallelise inside a call);
//! a timer opened on several threads at once would count overlapping spans once per thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::conv::Conv2dParams;

/// What a span of the step is spent on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Convolution forward of the backbone stem (the few-channel convs on the image).
    ConvFwdStem,
    /// Convolution forward, 3×3 (and any other kernel above 1×1) outside the stem.
    ConvFwd3x3,
    /// Convolution forward, 1×1 outside the stem.
    ConvFwd1x1,
    /// Convolution backward to the input, stem.
    ConvBwdDataStem,
    /// Convolution backward to the input, 3×3 outside the stem.
    ConvBwdData3x3,
    /// Convolution backward to the input, 1×1 outside the stem.
    ConvBwdData1x1,
    /// Convolution backward to the weights (and bias), stem.
    ConvBwdFilterStem,
    /// Convolution backward to the weights (and bias), 3×3 outside the stem.
    ConvBwdFilter3x3,
    /// Convolution backward to the weights (and bias), 1×1 outside the stem.
    ConvBwdFilter1x1,
    /// Batch-norm statistics (forward sums and their backward).
    BnStats,
    /// Batch-norm normalisation forward (train and inference).
    BnForward,
    /// Batch-norm backward to input, scale and shift.
    BnBackward,
    /// SiLU, sigmoid and hard-sigmoid, forward and backward.
    Activation,
    /// Broadcast add and multiply (RepVGG sum, ESE gate, residuals), forward and backward.
    Elementwise,
    /// Channel concat, nearest upsample, max and global-average pool, forward and backward.
    ConcatUpsamplePool,
    /// Head host work: gathering level logits into anchor-major predictions, DFL decode, and
    /// scattering the loss gradients back to per-level NCHW.
    Head,
    /// Label assignment (ATSS or TAL).
    Assigner,
    /// The head losses (varifocal, GIoU, DFL) with their gradients.
    Loss,
    /// The SGD momentum update.
    Sgd,
    /// The EMA update and apply.
    Ema,
    /// Zero-filled buffers: conv workspaces and feature maps.
    Alloc,
    /// Conv+BN folding and RepVGG re-parameterisation.
    Fuse,
}

impl Family {
    /// Every family, in table order.
    pub const ALL: [Family; 22] = [
        Family::ConvFwdStem,
        Family::ConvFwd3x3,
        Family::ConvFwd1x1,
        Family::ConvBwdDataStem,
        Family::ConvBwdData3x3,
        Family::ConvBwdData1x1,
        Family::ConvBwdFilterStem,
        Family::ConvBwdFilter3x3,
        Family::ConvBwdFilter1x1,
        Family::BnStats,
        Family::BnForward,
        Family::BnBackward,
        Family::Activation,
        Family::Elementwise,
        Family::ConcatUpsamplePool,
        Family::Head,
        Family::Assigner,
        Family::Loss,
        Family::Sgd,
        Family::Ema,
        Family::Alloc,
        Family::Fuse,
    ];

    /// A stable snake-case key (the `--json` field and the Paddle script's family names).
    pub fn key(self) -> &'static str {
        match self {
            Family::ConvFwdStem => "conv_fwd_stem",
            Family::ConvFwd3x3 => "conv_fwd_3x3",
            Family::ConvFwd1x1 => "conv_fwd_1x1",
            Family::ConvBwdDataStem => "conv_bwd_data_stem",
            Family::ConvBwdData3x3 => "conv_bwd_data_3x3",
            Family::ConvBwdData1x1 => "conv_bwd_data_1x1",
            Family::ConvBwdFilterStem => "conv_bwd_filter_stem",
            Family::ConvBwdFilter3x3 => "conv_bwd_filter_3x3",
            Family::ConvBwdFilter1x1 => "conv_bwd_filter_1x1",
            Family::BnStats => "bn_stats",
            Family::BnForward => "bn_forward",
            Family::BnBackward => "bn_backward",
            Family::Activation => "activation",
            Family::Elementwise => "elementwise",
            Family::ConcatUpsamplePool => "concat_upsample_pool",
            Family::Head => "head_gather_scatter",
            Family::Assigner => "assigner",
            Family::Loss => "loss",
            Family::Sgd => "sgd",
            Family::Ema => "ema",
            Family::Alloc => "alloc",
            Family::Fuse => "fuse",
        }
    }

    fn index(self) -> usize {
        // `ALL` lists the variants in declaration order.
        self as usize
    }
}

const N: usize = Family::ALL.len();

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static CALLS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static FLOPS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];

thread_local! {
    /// Nanoseconds spent in timers nested inside the innermost open timer of this thread.
    static CHILD_NANOS: Cell<u64> = const { Cell::new(0) };
    /// Whether this thread is inside the backbone stem ([`StemScope`]).
    static IN_STEM: Cell<bool> = const { Cell::new(false) };
}

/// Turns recording on or off for the whole process.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether timers record (one relaxed load).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Zeroes every family's totals.
pub fn reset() {
    for i in 0..N {
        NANOS[i].store(0, Ordering::Relaxed);
        CALLS[i].store(0, Ordering::Relaxed);
        FLOPS[i].store(0, Ordering::Relaxed);
    }
}

/// One family's totals since the last [`reset`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilyTotals {
    /// The family.
    pub family: Family,
    /// Exclusive wall time, nanoseconds.
    pub nanos: u64,
    /// Timers closed.
    pub calls: u64,
    /// Floating-point operations declared by the timers (0 where not known).
    pub flops: u64,
}

/// Every family's totals since the last [`reset`], in [`Family::ALL`] order.
pub fn snapshot() -> Vec<FamilyTotals> {
    Family::ALL
        .iter()
        .map(|&f| FamilyTotals {
            family: f,
            nanos: NANOS[f.index()].load(Ordering::Relaxed),
            calls: CALLS[f.index()].load(Ordering::Relaxed),
            flops: FLOPS[f.index()].load(Ordering::Relaxed),
        })
        .collect()
}

struct Open {
    family: Family,
    flops: u64,
    start: Instant,
    /// The enclosing timer's nested time so far, restored (plus this span) on close.
    parent_child: u64,
}

/// A scoped timer: from [`OpTimer::new`] to drop, the span's exclusive time goes to its family.
#[must_use = "the timer records when dropped; bind it to a named variable (`let _t = …`)"]
pub struct OpTimer(Option<Open>);

impl OpTimer {
    /// Opens a timer for `family`; a no-op when profiling is off.
    #[inline]
    pub fn new(family: Family) -> Self {
        Self::with_flops(family, 0)
    }

    /// Opens a timer that also declares `flops` floating-point operations.
    #[inline]
    pub fn with_flops(family: Family, flops: u64) -> Self {
        if !enabled() {
            return OpTimer(None);
        }
        let parent_child = CHILD_NANOS.with(|c| c.replace(0));
        OpTimer(Some(Open {
            family,
            flops,
            start: Instant::now(),
            parent_child,
        }))
    }
}

impl Drop for OpTimer {
    fn drop(&mut self) {
        let Some(o) = self.0.take() else { return };
        let span = u64::try_from(o.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let nested = CHILD_NANOS.with(|c| c.replace(o.parent_child.saturating_add(span)));
        let i = o.family.index();
        NANOS[i].fetch_add(span.saturating_sub(nested), Ordering::Relaxed);
        CALLS[i].fetch_add(1, Ordering::Relaxed);
        FLOPS[i].fetch_add(o.flops, Ordering::Relaxed);
    }
}

/// Which convolution pass a timer covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPass {
    /// `y = conv(x, w)`.
    Forward,
    /// `dx` from `dy` and `w`.
    BackwardData,
    /// `dw` (and `db`) from `dy` and `x`.
    BackwardFilter,
}

/// The family of a convolution: stem when inside a [`StemScope`], else by kernel size.
pub fn conv_family(pass: ConvPass, p: &Conv2dParams) -> Family {
    let stem = IN_STEM.with(Cell::get);
    let one = p.kernel_h == 1 && p.kernel_w == 1;
    match (pass, stem, one) {
        (ConvPass::Forward, true, _) => Family::ConvFwdStem,
        (ConvPass::Forward, false, true) => Family::ConvFwd1x1,
        (ConvPass::Forward, false, false) => Family::ConvFwd3x3,
        (ConvPass::BackwardData, true, _) => Family::ConvBwdDataStem,
        (ConvPass::BackwardData, false, true) => Family::ConvBwdData1x1,
        (ConvPass::BackwardData, false, false) => Family::ConvBwdData3x3,
        (ConvPass::BackwardFilter, true, _) => Family::ConvBwdFilterStem,
        (ConvPass::BackwardFilter, false, true) => Family::ConvBwdFilter1x1,
        (ConvPass::BackwardFilter, false, false) => Family::ConvBwdFilter3x3,
    }
}

/// A timer for one convolution pass, declaring [`Conv2dParams::flops`].
#[inline]
pub fn conv_timer(pass: ConvPass, p: &Conv2dParams) -> OpTimer {
    if !enabled() {
        return OpTimer(None);
    }
    OpTimer::with_flops(conv_family(pass, p), p.flops())
}

/// Marks the backbone stem on this thread while alive, so its convs get the stem families.
#[must_use = "the scope ends when dropped; bind it to a named variable (`let _s = …`)"]
pub struct StemScope(Option<bool>);

impl StemScope {
    /// Enters the stem (a no-op when profiling is off).
    #[inline]
    pub fn enter() -> Self {
        if !enabled() {
            return StemScope(None);
        }
        StemScope(Some(IN_STEM.with(|s| s.replace(true))))
    }
}

impl Drop for StemScope {
    fn drop(&mut self) {
        if let Some(prev) = self.0.take() {
            IN_STEM.with(|s| s.set(prev));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serialises the tests that flip the process-wide flag (no other unit test of this crate
    /// calls the backend, so only these record).
    static TEST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn spin(d: std::time::Duration) {
        let t = Instant::now();
        while t.elapsed() < d {
            std::hint::spin_loop();
        }
    }

    fn get(f: Family) -> FamilyTotals {
        snapshot()[f.index()]
    }

    #[test]
    fn all_lists_variants_in_order() {
        for (i, f) in Family::ALL.iter().enumerate() {
            assert_eq!(f.index(), i, "{f:?}");
        }
    }

    #[test]
    fn off_records_nothing() {
        let _g = TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        set_enabled(false);
        reset();
        {
            let _t = OpTimer::with_flops(Family::Sgd, 10);
            let _s = StemScope::enter();
            let p = Conv2dParams::square(1, 3, 4, 8, 8, 3, 1, 1);
            let _c = conv_timer(ConvPass::Forward, &p);
            spin(std::time::Duration::from_micros(50));
        }
        assert!(snapshot().iter().all(|t| t.nanos == 0 && t.calls == 0));
    }

    #[test]
    fn nested_timers_are_attributed_once() {
        let _g = TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        set_enabled(true);
        reset();
        let outer_start = Instant::now();
        {
            let _outer = OpTimer::new(Family::Loss);
            spin(std::time::Duration::from_micros(200));
            {
                let _inner = OpTimer::with_flops(Family::Activation, 7);
                spin(std::time::Duration::from_micros(200));
                {
                    let _deep = OpTimer::new(Family::Alloc);
                    spin(std::time::Duration::from_micros(100));
                }
            }
            let _sibling = OpTimer::new(Family::Activation);
            spin(std::time::Duration::from_micros(100));
        }
        let wall = u64::try_from(outer_start.elapsed().as_nanos()).unwrap();
        set_enabled(false);
        let loss = get(Family::Loss);
        let act = get(Family::Activation);
        let alloc = get(Family::Alloc);
        assert_eq!((loss.calls, act.calls, alloc.calls), (1, 2, 1));
        assert_eq!(act.flops, 7);
        // Each family holds only its own time, and together no more than the outer span.
        assert!(loss.nanos >= 200_000, "{loss:?}");
        assert!(act.nanos >= 300_000, "{act:?}");
        assert!(alloc.nanos >= 100_000, "{alloc:?}");
        let sum: u64 = snapshot().iter().map(|t| t.nanos).sum();
        assert!(sum <= wall, "families {sum} ns > wall {wall} ns");
        // The outer timer's exclusive time excludes the nested ones.
        assert!(loss.nanos + act.nanos + alloc.nanos == sum);
    }

    #[test]
    fn stem_scope_and_kernel_size_pick_the_conv_family() {
        let _g = TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        set_enabled(true);
        let p3 = Conv2dParams::square(1, 3, 4, 8, 8, 3, 1, 1);
        let p1 = Conv2dParams::square(1, 3, 4, 8, 8, 1, 1, 0);
        assert_eq!(conv_family(ConvPass::Forward, &p3), Family::ConvFwd3x3);
        assert_eq!(
            conv_family(ConvPass::BackwardData, &p1),
            Family::ConvBwdData1x1
        );
        {
            let _s = StemScope::enter();
            assert_eq!(
                conv_family(ConvPass::BackwardFilter, &p3),
                Family::ConvBwdFilterStem
            );
        }
        assert_eq!(
            conv_family(ConvPass::BackwardFilter, &p1),
            Family::ConvBwdFilter1x1
        );
        set_enabled(false);
    }
}
