//! Which sample indices each rank trains on, batch by batch: PaddlePaddle's `DistributedBatchSampler`.
//!
//! Every epoch the index list `0..N` is padded by repeating its head up to `ceil(N/ranks)·ranks`,
//! shuffled with NumPy's `RandomState(epoch)` (the same permutation on every rank), and dealt out in
//! interleaved chunks of `batch_size`: rank r takes `[r·bs + k·bs·ranks, … + bs)`; the tail that does
//! not fill a whole round is split evenly. The rank's list is then cut into batches (`drop_last`).

mod mt19937;

pub use mt19937::Mt19937;

/// Wrong sampler settings.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    /// `rank` is not below `world_size`, or `world_size`/`batch_size` is zero.
    #[error("sampler: {0}")]
    Invalid(String),
}

/// PaddlePaddle's `DistributedBatchSampler` for one rank.
#[derive(Clone, Debug)]
pub struct DistributedBatchSampler {
    /// Number of samples in the dataset.
    pub dataset_len: usize,
    /// Samples per batch on this rank.
    pub batch_size: usize,
    /// This process's rank, 0-based.
    pub rank: usize,
    /// Number of ranks.
    pub world_size: usize,
    /// Shuffle every epoch with `RandomState(epoch)`.
    pub shuffle: bool,
    /// Drop the last batch when it is short.
    pub drop_last: bool,
}

impl DistributedBatchSampler {
    /// A sampler; fails when `rank >= world_size` or a size is zero.
    pub fn new(
        dataset_len: usize,
        batch_size: usize,
        rank: usize,
        world_size: usize,
        shuffle: bool,
        drop_last: bool,
    ) -> Result<Self, SamplerError> {
        if world_size == 0 || batch_size == 0 {
            return Err(SamplerError::Invalid(format!(
                "world_size ({world_size}) and batch_size ({batch_size}) must be positive"
            )));
        }
        if rank >= world_size {
            return Err(SamplerError::Invalid(format!(
                "rank {rank} is not below world_size {world_size}"
            )));
        }
        Ok(DistributedBatchSampler {
            dataset_len,
            batch_size,
            rank,
            world_size,
            shuffle,
            drop_last,
        })
    }

    /// Samples this rank sees per epoch: `ceil(N / world_size)`.
    pub fn num_samples(&self) -> usize {
        self.dataset_len.div_ceil(self.world_size)
    }

    /// Batches per epoch on this rank (the same on every rank).
    pub fn num_batches(&self) -> usize {
        let n = self.num_samples();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// This rank's sample indices for `epoch`, before batching.
    pub fn rank_indices(&self, epoch: u32) -> Vec<usize> {
        let total = self.num_samples() * self.world_size;
        let mut indices: Vec<usize> = (0..self.dataset_len).collect();
        // Pad by repeating the head (cyclically, for the rare case of more ranks than samples).
        for k in 0..total.saturating_sub(self.dataset_len) {
            indices.push(k % self.dataset_len.max(1));
        }
        if self.dataset_len == 0 {
            indices.clear();
        }
        if self.shuffle {
            Mt19937::new(epoch).shuffle(&mut indices);
        }
        if self.world_size == 1 {
            return indices;
        }
        let bs = self.batch_size;
        let round = bs * self.world_size;
        let last = indices.len() % round;
        let last_local = last / self.world_size;
        let mut mine = Vec::with_capacity(self.num_samples());
        let mut i = self.rank * bs;
        while i < indices.len() - last {
            mine.extend_from_slice(&indices[i..i + bs]);
            i += round;
        }
        let tail = &indices[indices.len() - last..];
        mine.extend_from_slice(&tail[self.rank * last_local..(self.rank + 1) * last_local]);
        mine
    }

    /// This rank's batches for `epoch`.
    pub fn batches(&self, epoch: u32) -> Vec<Vec<usize>> {
        let indices = self.rank_indices(epoch);
        let mut out: Vec<Vec<usize>> = indices
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        if self.drop_last && out.last().is_some_and(|b| b.len() < self.batch_size) {
            out.pop();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_zero_shuffle_is_numpy_randomstate_zero() {
        // np.random.RandomState(0).permutation(10)
        let s = DistributedBatchSampler::new(10, 10, 0, 1, true, false).unwrap();
        assert_eq!(s.rank_indices(0), vec![2, 8, 4, 9, 1, 6, 7, 3, 0, 5]);
    }

    #[test]
    fn rejects_bad_rank() {
        let err = DistributedBatchSampler::new(10, 2, 4, 4, true, true).unwrap_err();
        assert!(err.to_string().contains("rank 4"), "{err}");
    }
}
