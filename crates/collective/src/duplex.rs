//! Large transfers with a sender thread: the calling thread receives and reduces, a scoped
//! helper thread sends, so the copies into and out of the kernel run on two cores at once and a
//! rank keeps one thread busy while the other waits for its socket. Small transfers stay on the
//! single-threaded engine, where a thread hand-off would cost more than it saves.
//!
//! Both threads see the caller's buffers through raw pointers. This is sound because the sender
//! only reads ranges that are either never received (the rank's own data) or whose receive
//! frame completed before (published with release/acquire on `done_prefix`), and the receiver
//! only writes the range of the frame it is receiving, which the sender never reads at the same
//! time: a plan never sends a range before the receive that fills it.

use crate::engine::{Buffers, OpCtx};
use crate::error::{CommError, Result};
use crate::schedule::Plan;
use crate::transport::Link;
use recv::recv_all;
use send::send_all;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

mod recv;
mod send;

/// How long one wait may block before re-checking abort and the other thread's failure.
const SLICE: Duration = Duration::from_millis(20);

#[derive(Clone, Copy)]
struct Raw {
    ptr: *mut u8,
    len: usize,
}
// SAFETY: see the module comment; ranges are handed between threads with release/acquire.
unsafe impl Send for Raw {}
unsafe impl Sync for Raw {}

impl Raw {
    fn of(s: &mut [u8]) -> Raw {
        Raw {
            ptr: s.as_mut_ptr(),
            len: s.len(),
        }
    }
    /// # Safety
    /// `r` lies within the buffer and nobody writes it while the slice lives.
    unsafe fn get(&self, r: &std::ops::Range<usize>) -> &[u8] {
        assert!(r.end <= self.len);
        unsafe { std::slice::from_raw_parts(self.ptr.add(r.start), r.len()) }
    }
    /// # Safety
    /// `r` lies within the buffer and nobody else touches it while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get_mut(&self, r: &std::ops::Range<usize>) -> &mut [u8] {
        assert!(r.end <= self.len);
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.len()) }
    }
}

struct Shared {
    /// Receive frames `0..done_prefix` are complete.
    done_prefix: AtomicUsize,
    /// Either thread failed; the other stops.
    failed: AtomicBool,
}

/// Half-written frame left by the sender: (stream, bytes still owed).
pub type Partial = Option<(usize, usize)>;

/// Runs `plan` with a sender thread. On error also returns the sender's half-written frame.
pub fn run(
    right: &mut [Link],
    left: &mut [Link],
    plan: &Plan,
    ctx: &OpCtx<'_>,
    bufs: &mut Buffers<'_>,
) -> (Result<()>, Partial) {
    let shared = Shared {
        done_prefix: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
    };
    let data = Raw::of(bufs.data);
    let scratch = Raw::of(bufs.scratch);
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let mut partial = None;
            let r = send_all(right, plan, ctx, data, scratch, &shared, &mut partial);
            if r.is_err() {
                shared.failed.store(true, Ordering::SeqCst);
            }
            (r, partial)
        });
        let wake = sender.thread().clone();
        let received = recv_all(left, plan, ctx, data, scratch, bufs, &shared, &wake);
        if received.is_err() {
            shared.failed.store(true, Ordering::SeqCst);
            wake.unpark();
        }
        let (sent, partial) = sender
            .join()
            .unwrap_or_else(|_| (Err(CommError::Local("sender thread panicked".into())), None));
        let res = match (received, sent) {
            (Ok(()), Ok(())) => Ok(()),
            // Prefer the error that caused the other side to stop.
            (Err(r), Err(e)) if is_stopped(&r) => Err(e),
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        };
        (
            res.map_err(|e| {
                if ctx.aborted.load(Ordering::Relaxed) {
                    CommError::Aborted {
                        op: ctx.name.clone(),
                    }
                } else {
                    e
                }
            }),
            partial,
        )
    })
}

/// Marker error of a thread that stopped because the other one failed.
fn stopped() -> CommError {
    CommError::Local(String::new())
}

fn is_stopped(e: &CommError) -> bool {
    matches!(e, CommError::Local(m) if m.is_empty())
}

fn stop_check(ctx: &OpCtx<'_>, shared: &Shared) -> Result<()> {
    if ctx.aborted.load(Ordering::Relaxed) {
        return Err(CommError::Aborted {
            op: ctx.name.clone(),
        });
    }
    if shared.failed.load(Ordering::SeqCst) {
        return Err(stopped());
    }
    Ok(())
}
