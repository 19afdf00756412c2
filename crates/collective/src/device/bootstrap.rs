//! What building an NCCL communicator needs from the host side: agree that every rank loaded
//! NCCL, and hand rank 0's unique id to the others. [`crate::Communicator`] implements it; a
//! trainer that keeps its communicator on a thread implements it over that.

use crate::{CommError, Communicator};

/// The host exchanges [`NcclComm::new`](super::NcclComm::new) runs, in this order on every rank:
/// one [`Bootstrap::all_gather_bytes`], then one [`Bootstrap::broadcast_bytes`] from rank 0.
pub trait Bootstrap {
    /// This rank.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn world_size(&self) -> usize;
    /// Every rank's `mine`, by rank.
    fn all_gather_bytes(&mut self, mine: &[u8]) -> Result<Vec<Vec<u8>>, CommError>;
    /// Copies `root`'s `data` into every rank's `data`.
    fn broadcast_bytes(&mut self, data: &mut [u8], root: usize) -> Result<(), CommError>;
}

impl Bootstrap for Communicator {
    fn rank(&self) -> usize {
        Communicator::rank(self)
    }
    fn world_size(&self) -> usize {
        Communicator::world_size(self)
    }
    fn all_gather_bytes(&mut self, mine: &[u8]) -> Result<Vec<Vec<u8>>, CommError> {
        self.all_gather(mine)
    }
    fn broadcast_bytes(&mut self, data: &mut [u8], root: usize) -> Result<(), CommError> {
        self.broadcast(data, root)
    }
}
