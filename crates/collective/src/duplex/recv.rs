//! The receiving thread of the duplex path (the caller's): reads frames from every stream,
//! reduces or copies them, and publishes how many frames are complete for the sender.

use super::{Raw, SLICE, Shared, stop_check};
use crate::engine::{Buffers, OpCtx, check_header, link_error};
use crate::error::{CommError, Result};
use crate::schedule::{Action, Buf, Plan};
use crate::transport::Link;
use crate::transport::poll::{self, READ};
use crate::wire::frame::HEADER_LEN;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;

#[allow(clippy::too_many_arguments)]
pub(super) fn recv_all(
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
