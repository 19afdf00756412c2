//! What a forward or backward pass reads and writes: parameters by name, BN statistics (read in eval,
//! updated in training), gradients by name, the cross-replica channel for SyncBN, and the
//! backend every op runs on (the host [`Cpu`] backend unless a pass is built with another).
//! Parameters, statistics and gradients are each one flat buffer of that backend; the passes
//! take views of sub-ranges of them by name.

use ringdet_kernels::backend::{Backend, Buffers};
use ringdet_kernels::{Cpu, Real};

use super::feat::Feat;
use crate::cross_replica::CrossReplica;
use crate::error::{Result, kernel_error};
use crate::grad_sink::{GradSink, Releases};
use crate::layout::ParamLayout;

/// The host backend the passes use by default.
static CPU: Cpu = Cpu;

/// Forward-pass context over parameters of the float type `T` (f32 unless asked otherwise), run
/// on backend `B` (the host backend unless asked otherwise).
pub struct Fwd<'a, T: Real = f32, B: Backend<T> = Cpu> {
    /// Fused RepVgg convs to use instead of the two branches (eval only).
    pub fused: Option<&'a crate::fuse::FusedRepVgg<T, B>>,
    /// When set, every RepVgg block appends its name and input here (to check the fusion block by
    /// block on the inputs the blocks really see).
    pub repvgg_inputs: Option<Vec<(String, Feat<T, B>)>>,
    layout: &'a ParamLayout,
    params: &'a B::Buf,
    stats: StatsAccess<'a, T, B>,
    backend: &'a B,
}

enum StatsAccess<'a, T: Real, B: Buffers<T>> {
    Eval(&'a B::Buf),
    Train {
        stats: &'a mut B::Buf,
        replicas: &'a dyn CrossReplica,
    },
}

impl<'a, T: Real> Fwd<'a, T> {
    /// Evaluation on the host backend: BN uses the running statistics.
    pub fn eval(layout: &'a ParamLayout, params: &'a Vec<T>, stats: &'a Vec<T>) -> Self {
        Self::eval_on(&CPU, layout, params, stats)
    }
    /// Training on the host backend: BN uses batch statistics (summed across `replicas`) and
    /// updates the running ones.
    pub fn train(
        layout: &'a ParamLayout,
        params: &'a Vec<T>,
        stats: &'a mut Vec<T>,
        replicas: &'a dyn CrossReplica,
    ) -> Self {
        Self::train_on(&CPU, layout, params, stats, replicas)
    }
}

impl<'a, T: Real, B: Backend<T>> Fwd<'a, T, B> {
    fn with_stats(
        backend: &'a B,
        layout: &'a ParamLayout,
        params: &'a B::Buf,
        stats: StatsAccess<'a, T, B>,
    ) -> Self {
        Self {
            fused: None,
            repvgg_inputs: None,
            layout,
            params,
            stats,
            backend,
        }
    }
    /// Evaluation on `backend`.
    pub fn eval_on(
        backend: &'a B,
        layout: &'a ParamLayout,
        params: &'a B::Buf,
        stats: &'a B::Buf,
    ) -> Self {
        Self::with_stats(backend, layout, params, StatsAccess::Eval(stats))
    }
    /// Training on `backend`.
    pub fn train_on(
        backend: &'a B,
        layout: &'a ParamLayout,
        params: &'a B::Buf,
        stats: &'a mut B::Buf,
        replicas: &'a dyn CrossReplica,
    ) -> Self {
        Self::with_stats(
            backend,
            layout,
            params,
            StatsAccess::Train { stats, replicas },
        )
    }
    /// The backend every op of this pass runs on.
    pub fn backend(&self) -> &'a B {
        self.backend
    }
    /// Whether this is a training pass.
    pub fn training(&self) -> bool {
        matches!(self.stats, StatsAccess::Train { .. })
    }
    /// A parameter's values.
    pub fn param(&self, name: &str) -> Result<B::View<'a>> {
        let s = self.layout.slot(name)?;
        B::slice(self.params, s.range()).map_err(kernel_error("param"))
    }
    /// Running mean and variance of the BN named `prefix` (e.g. `x.bn`) in eval.
    pub fn running(&self, prefix: &str) -> Result<(B::View<'_>, B::View<'_>)> {
        let m = self.layout.slot(&format!("{prefix}._mean"))?.range();
        let v = self.layout.slot(&format!("{prefix}._variance"))?.range();
        let stats: &B::Buf = match &self.stats {
            StatsAccess::Eval(s) => s,
            StatsAccess::Train { stats, .. } => stats,
        };
        Ok((
            B::slice(stats, m).map_err(kernel_error("running mean"))?,
            B::slice(stats, v).map_err(kernel_error("running variance"))?,
        ))
    }
    /// Running mean and variance (writable) and the replicas, in training.
    pub fn running_mut(&mut self, prefix: &str) -> Result<Option<TrainStats<'_, T, B>>> {
        let m = self.layout.slot(&format!("{prefix}._mean"))?.range();
        let v = self.layout.slot(&format!("{prefix}._variance"))?.range();
        match &mut self.stats {
            StatsAccess::Eval(_) => Ok(None),
            StatsAccess::Train { stats, replicas } => {
                let (mean, var) =
                    B::split_mut(stats, m, v).map_err(kernel_error("running statistics"))?;
                Ok(Some((mean, var, *replicas)))
            }
        }
    }
}

