//! The sending half of the single-threaded engine: writes ready frames (header and payload in
//! one `writev`), reads what arrives on a send link (an abort report or a close), and completes
//! a half-written frame with filler after a failure so that the receiver stays in step.

use super::{Buffers, Engine, link_error, protocol, read_abort};
use crate::error::Result;
use crate::schedule::{Buf, Plan};
use crate::transport::poll;
use crate::wire::frame::{HEADER_LEN, Header, Kind};
use std::io::{self, IoSlice};
use std::time::{Duration, Instant};

impl<'a, 'b> Engine<'a, 'b> {
    /// Something arrived on a link we only send on: an abort report or a close. A close after
    /// our last frame on that stream is the neighbour finishing first, not an error.
    pub(super) fn backchannel(&mut self, s: usize) -> Result<()> {
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
            Ok(h) if h.kind == Kind::Bye && finished => {
                self.quiet[s] = true;
                return Ok(());
            }
            Ok(h) if h.kind == Kind::Bye => crate::control::left(&op, link),
            Ok(h) if h.kind == Kind::Abort => read_abort(&op, link, &h),
            Ok(h) => protocol(
                &op,
                link,
                format!("unexpected {} frame on a send link", h.kind.name()),
            ),
            Err(e) => protocol(&op, link, e.to_string()),
        })
    }

    pub(super) fn pump_send(&mut self, s: usize, bufs: &Buffers<'_>) -> Result<bool> {
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
