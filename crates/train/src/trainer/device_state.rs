//! The trainer's state on a compute device: parameters, BN statistics, gradients, the
//! optimizer's moments and the EMA live in buffers of a [`Backend`] (a GPU's memory) for the
//! whole run, and every per-step operation — the network forward and backward, zeroing the
//! gradients, the optimizer and the EMA update — runs there. The host keeps the
//! [`ModelState`], [`Optimizer`] and [`Ema`] it already has for everything that is not per
//! step (checkpoints, evaluation, the replica check), refreshed by [`DeviceState::download`]
//! when one of those needs them.
//!
//! What crosses to the host each step: the head's logits and their gradients (the assigner and
//! losses run there, see `ringdet_detect::step`), each bucket of gradients on its way to the
//! other ranks (downloaded as backward releases it; the averages go back up in one upload),
//! and the gradients once when `clip_grad_by_norm` is set. The code is generic over the
//! backend, so the host backend runs it too: the tests below check it against the trainer's
//! host path step for step.

use ringdet_detect::DetectError;
use ringdet_detect::arch::Arch;
use ringdet_detect::error::kernel_error;
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{
    StepBuffers, StepLinks, StepOutputs, TrainBatch, TrainSettings, forward_backward_on,
};
use ringdet_detect::train::ema::Ema;
use ringdet_detect::train::optimizer::{Optimizer, clip_by_global_norm};
use ringdet_kernels::backend::Backend;
use ringdet_kernels::optimizer::{AdamwParams, EmaParams, SgdParams};

/// Everything that changes step to step, in buffers of backend `B`.
pub struct DeviceState<B: Backend<f32>> {
    be: B,
    params: B::Buf,
    stats: B::Buf,
    grads: B::Buf,
    /// Momentum: the velocity; AdamW: the first and second moments.
    moments: Vec<B::Buf>,
    decay_mask: B::Mask,
    /// EMA of the parameters and of the BN statistics.
    ema: Option<[B::Buf; 2]>,
    /// A second gradient buffer for an out-of-place average (NCCL's path).
    spare: Option<B::Buf>,
}

impl<B: Backend<f32>> DeviceState<B> {
    /// Copies the host state onto `be` (once, at the start of a run or after a resume).
    pub fn upload(
        be: B,
        state: &ModelState,
        optimizer: &Optimizer,
        ema: Option<&Ema>,
    ) -> Result<Self, DetectError> {
        let up = |v: &[f32]| {
            be.upload(v)
                .map_err(kernel_error("upload the training state"))
        };
        let moments = optimizer
            .state_buffers()
            .into_iter()
            .map(up)
            .collect::<Result<Vec<_>, _>>()?;
        let mask = match optimizer {
            Optimizer::Momentum(s) => &s.decay_mask,
            Optimizer::AdamW(a) => &a.decay_mask,
        };
        let decay_mask = be
            .upload_mask(mask)
            .map_err(kernel_error("upload the decay mask"))?;
        let ema = match ema {
            Some(e) => Some([up(&e.params)?, up(&e.stats)?]),
            None => None,
        };
        Ok(Self {
            params: up(&state.params)?,
            stats: up(&state.stats)?,
            grads: be
                .zeros(state.grads.len())
                .map_err(kernel_error("gradients"))?,
            moments,
            decay_mask,
            ema,
            spare: None,
            be,
        })
    }

    /// The backend the state lives on.
    pub fn backend(&self) -> &B {
        &self.be
    }

    /// Zeroes the gradients, uploads `batch`'s images and runs forward, assignment, loss and
    /// backward on the device; `links.grads` hears of each finished gradient range (downloaded).
    pub fn forward_backward(
        &mut self,
        arch: &Arch,
        state: &ModelState,
        batch: &TrainBatch,
        epoch: usize,
        settings: &TrainSettings,
        links: StepLinks,
    ) -> Result<StepOutputs<B>, DetectError> {
        let be = &self.be;
        be.fill_zero(&mut self.grads)
            .map_err(kernel_error("zero the gradients"))?;
        let image = batch.image.upload_to(be)?;
        let on_device = batch.with_image(&image);
        let bufs = StepBuffers {
            layout: &state.layout,
            params: &self.params,
            stats: &mut self.stats,
            grads: &mut self.grads,
        };
        forward_backward_on(be, arch, bufs, &on_device, epoch, settings, links)
    }