/// Running mean, running variance (both writable) and the replicas of one BN in training.
pub type TrainStats<'s, T = f32, B = Cpu> = (
    <B as Buffers<T>>::ViewMut<'s>,
    <B as Buffers<T>>::ViewMut<'s>,
    &'s dyn CrossReplica,
);

/// Backward-pass context: parameters to read, gradients to accumulate into, replicas for SyncBN,
/// the backend (the host one unless asked otherwise), and optionally a [`GradSink`] told of each
/// gradient range once it is final ([`Bwd::with_sink`]).
pub struct Bwd<'a, B: Backend<f32> = Cpu> {
    layout: &'a ParamLayout,
    params: &'a B::Buf,
    grads: &'a mut B::Buf,
    /// Cross-replica channel.
    pub replicas: &'a dyn CrossReplica,
    backend: &'a B,
    releases: Option<Releases<'a>>,
}

impl<'a> Bwd<'a> {
    /// A backward context on the host backend.
    pub fn new(
        layout: &'a ParamLayout,
        params: &'a Vec<f32>,
        grads: &'a mut Vec<f32>,
        replicas: &'a dyn CrossReplica,
    ) -> Self {
        Self::new_on(&CPU, layout, params, grads, replicas)
    }
}

impl<'a, B: Backend<f32>> Bwd<'a, B> {
    /// A backward context on `backend`.
    pub fn new_on(
        backend: &'a B,
        layout: &'a ParamLayout,
        params: &'a B::Buf,
        grads: &'a mut B::Buf,
        replicas: &'a dyn CrossReplica,
    ) -> Self {
        Self {
            layout,
            params,
            grads,
            replicas,
            backend,
            releases: None,
        }
    }
    /// Reports each gradient range to `sink` once final: every layer's backward releases the
    /// parameters it has finished ([`Self::release`]), and [`Self::finish`] the rest. A write
    /// into a released gradient is then an error.
    pub fn with_sink(mut self, sink: &'a mut dyn GradSink) -> Self {
        self.releases = Some(Releases::new(self.layout, sink));
        self
    }
    /// The backend every op of this pass runs on.
    pub fn backend(&self) -> &'a B {
        self.backend
    }
    /// A parameter's values.
    pub fn param(&self, name: &str) -> Result<B::View<'a>> {
        let s = self.layout.slot(name)?;
        B::slice(self.params, s.range()).map_err(kernel_error("param"))
    }
    /// The gradient of a parameter, writable (an error once it was released with a sink).
    pub fn grad(&mut self, name: &str) -> Result<B::ViewMut<'_>> {
        if let Some(r) = &self.releases {
            r.check_open(self.layout.index(name)?, name)?;
        }
        let s = self.layout.slot(name)?;
        B::slice_mut(self.grads, s.range()).map_err(kernel_error("grad"))
    }
    /// The gradients of `names` are final: no later backward op adds into them. With a sink,
    /// the prefix of the buffer that this makes final is reported; without one, nothing happens.
    pub fn release(&mut self, names: &[&str]) -> Result<()> {
        let Some(r) = self.releases.as_mut() else {
            return Ok(());
        };
        let indices = names
            .iter()
            .map(|n| self.layout.index(n))
            .collect::<Result<Vec<_>>>()?;
        r.release(self.backend, &indices, self.grads)
    }
    /// End of backward: every gradient is final; with a sink, the rest of the buffer is reported.
    pub fn finish(&mut self) -> Result<()> {
        match self.releases.as_mut() {
            Some(r) => r.finish(self.backend, self.grads),
            None => Ok(()),
        }
    }
    /// `grad(name) += values` (a buffer of the backend, as long as the parameter).
    pub fn add_grad(&mut self, name: &str, values: &B::Buf) -> Result<()> {
        let be = self.backend;
        let len = B::len(values);
        let g = self.grad(name)?;
        be.accumulate(g, B::view(values), len)
            .map_err(kernel_error("accumulate gradient"))
    }
}
