//! The one place where replicas talk: SyncBN statistics and the loss normaliser are summed across
//! ranks through this trait. `detect` knows nothing of sockets; the launcher implements it with the
//! collective crate, and [`SingleReplica`] is the identity for one rank.

use crate::error::Result;

/// Element-wise sum of f32 slices over all ranks, in place, identical on every rank afterwards.
pub trait CrossReplica {
    /// Number of ranks taking part.
    fn world_size(&self) -> usize;
    /// Replace `values` by the element-wise sum over all ranks. Errors name the peer or deadline.
    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()>;

    /// Mean over ranks with equal weight per rank (how Paddle's SyncBN combines per-device means).
    fn all_reduce_mean(&self, values: &mut [f32]) -> Result<()> {
        self.all_reduce_sum(values)?;
        let w = self.world_size().max(1) as f32;
        if w > 1.0 {
            values.iter_mut().for_each(|v| *v /= w);
        }
        Ok(())
    }
}

/// One rank: the sum over ranks is the value itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleReplica;

impl CrossReplica for SingleReplica {
    fn world_size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }
}

/// The loss normaliser: `max(Σ_ranks S / world_size, 1)` of the local soft-target sums `S`.
pub fn loss_normalizer(local_score_sum: f32, replicas: &dyn CrossReplica) -> Result<f32> {
    let mut s = [local_score_sum];
    replicas.all_reduce_mean(&mut s)?;
    Ok(s[0].max(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier, Mutex};

    /// Ranks as threads sharing a sum: enough to test the averaging rule.
    struct Threads {
        world: usize,
        acc: Arc<Mutex<Vec<f32>>>,
        barrier: Arc<Barrier>,
    }

    impl CrossReplica for Threads {
        fn world_size(&self) -> usize {
            self.world
        }
        fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
            {
                let mut acc = self.acc.lock().unwrap();
                acc.resize(values.len(), 0.0);
                acc.iter_mut().zip(values.iter()).for_each(|(a, v)| *a += v);
            }
            self.barrier.wait();
            values.copy_from_slice(&self.acc.lock().unwrap());
            self.barrier.wait();
            Ok(())
        }
    }

    #[test]
    fn normaliser_is_averaged_and_clipped() {
        assert_eq!(loss_normalizer(0.25, &SingleReplica).unwrap(), 1.0);
        assert_eq!(loss_normalizer(3.5, &SingleReplica).unwrap(), 3.5);
        let acc = Arc::new(Mutex::new(Vec::new()));
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = [2.0f32, 6.0]
            .into_iter()
            .map(|s| {
                let r = Threads {
                    world: 2,
                    acc: acc.clone(),
                    barrier: barrier.clone(),
                };
                std::thread::spawn(move || loss_normalizer(s, &r).unwrap())
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 4.0);
        }
    }
}
