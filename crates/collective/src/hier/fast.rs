//! Small all-reduces among the ranks of a single host through shared memory, without sockets:
//! each rank writes its buffer into its own slot, announces it on one counter in the leader's
//! file, and once every rank has arrived reduces all slots in rank order. A few microseconds
//! instead of the tens a TCP round takes; SyncBN makes many such calls per step.
//!
//! Operation `j` (a count of these calls, the same on every rank) uses slot `j % 2`. A rank
//! rewrites a slot only in operation `j + 2`, after operation `j + 1` completed, which needs
//! every rank to have arrived at `j + 1`, which it does only after reading the slots of `j`.
//!
//! Waiting yields the core for up to 100 µs (busy spinning measured far slower: with two cores
//! the spinning rank keeps the one it waits for off the CPU), then sleeps on a futex in short
//! slices, checking between them for `abort()`, the deadline, a peer that exited, and a peer
//! that failed (it sets a flag in its file when it reports a failure).

use super::{Hierarchy, HostWait};
use crate::error::{CommError, Result};
use crate::shm::ShmBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Layout of a rank's fast file: arrivals counter (leader's file only), failed flag, pid, the
/// last operation this rank arrived at, slot lengths, barrier counter (leader's file only) and
/// arrival, buffer address, slots.
const COUNTER: usize = 0;
const FAILED: usize = 4;
const PID: usize = 8;
const ARRIVED: usize = 12;
const LEN: usize = 16;
/// Counter and per-rank arrival of host barriers (the direct path's phases).
const BARRIER: usize = 32;
const BARRIER_ARRIVED: usize = 36;
/// This rank's buffer (pid, address, length) for the direct path.
pub(super) const ADDRESS: usize = 40;
const SLOTS: usize = 64;

/// How long one futex sleep lasts before the checks run again.
const NAP: Duration = Duration::from_millis(5);

/// Which counter an arrival goes to, where the rank records it, and its number.
#[derive(Clone, Copy)]
struct Arrival {
    counter: usize,
    arrived: usize,
    seq: u32,
}

/// The fast files of a host: this rank's and (once opened) the others', by host position.
pub struct FastFiles {
    files: Vec<Option<ShmBuf>>,
    /// Bytes of a slot.
    pub slot_bytes: usize,
    /// Operations done so far.
    done: u32,
    /// Host barriers passed so far.
    barriers: u32,
    /// How long a waiter keeps yielding its core before it sleeps on the futex
    /// (`RINGDET_FAST_YIELD_US`; see `docs/performance.md` for the A/B).
    yield_for: Duration,
}

fn path(prefix: &str, rank: usize) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{prefix}-{rank}-fast"))
}

fn size(slot_bytes: usize) -> usize {
    SLOTS + 2 * slot_bytes
}

impl FastFiles {
    /// Creates this rank's fast file (at host position `me` of `k`) with slots of `slot_bytes`.
    pub fn create(
        prefix: &str,
        rank: usize,
        me: usize,
        k: usize,
        slot_bytes: usize,
    ) -> Result<Self> {
        let mut own = ShmBuf::create(path(prefix, rank))?;
        let bytes = own.bytes(size(slot_bytes))?;
        bytes[PID..PID + 4].copy_from_slice(&std::process::id().to_le_bytes());
        let mut files: Vec<Option<ShmBuf>> = (0..k).map(|_| None).collect();
        files[me] = Some(own);
        let yield_us = std::env::var("RINGDET_FAST_YIELD_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        Ok(FastFiles {
            files,
            slot_bytes,
            done: 0,
            barriers: 0,
            yield_for: Duration::from_micros(yield_us),
        })
    }
}

/// A 32-bit atomic at `offset` of a mapped file.
fn atomic(bytes: &[u8], offset: usize) -> &AtomicU32 {
    let word = &bytes[offset..offset + 4];
    // SAFETY: the mapping is page-aligned and `offset` is a multiple of 4; the word lives as long
    // as the borrow of the mapping, and every process only touches it atomically.
    unsafe { &*(word.as_ptr() as *const AtomicU32) }
}