    /// Copies the gradients to `host` (for a gradient exchange that did not receive them
    /// during backward).
    pub fn gradients_to_host(&self, host: &mut [f32]) -> Result<(), DetectError> {
        let all = self
            .be
            .to_host(&self.grads, 0..B::len(&self.grads))
            .map_err(kernel_error("download the gradients"))?;
        if all.len() != host.len() {
            return Err(DetectError::Input(format!(
                "{} device gradients for {} host ones",
                all.len(),
                host.len()
            )));
        }
        host.copy_from_slice(&all);
        Ok(())
    }

    /// Replaces the device gradients with `host`'s (the averages over the ranks).
    pub fn gradients_from_host(&mut self, host: &[f32]) -> Result<(), DetectError> {
        self.be
            .with_host_mut(&mut self.grads, |g| {
                if g.len() == host.len() {
                    g.copy_from_slice(host);
                    Ok(())
                } else {
                    Err(DetectError::Input(format!(
                        "{} averaged gradients for {} device ones",
                        host.len(),
                        g.len()
                    )))
                }
            })
            .map_err(kernel_error("upload the averaged gradients"))?
    }

    /// `clip_grad_by_norm`: Paddle's global-norm clip, on the host (one download and upload).
    pub fn clip_by_global_norm(&mut self, max_norm: f64) -> Result<f64, DetectError> {
        self.be
            .with_host_mut(&mut self.grads, |g| clip_by_global_norm(g, max_norm))
            .map_err(kernel_error("clip the gradients"))
    }

    /// One optimizer update at `lr` on the device; `optimizer` keeps the hyper-parameters and
    /// the step count (its moment vectors are refreshed only by [`Self::download`]).
    pub fn optimizer_step(
        &mut self,
        optimizer: &mut Optimizer,
        lr: f64,
    ) -> Result<(), DetectError> {
        let be = &self.be;
        let params = B::view_mut(&mut self.params);
        let grads = B::view(&self.grads);
        match (optimizer, self.moments.as_mut_slice()) {
            (Optimizer::Momentum(s), [velocity]) => {
                let p = SgdParams {
                    lr,
                    momentum: s.momentum,
                    weight_decay: s.weight_decay,
                };
                be.sgd_momentum_step(params, B::view_mut(velocity), grads, &self.decay_mask, &p)
                    .map_err(kernel_error("sgd_momentum_step"))
            }
            (Optimizer::AdamW(a), [m1, m2]) => {
                let p = AdamwParams {
                    lr,
                    beta1: a.beta1,
                    beta2: a.beta2,
                    epsilon: a.epsilon,
                    weight_decay: a.weight_decay,
                    step: a.steps + 1,
                };
                be.adamw_step(
                    params,
                    [B::view_mut(m1), B::view_mut(m2)],
                    grads,
                    &self.decay_mask,
                    &p,
                )
                .map_err(kernel_error("adamw_step"))?;
                a.steps += 1;
                Ok(())
            }
            (o, m) => Err(DetectError::Input(format!(
                "{} optimizer with {} moment buffers on the device",
                o.name(),
                m.len()
            ))),
        }
    }

    /// Folds the current weights into the EMA (after an optimizer step), as [`Ema::update`].
    pub fn ema_update(&mut self, ema: &mut Ema) -> Result<(), DetectError> {
        let Some([ep, es]) = self.ema.as_mut() else {
            return Err(DetectError::Input(
                "EMA update without an EMA on the device".into(),
            ));
        };
        let p = EmaParams { decay: ema.decay };
        let be = &self.be;
        let d = be
            .ema_update(B::view_mut(ep), B::view(&self.params), ema.updates, &p)
            .map_err(kernel_error("ema_update"))?;
        be.ema_update(B::view_mut(es), B::view(&self.stats), ema.updates, &p)
            .map_err(kernel_error("ema_update"))?;
        ema.last_decay = d;
        ema.updates += 1;
        Ok(())
    }

