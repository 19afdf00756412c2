//! Runs a schedule [`Plan`] over the links to the left and right neighbours.
//!
//! One thread drives every stream with non-blocking sockets: it writes whatever frames are ready
//! (header and payload in one `writev`), reads whatever has arrived, reduces complete frames, and
//! only when nothing moves does it spin briefly and then block in `poll(2)`. Sending right and
//! receiving left therefore overlap, with no thread hand-offs. Frames are spread round-robin over
//! the streams of a link (frame `i` on stream `i % streams`).

use crate::control::protocol;
pub use crate::control::{check_header, check_idle_link, encode_abort, link_error, read_abort};
use crate::error::{CommError, Result};
pub use crate::op_ctx::OpCtx;
use crate::schedule::Plan;
use crate::transport::Link;
use crate::transport::poll::{self, BROKEN, READ, WRITE};
use crate::wire::frame::HEADER_LEN;

mod recv;
mod send;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The buffers a plan refers to, and the reduction for `Action::Reduce`.
pub struct Buffers<'a> {
    /// Caller's data.
    pub data: &'a mut [u8],
    /// Communicator scratch.
    pub scratch: &'a mut [u8],
    /// Staging area per stream for frames to be reduced (8-byte aligned).
    pub staging: &'a mut [Vec<u64>],
    /// `dst = op(dst, src)` on byte slices holding whole elements.
    pub reduce: &'a dyn Fn(&mut [u8], &[u8]),
}

#[derive(Default, Clone)]
struct SendState {
    next: usize,
    written: usize,
    header: [u8; HEADER_LEN],
}

#[derive(Default, Clone)]
struct RecvState {
    next: usize,
    header: [u8; HEADER_LEN],
    header_got: usize,
    got: usize,
}

/// The links of one rank: `right[s]` sends to the right neighbour, `left[s]` receives from the left.
pub struct Engine<'a, 'b> {
    right: &'a mut [Link],
    left: &'a mut [Link],
    plan: &'a Plan,
    ctx: &'a OpCtx<'b>,
    sends: Vec<SendState>,
    recvs: Vec<RecvState>,
    /// Right-hand streams whose peer closed after we finished sending to it (not an error).
    quiet: Vec<bool>,
}

impl<'a, 'b> Engine<'a, 'b> {
    /// Prepares to run `plan`; `right` and `left` must have the same number of streams (or be
    /// empty when the plan has no sends or receives).
    pub fn new(
        right: &'a mut [Link],
        left: &'a mut [Link],
        plan: &'a Plan,
        ctx: &'a OpCtx<'b>,
    ) -> Self {
        let sends = (0..right.len())
            .map(|s| SendState {
                next: s,
                ..Default::default()
            })
            .collect();
        let recvs = (0..left.len())
            .map(|s| RecvState {
                next: s,
                ..Default::default()
            })
            .collect();
        let quiet = vec![false; right.len()];
        Engine {
            right,
            left,
            plan,
            ctx,
            sends,
            recvs,
            quiet,
        }
    }

    fn recv_done(&self, j: usize) -> bool {
        let n = self.recvs.len().max(1);
        self.recvs.get(j % n).is_some_and(|st| j < st.next)
    }

    fn sends_done(&self) -> bool {
        self.sends.iter().all(|s| s.next >= self.plan.sends.len())
    }

    fn recvs_done(&self) -> bool {
        self.recvs.iter().all(|s| s.next >= self.plan.recvs.len())
    }

    /// Runs the plan to completion, or fails naming the peer at fault.
    pub fn run(&mut self, bufs: &mut Buffers<'_>) -> Result<()> {
        let res = self.run_inner(bufs);
        // `abort()` shuts our sockets down, which the loop may see first as a closed link.
        if res.is_err() && self.ctx.aborted.load(Ordering::Relaxed) {
            return Err(CommError::Aborted {
                op: self.ctx.name.clone(),
            });
        }
        res
    }

    fn run_inner(&mut self, bufs: &mut Buffers<'_>) -> Result<()> {
        let (has_sends, has_recvs) = (!self.plan.sends.is_empty(), !self.plan.recvs.is_empty());
        if (has_sends && self.right.is_empty()) || (has_recvs && self.left.is_empty()) {
            return Err(CommError::Invalid(format!(
                "{}: no link to run it on",
                self.ctx.name
            )));
        }
        let mut last_progress = Instant::now();
        let mut pfds = Vec::with_capacity(self.right.len() + self.left.len());
        loop {
            if self.ctx.aborted.load(Ordering::Relaxed) {
                return Err(CommError::Aborted {
                    op: self.ctx.name.clone(),
                });
            }
            let mut progressed = false;
            for s in 0..self.sends.len() {
                progressed |= self.pump_send(s, bufs)?;
            }
            for s in 0..self.recvs.len() {
                progressed |= self.pump_recv(s, bufs)?;
            }
            if self.sends_done() && self.recvs_done() {
                return Ok(());
            }
            let now = Instant::now();
            if progressed {
                last_progress = now;
                continue;
            }
            let idle = now - last_progress;
            if idle < self.ctx.spin {
                std::hint::spin_loop();
                continue;
            }
            if idle >= self.ctx.timeout {
                return Err(self.timeout_error(idle));
            }
            self.block(&mut pfds, self.ctx.timeout - idle)?;
        }
    }

    fn timeout_error(&self, waited: Duration) -> CommError {
        let link = if !self.recvs_done() {
            &self.left[0]
        } else {
            &self.right[0]
        };
        CommError::Timeout {
            op: self.ctx.name.clone(),
            rank: link.peer_rank,
            addr: link.peer_addr.clone(),
            waited,
        }
    }

    /// Blocks until a socket is ready; checks the send sockets for an abort or a close.
    fn block(&mut self, pfds: &mut Vec<libc::pollfd>, limit: Duration) -> Result<()> {
        pfds.clear();
        for (s, link) in self.right.iter().enumerate() {
            let st = &self.sends[s];
            let ready = self
                .plan
                .sends
                .get(st.next)
                .is_some_and(|f| f.after.is_none_or(|d| self.recv_done(d)));
            let back = if self.quiet[s] { 0 } else { READ };
            pfds.push(poll::entry(link, back | if ready { WRITE } else { 0 }));
        }
        for (s, link) in self.left.iter().enumerate() {
            let pending = self.recvs[s].next < self.plan.recvs.len();
            pfds.push(poll::entry(link, if pending { READ } else { 0 }));
        }
        poll::wait(pfds, limit.min(Duration::from_millis(200)))
            .map_err(|e| CommError::Local(format!("{}: poll failed: {e}", self.ctx.name)))?;
        let broken: Vec<usize> = (0..self.right.len())
            .filter(|&s| !self.quiet[s] && pfds[s].revents & (READ | BROKEN) != 0)
            .collect();
        for s in broken {
            self.backchannel(s)?;
        }
        Ok(())
    }
}