fn futex(word: &AtomicU32, op: libc::c_int, val: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: a shared (not private) futex on a live, aligned word of a MAP_SHARED mapping.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            val,
            ts_ptr,
            0usize,
            0u32,
        )
    };
}

impl Hierarchy {
    /// The fast file of the rank at host position `pos`, mapped.
    pub(super) fn fast_file(&mut self, pos: usize) -> Result<&mut [u8]> {
        let len = size(self.fast.slot_bytes);
        let file = path(&self.prefix, self.w.host[pos]);
        crate::shm::open_mapped(&mut self.fast.files[pos], file, len)
    }

    /// Marks this rank failed (because of `failed_rank`, when known) for host peers waiting in
    /// a fast all-reduce, and wakes them.
    pub fn mark_failed(&mut self, failed_rank: Option<usize>) {
        let me = self.position();
        let word = failed_rank.map_or(u32::MAX, |r| r as u32 + 1);
        if let Ok(own) = self.fast_file(me) {
            atomic(own, FAILED).store(word, Ordering::Release);
        }
        if let Ok(leader) = self.fast_file(0) {
            futex(
                atomic(leader, COUNTER),
                libc::FUTEX_WAKE,
                i32::MAX as u32,
                None,
            );
        }
    }

    /// Whether `bytes` fit the fast path.
    pub fn fast_fits(&self, bytes: usize) -> bool {
        bytes <= self.fast.slot_bytes
    }

    /// Small all-reduce of `data` through the host's fast files (one host only).
    pub fn fast_all_reduce(
        &mut self,
        data: &mut [u8],
        reduce: &dyn Fn(&mut [u8], &[u8]),
        op: &str,
        wait: &mut HostWait<'_>,
    ) -> Result<()> {
        let k = self.host_size();
        let me = self.position();
        self.fast.done = self.fast.done.wrapping_add(1);
        let j = self.fast.done;
        let slot = SLOTS + (j % 2) as usize * self.fast.slot_bytes;
        let len_at = LEN + (j % 2) as usize * 8;
        let own = self.fast_file(me)?;
        own[slot..slot + data.len()].copy_from_slice(data);
        own[len_at..len_at + 8].copy_from_slice(&(data.len() as u64).to_le_bytes());
        let arrival = Arrival {
            counter: COUNTER,
            arrived: ARRIVED,
            seq: j,
        };
        self.arrive_and_wait(arrival, op, wait)?;
        for pos in 0..k {
            let file = self.fast_file(pos)?;
            let len = u64::from_le_bytes(file[len_at..len_at + 8].try_into().unwrap_or([0; 8]));
            if len != data.len() as u64 {
                return Err(CommError::Local(format!(
                    "{op}: rank {} passed {len} bytes, this rank {} (ranks passed different lengths?)",
                    self.w.host[pos],
                    data.len()
                )));
            }
            let src = &file[slot..slot + data.len()];
            if pos == 0 {
                data.copy_from_slice(src);
            } else {
                reduce(data, src);
            }
        }
        Ok(())
    }

    /// Every rank of the host has reached the point where the host paths call this (the next
    /// barrier in a sequence all ranks share); sleeps on the futex like the slots path.
    pub(super) fn host_barrier(&mut self, op: &str, wait: &mut HostWait<'_>) -> Result<()> {
        self.fast.barriers = self.fast.barriers.wrapping_add(1);
        let arrival = Arrival {
            counter: BARRIER,
            arrived: BARRIER_ARRIVED,
            seq: self.fast.barriers,
        };
        self.arrive_and_wait(arrival, op, wait)
    }

