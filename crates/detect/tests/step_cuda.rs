//! The whole training step on a CUDA device against the host reference: the same weights and
//! batch through [`forward_backward_on`] with the `Cuda` backend and with the `Cpu` one; the
//! losses, every gradient and the updated BN statistics compared. f32 convolutions must agree to
//! rounding-level differences (the GEMMs sum in another order); bf16 tensor-core convolutions
//! within bf16's precision. Without a GPU each test prints `SKIP` and passes (`REQUIRE_GPU=1`
//! makes that a failure), so this file also proves here that the generic step instantiates
//! with the device backend.

use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::cross_replica::SingleReplica;
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::model::Feat;
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{
    StepBuffers, StepLinks, StepOutputs, TrainSettings, forward_backward, forward_backward_on,
};
use ringdet_detect::synthetic::{self, SyntheticBatch};
use ringdet_kernels::Cuda;
use ringdet_kernels::backend::Buffers;
use ringdet_kernels::conv::cuda::ConvMath;
use ringdet_kernels::runtime::testing::{gpu_or_skip, rel_l2};

struct Compared {
    loss_rel: f64,
    grads_rel: f64,
    stats_rel: f64,
}

/// The model, starting state and batch every test here uses.
fn setup() -> (Arch, ModelState, SyntheticBatch) {
    let arch = Arch::new(ModelConfig::new(0.25, 0.33).with_classes(5)).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(11));
    (arch, state, synthetic::batch(2, 160, 128, 4, 5, 7))
}

/// `state` on the device: parameters, BN statistics and zeroed gradients.
struct OnDevice {
    params: <Cuda as Buffers<f32>>::Buf,
    stats: <Cuda as Buffers<f32>>::Buf,
    grads: <Cuda as Buffers<f32>>::Buf,
}

impl OnDevice {
    fn upload(be: &Cuda, state: &ModelState) -> OnDevice {
        OnDevice {
            params: be.upload(&state.params).unwrap(),
            stats: be.upload(&state.stats).unwrap(),
            grads: be.zeros(state.grads.len()).unwrap(),
        }
    }

    /// One training step on the device, gradients added to `self.grads`.
    fn step(
        &mut self,
        be: &Cuda,
        arch: &Arch,
        state: &ModelState,
        data: &SyntheticBatch,
        image: &Feat<f32, Cuda>,
        epoch: usize,
    ) -> StepOutputs<Cuda> {
        forward_backward_on(
            be,
            arch,
            StepBuffers {
                layout: &state.layout,
                params: &self.params,
                stats: &mut self.stats,
                grads: &mut self.grads,
            },
            &data.train_batch().with_image(image),
            epoch,
            &TrainSettings::default(),
            StepLinks {
                bn: &SingleReplica,
                normalizer: &SingleReplica,
                grads: None,
            },
        )
        .unwrap()
    }
}

/// One step on the host and one on the device from the same state; relative differences.
fn compare(test: &str, math: ConvMath, epoch: usize) -> Option<Compared> {
    let rt = gpu_or_skip(test)?;
    let (arch, state, data) = setup();
    let mut host = state.clone();
    let settings = TrainSettings::default();
    let want = forward_backward(
        &arch,
        &mut host,
        &data.train_batch(),
        epoch,
        &settings,
        &SingleReplica,
    )
    .unwrap();

    let be = Cuda::new(rt).with_conv_math(math);
    let mut dev = OnDevice::upload(&be, &state);
    let image: Feat<f32, Cuda> = data.image.upload_to(&be).unwrap();
    let got = dev.step(&be, &arch, &state, &data, &image, epoch);
    let (g, s) = (
        be.download(&dev.grads).unwrap(),
        be.download(&dev.stats).unwrap(),
    );
    let l = |v: &ringdet_detect::loss::LossValues| [v.loss, v.cls, v.iou, v.dfl];
    Some(Compared {
        loss_rel: rel_l2(&l(&got.losses), &l(&want.losses)),
        grads_rel: rel_l2(&g, &host.grads),
        stats_rel: rel_l2(&s, &host.stats),
    })
}

#[test]
fn a_training_step_on_cuda_in_f32_matches_the_cpu_step() {
    for epoch in [0, 200] {
        let Some(c) = compare(
            "a_training_step_on_cuda_in_f32_matches_the_cpu_step",
            ConvMath::F32,
            epoch,
        ) else {
            return;
        };
        eprintln!(
            "epoch {epoch} (ATSS below 100, TAL above): losses {:.2e}, gradients {:.2e}, BN statistics {:.2e}",
            c.loss_rel, c.grads_rel, c.stats_rel
        );
        assert!(c.loss_rel < 1e-4, "losses differ: {:.2e}", c.loss_rel);
        assert!(c.grads_rel < 1e-3, "gradients differ: {:.2e}", c.grads_rel);
        assert!(
            c.stats_rel < 1e-5,
            "BN statistics differ: {:.2e}",
            c.stats_rel
        );
    }
}

#[test]
fn a_training_step_on_cuda_in_bf16_stays_within_bf16_precision() {
    let Some(c) = compare(
        "a_training_step_on_cuda_in_bf16_stays_within_bf16_precision",
        ConvMath::Bf16TensorCore,
        0,
    ) else {
        return;
    };
    eprintln!(
        "bf16 convs: losses {:.2e}, gradients {:.2e}, BN statistics {:.2e}",
        c.loss_rel, c.grads_rel, c.stats_rel
    );
    assert!(c.loss_rel < 2e-2, "losses differ: {:.2e}", c.loss_rel);
    assert!(c.grads_rel < 5e-2, "gradients differ: {:.2e}", c.grads_rel);
    assert!(
        c.stats_rel < 1e-2,
        "BN statistics differ: {:.2e}",
        c.stats_rel
    );
}

/// The device twin of `step_alloc`: after the first steps, a training step takes no memory from
/// the driver — the pool the runtime configured serves every buffer again (its reserved bytes
/// stay the same over steps 3 to 6).
#[test]
fn training_steps_on_cuda_after_the_first_take_no_new_device_memory() {
    let Some(rt) = gpu_or_skip("training_steps_on_cuda_after_the_first_take_no_new_device_memory")
    else {
        return;
    };
    let (arch, state, data) = setup();
    let be = Cuda::new(rt.clone());
    let mut dev = OnDevice::upload(&be, &state);
    let image: Feat<f32, Cuda> = data.image.upload_to(&be).unwrap();
    let mut reserved = Vec::new();
    for _ in 0..6 {
        be.fill_zero(&mut dev.grads).unwrap();
        dev.step(&be, &arch, &state, &data, &image, 0);
        be.synchronize().unwrap();
        reserved.push(rt.pool_reserved_bytes().unwrap());
    }
    eprintln!("device pool reserved bytes after each step: {reserved:?}");
    assert!(
        reserved[2..].iter().all(|&r| r == reserved[2]),
        "the pool grew after the first steps: {reserved:?}"
    );
}
