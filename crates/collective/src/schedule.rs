//! Schedules: which byte ranges a rank sends right and receives from the left, in which order,
//! and what each send must wait for. Pure data, no I/O, so every algorithm is checked by a
//! simulator in the tests and run by the same engine over TCP or in-memory pipes.
//!
//! A plan is two lists. Send frame `i` goes to the right neighbour with sequence number `i`; it
//! may name a receive frame that must be complete first (the data it forwards). Receive frame `j`
//! is the left neighbour's send frame `j`. Because every algorithm here forwards each segment as
//! soon as it has arrived and been reduced, the transfers are pipelined at segment granularity:
//! receiving, reducing and sending overlap.

use std::ops::Range;

/// Which buffer a frame reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buf {
    /// The caller's buffer.
    Data,
    /// The communicator's scratch buffer.
    Scratch,
}

/// What to do with a received payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Store it at the range.
    Copy,
    /// Combine it element-wise into the range.
    Reduce,
}

/// A frame to send to the right neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFrame {
    /// Buffer holding the payload.
    pub buf: Buf,
    /// Byte range of the payload.
    pub range: Range<usize>,
    /// Receive frame that must be complete before this frame is sent.
    pub after: Option<usize>,
}

/// A frame expected from the left neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvFrame {
    /// Buffer the payload lands in.
    pub buf: Buf,
    /// Byte range it covers.
    pub range: Range<usize>,
    /// Store or reduce.
    pub action: Action,
}

/// Everything one rank does in one collective.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Frames to send right, in order.
    pub sends: Vec<SendFrame>,
    /// Frames to receive from the left, in order.
    pub recvs: Vec<RecvFrame>,
}

/// Splits `len` elements into `n` contiguous chunks whose sizes differ by at most one.
pub fn chunks(len: usize, n: usize) -> Vec<Range<usize>> {
    let (base, extra) = (len / n, len % n);
    let mut start = 0;
    (0..n)
        .map(|i| {
            let end = start + base + usize::from(i < extra);
            let r = start..end;
            start = end;
            r
        })
        .collect()
}

/// Cuts a byte range into segments of at most `seg` bytes (an empty range gives none).
fn segments(range: Range<usize>, seg: usize) -> impl Iterator<Item = Range<usize>> {
    let seg = seg.max(1);
    (range.start..range.end)
        .step_by(seg)
        .map(move |s| s..(s + seg).min(range.end))
}

fn elem_seg(seg: usize, elem: usize) -> usize {
    (seg / elem).max(1) * elem
}

/// One step of a ring: the frames it sends and receives, and whether its sends forward what the
/// previous step received (segment `k` waits for receive segment `k` of the previous step).
struct RingStep {
    sends: Vec<(Buf, Range<usize>)>,
    recvs: Vec<RecvFrame>,
    chained: bool,
}

/// Collects the steps of a ring in which step `t` sends block `send` and receives block `recv`,
/// then orders the frames as a wavefront (see [`RingBuilder::finish`]).
struct RingBuilder<'a> {
    blocks: &'a [Range<usize>],
    seg: usize,
    steps: Vec<RingStep>,
}

impl<'a> RingBuilder<'a> {
    fn new(blocks: &'a [Range<usize>], seg: usize) -> Self {
        RingBuilder {
            blocks,
            seg,
            steps: Vec::new(),
        }
    }

    fn step(&mut self, buf: Buf, send: usize, recv: usize, action: Action, first: bool) {
        let sends = segments(self.blocks[send].clone(), self.seg)
            .map(|range| (buf, range))
            .collect();
        let recvs = segments(self.blocks[recv].clone(), self.seg)
            .map(|range| RecvFrame { buf, range, action })
            .collect();
        self.steps.push(RingStep {
            sends,
            recvs,
            chained: !first,
        });
    }

    /// Interleaves the steps: frame `k` of step `t` goes out in round `k + t * lag`, so a segment
    /// is forwarded `lag` frames after it arrived instead of after the whole step. The data it
    /// forwards is then still in cache (the box is memory-bound at large sizes) and every step
    /// keeps the link busy. Receives use the same order as the left neighbour's sends (the
    /// order depends only on the per-step frame counts, which both ends share).
    fn finish(self, lag: usize) -> Plan {
        let order = |counts: Vec<usize>| {
            let mut frames: Vec<(usize, usize)> = counts
                .iter()
                .enumerate()
                .flat_map(|(t, &c)| (0..c).map(move |k| (t, k)))
                .collect();
            frames.sort_by_key(|&(t, k)| (k.saturating_add(t.saturating_mul(lag)), t));
            frames
        };
        let mut plan = Plan::default();
        let mut recv_index: Vec<Vec<usize>> =
            self.steps.iter().map(|s| vec![0; s.recvs.len()]).collect();
        for (t, k) in order(self.steps.iter().map(|s| s.recvs.len()).collect()) {
            recv_index[t][k] = plan.recvs.len();
            plan.recvs.push(self.steps[t].recvs[k].clone());
        }
        for (t, k) in order(self.steps.iter().map(|s| s.sends.len()).collect()) {
            let (buf, range) = self.steps[t].sends[k].clone();
            let after = if self.steps[t].chained && t > 0 {
                recv_index[t - 1].get(k).copied()
            } else {
                None
            };
            plan.sends.push(SendFrame { buf, range, after });
        }
        plan
    }
}

fn modn(x: isize, n: usize) -> usize {
    x.rem_euclid(n as isize) as usize
}