    /// Adds `delta` to the first parameter (the replica check's test hook).
    pub fn perturb_first_parameter(&mut self, delta: f32) -> Result<(), DetectError> {
        self.be
            .with_host_mut(&mut self.params, |p| {
                if let Some(w) = p.first_mut() {
                    *w += delta;
                }
            })
            .map_err(kernel_error("perturb a parameter"))
    }

    /// Copies the device state into the host's (before a checkpoint, an evaluation or a replica
    /// check); the host gradients are left as they are.
    pub fn download(
        &self,
        state: &mut ModelState,
        optimizer: &mut Optimizer,
        ema: Option<&mut Ema>,
    ) -> Result<(), DetectError> {
        let be = &self.be;
        let get = |buf: &B::Buf, dst: &mut Vec<f32>| -> Result<(), DetectError> {
            let v = be
                .download(buf)
                .map_err(kernel_error("download the training state"))?;
            if v.len() != dst.len() {
                return Err(DetectError::Input(format!(
                    "{} device values for {} host ones",
                    v.len(),
                    dst.len()
                )));
            }
            *dst = v;
            Ok(())
        };
        get(&self.params, &mut state.params)?;
        get(&self.stats, &mut state.stats)?;
        match (optimizer, self.moments.as_slice()) {
            (Optimizer::Momentum(s), [v]) => get(v, &mut s.velocity)?,
            (Optimizer::AdamW(a), [m1, m2]) => {
                get(m1, &mut a.moment1)?;
                get(m2, &mut a.moment2)?;
            }
            _ => {
                return Err(DetectError::Input(
                    "the optimizer changed kind since the upload".into(),
                ));
            }
        }
        if let (Some(e), Some([ep, es])) = (ema, self.ema.as_ref()) {
            get(ep, &mut e.params)?;
            get(es, &mut e.stats)?;
        }
        Ok(())
    }
}

impl DeviceState<ringdet_kernels::Cuda> {
    /// Averages the gradients over the ranks without leaving the device: `comm`'s all-reduce
    /// (NCCL, enqueued on the kernels' stream) and a multiply by `1 / world` into the spare
    /// buffer, which then becomes the gradient buffer.
    pub fn all_reduce_mean(
        &mut self,
        comm: &mut dyn ringdet_collective::device::DeviceAllReduce,
    ) -> Result<(), DetectError> {
        use ringdet_kernels::Cuda;
        use ringdet_kernels::backend::{Buffers, ElementwiseOps};
        use ringdet_kernels::elementwise::BroadcastParams;
        let rank = comm.rank();
        let stream = self.be.runtime.stream().clone();
        comm.all_reduce_sum_f32(&mut self.grads.as_view_mut(), &stream)
            .map_err(|e| DetectError::Input(format!("rank {rank}: gradient all-reduce: {e}")))?;
        let n = self.grads.len();
        let inv = [1.0 / comm.world_size().max(1) as f32];
        let inv = self
            .be
            .upload(&inv)
            .map_err(kernel_error("upload 1/world"))?;
        let mut avg = match self.spare.take() {
            Some(b) => b,
            None => self
                .be
                .scratch(n)
                .map_err(kernel_error("gradient buffer"))?,
        };
        let p = BroadcastParams {
            a: [1, 1, 1, n],
            b: [1, 1, 1, 1],
        };
        self.be
            .mul_forward(
                Cuda::view_mut(&mut avg),
                Cuda::view(&self.grads),
                Cuda::view(&inv),
                &p,
            )
            .map_err(kernel_error("average the gradients"))?;
        self.spare = Some(std::mem::replace(&mut self.grads, avg));
        Ok(())
    }
}

