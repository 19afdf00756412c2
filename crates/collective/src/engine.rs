//! Runs a schedule [`Plan`] over the links to the left and right neighbours.
//!
//! One thread drives every stream with non-blocking sockets: it writes whatever frames are ready
//! (header and payload in one `writev`), reads whatever has arrived, reduces complete frames, and
//! only when nothing moves does it spin briefly and then block in `poll(2)`. Sending right and
//! receiving left therefore overlap, with no thread hand-offs. Frames are spread round-robin over
//! the streams of a link (frame `i` on stream `i % streams`).

use crate::error::{CommError, Result};
use crate::schedule::{Action, Buf, Plan};
use crate::transport::Link;
use crate::transport::poll::{self, BROKEN, READ, WRITE};
use crate::wire::frame::{HEADER_LEN, Header, Kind};
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What the engine needs to know about the running collective.
pub struct OpCtx<'a> {
    /// Kind carried in every frame header.
    pub kind: Kind,
    /// Collective number (same on all ranks).
    pub op_id: u64,
    /// `all_reduce #12`, for errors.
    pub name: String,
    /// Longest time without progress before giving up.
    pub timeout: Duration,
    /// How long to keep polling without blocking after the last progress.
    pub spin: Duration,
    /// Largest payload a frame may announce.
    pub max_frame: u32,
    /// Set by `abort()`.
    pub aborted: &'a AtomicBool,
}

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

/// Describes an I/O failure on `link` during `op`.
pub fn link_error(op: &str, link: &Link, e: &io::Error) -> CommError {
    let what = match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::WriteZero => "closed the connection".into(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
            format!("reset the connection ({e})")
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "stopped answering".into(),
        _ => format!("link failed: {e}"),
    };
    CommError::Peer {
        op: op.to_string(),
        rank: link.peer_rank,
        addr: link.peer_addr.clone(),
        what,
    }
}

/// For a link that should be quiet during `op` (no bytes of this operation travel on it): fails
/// if the peer closed it or sent an abort report; bytes of a later operation are left queued.
pub fn check_idle_link(op: &str, link: &mut Link) -> Result<()> {
    let mut hb = [0u8; HEADER_LEN];
    match link.peek(&mut hb) {
        Ok(0) => Err(link_error(op, link, &io::ErrorKind::UnexpectedEof.into())),
        Ok(n) if n == HEADER_LEN => match Header::decode(&hb, 0) {
            Ok(h) if h.kind == Kind::Abort => {
                let deadline = Instant::now() + Duration::from_secs(1);
                if let Err(e) = poll::read_exact(link, &mut hb, deadline) {
                    return Err(link_error(op, link, &e));
                }
                Err(read_abort(op, link, &h))
            }
            _ => Ok(()),
        },
        Ok(_) => Ok(()),
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted =>
        {
            Ok(())
        }
        Err(e) => Err(link_error(op, link, &e)),
    }
}

/// Reads the payload of an abort frame whose header arrived on `link` and turns it into the
/// error it reports.
pub fn read_abort(op: &str, link: &mut Link, header: &Header) -> CommError {
    let mut payload = vec![0u8; header.len as usize];
    let deadline = Instant::now() + Duration::from_secs(1);
    if let Err(e) = poll::read_exact(link, &mut payload, deadline) {
        return link_error(op, link, &e);
    }
    decode_abort(op, link.peer_rank, &payload)
}

/// Payload of an abort frame: failed rank (`u32::MAX` if unknown) and the cause as text.
pub fn encode_abort(err: &CommError) -> Vec<u8> {
    let rank = err.failed_rank().map_or(u32::MAX, |r| r as u32);
    let mut p = rank.to_le_bytes().to_vec();
    let cause = err.cause();
    let max = crate::wire::frame::MAX_ABORT_PAYLOAD as usize - 4;
    p.extend_from_slice(&cause.as_bytes()[..cause.len().min(max)]);
    p
}

