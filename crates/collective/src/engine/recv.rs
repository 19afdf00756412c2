//! The receiving half of the single-threaded engine: reads frame headers and payloads as they
//! arrive, checks each header against the plan, and reduces or copies complete frames.

use super::{Buffers, Engine, check_header, link_error};
use crate::error::Result;
use crate::schedule::{Action, Buf, Plan};
use crate::wire::frame::HEADER_LEN;
use std::io;

impl<'a, 'b> Engine<'a, 'b> {
    pub(super) fn pump_recv(&mut self, s: usize, bufs: &mut Buffers<'_>) -> Result<bool> {
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
}
