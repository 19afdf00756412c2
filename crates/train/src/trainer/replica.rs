//! The ranks of a training job as the trainer sees them: the detector's [`CrossReplica`] (SyncBN
//! statistics, the loss normaliser) and the trainer's own exchanges (initial weights, gradients,
//! losses), over the collective when there are several ranks.

use std::sync::Mutex;

use ringdet_collective::{CommError, Communicator, ReduceOp};
use ringdet_detect::DetectError;
use ringdet_detect::cross_replica::CrossReplica;

/// One rank alone, or this rank's communicator to the others.
pub struct Replicas {
    rank: usize,
    world_size: usize,
    comm: Option<Mutex<Communicator>>,
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

    /// The ranks joined through `comm`.
    pub fn collective(comm: Communicator) -> Replicas {
        Replicas {
            rank: comm.rank(),
            world_size: comm.world_size(),
            comm: Some(Mutex::new(comm)),
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

    fn with<R>(
        &self,
        f: impl FnOnce(&mut Communicator) -> Result<R, CommError>,
        default: R,
    ) -> Result<R, CommError> {
        match &self.comm {
            None => Ok(default),
            Some(m) => {
                let mut comm = m
                    .lock()
                    .map_err(|_| CommError::Local("communicator lock poisoned".into()))?;
                f(&mut comm)
            }
        }
    }

    /// Replaces `values` by rank 0's.
    pub fn broadcast(&self, values: &mut [f32]) -> Result<(), CommError> {
        self.with(|c| c.broadcast(values, 0), ())
    }

    /// Element-wise `op` over the ranks, in place.
    pub fn all_reduce(&self, values: &mut [f32], op: ReduceOp) -> Result<(), CommError> {
        self.with(|c| c.all_reduce(values, op), ())
    }
}

impl Replicas {
    /// Every rank's `mine` (lengths may differ), in rank order; a single rank gets its own.
    pub fn all_gather_i64(&self, mine: &[i64]) -> Result<Vec<Vec<i64>>, CommError> {
        match &self.comm {
            None => Ok(vec![mine.to_vec()]),
            Some(_) => self.with(|c| c.all_gather(mine), Vec::new()),
        }
    }

    /// Replaces `data` by `root`'s.
    pub fn broadcast_f64(&self, data: &mut [f64], root: usize) -> Result<(), CommError> {
        self.with(|c| c.broadcast(data, root), ())
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