    /// Records this rank's arrival number `a.seq`, adds one to the leader's counter and waits
    /// until every rank has (the counter reaches `seq · k`, wrapping), checking for failures.
    fn arrive_and_wait(&mut self, a: Arrival, op: &str, wait: &mut HostWait<'_>) -> Result<()> {
        let k = self.host_size() as u32;
        let me = self.position();
        let own = self.fast_file(me)?;
        atomic(own, a.arrived).store(a.seq, Ordering::Release);
        let target = a.seq.wrapping_mul(k);
        let leader = self.fast_file(0)?;
        let counter = atomic(leader, a.counter);
        if counter.fetch_add(1, Ordering::AcqRel).wrapping_add(1) == target {
            futex(counter, libc::FUTEX_WAKE, i32::MAX as u32, None);
            return Ok(());
        }
        let reached = |v: u32| v.wrapping_sub(target) as i32 >= 0;
        let (start, yield_for) = (Instant::now(), self.fast.yield_for);
        loop {
            let leader = self.fast_file(0)?;
            let counter = atomic(leader, a.counter);
            let v = counter.load(Ordering::Acquire);
            if reached(v) {
                return Ok(());
            }
            if start.elapsed() < yield_for {
                std::thread::yield_now();
                continue;
            }
            futex(counter, libc::FUTEX_WAIT, v, Some(NAP));
            if reached(counter.load(Ordering::Acquire)) {
                return Ok(());
            }
            self.check_peers(a, op, wait.aborted, wait.deadline, start)?;
            wait.check_links(op)?;
            self.check_local_links(op)?;
        }
    }

    /// Fails if a host link to the leader (or, on the leader, to a rank) closed or carries an
    /// abort report.
    fn check_local_links(&mut self, op: &str) -> Result<()> {
        for link in &mut self.local {
            crate::engine::check_idle_link(op, link)?;
        }
        Ok(())
    }

    /// Fails if this communicator was aborted, the deadline passed, or a host peer exited or
    /// reported a failure.
    fn check_peers(
        &mut self,
        a: Arrival,
        op: &str,
        aborted: &AtomicBool,
        deadline: Instant,
        start: Instant,
    ) -> Result<()> {
        if aborted.load(Ordering::Relaxed) {
            return Err(CommError::Aborted { op: op.to_string() });
        }
        for pos in 0..self.host_size() {
            let rank = self.w.host[pos];
            let file = self.fast_file(pos)?;
            let pid = u32::from_le_bytes(file[PID..PID + 4].try_into().unwrap_or([0; 4]));
            let failed = atomic(file, FAILED).load(Ordering::Acquire);
            if failed != 0 {
                let failed_rank = (failed != u32::MAX).then(|| failed as usize - 1);
                let cause = match failed_rank {
                    Some(f) if f == rank => format!("rank {rank} failed"),
                    Some(f) => format!("rank {f} failed"),
                    None => format!("rank {rank} failed"),
                };
                return Err(CommError::Remote {
                    op: op.to_string(),
                    cause,
                    failed_rank: failed_rank.or(Some(rank)),
                    reported_by: rank,
                });
            }
            // SAFETY: signal 0 only checks that the process exists.
            let gone = unsafe { libc::kill(pid as libc::pid_t, 0) } != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
            if gone {
                return Err(CommError::Peer {
                    op: op.to_string(),
                    rank,
                    addr: format!("process {pid}"),
                    what: "exited".into(),
                });
            }
        }
        if Instant::now() >= deadline {
            // Name the first rank that has not arrived.
            for pos in 0..self.host_size() {
                let rank = self.w.host[pos];
                let file = self.fast_file(pos)?;
                if (atomic(file, a.arrived)
                    .load(Ordering::Acquire)
                    .wrapping_sub(a.seq) as i32)
                    < 0
                {
                    return Err(CommError::Timeout {
                        op: op.to_string(),
                        rank,
                        addr: "shared memory".into(),
                        waited: start.elapsed(),
                    });
                }
            }
        }
        Ok(())
    }
}
