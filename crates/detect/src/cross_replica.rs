//! The one place where replicas talk: SyncBN statistics and the loss normaliser are summed across
//! ranks through this trait. `detect` knows nothing of sockets; the launcher implements it with the
//! collective crate, and [`SingleReplica`] is the identity for one rank.

use std::any::TypeId;

use ringdet_kernels::Real;

use crate::error::{DetectError, Result};

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

/// [`CrossReplica::all_reduce_mean`] for the forward's float type. Replicas exchange f32: an f32
/// slice goes through them unchanged; a wider type (an f64 forward, for numerical checks) runs on
/// one replica only, where the mean over ranks is the value itself, and is refused on several.
pub fn all_reduce_mean_real<T: Real>(replicas: &dyn CrossReplica, values: &mut [T]) -> Result<()> {
    if TypeId::of::<T>() != TypeId::of::<f32>() {
        return match replicas.world_size() {
            0 | 1 => Ok(()),
            w => Err(DetectError::Input(format!(
                "a {}-byte float forward with batch statistics runs on one replica, not {w}",
                std::mem::size_of::<T>()
            ))),
        };
    }
    // f32 → f64 → f32 is exact, so this is the f32 reduction itself.
    let mut v32: Vec<f32> = values.iter().map(|v| v.to_f64() as f32).collect();
    replicas.all_reduce_mean(&mut v32)?;
    values
        .iter_mut()
        .zip(&v32)
        .for_each(|(o, &v)| *o = T::from_f64(f64::from(v)));
    Ok(())
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
    fn wide_floats_reduce_on_one_replica_only() {
        let mut v = [1.5f64, -2.0];
        all_reduce_mean_real(&SingleReplica, &mut v).unwrap();
        assert_eq!(v, [1.5, -2.0]);
        let two = Threads {
            world: 2,
            acc: Arc::new(Mutex::new(Vec::new())),
            barrier: Arc::new(Barrier::new(1)),
        };
        let e = all_reduce_mean_real(&two, &mut v).unwrap_err().to_string();
        assert!(e.contains("one replica, not 2"), "{e}");
        // f32 goes through the replicas (here one thread standing for both ranks: sum / 2).
        let mut w = [3.0f32, 5.0];
        all_reduce_mean_real(&two, &mut w).unwrap();
        assert_eq!(w, [1.5, 2.5]);
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
