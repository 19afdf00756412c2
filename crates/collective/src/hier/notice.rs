//! Hand-off notices between the ranks of a host and their leader: small `Local` frames that
//! carry an operation number, a step and a short payload (a length, an address table), checked
//! on receipt; an abort report arriving instead becomes the error it reports.

use super::Hierarchy;
use crate::error::{CommError, Result};
use crate::transport::poll;
use crate::wire::frame::{HEADER_LEN, Header, Kind};
use std::time::Instant;

impl Hierarchy {
    /// The small path's notice on local link `i`: step 0, carrying the buffer length.
    pub(super) fn notify(
        &mut self,
        i: usize,
        op: &str,
        op_id: u64,
        len: usize,
        deadline: Instant,
    ) -> Result<()> {
        self.send_notice(i, 0, op, op_id, &(len as u64).to_le_bytes(), deadline)
    }

    /// Sends a hand-off notice for `step` of operation `op_id` on local link `i`.
    pub(super) fn send_notice(
        &mut self,
        i: usize,
        step: u32,
        op: &str,
        op_id: u64,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<()> {
        let mut frame = Header {
            kind: Kind::Local,
            op_id,
            seq: step,
            len: payload.len() as u32,
        }
        .encode()
        .to_vec();
        frame.extend_from_slice(payload);
        let link = &mut self.local[i];
        poll::write_all(link, &frame, deadline).map_err(|e| crate::engine::link_error(op, link, &e))
    }

    /// Waits for the small path's notice on local link `i` (step 0, this buffer length).
    pub(super) fn wait_notice(
        &mut self,
        i: usize,
        op: &str,
        op_id: u64,
        len: usize,
        deadline: Instant,
    ) -> Result<()> {
        self.expect_notice(i, 0, op, op_id, &(len as u64).to_le_bytes(), deadline)
    }

    /// Waits for a notice that must carry exactly `want` (the length, so ranks that passed
    /// different lengths fail instead of reading past a buffer).
    pub(super) fn expect_notice(
        &mut self,
        i: usize,
        step: u32,
        op: &str,
        op_id: u64,
        want: &[u8],
        deadline: Instant,
    ) -> Result<()> {
        let got = self.recv_notice(i, step, op, op_id, want.len(), deadline)?;
        if got != want {
            let link = &self.local[i];
            return Err(CommError::Protocol {
                op: op.to_string(),
                rank: link.peer_rank,
                addr: link.peer_addr.clone(),
                detail: "hand-off for a buffer of another length (ranks passed different lengths?)"
                    .into(),
            });
        }
        Ok(())
    }

    /// Reads the notice for `step` of operation `op_id` on local link `i`; its payload must be
    /// `len` bytes.
    pub(super) fn recv_notice(
        &mut self,
        i: usize,
        step: u32,
        op: &str,
        op_id: u64,
        len: usize,
        deadline: Instant,
    ) -> Result<Vec<u8>> {
        let link = &mut self.local[i];
        let mut hb = [0u8; HEADER_LEN];
        poll::read_exact(link, &mut hb, deadline)
            .map_err(|e| crate::engine::link_error(op, link, &e))?;
        let (peer_rank, peer_addr) = (link.peer_rank, link.peer_addr.clone());
        let bad = |detail: String| CommError::Protocol {
            op: op.to_string(),
            rank: peer_rank,
            addr: peer_addr.clone(),
            detail,
        };
        let h = Header::decode(&hb, len as u32).map_err(|e| bad(e.to_string()))?;
        if h.kind == Kind::Abort {
            return Err(crate::engine::read_abort(op, link, &h));
        }
        let mut payload = vec![0u8; h.len as usize];
        poll::read_exact(link, &mut payload, deadline)
            .map_err(|e| crate::engine::link_error(op, link, &e))?;
        if h.kind != Kind::Local || h.op_id != op_id || h.seq != step || payload.len() != len {
            return Err(bad(format!(
                "hand-off {} #{} step {} of {} bytes, expected #{op_id} step {step} of {len} bytes",
                h.kind.name(),
                h.op_id,
                h.seq,
                payload.len()
            )));
        }
        Ok(payload)
    }
}
