//! Running one schedule on the ring links, and what happens when it fails: the error is kept
//! for every later operation and reported to every neighbour before the links close.

use super::Communicator;
use crate::engine::{self, Buffers, Engine, OpCtx};
use crate::error::{CommError, Result};
use crate::schedule::Plan;
use crate::transport::link::Link;
use crate::transport::poll;
use crate::wire::frame::{HEADER_LEN, Header, Kind};
use std::time::{Duration, Instant};

impl Communicator {
    /// Runs `plan` on the ring links (Data = `data`, Scratch = the scratch buffer).
    pub(crate) fn run_plan(
        &mut self,
        kind: Kind,
        op_id: u64,
        plan: &Plan,
        data: &mut [u8],
        reduce: &dyn Fn(&mut [u8], &[u8]),
    ) -> Result<()> {
        if plan.sends.is_empty() && plan.recvs.is_empty() {
            return Ok(());
        }
        let seg = self.config.segment_bytes;
        let streams = self.left.len();
        if self.staging.len() != streams {
            self.staging = vec![vec![0u64; seg.div_ceil(8)]; streams];
        }
        let ctx = OpCtx {
            kind,
            op_id,
            name: format!("{} #{op_id}", kind.name()),
            timeout: self.config.data_timeout,
            spin: self.config.spin,
            max_frame: seg as u32,
            aborted: &self.abort.flag,
        };
        let mut bufs = Buffers {
            data,
            scratch: bytemuck::cast_slice_mut::<u64, u8>(&mut self.scratch),
            staging: &mut self.staging,
            reduce,
        };
        let sent: usize = plan.sends.iter().map(|f| f.range.len()).sum();
        if sent >= self.config.sender_thread_bytes && !plan.recvs.is_empty() {
            let (res, partial) =
                crate::duplex::run(&mut self.right, &mut self.left, plan, &ctx, &mut bufs);
            return match res {
                Ok(()) => Ok(()),
                Err(e) => {
                    let mut intact = vec![true; self.right.len()];
                    if let Some((s, owed)) = partial {
                        let filler = vec![0u8; owed];
                        let deadline = Instant::now() + Duration::from_secs(1);
                        intact[s] = poll::write_all(&mut self.right[s], &filler, deadline).is_ok();
                    }
                    Err(self.fail(e, op_id, &intact))
                }
            };
        }
        let mut engine = Engine::new(&mut self.right, &mut self.left, plan, &ctx);
        match engine.run(&mut bufs) {
            Ok(()) => Ok(()),
            Err(e) => {
                let intact = engine.finish_partial_frames(Instant::now() + Duration::from_secs(1));
                Err(self.fail(e, op_id, &intact))
            }
        }
    }

    /// Records `err`, reports it to both neighbours (so it travels around the ring), and closes
    /// every link.
    pub(crate) fn fail(&mut self, err: CommError, op_id: u64, intact: &[bool]) -> CommError {
        if !matches!(err, CommError::Aborted { .. }) {
            let payload = engine::encode_abort(&err);
            let mut frame = Header {
                kind: Kind::Abort,
                op_id,
                seq: 0,
                len: payload.len() as u32,
            }
            .encode()
            .to_vec();
            debug_assert_eq!(frame.len(), HEADER_LEN);
            frame.extend_from_slice(&payload);
            let deadline = Instant::now() + Duration::from_secs(1);
            for (s, link) in self.right.iter_mut().enumerate() {
                if intact.get(s).copied().unwrap_or(true)
                    && link.peer_rank != err.failed_rank().unwrap_or(usize::MAX)
                {
                    let _ = poll::write_all(link, &frame, deadline);
                }
            }
            for link in self.left.iter_mut() {
                if link.peer_rank != err.failed_rank().unwrap_or(usize::MAX) {
                    let _ = poll::write_all(link, &frame, deadline);
                }
            }
            if let Some(h) = &mut self.hier {
                h.report(&frame, err.failed_rank(), deadline);
            }
            for (send, recv) in self.pairs.iter_mut() {
                for link in send.iter_mut().chain(recv.iter_mut()) {
                    if link.peer_rank != err.failed_rank().unwrap_or(usize::MAX) {
                        let _ = poll::write_all(link, &frame, deadline);
                    }
                }
            }
        }
        // Write side only, then wait (bounded) for each peer to close its side: the report must be
        // read before this rank's links can close under it.
        self.right
            .iter()
            .chain(&self.left)
            .for_each(Link::shutdown_write);
        for (send, recv) in &self.pairs {
            send.iter().chain(recv).for_each(Link::shutdown_write);
        }
        let linger = Instant::now() + Duration::from_millis(500);
        for link in self.right.iter_mut().chain(self.left.iter_mut()) {
            poll::drain_until_eof(link, linger);
        }
        for (send, recv) in self.pairs.iter_mut() {
            for link in send.iter_mut().chain(recv.iter_mut()) {
                poll::drain_until_eof(link, linger);
            }
        }
        if let Some(h) = &self.hier {
            h.shutdown();
        }
        self.failed = Some(err.clone());
        err
    }
}
