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

use crate::engine::{Buffers, OpCtx, check_header, link_error, read_abort};
use crate::error::{CommError, Result};
use crate::schedule::{Action, Buf, Plan};
use crate::transport::Link;
use crate::transport::poll::{self, BROKEN, READ, WRITE};
use crate::wire::frame::{HEADER_LEN, Header, Kind};
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

fn send_all(
    right: &mut [Link],
    plan: &Plan,
    ctx: &OpCtx<'_>,
    data: Raw,
    scratch: Raw,
    shared: &Shared,
    partial: &mut Partial,
) -> Result<()> {
    let streams = right.len();
    let mut quiet = vec![false; streams];
    for (i, f) in plan.sends.iter().enumerate() {
        if let Some(d) = f.after {
            let mut spins = 0u32;
            while shared.done_prefix.load(Ordering::Acquire) <= d {
                stop_check(ctx, shared)?;
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::park_timeout(SLICE);
                }
            }
        }
        let s = i % streams;
        let src = match f.buf {
            // SAFETY: sent ranges are not written while sent (module comment).
            Buf::Data => unsafe { data.get(&f.range) },
            Buf::Scratch => unsafe { scratch.get(&f.range) },
        };
        let header = Header {
            kind: ctx.kind,
            op_id: ctx.op_id,
            seq: i as u32,
            len: src.len() as u32,
        }
        .encode();
        let total = HEADER_LEN + src.len();
        let mut written = 0;
        let mut last = Instant::now();
        while written < total {
            let res = if written < HEADER_LEN {
                right[s].write_vectored(&[IoSlice::new(&header[written..]), IoSlice::new(src)])
            } else {
                right[s].write_vectored(&[IoSlice::new(&src[written - HEADER_LEN..])])
            };
            match res {
                Ok(0) => {
                    return Err(link_error(
                        &ctx.name,
                        &right[s],
                        &io::ErrorKind::WriteZero.into(),
                    ));
                }
                Ok(n) => {
                    written += n;
                    *partial = (written < total).then_some((s, total - written));
                    last = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stop_check(ctx, shared)?;
                    if last.elapsed() >= ctx.timeout {
                        return Err(CommError::Timeout {
                            op: ctx.name.clone(),
                            rank: right[s].peer_rank,
                            addr: right[s].peer_addr.clone(),
                            waited: last.elapsed(),
                        });
                    }
                    let back = if quiet[s] { 0 } else { READ };
                    let mut pfd = [poll::entry(&right[s], WRITE | back)];
                    poll::wait(&mut pfd, SLICE)
                        .map_err(|e| CommError::Local(format!("{}: poll: {e}", ctx.name)))?;
                    if back != 0
                        && pfd[0].revents & (READ | BROKEN) != 0
                        && pfd[0].revents & WRITE == 0
                    {
                        backchannel(ctx, &mut right[s], &mut quiet[s])?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(link_error(&ctx.name, &right[s], &e)),
            }
        }
    }
    Ok(())
}

/// Something arrived on a send link: an abort report, or a close.
fn backchannel(ctx: &OpCtx<'_>, link: &mut Link, quiet: &mut bool) -> Result<()> {
    let mut hb = [0u8; HEADER_LEN];
    match link.read(&mut hb[..1]) {
        Ok(0) => {
            return Err(link_error(
                &ctx.name,
                link,
                &io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        Ok(_) => {}
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted =>
        {
            return Ok(());
        }
        Err(e) => return Err(link_error(&ctx.name, link, &e)),
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    if let Err(e) = poll::read_exact(link, &mut hb[1..], deadline) {
        return Err(link_error(&ctx.name, link, &e));
    }
    *quiet = true;
    Err(match Header::decode(&hb, 0) {
        Ok(h) if h.kind == Kind::Abort => read_abort(&ctx.name, link, &h),
        Ok(h) => CommError::Protocol {
            op: ctx.name.clone(),
            rank: link.peer_rank,
            addr: link.peer_addr.clone(),
            detail: format!("unexpected {} frame on a send link", h.kind.name()),
        },
        Err(e) => CommError::Protocol {
            op: ctx.name.clone(),
            rank: link.peer_rank,
            addr: link.peer_addr.clone(),
            detail: e.to_string(),
        },
    })
}

#[allow(clippy::too_many_arguments)]
fn recv_all(
    left: &mut [Link],
    plan: &Plan,
    ctx: &OpCtx<'_>,
    data: Raw,
    scratch: Raw,
    bufs: &mut Buffers<'_>,
    shared: &Shared,
    wake: &std::thread::Thread,
) -> Result<()> {
    let streams = left.len();
    let mut done = vec![false; plan.recvs.len()];
    let mut prefix = 0;
    // Per stream: next frame, header bytes, payload bytes.
    let mut next: Vec<usize> = (0..streams).collect();
    let mut header = vec![[0u8; HEADER_LEN]; streams];
    let mut header_got = vec![0usize; streams];
    let mut got = vec![0usize; streams];
    let mut last = Instant::now();
    let mut pfds = Vec::with_capacity(streams);
    while prefix < plan.recvs.len() {
        let mut progressed = false;
        for s in 0..streams {
            while let Some(f) = plan.recvs.get(next[s]) {
                let res = if header_got[s] < HEADER_LEN {
                    left[s].read(&mut header[s][header_got[s]..])
                } else {
                    let dst = match (f.action, f.buf) {
                        (Action::Reduce, _) => {
                            &mut bytemuck::cast_slice_mut::<u64, u8>(&mut bufs.staging[s])
                                [..f.range.len()]
                        }
                        // SAFETY: only this thread writes this range now (module comment).
                        (Action::Copy, Buf::Data) => unsafe { data.get_mut(&f.range) },
                        (Action::Copy, Buf::Scratch) => unsafe { scratch.get_mut(&f.range) },
                    };
                    left[s].read(&mut dst[got[s]..])
                };
                let n = match res {
                    Ok(0) => {
                        return Err(link_error(
                            &ctx.name,
                            &left[s],
                            &io::ErrorKind::UnexpectedEof.into(),
                        ));
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(link_error(&ctx.name, &left[s], &e)),
                };
                progressed = true;
                if header_got[s] < HEADER_LEN {
                    header_got[s] += n;
                    if header_got[s] == HEADER_LEN {
                        let hb = header[s];
                        check_header(ctx, &mut left[s], &hb, next[s], f.range.len())?;
                    }
                    continue;
                }
                got[s] += n;
                if got[s] < f.range.len() {
                    continue;
                }
                if f.action == Action::Reduce {
                    let src = &bytemuck::cast_slice::<u64, u8>(&bufs.staging[s])[..f.range.len()];
                    let dst = match f.buf {
                        // SAFETY: as above.
                        Buf::Data => unsafe { data.get_mut(&f.range) },
                        Buf::Scratch => unsafe { scratch.get_mut(&f.range) },
                    };
                    (bufs.reduce)(dst, src);
                }
                done[next[s]] = true;
                header_got[s] = 0;
                got[s] = 0;
                next[s] += streams;
                let before = prefix;
                while prefix < done.len() && done[prefix] {
                    prefix += 1;
                }
                if prefix != before {
                    shared.done_prefix.store(prefix, Ordering::Release);
                    wake.unpark();
                }
            }
        }
        if prefix >= plan.recvs.len() {
            break;
        }
        if progressed {
            last = Instant::now();
            continue;
        }
        stop_check(ctx, shared)?;
        if last.elapsed() >= ctx.timeout {
            return Err(CommError::Timeout {
                op: ctx.name.clone(),
                rank: left[0].peer_rank,
                addr: left[0].peer_addr.clone(),
                waited: last.elapsed(),
            });
        }
        pfds.clear();
        for (s, link) in left.iter().enumerate() {
            let pending = next[s] < plan.recvs.len();
            pfds.push(poll::entry(link, if pending { READ } else { 0 }));
        }
        poll::wait(&mut pfds, SLICE)
            .map_err(|e| CommError::Local(format!("{}: poll: {e}", ctx.name)))?;
    }
    Ok(())
}
