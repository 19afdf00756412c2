//! The communicator: a rank's links to its ring neighbours, its settings, and the bookkeeping
//! that turns any link failure into one error shared by this and every later operation, after
//! telling the neighbours so that the whole job stops instead of hanging.

use crate::config::Config;
use crate::error::{CommError, Result};
use crate::transport::link::{Link, Stream};
use crate::wire::frame::Kind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

mod run;
mod setup;

/// One rank's end of a job: collectives are methods on it (see `collectives.rs`).
pub struct Communicator {
    pub(crate) rank: usize,
    pub(crate) world_size: usize,
    pub(crate) endpoints: Vec<SocketAddr>,
    pub(crate) config: Config,
    pub(crate) right: Vec<Link>,
    pub(crate) left: Vec<Link>,
    pub(crate) scratch: Vec<u64>,
    staging: Vec<Vec<u64>>,
    next_op: u64,
    failed: Option<CommError>,
    pub(crate) abort: AbortHandle,
    pub(crate) hier: Option<crate::hier::Hierarchy>,
    /// Halving-doubling partners by bit: (send links, receive links) to/from `rank ^ (1 << bit)`.
    pub(crate) pairs: Vec<(Vec<Link>, Vec<Link>)>,
}

/// Unblocks and fails every operation of a communicator, from any thread.
#[derive(Clone)]
pub struct AbortHandle {
    pub(crate) flag: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<Stream>>>,
}

impl AbortHandle {
    /// Aborts: the running operation and every later one fail with [`CommError::Aborted`], and
    /// the neighbours see the connections close (and so fail too, naming this rank).
    pub fn abort(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Ok(streams) = self.streams.lock() {
            streams.iter().for_each(Stream::shutdown);
        }
    }

    /// Whether [`abort`](AbortHandle::abort) was called.
    pub fn is_aborted(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl Communicator {
    /// This rank's number.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks in the job.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Every rank's endpoint, by rank.
    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.endpoints
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How all-reduces of at least `config().hier_direct_bytes` run inside this rank's host:
    /// `"direct reads"` (ranks read each other's buffers), `"shared memory"` (the start-up check
    /// found direct reads refused, so they go through `/dev/shm` and the host leader), or
    /// `"TCP ring"` (hierarchical mode off, or no other rank on this IP).
    pub fn host_path(&self) -> &'static str {
        match &self.hier {
            Some(h) if h.direct_reads => "direct reads",
            Some(_) => "shared memory",
            None => "TCP ring",
        }
    }

    /// A handle that aborts this communicator from another thread.
    pub fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    /// Aborts this communicator (see [`AbortHandle::abort`]).
    pub fn abort(&self) {
        self.abort.abort();
    }

    /// The error that broke this communicator, if any.
    pub fn failure(&self) -> Option<&CommError> {
        self.failed.as_ref()
    }

    /// Scratch space of at least `bytes` bytes, 8-byte aligned.
    pub(crate) fn scratch_mut(&mut self, bytes: usize) -> &mut [u8] {
        let words = bytes.div_ceil(8);
        if self.scratch.len() < words {
            self.scratch.resize(words, 0);
        }
        &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.scratch)[..bytes]
    }

    /// Fails fast if the communicator is already broken or aborted; returns the next op id.
    pub(crate) fn begin(&mut self, kind: Kind) -> Result<u64> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let id = self.next_op;
        if self.abort.is_aborted() {
            return Err(CommError::Aborted {
                op: format!("{} #{id}", kind.name()),
            });
        }
        self.next_op += 1;
        Ok(id)
    }
}

/// A communicator that closes after its last operation tells its neighbours so (a
/// [`Kind::Bye`] header on every ring and partner link, best effort, never blocking): a rank of
/// another host still waiting inside that operation for its own host then sees a clean leave
/// instead of a close it must treat as a death. After a failure or an abort the links already
/// carry the report, and nothing is added.
impl Drop for Communicator {
    fn drop(&mut self) {
        if self.failed.is_some() || self.abort.is_aborted() {
            return;
        }
        let bye = crate::wire::frame::Header {
            kind: Kind::Bye,
            op_id: self.next_op,
            seq: 0,
            len: 0,
        }
        .encode();
        let pairs = self
            .pairs
            .iter_mut()
            .flat_map(|(s, r)| s.iter_mut().chain(r));
        for link in self
            .right
            .iter_mut()
            .chain(self.left.iter_mut())
            .chain(pairs)
        {
            // Non-blocking: a full socket buffer (a peer that stopped reading) just gets the close.
            let _ = link.write_vectored(&[std::io::IoSlice::new(&bye)]);
        }
    }
}
