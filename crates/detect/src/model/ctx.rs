//! What a forward or backward pass reads and writes: parameters by name, BN statistics (read in eval,
//! updated in training), gradients by name, and the cross-replica channel for SyncBN.

use ringdet_kernels::Real;

use super::feat::Feat;
use crate::cross_replica::CrossReplica;
use crate::error::Result;
use crate::layout::ParamLayout;

/// Forward-pass context over parameters of the float type `T` (f32 unless asked otherwise).
pub struct Fwd<'a, T: Real = f32> {
    /// Fused RepVgg convs to use instead of the two branches (eval only).
    pub fused: Option<&'a crate::fuse::FusedRepVgg<T>>,
    /// When set, every RepVgg block appends its name and input here (to check the fusion block by
    /// block on the inputs the blocks really see).
    pub repvgg_inputs: Option<Vec<(String, Feat<T>)>>,
    layout: &'a ParamLayout,
    params: &'a [T],
    stats: StatsAccess<'a, T>,
}

enum StatsAccess<'a, T> {
    Eval(&'a [T]),
    Train {
        stats: &'a mut [T],
        replicas: &'a dyn CrossReplica,
    },
}

impl<'a, T: Real> Fwd<'a, T> {
    /// Evaluation: BN uses the running statistics.
    pub fn eval(layout: &'a ParamLayout, params: &'a [T], stats: &'a [T]) -> Self {
        Self {
            fused: None,
            repvgg_inputs: None,
            layout,
            params,
            stats: StatsAccess::Eval(stats),
        }
    }
    /// Training: BN uses batch statistics (summed across `replicas`) and updates the running ones.
    pub fn train(
        layout: &'a ParamLayout,
        params: &'a [T],
        stats: &'a mut [T],
        replicas: &'a dyn CrossReplica,
    ) -> Self {
        Self {
            fused: None,
            repvgg_inputs: None,
            layout,
            params,
            stats: StatsAccess::Train { stats, replicas },
        }
    }
    /// Whether this is a training pass.
    pub fn training(&self) -> bool {
        matches!(self.stats, StatsAccess::Train { .. })
    }
    /// A parameter's values.
    pub fn param(&self, name: &str) -> Result<&'a [T]> {
        let s = self.layout.slot(name)?;
        Ok(&self.params[s.range()])
    }
    /// Running mean and variance of the BN named `prefix` (e.g. `x.bn`) in eval.
    pub fn running(&self, prefix: &str) -> Result<(&[T], &[T])> {
        let m = self.layout.slot(&format!("{prefix}._mean"))?.range();
        let v = self.layout.slot(&format!("{prefix}._variance"))?.range();
        let stats: &[T] = match &self.stats {
            StatsAccess::Eval(s) => s,
            StatsAccess::Train { stats, .. } => stats,
        };
        Ok((&stats[m], &stats[v]))
    }
    /// Running mean and variance (writable) and the replicas, in training.
    pub fn running_mut(&mut self, prefix: &str) -> Result<Option<TrainStats<'_, T>>> {
        let m = self.layout.slot(&format!("{prefix}._mean"))?.range();
        let v = self.layout.slot(&format!("{prefix}._variance"))?.range();
        match &mut self.stats {
            StatsAccess::Eval(_) => Ok(None),
            StatsAccess::Train { stats, replicas } => {
                // Mean and variance never overlap; split the buffer at the later one.
                let (mean, var) = if m.start < v.start {
                    let (a, b) = stats.split_at_mut(v.start);
                    (&mut a[m], &mut b[..v.len()])
                } else {
                    let (a, b) = stats.split_at_mut(m.start);
                    (&mut b[..m.len()], &mut a[v])
                };
                Ok(Some((mean, var, *replicas)))
            }
        }
    }
}

/// Running mean, running variance (both writable) and the replicas of one BN in training.
pub type TrainStats<'s, T = f32> = (&'s mut [T], &'s mut [T], &'s dyn CrossReplica);

/// Backward-pass context: parameters to read, gradients to accumulate into, replicas for SyncBN.
pub struct Bwd<'a> {
    layout: &'a ParamLayout,
    params: &'a [f32],
    grads: &'a mut [f32],
    /// Cross-replica channel.
    pub replicas: &'a dyn CrossReplica,
}

impl<'a> Bwd<'a> {
    /// A backward context.
    pub fn new(
        layout: &'a ParamLayout,
        params: &'a [f32],
        grads: &'a mut [f32],
        replicas: &'a dyn CrossReplica,
    ) -> Self {
        Self {
            layout,
            params,
            grads,
            replicas,
        }
    }
    /// A parameter's values.
    pub fn param(&self, name: &str) -> Result<&'a [f32]> {
        let s = self.layout.slot(name)?;
        Ok(&self.params[s.range()])
    }
    /// The gradient of a parameter, writable.
    pub fn grad(&mut self, name: &str) -> Result<&mut [f32]> {
        let s = self.layout.slot(name)?;
        Ok(&mut self.grads[s.range()])
    }
    /// `grad(name) += values`.
    pub fn add_grad(&mut self, name: &str, values: &[f32]) -> Result<()> {
        self.grad(name)?
            .iter_mut()
            .zip(values)
            .for_each(|(g, v)| *g += v);
        Ok(())
    }
}
