//! Large hierarchical all-reduces without shared-memory copies: the ranks of a host swap the
//! addresses of their buffers, every rank reduces one slice of all of them (reading the others'
//! memory directly, in rank order), and then copies the other ranks' reduced slices straight
//! into its own buffer. Each byte crosses between processes once per phase, instead of being
//! copied into `/dev/shm` and out again, and the reduction runs on every core.
//!
//! Barriers (a star through the leader) order the phases: nobody writes a slice another rank may
//! still read, and nobody returns while another rank still reads its buffer.

use super::Hierarchy;
use crate::error::{CommError, Result};
use crate::peer_mem::PeerBuf;
use std::ops::Range;
use std::time::Instant;

/// Bytes reduced at a time (the reduction's inputs stay in cache).
const PIECE: usize = 128 << 10;

/// Notice steps of the direct path (the small path uses step 0).
const ADDRESSES: u32 = 1;
const REDUCED: u32 = 3;
const COLLECTED: u32 = 4;
const RESULT: u32 = 5;
const FETCHED: u32 = 6;
/// Steps of the start-up check that direct reads work between this host's processes.
const PROBE: u32 = 7;
const PROBE_VERDICT: u32 = 8;

/// Bytes every rank exposes for the start-up check.
const PROBE_BYTES: usize = 64;

impl Hierarchy {
    /// Start-up check, run once by every rank of the host: the leader reads each rank's probe
    /// buffer, each rank reads the leader's, and the leader tells everyone whether all reads
    /// worked. Where they do not (another user, a seccomp filter), large all-reduces stay on
    /// the `/dev/shm` path instead of failing; the verdict is the same on every rank.
    pub fn probe_direct_reads(&mut self, deadline: Instant) -> Result<bool> {
        const OP: &str = "start-up check";
        let probe: Vec<u8> = (0..PROBE_BYTES)
            .map(|i| (i * 7 + self.w.rank) as u8)
            .collect();
        let works = |peer: &PeerBuf, rank: usize| {
            let mut got = vec![0u8; PROBE_BYTES];
            let want: Vec<u8> = (0..PROBE_BYTES).map(|i| (i * 7 + rank) as u8).collect();
            peer.read(0, &mut got, rank, OP).is_ok() && got == want
        };
        let mine = PeerBuf::of(&probe).encode();
        if self.is_leader() {
            let mut ok = true;
            for i in 0..self.local.len() {
                let b = self.recv_notice(i, PROBE, OP, 0, 20, deadline)?;
                let mut a = [0u8; 20];
                a.copy_from_slice(&b);
                ok &= works(&PeerBuf::decode(&a), self.w.host[i + 1]);
            }
            for i in 0..self.local.len() {
                self.send_notice(i, PROBE, OP, 0, &mine, deadline)?;
            }
            for i in 0..self.local.len() {
                ok &= self.recv_notice(i, PROBE_VERDICT, OP, 0, 1, deadline)? == [1];
            }
            for i in 0..self.local.len() {
                self.send_notice(i, PROBE_VERDICT, OP, 0, &[u8::from(ok)], deadline)?;
            }
            Ok(ok)
        } else {
            self.send_notice(0, PROBE, OP, 0, &mine, deadline)?;
            let b = self.recv_notice(0, PROBE, OP, 0, 20, deadline)?;
            let mut a = [0u8; 20];
            a.copy_from_slice(&b);
            let ok = works(&PeerBuf::decode(&a), self.w.leader);
            self.send_notice(0, PROBE_VERDICT, OP, 0, &[u8::from(ok)], deadline)?;
            // `probe` stays alive until the leader has read it: the verdict comes after.
            Ok(self.recv_notice(0, PROBE_VERDICT, OP, 0, 1, deadline)? == [1])
        }
    }

    /// Position of this rank among the host's ranks.
    pub(super) fn position(&self) -> usize {
        self.w
            .host
            .iter()
            .position(|&r| r == self.w.rank)
            .unwrap_or(0)
    }

    /// Ranks of this host.
    pub fn host_size(&self) -> usize {
        self.w.host.len()
    }

    /// Every rank of the host has reached `step` (the others report to the leader, the leader
    /// answers once all have). The payload is the buffer length, checked on both sides.
    fn barrier(
        &mut self,
        step: u32,
        op: &str,
        op_id: u64,
        len: usize,
        deadline: Instant,
    ) -> Result<()> {
        let want = (len as u64).to_le_bytes();
        if self.is_leader() {
            for i in 0..self.local.len() {
                self.expect_notice(i, step, op, op_id, &want, deadline)?;
            }
            for i in 0..self.local.len() {
                self.send_notice(i, step, op, op_id, &want, deadline)?;
            }
            Ok(())
        } else {
            self.send_notice(0, step, op, op_id, &want, deadline)?;
            self.expect_notice(0, step, op, op_id, &want, deadline)
        }
    }

