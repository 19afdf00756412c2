//! Hierarchical all-reduce: ranks with the same IP are one host. Each rank copies its buffer into
//! its own `/dev/shm` file and tells its host leader (lowest rank of the host) over a local
//! socket; the leader reduces the host's buffers in rank order, runs the ring among the leaders,
//! writes the result to its own file and tells the others, who copy it out. The sockets carry
//! only the hand-off notices, so they also carry failures.
//!
//! Hand-off protocol per operation: a rank rewrites its file only after the leader's "done" of
//! the previous operation, and the leader rewrites its file only after every rank's "ready" of
//! the next, so no region is read while it is written.

mod direct;
pub use direct::HostWait;
mod fast;
mod notice;

use crate::error::Result;
use crate::rendezvous::Want;
use crate::shm::ShmBuf;
use crate::transport::Link;
use crate::transport::poll;
use crate::wire::handshake::Purpose;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

/// Who talks to whom in hierarchical mode.
pub struct Wiring {
    /// This rank.
    pub rank: usize,
    /// Lowest rank with our IP.
    pub leader: usize,
    /// Ranks with our IP, ascending (leader first).
    pub host: Vec<usize>,
    /// One leader per host, ascending.
    pub leaders: Vec<usize>,
    /// Connections to open.
    pub dial: Vec<Want>,
    /// Connections to accept.
    pub accept: Vec<Want>,
}

impl Wiring {
    /// Groups ranks by IP and lists the local and leader-ring connections of `rank`.
    pub fn new(rank: usize, endpoints: &[SocketAddr], streams: usize) -> Wiring {
        let ip = endpoints[rank].ip();
        let host: Vec<usize> = (0..endpoints.len())
            .filter(|&r| endpoints[r].ip() == ip)
            .collect();
        let leader = host[0];
        let leaders: Vec<usize> = (0..endpoints.len())
            .filter(|&r| (0..r).all(|q| endpoints[q].ip() != endpoints[r].ip()))
            .collect();
        let (mut dial, mut accept) = (Vec::new(), Vec::new());
        if rank != leader {
            dial.push(Want::new(leader, Purpose::Local, 0));
        } else {
            accept.extend(host[1..].iter().map(|&r| Want::new(r, Purpose::Local, 0)));
            let h = leaders.len();
            if h > 1 {
                let i = leaders.iter().position(|&r| r == rank).unwrap_or(0);
                let (right, left) = (leaders[(i + 1) % h], leaders[(i + h - 1) % h]);
                for s in 0..streams {
                    dial.push(Want::new(right, Purpose::Leaders, s));
                    accept.push(Want::new(left, Purpose::Leaders, s));
                }
            }
        }
        Wiring {
            rank,
            leader,
            host,
            leaders,
            dial,
            accept,
        }
    }
}

/// The host-local state of a rank in hierarchical mode.
pub struct Hierarchy {
    w: Wiring,
    /// Leader: one link per other rank of the host (in `host` order); others: the leader link.
    local: Vec<Link>,
    /// Leader ring (leaders of a multi-host job only).
    pub ring_right: Vec<Link>,
    /// Leader ring, receiving side.
    pub ring_left: Vec<Link>,
    own: ShmBuf,
    /// Ranks of this host can read each other's memory (checked at start-up, same on all).
    pub direct_reads: bool,
    /// Slots for small all-reduces on a single host.
    fast: fast::FastFiles,
    /// Leader: the other ranks' files; others: the leader's file.
    peers: Vec<Option<ShmBuf>>,
    prefix: String,
}

/// Path prefix of a job's shared-memory files: `/dev/shm/ringdet-<tag>`, the tag hashing the job
/// token and the endpoint list, so that jobs never share files.
fn shm_prefix(token: &[u8], endpoints: &[SocketAddr]) -> String {
    let mut h = Sha256::new();
    h.update(token);
    endpoints
        .iter()
        .for_each(|e| h.update(e.to_string().as_bytes()));
    let tag: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("/dev/shm/ringdet-{tag}")
}

