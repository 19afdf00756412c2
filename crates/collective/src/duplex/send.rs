//! The sender thread of the duplex path: sends every frame of the plan in order, waiting for
//! the receive a frame depends on, and watches its links for an abort report or a close.

use super::{Partial, Raw, SLICE, Shared, stop_check};
use crate::engine::{OpCtx, link_error, read_abort};
use crate::error::{CommError, Result};
use crate::schedule::{Buf, Plan};
use crate::transport::Link;
use crate::transport::poll::{self, BROKEN, READ, WRITE};
use crate::wire::frame::{HEADER_LEN, Header, Kind};
use std::io::{self, IoSlice};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(super) fn send_all(
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
        Ok(h) if h.kind == Kind::Bye => crate::control::left(&ctx.name, link),
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