    /// Swaps buffer addresses within the host (also the first barrier): the table is indexed by
    /// host position.
    fn exchange(
        &mut self,
        data: &[u8],
        op: &str,
        op_id: u64,
        deadline: Instant,
    ) -> Result<Vec<PeerBuf>> {
        let mine = PeerBuf::of(data);
        let k = self.host_size();
        let mut table = vec![mine; k];
        if self.is_leader() {
            for i in 0..self.local.len() {
                let b = self.recv_notice(i, ADDRESSES, op, op_id, 20, deadline)?;
                let mut a = [0u8; 20];
                a.copy_from_slice(&b);
                table[i + 1] = PeerBuf::decode(&a);
                if table[i + 1].len != mine.len {
                    let link = &self.local[i];
                    return Err(CommError::Protocol {
                        op: op.to_string(),
                        rank: link.peer_rank,
                        addr: link.peer_addr.clone(),
                        detail: format!(
                            "buffer of {} bytes, this rank has {} (ranks passed different lengths?)",
                            table[i + 1].len,
                            mine.len
                        ),
                    });
                }
            }
            let all: Vec<u8> = table.iter().flat_map(|b| b.encode()).collect();
            for i in 0..self.local.len() {
                self.send_notice(i, ADDRESSES, op, op_id, &all, deadline)?;
            }
        } else {
            self.send_notice(0, ADDRESSES, op, op_id, &mine.encode(), deadline)?;
            let all = self.recv_notice(0, ADDRESSES, op, op_id, 20 * k, deadline)?;
            for (pos, chunk) in all.chunks_exact(20).enumerate() {
                let mut a = [0u8; 20];
                a.copy_from_slice(chunk);
                table[pos] = PeerBuf::decode(&a);
            }
            if table[self.position()] != mine || table.iter().any(|b| b.len != mine.len) {
                let link = &self.local[0];
                return Err(CommError::Protocol {
                    op: op.to_string(),
                    rank: link.peer_rank,
                    addr: link.peer_addr.clone(),
                    detail: "address table does not match this rank's buffer (ranks passed different lengths?)".into(),
                });
            }
        }
        Ok(table)
    }

    /// Reduces this rank's slice of every host buffer, in rank order, into `data`.
    fn reduce_own_slice(
        &self,
        data: &mut [u8],
        slice: Range<usize>,
        table: &[PeerBuf],
        reduce: &dyn Fn(&mut [u8], &[u8]),
        op: &str,
    ) -> Result<()> {
        let me = self.position();
        let mut acc = vec![0u64; PIECE / 8];
        let mut tmp = vec![0u64; PIECE / 8];
        let mut start = slice.start;
        while start < slice.end {
            let end = (start + PIECE).min(slice.end);
            let acc = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut acc)[..end - start];
            let tmp = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut tmp)[..end - start];
            for (pos, peer) in table.iter().enumerate() {
                let dst: &mut [u8] = if pos == 0 { &mut *acc } else { &mut *tmp };
                if pos == me {
                    dst.copy_from_slice(&data[start..end]);
                } else {
                    peer.read(start, dst, self.w.host[pos], op)?;
                }
                if pos > 0 {
                    reduce(acc, tmp);
                }
            }
            data[start..end].copy_from_slice(acc);
            start = end;
        }
        Ok(())
    }

    /// Copies every other rank's reduced slice into `data`.
    fn collect(
        &self,
        data: &mut [u8],
        slices: &[Range<usize>],
        table: &[PeerBuf],
        op: &str,
    ) -> Result<()> {
        let me = self.position();
        for (pos, r) in slices.iter().enumerate() {
            if pos != me && !r.is_empty() {
                table[pos].read(r.start, &mut data[r.clone()], self.w.host[pos], op)?;
            }
        }
        Ok(())
    }

    /// Large all-reduce of `data` (`slices` cut it into one byte range per host rank at element
    /// boundaries). On one host it ends with every rank holding the sum; with several hosts the
    /// leader ends holding the host's sum and must run the leader ring, then call
    /// [`Hierarchy::share_result`]; the other ranks return from this call with the final result.
    pub fn direct_all_reduce(
        &mut self,
        data: &mut [u8],
        slices: &[Range<usize>],
        reduce: &dyn Fn(&mut [u8], &[u8]),
        op: &str,
        op_id: u64,
        deadline: Instant,
    ) -> Result<()> {
        let len = data.len();
        let table = self.exchange(data, op, op_id, deadline)?;
        self.reduce_own_slice(data, slices[self.position()].clone(), &table, reduce, op)?;
        self.barrier(REDUCED, op, op_id, len, deadline)?;
        let one_host = self.w.leaders.len() == 1;
        if one_host || self.is_leader() {
            self.collect(data, slices, &table, op)?;
            if one_host {
                // Nobody may change its buffer while another rank still reads it.
                return self.barrier(COLLECTED, op, op_id, len, deadline);
            }
            return Ok(());
        }
        // Wait for the leader's result, read it, and let the leader go.
        self.expect_notice(0, RESULT, op, op_id, &(len as u64).to_le_bytes(), deadline)?;
        let leader = table[0];
        leader.read(0, data, self.w.leader, op)?;
        self.send_notice(0, FETCHED, op, op_id, &(len as u64).to_le_bytes(), deadline)
    }

    /// Leader of a multi-host job, after the ring: lets the host's ranks read the result from
    /// `data` and waits until they have.
    pub fn share_result(
        &mut self,
        data: &[u8],
        op: &str,
        op_id: u64,
        deadline: Instant,
    ) -> Result<()> {
        let want = (data.len() as u64).to_le_bytes();
        for i in 0..self.local.len() {
            self.send_notice(i, RESULT, op, op_id, &want, deadline)?;
        }
        for i in 0..self.local.len() {
            self.expect_notice(i, FETCHED, op, op_id, &want, deadline)?;
        }
        Ok(())
    }
}