/// Removes the shared-memory files a job's ranks on this host left behind (a rank killed before
/// it could remove its own), given the job's token and endpoint list; returns how many it
/// removed. A launcher calls it once its workers have exited.
pub fn remove_host_files(token: &[u8], endpoints: &[SocketAddr]) -> std::io::Result<usize> {
    let prefix = shm_prefix(token, endpoints);
    let Some(name) = prefix.strip_prefix("/dev/shm/") else {
        return Ok(0);
    };
    let name = format!("{name}-");
    let mut removed = 0;
    let dir = match std::fs::read_dir("/dev/shm") {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in dir {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&name) {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn shm_path(prefix: &str, rank: usize) -> PathBuf {
    PathBuf::from(format!("{prefix}-{rank}"))
}

impl Hierarchy {
    /// Sorts the extra links from the rendezvous and creates this rank's shared-memory file.
    pub fn new(
        w: Wiring,
        links: Vec<(Want, bool, Link)>,
        token: &[u8],
        endpoints: &[SocketAddr],
        fast_slot_bytes: usize,
    ) -> Result<Hierarchy> {
        let prefix = shm_prefix(token, endpoints);
        let (mut local, mut ring_right, mut ring_left) = (Vec::new(), Vec::new(), Vec::new());
        let mut sorted = links;
        sorted.sort_by_key(|(want, _, _)| (want.purpose, want.rank, want.stream));
        for (want, dialed, link) in sorted {
            match (want.purpose == Purpose::Leaders as u8, dialed) {
                (true, true) => ring_right.push(link),
                (true, false) => ring_left.push(link),
                (false, _) => local.push(link),
            }
        }
        crate::peer_mem::allow_same_user_reads();
        let own = ShmBuf::create(shm_path(&prefix, w.rank))?;
        let me = w.host.iter().position(|&r| r == w.rank).unwrap_or(0);
        let fast = fast::FastFiles::create(&prefix, w.rank, me, w.host.len(), fast_slot_bytes)?;
        let peers = (0..local.len()).map(|_| None).collect();
        Ok(Hierarchy {
            w,
            local,
            ring_right,
            ring_left,
            own,
            direct_reads: false,
            fast,
            peers,
            prefix,
        })
    }

    /// Whether this rank runs the ring between hosts.
    pub fn is_leader(&self) -> bool {
        self.w.rank == self.w.leader
    }

    fn peer_buf(&mut self, i: usize, rank: usize, len: usize) -> Result<&mut [u8]> {
        crate::shm::open_mapped(&mut self.peers[i], shm_path(&self.prefix, rank), len)
    }

    /// Opens the files of the host's other ranks that this rank will read, once they all exist:
    /// a file stays readable through an open handle after its owner removes it, so a rank that
    /// finishes first and drops its communicator cannot pull it from under a slower one.
    pub fn open_host_files(&mut self) -> Result<()> {
        for pos in 0..self.host_size() {
            self.fast_file(pos)?;
        }
        if self.is_leader() {
            for i in 0..self.local.len() {
                let rank = self.w.host[i + 1];
                self.peer_buf(i, rank, 0)?;
            }
        } else {
            let leader = self.w.leader;
            self.peer_buf(0, leader, 0)?;
        }
        Ok(())
    }

    /// Step 1 on a non-leader: publish `data`, tell the leader.
    pub fn publish(&mut self, data: &[u8], op: &str, op_id: u64, deadline: Instant) -> Result<()> {
        self.own.bytes(data.len())?.copy_from_slice(data);
        self.notify(0, op, op_id, data.len(), deadline)
    }

    /// Step 3 on a non-leader: wait for the leader's result and copy it into `data`.
    pub fn fetch(
        &mut self,
        data: &mut [u8],
        op: &str,
        op_id: u64,
        deadline: Instant,
    ) -> Result<()> {
        self.wait_notice(0, op, op_id, data.len(), deadline)?;
        let leader = self.w.leader;
        data.copy_from_slice(self.peer_buf(0, leader, data.len())?);
        Ok(())
    }

    /// Step 1 on the leader: reduce every local rank's buffer into `data`, in rank order.
    pub fn gather(
        &mut self,
        data: &mut [u8],
        reduce: &dyn Fn(&mut [u8], &[u8]),
        op: &str,
        op_id: u64,
        deadline: Instant,
    ) -> Result<()> {
        for i in 0..self.local.len() {
            self.wait_notice(i, op, op_id, data.len(), deadline)?;
        }
        for i in 0..self.local.len() {
            let rank = self.w.host[i + 1];
            let src = self.peer_buf(i, rank, data.len())?;
            reduce(data, src);
        }
        Ok(())
    }

    /// Step 3 on the leader: publish the result and tell every local rank.
    pub fn scatter(&mut self, data: &[u8], op: &str, op_id: u64, deadline: Instant) -> Result<()> {
        if self.local.is_empty() {
            return Ok(());
        }
        self.own.bytes(data.len())?.copy_from_slice(data);
        for i in 0..self.local.len() {
            self.notify(i, op, op_id, data.len(), deadline)?;
        }
        Ok(())
    }

    /// Forwards an abort frame to the local ranks and the leader ring.
    pub fn report(&mut self, frame: &[u8], failed: Option<usize>, deadline: Instant) {
        self.mark_failed(failed);
        let skip = failed.unwrap_or(usize::MAX);
        for link in self
            .local
            .iter_mut()
            .chain(&mut self.ring_right)
            .chain(&mut self.ring_left)
        {
            if link.peer_rank != skip {
                let _ = poll::write_all(link, frame, deadline);
            }
        }
    }

    /// Closes every link.
    pub fn shutdown(&self) {
        self.local
            .iter()
            .chain(&self.ring_right)
            .chain(&self.ring_left)
            .for_each(Link::shutdown);
    }
}

impl Hierarchy {
    /// One leader per host, ascending.
    pub fn leaders(&self) -> Vec<usize> {
        self.w.leaders.clone()
    }

    /// Whether the whole job runs on this one host.
    pub fn single_host(&self) -> bool {
        self.w.leaders.len() == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_files_of_a_job_are_removed_and_others_kept() {
        let eps: Vec<SocketAddr> = vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ];
        let ours = format!("{}-1-fast", shm_prefix(b"stale-test", &eps));
        let other = format!("{}-1-fast", shm_prefix(b"another-job", &eps));
        std::fs::write(&ours, b"x").unwrap();
        std::fs::write(&other, b"x").unwrap();
        assert_eq!(remove_host_files(b"stale-test", &eps).unwrap(), 1);
        assert!(!std::path::Path::new(&ours).exists());
        assert!(std::path::Path::new(&other).exists());
        std::fs::remove_file(&other).unwrap();
    }
}