fn byte_chunks(len: usize, n: usize, elem: usize) -> Vec<Range<usize>> {
    chunks(len, n)
        .into_iter()
        .map(|c| c.start * elem..c.end * elem)
        .collect()
}

/// Reduce-scatter of `len` elements of `elem` bytes over `n` ranks: afterwards rank `r` holds the
/// fully reduced chunk `chunks(len, n)[r]` in its data buffer. With `then_gather` the reduced
/// chunks are passed around once more (ring all-reduce: `2(n-1)` steps). Steps overlap by
/// segment: segment `k` of step `t` is sent in round `k + t * lag` (`lag >= 1`; a huge `lag`
/// runs the steps one after another).
pub fn ring_all_reduce(
    r: usize,
    n: usize,
    len: usize,
    elem: usize,
    seg: usize,
    then_gather: bool,
    lag: usize,
) -> Plan {
    if n < 2 {
        return Plan::default();
    }
    let blocks = byte_chunks(len, n, elem);
    let mut b = RingBuilder::new(&blocks, elem_seg(seg, elem));
    let r = r as isize;
    for s in 0..n as isize - 1 {
        let (send, recv) = (modn(r - s - 1, n), modn(r - s - 2, n));
        b.step(Buf::Data, send, recv, Action::Reduce, s == 0);
    }
    if then_gather {
        for s in 0..n as isize - 1 {
            let (send, recv) = (modn(r - s, n), modn(r - s - 1, n));
            b.step(Buf::Data, send, recv, Action::Copy, false);
        }
    }
    b.finish(lag)
}

/// All-gather of per-rank byte blocks (`blocks[i]` is where rank `i`'s data lives in `buf`,
/// lengths may differ): `n - 1` steps around the ring, overlapped by segment as in
/// [`ring_all_reduce`].
pub fn ring_all_gather(
    r: usize,
    n: usize,
    blocks: &[Range<usize>],
    buf: Buf,
    seg: usize,
    elem: usize,
    lag: usize,
) -> Plan {
    if n < 2 {
        return Plan::default();
    }
    let mut b = RingBuilder::new(blocks, elem_seg(seg, elem));
    let r = r as isize;
    for s in 0..n as isize - 1 {
        let (send, recv) = (modn(r - s, n), modn(r - s - 1, n));
        b.step(buf, send, recv, Action::Copy, s == 0);
    }
    b.finish(lag)
}

/// Broadcast of `bytes` from `root` along the ring, pipelined by segment: every rank but the
/// root receives a segment and forwards it at once; the rank left of the root only receives.
pub fn ring_broadcast(
    r: usize,
    n: usize,
    root: usize,
    bytes: usize,
    seg: usize,
    elem: usize,
) -> Plan {
    let mut plan = Plan::default();
    if n < 2 {
        return plan;
    }
    let pos = modn(r as isize - root as isize, n);
    for (k, range) in segments(0..bytes, elem_seg(seg, elem)).enumerate() {
        if pos > 0 {
            plan.recvs.push(RecvFrame {
                buf: Buf::Data,
                range: range.clone(),
                action: Action::Copy,
            });
        }
        if pos < n - 1 {
            let after = (pos > 0).then_some(k);
            plan.sends.push(SendFrame {
                buf: Buf::Data,
                range,
                after,
            });
        }
    }
    plan
}

/// Recursive halving (reduce-scatter) then doubling (all-gather) for a power-of-two world:
/// one plan per step, each exchanged with the partner `r ^ (1 << bit)`; returns `(bit, plan)`
/// in order. In halving step `bit` the pair splits its common range in two, each keeps one half
/// and sends the other; doubling undoes the splits. Every rank ends with the same bits because
/// each pairwise combination is commutative (`a + b == b + a` in IEEE arithmetic).
pub fn halving_doubling(
    r: usize,
    n: usize,
    len: usize,
    elem: usize,
    seg: usize,
) -> Vec<(usize, Plan)> {
    let mut steps = Vec::new();
    if n < 2 || !n.is_power_of_two() {
        return steps;
    }
    let seg = elem_seg(seg, elem);
    let bits = n.trailing_zeros() as usize;
    let bytes = |r: &Range<usize>| r.start * elem..r.end * elem;
    let exchange = |send: Range<usize>, recv: Range<usize>, action: Action| Plan {
        sends: segments(send, seg)
            .map(|range| SendFrame {
                buf: Buf::Data,
                range,
                after: None,
            })
            .collect(),
        recvs: segments(recv, seg)
            .map(|range| RecvFrame {
                buf: Buf::Data,
                range,
                action,
            })
            .collect(),
    };
    let mut mine = 0..len;
    let mut parents = Vec::with_capacity(bits);
    for bit in (0..bits).rev() {
        let mid = mine.start + (mine.end - mine.start) / 2;
        let (lower, upper) = (mine.start..mid, mid..mine.end);
        let (keep, give) = if r & (1 << bit) == 0 {
            (lower, upper)
        } else {
            (upper, lower)
        };
        steps.push((bit, exchange(bytes(&give), bytes(&keep), Action::Reduce)));
        parents.push(mine);
        mine = keep;
    }
    for bit in 0..bits {
        let Some(parent) = parents.pop() else { break };
        let other = if mine.start == parent.start {
            mine.end..parent.end
        } else {
            parent.start..mine.start
        };
        steps.push((bit, exchange(bytes(&mine), bytes(&other), Action::Copy)));
        mine = parent;
    }
    steps
}