/// A run's device state: on a GPU, or on the host backend through the very same path (the
/// hidden config key `debug_device_state_on_host: true`, so tests run the trainer's device
/// branches — the downloads before checkpoints, the gradient exchange through host buffers —
/// without a GPU, and compare them with the host path bit for bit).
pub enum Engine {
    /// A CUDA device (boxed: its buffers' handles are larger than the host's vectors).
    Cuda(Box<DeviceState<ringdet_kernels::Cuda>>),
    /// The host backend standing in for a device.
    Host(DeviceState<ringdet_kernels::Cpu>),
}

macro_rules! each {
    ($engine:expr, $d:ident => $body:expr) => {
        match $engine {
            Engine::Cuda($d) => $body,
            Engine::Host($d) => $body,
        }
    };
}

impl Engine {
    /// [`DeviceState::forward_backward`]; the step's losses.
    pub fn forward_backward(
        &mut self,
        arch: &Arch,
        state: &ModelState,
        batch: &TrainBatch,
        epoch: usize,
        settings: &TrainSettings,
        links: StepLinks,
    ) -> Result<ringdet_detect::loss::LossValues, DetectError> {
        each!(self, d => d
            .forward_backward(arch, state, batch, epoch, settings, links)
            .map(|o| o.losses))
    }
    /// [`DeviceState::gradients_to_host`].
    pub fn gradients_to_host(&self, host: &mut [f32]) -> Result<(), DetectError> {
        each!(self, d => d.gradients_to_host(host))
    }
    /// [`DeviceState::gradients_from_host`].
    pub fn gradients_from_host(&mut self, host: &[f32]) -> Result<(), DetectError> {
        each!(self, d => d.gradients_from_host(host))
    }
    /// [`DeviceState::clip_by_global_norm`].
    pub fn clip_by_global_norm(&mut self, max_norm: f64) -> Result<f64, DetectError> {
        each!(self, d => d.clip_by_global_norm(max_norm))
    }
    /// [`DeviceState::optimizer_step`].
    pub fn optimizer_step(
        &mut self,
        optimizer: &mut Optimizer,
        lr: f64,
    ) -> Result<(), DetectError> {
        each!(self, d => d.optimizer_step(optimizer, lr))
    }
    /// [`DeviceState::ema_update`].
    pub fn ema_update(&mut self, ema: &mut Ema) -> Result<(), DetectError> {
        each!(self, d => d.ema_update(ema))
    }
    /// [`DeviceState::perturb_first_parameter`].
    pub fn perturb_first_parameter(&mut self, delta: f32) -> Result<(), DetectError> {
        each!(self, d => d.perturb_first_parameter(delta))
    }
    /// [`DeviceState::download`].
    pub fn download(
        &self,
        state: &mut ModelState,
        optimizer: &mut Optimizer,
        ema: Option<&mut Ema>,
    ) -> Result<(), DetectError> {
        each!(self, d => d.download(state, optimizer, ema))
    }
    /// [`DeviceState::all_reduce_mean`] (a GPU's NCCL path only).
    pub fn all_reduce_mean(
        &mut self,
        comm: &mut dyn ringdet_collective::device::DeviceAllReduce,
    ) -> Result<(), DetectError> {
        match self {
            Engine::Cuda(d) => d.all_reduce_mean(comm),
            Engine::Host(_) => Err(DetectError::Input(
                "NCCL averages device buffers; the host stand-in has none".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringdet_detect::arch::ModelConfig;
    use ringdet_detect::cross_replica::SingleReplica;
    use ringdet_detect::init::{SeededNormal, initialize};
    use ringdet_detect::step::forward_backward;
    use ringdet_detect::synthetic;
    use ringdet_detect::train::adamw::AdamW;
    use ringdet_detect::train::sgd::Sgd;
    use ringdet_kernels::Cpu;

    /// Three steps of the trainer's host path and of [`DeviceState`] on the host backend from
    /// the same start: parameters, statistics, moments and EMA must agree bit for bit (the
    /// same kernels run in the same order; only the buffers' owner differs).
    fn same_as_the_host_path(mut optimizer: Optimizer, clip: Option<f64>) {
        let arch = Arch::new(ModelConfig::new(0.125, 0.33).with_classes(3)).unwrap();
        let mut state = ModelState::zeros(&arch).unwrap();
        initialize(&mut state, &mut SeededNormal::new(5));
        let mut ema = Ema::new(0.9998, state.params.len(), state.stats.len());
        let data = synthetic::batch(2, 96, 96, 3, 3, 9);
        let batch = data.train_batch();
        let settings = TrainSettings::default();
        let (mut d_state, mut d_opt, mut d_ema) = (state.clone(), optimizer.clone(), ema.clone());
        let mut dev = DeviceState::upload(Cpu, &d_state, &d_opt, Some(&d_ema)).unwrap();
        for (step, epoch) in [0, 0, 150].into_iter().enumerate() {
            let lr = 1e-3 * (step + 1) as f64;
            state.grads.fill(0.0);
            let want =
                forward_backward(&arch, &mut state, &batch, epoch, &settings, &SingleReplica)
                    .unwrap();
            if let Some(m) = clip {
                clip_by_global_norm(&mut state.grads, m);
            }
            optimizer.step(&mut state.params, &state.grads, lr).unwrap();
            ema.update(&state.params, &state.stats).unwrap();

            let links = StepLinks {
                bn: &SingleReplica,
                normalizer: &SingleReplica,
                grads: None,
            };
            let got = dev
                .forward_backward(&arch, &d_state, &batch, epoch, &settings, links)
                .unwrap();
            assert_eq!(got.losses.loss.to_bits(), want.losses.loss.to_bits());
            if let Some(m) = clip {
                dev.clip_by_global_norm(m).unwrap();
            }
            dev.optimizer_step(&mut d_opt, lr).unwrap();
            dev.ema_update(&mut d_ema).unwrap();
        }
        dev.download(&mut d_state, &mut d_opt, Some(&mut d_ema))
            .unwrap();
        assert!(d_state.params == state.params, "parameters differ");
        assert!(d_state.stats == state.stats, "BN statistics differ");
        let (a, b) = (d_opt.state_buffers(), optimizer.state_buffers());
        assert!(a == b, "optimizer moments differ");
        assert!(d_ema.params == ema.params && d_ema.stats == ema.stats);
        assert_eq!(
            (d_ema.updates, d_ema.last_decay.to_bits()),
            (ema.updates, ema.last_decay.to_bits())
        );
        let mut host_grads = vec![0.0; state.grads.len()];
        dev.gradients_to_host(&mut host_grads).unwrap();
        assert!(host_grads == state.grads, "gradients differ");
    }

    #[test]
    fn momentum_on_the_device_state_matches_the_host_path() {
        let arch = Arch::new(ModelConfig::new(0.125, 0.33).with_classes(3)).unwrap();
        let layout = ModelState::zeros(&arch).unwrap().layout;
        same_as_the_host_path(Optimizer::Momentum(Sgd::ppyoloe(&layout)), None);
    }

    #[test]
    fn adamw_with_clipping_on_the_device_state_matches_the_host_path() {
        let arch = Arch::new(ModelConfig::new(0.125, 0.33).with_classes(3)).unwrap();
        let layout = ModelState::zeros(&arch).unwrap().layout;
        same_as_the_host_path(Optimizer::AdamW(AdamW::paddle_default(&layout)), Some(1.0));
    }

    #[test]
    fn averaged_gradients_of_the_wrong_length_are_refused() {
        let arch = Arch::new(ModelConfig::new(0.125, 0.33).with_classes(3)).unwrap();
        let state = ModelState::zeros(&arch).unwrap();
        let opt = Optimizer::Momentum(Sgd::ppyoloe(&state.layout));
        let mut dev = DeviceState::upload(Cpu, &state, &opt, None).unwrap();
        let e = dev
            .gradients_from_host(&[1.0, 2.0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 averaged gradients"), "{e}");
    }
}