fn decode_abort(op: &str, from: usize, payload: &[u8]) -> CommError {
    let (failed_rank, cause) = if payload.len() >= 4 {
        let r = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
        let cause = String::from_utf8_lossy(&payload[4..]).into_owned();
        ((r != u32::MAX).then_some(r as usize), cause)
    } else {
        (None, "a rank failed".to_string())
    };
    CommError::Remote {
        op: op.to_string(),
        cause,
        failed_rank,
        reported_by: from,
    }
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

    /// Something arrived on a link we only send on: an abort report or a close. A close after
    /// our last frame on that stream is the neighbour finishing first, not an error.
    fn backchannel(&mut self, s: usize) -> Result<()> {
        let op = self.ctx.name.clone();
        let finished = self.sends[s].next >= self.plan.sends.len();
        let link = &mut self.right[s];
        let mut hb = [0u8; HEADER_LEN];
        let deadline = Instant::now() + Duration::from_secs(1);
        match link.read(&mut hb[..1]) {
            Ok(0) if finished => {
                self.quiet[s] = true;
                return Ok(());
            }
            Ok(0) => return Err(link_error(&op, link, &io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return Ok(());
            }
            Err(_) if finished => {
                self.quiet[s] = true;
                return Ok(());
            }
            Err(e) => return Err(link_error(&op, link, &e)),
        }
        if let Err(e) = poll::read_exact(link, &mut hb[1..], deadline) {
            return Err(link_error(&op, link, &e));
        }
        Err(match Header::decode(&hb, 0) {
            Ok(h) if h.kind == Kind::Abort => read_abort(&op, link, &h),
            Ok(h) => protocol(
                &op,
                link,
                format!("unexpected {} frame on a send link", h.kind.name()),
            ),
            Err(e) => protocol(&op, link, e.to_string()),
        })
    }

    fn pump_send(&mut self, s: usize, bufs: &Buffers<'_>) -> Result<bool> {
        let mut progressed = false;
        let stride = self.sends.len();
        let plan: &'a Plan = self.plan;
        loop {
            let st = &self.sends[s];
            let Some(f) = plan.sends.get(st.next) else {
                return Ok(progressed);
            };
            if f.after.is_some_and(|d| !self.recv_done(d)) {
                return Ok(progressed);
            }
            let seq = st.next;
            let st = &mut self.sends[s];
            if st.written == 0 {
                st.header = Header {
                    kind: self.ctx.kind,
                    op_id: self.ctx.op_id,
                    seq: seq as u32,
                    len: f.range.len() as u32,
                }
                .encode();
            }
            let src = match f.buf {
                Buf::Data => &bufs.data[f.range.clone()],
                Buf::Scratch => &bufs.scratch[f.range.clone()],
            };
            let res = if st.written < HEADER_LEN {
                let iov = [IoSlice::new(&st.header[st.written..]), IoSlice::new(src)];
                self.right[s].write_vectored(&iov)
            } else {
                self.right[s].write_vectored(&[IoSlice::new(&src[st.written - HEADER_LEN..])])
            };
            match res {
                Ok(0) => {
                    return Err(link_error(
                        &self.ctx.name,
                        &self.right[s],
                        &io::ErrorKind::WriteZero.into(),
                    ));
                }
                Ok(n) => {
                    progressed = true;
                    st.written += n;
                    if st.written == HEADER_LEN + src.len() {
                        st.written = 0;
                        st.next += stride;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(progressed),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(link_error(&self.ctx.name, &self.right[s], &e)),
            }
        }
    }

    fn pump_recv(&mut self, s: usize, bufs: &mut Buffers<'_>) -> Result<bool> {
        let mut progressed = false;
        let stride = self.recvs.len();
        let plan: &'a Plan = self.plan;
        loop {
            let st = &mut self.recvs[s];
            let Some(f) = plan.recvs.get(st.next) else {
                return Ok(progressed);
            };
            let link = &mut self.left[s];
            let res = if st.header_got < HEADER_LEN {
                link.read(&mut st.header[st.header_got..])
            } else {
                let dst = match (f.action, f.buf) {
                    (Action::Reduce, _) => {
                        &mut bytemuck::cast_slice_mut::<u64, u8>(&mut bufs.staging[s])
                            [..f.range.len()]
                    }
                    (Action::Copy, Buf::Data) => &mut bufs.data[f.range.clone()],
                    (Action::Copy, Buf::Scratch) => &mut bufs.scratch[f.range.clone()],
                };
                link.read(&mut dst[st.got..])
            };
            let n = match res {
                Ok(0) => {
                    return Err(link_error(
                        &self.ctx.name,
                        link,
                        &io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(progressed),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(link_error(&self.ctx.name, link, &e)),
            };
            progressed = true;
            if st.header_got < HEADER_LEN {
                st.header_got += n;
                if st.header_got == HEADER_LEN {
                    let seq = st.next;
                    let header = st.header;
                    self.check_header(s, &header, seq, f.range.len())?;
                }
                continue;
            }
            st.got += n;
            if st.got == f.range.len() {
                if f.action == Action::Reduce {
                    let src = &bytemuck::cast_slice::<u64, u8>(&bufs.staging[s])[..f.range.len()];
                    let dst = match f.buf {
                        Buf::Data => &mut bufs.data[f.range.clone()],
                        Buf::Scratch => &mut bufs.scratch[f.range.clone()],
                    };
                    (bufs.reduce)(dst, src);
                }
                st.got = 0;
                st.header_got = 0;
                st.next += stride;
            }
        }
    }

    fn check_header(
        &mut self,
        s: usize,
        hb: &[u8; HEADER_LEN],
        seq: usize,
        len: usize,
    ) -> Result<()> {
        check_header(self.ctx, &mut self.left[s], hb, seq, len)
    }

    /// On failure: completes any half-written frame with filler so the receiver stays in step,
    /// so that an abort frame sent next is read as a frame. Returns the links whose framing is intact.
    pub fn finish_partial_frames(&mut self, deadline: Instant) -> Vec<bool> {
        let mut intact = vec![true; self.right.len()];
        for (s, st) in self.sends.iter().enumerate() {
            if st.written == 0 {
                continue;
            }
            let len = self.plan.sends.get(st.next).map_or(0, |f| f.range.len());
            let remaining = HEADER_LEN + len - st.written;
            let filler = vec![0u8; remaining];
            intact[s] = poll::write_all(&mut self.right[s], &filler, deadline).is_ok();
        }
        intact
    }
}

fn protocol(op: &str, link: &Link, detail: String) -> CommError {
    CommError::Protocol {
        op: op.to_string(),
        rank: link.peer_rank,
        addr: link.peer_addr.clone(),
        detail,
    }
}

/// Checks a data frame header against what the plan expects next (or reads an abort report).
pub fn check_header(
    ctx: &OpCtx<'_>,
    link: &mut Link,
    hb: &[u8; HEADER_LEN],
    seq: usize,
    len: usize,
) -> Result<()> {
    let op = &ctx.name;
    let h = Header::decode(hb, ctx.max_frame).map_err(|e| protocol(op, link, e.to_string()))?;
    if h.kind == Kind::Abort {
        return Err(read_abort(op, link, &h));
    }
    if h.kind != ctx.kind || h.op_id != ctx.op_id {
        return Err(protocol(
            op,
            link,
            format!(
                "{} #{} while this rank runs {} (ranks called collectives in different orders)",
                h.kind.name(),
                h.op_id,
                op
            ),
        ));
    }
    if h.seq as usize != seq || h.len as usize != len {
        return Err(protocol(
            op,
            link,
            format!(
                "frame {} of {} bytes, expected frame {seq} of {len} bytes (buffer lengths differ between ranks?)",
                h.seq, h.len
            ),
        ));
    }
    Ok(())
}
