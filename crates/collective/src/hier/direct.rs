//! Large hierarchical all-reduces without shared-memory copies: the ranks of a host swap the
//! addresses of their buffers, every rank reduces one slice of all of them (reading the others'
//! memory directly, in rank order), and then copies the other ranks' reduced slices straight
//! into its own buffer. Each byte crosses between processes once per phase, instead of being
//! copied into `/dev/shm` and out again, and the reduction runs on every core.
//!
//! Host barriers (a counter in shared memory, see `fast.rs`) order the phases: nobody writes a
//! slice another rank may still read, and nobody returns while another rank still reads its
//! buffer. Buffer addresses travel through the same files.

use super::Hierarchy;
use super::fast::ADDRESS;
use crate::error::{CommError, Result};
use crate::peer_mem::PeerBuf;
use crate::transport::Link;
use std::ops::Range;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Bytes reduced at a time (the reduction's inputs stay in cache).
const PIECE: usize = 128 << 10;

/// Steps of the start-up check that direct reads work between this host's processes.
const PROBE: u32 = 7;
const PROBE_VERDICT: u32 = 8;
/// Steps of the start-up barrier after every rank mapped the host's files.
const MAPPED: u32 = 9;
const MAPPED_ALL: u32 = 10;

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

    /// The host's ranks wait for each other after mapping the host's files: no rank leaves
    /// start-up (and may finish, dropping its communicator and removing its files) before every
    /// other rank holds a mapping of them. Without it a rank that is done quickly could remove its
    /// file while a slower one was still between the start-up check and opening it.
    pub fn mapped_barrier(&mut self, deadline: Instant) -> Result<()> {
        const OP: &str = "start-up mapping";
        if self.is_leader() {
            for i in 0..self.local.len() {
                self.recv_notice(i, MAPPED, OP, 0, 1, deadline)?;
            }
            for i in 0..self.local.len() {
                self.send_notice(i, MAPPED_ALL, OP, 0, &[1], deadline)?;
            }
        } else {
            self.send_notice(0, MAPPED, OP, 0, &[1], deadline)?;
            self.recv_notice(0, MAPPED_ALL, OP, 0, 1, deadline)?;
        }
        Ok(())
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

    /// Publishes this rank's buffer address in its fast file, waits for every rank of the host,
    /// and reads the others' (indexed by host position); lengths must agree.
    fn exchange(&mut self, data: &[u8], op: &str, wait: &mut HostWait<'_>) -> Result<Vec<PeerBuf>> {
        let mine = PeerBuf::of(data);
        let me = self.position();
        self.fast_file(me)?[ADDRESS..ADDRESS + 20].copy_from_slice(&mine.encode());
        self.host_barrier(op, wait)?;
        let mut table = Vec::with_capacity(self.host_size());
        for pos in 0..self.host_size() {
            let mut a = [0u8; 20];
            a.copy_from_slice(&self.fast_file(pos)?[ADDRESS..ADDRESS + 20]);
            let peer = PeerBuf::decode(&a);
            if peer.len != mine.len {
                return Err(CommError::Local(format!(
                    "{op}: rank {} passed {} bytes, this rank {} (ranks passed different lengths?)",
                    self.w.host[pos], peer.len, mine.len
                )));
            }
            table.push(peer);
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
        wait: &mut HostWait<'_>,
    ) -> Result<()> {
        let table = self.exchange(data, op, wait)?;
        self.reduce_own_slice(data, slices[self.position()].clone(), &table, reduce, op)?;
        self.host_barrier(op, wait)?;
        let one_host = self.single_host();
        if one_host || self.is_leader() {
            self.collect(data, slices, &table, op)?;
            if one_host {
                // Nobody may change its buffer while another rank still reads it.
                return self.host_barrier(op, wait);
            }
            return Ok(());
        }
        // Wait for the leader's result, read it, and let the leader go.
        self.host_barrier(op, wait)?;
        table[0].read(0, data, self.w.leader, op)?;
        self.host_barrier(op, wait)
    }

    /// Leader of a multi-host job, after the ring: lets the host's ranks read the result from
    /// its buffer and waits until they have.
    pub fn share_result(&mut self, op: &str, wait: &mut HostWait<'_>) -> Result<()> {
        self.host_barrier(op, wait)?;
        self.host_barrier(op, wait)
    }
}

/// What a rank checks while it waits for the others of its host: `abort()`, the ring links
/// (idle meanwhile, so a neighbour that aborted or died shows there as a close or an abort
/// report), and the operation's deadline.
pub struct HostWait<'a> {
    /// Set by `abort()`.
    pub aborted: &'a AtomicBool,
    /// Ring links to the right neighbour.
    pub right: &'a mut [Link],
    /// Ring links from the left neighbour.
    pub left: &'a mut [Link],
    /// End of the operation's time.
    pub deadline: Instant,
}

impl HostWait<'_> {
    /// Fails if a ring link closed or carries an abort report.
    pub fn check_links(&mut self, op: &str) -> Result<()> {
        for link in self.right.iter_mut().chain(self.left.iter_mut()) {
            crate::engine::check_idle_link(op, link)?;
        }
        Ok(())
    }
}
