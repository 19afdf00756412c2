//! The ranks of a training job as the trainer sees them: the detector's [`CrossReplica`] (SyncBN
//! statistics, the loss normaliser) and the trainer's own exchanges (initial weights, gradient
//! buckets, losses, replica hashes), over the collective when there are several ranks.
//!
//! Every exchange goes through one [`AsyncCommunicator`]: its thread runs them one after another
//! in the order they were asked for. Gradient buckets are queued while backward continues
//! ([`Replicas::submit_avg`]); a SyncBN or normaliser sum asked for meanwhile queues behind them
//! and waits for its own result. Since every rank asks in the same order, the ranks issue their
//! collectives in the same order and nothing deadlocks.

use ringdet_collective::device::Bootstrap;
use ringdet_collective::{AsyncCommunicator, CommError, Communicator, Handle, ReduceOp};
use ringdet_detect::DetectError;
use ringdet_detect::cross_replica::CrossReplica;

/// One rank alone, or this rank's communicator (on its communication thread) to the others.
pub struct Replicas {
    rank: usize,
    world_size: usize,
    comm: Option<AsyncCommunicator>,
}

impl Replicas {
    /// A single rank: every exchange is the identity.
    pub fn single() -> Replicas {
        Replicas {
            rank: 0,
            world_size: 1,
            comm: None,
        }
    }

    /// The ranks joined through `comm`, which moves onto its communication thread.
    pub fn collective(comm: Communicator) -> Replicas {
        Replicas {
            rank: comm.rank(),
            world_size: comm.world_size(),
            comm: Some(comm.into_async()),
        }
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks.
    pub fn world(&self) -> usize {
        self.world_size
    }

    /// Runs `f` on the communication thread after everything queued before it and waits for it;
    /// a single rank gets `default`.
    fn exec<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Communicator) -> Result<R, CommError> + Send + 'static,
        default: R,
    ) -> Result<R, CommError> {
        match &self.comm {
            None => Ok(default),
            Some(c) => c.run(f).wait(),
        }
    }

    /// Runs an in-place exchange of `values` on the communication thread (through a copy: the
    /// thread needs owned data).
    fn in_place<T: ringdet_collective::Element>(
        &self,
        values: &mut [T],
        f: impl FnOnce(&mut Communicator, &mut [T]) -> Result<(), CommError> + Send + 'static,
    ) -> Result<(), CommError> {
        if self.comm.is_none() {
            return Ok(());
        }
        let mut owned = values.to_vec();
        owned = self.exec(
            move |c| {
                f(c, &mut owned)?;
                Ok(owned)
            },
            Vec::new(),
        )?;
        values.copy_from_slice(&owned);
        Ok(())
    }

    /// Replaces `values` by rank 0's.
    pub fn broadcast(&self, values: &mut [f32]) -> Result<(), CommError> {
        self.in_place(values, |c, v| c.broadcast(v, 0))
    }

    /// Element-wise `op` over the ranks, in place.
    pub fn all_reduce(&self, values: &mut [f32], op: ReduceOp) -> Result<(), CommError> {
        self.in_place(values, move |c, v| c.all_reduce(v, op))
    }

    /// Fails the running and every queued exchange now, and makes the other ranks' exchanges
    /// with this one fail (naming it) rather than wait for their deadline; for a rank that stops
    /// with exchanges still queued.
    pub fn abort(&self) {
        if let Some(c) = &self.comm {
            c.abort();
        }
    }

    /// Queues the average over the ranks of `bucket` behind the exchanges already asked for and
    /// returns at once; `None` for a single rank (the average is the bucket itself).
    pub fn submit_avg(&self, bucket: Vec<f32>) -> Option<Handle<Vec<f32>>> {
        self.comm.as_ref().map(|c| c.submit(bucket, ReduceOp::Avg))
    }
}

impl Replicas {
    /// Every rank's `mine` (lengths may differ), in rank order; a single rank gets its own.
    pub fn all_gather_i64(&self, mine: &[i64]) -> Result<Vec<Vec<i64>>, CommError> {
        let owned = mine.to_vec();
        self.exec(move |c| c.all_gather(&owned), vec![mine.to_vec()])
    }

    /// Replaces `data` by `root`'s.
    pub fn broadcast_f64(&self, data: &mut [f64], root: usize) -> Result<(), CommError> {
        self.in_place(data, move |c, v| c.broadcast(v, root))
    }
}

/// NCCL's start-up exchanges (who loaded it, rank 0's unique id) over the job's communicator,
/// queued like every other exchange.
impl Bootstrap for &Replicas {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world_size
    }
    fn all_gather_bytes(&mut self, mine: &[u8]) -> Result<Vec<Vec<u8>>, CommError> {
        let owned = mine.to_vec();
        self.exec(move |c| c.all_gather(&owned), vec![mine.to_vec()])
    }
    fn broadcast_bytes(&mut self, data: &mut [u8], root: usize) -> Result<(), CommError> {
        self.in_place(data, move |c, v| c.broadcast(v, root))
    }
}

impl CrossReplica for Replicas {
    fn world_size(&self) -> usize {
        self.world_size
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> ringdet_detect::Result<()> {
        self.all_reduce(values, ReduceOp::Sum)
            .map_err(|e| DetectError::Input(format!("rank {}: cross-replica sum: {e}", self.rank)))
    }
}
