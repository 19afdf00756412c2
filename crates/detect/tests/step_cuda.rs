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
use ringdet_detect::synthetic;
use ringdet_kernels::Cuda;
use ringdet_kernels::backend::Buffers;
use ringdet_kernels::conv::cuda::ConvMath;
use ringdet_kernels::runtime::testing::{gpu_or_skip, rel_l2};

struct Compared {
    loss_rel: f64,
    grads_rel: f64,
    stats_rel: f64,
}

/// One step on the host and one on the device from the same state; relative differences.
fn compare(test: &str, math: ConvMath, epoch: usize) -> Option<Compared> {
    let rt = gpu_or_skip(test)?;
    let arch = Arch::new(ModelConfig::new(0.25, 0.33).with_classes(5)).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(11));
    let data = synthetic::batch(2, 160, 128, 4, 5, 7);
    let settings = TrainSettings::default();

    let mut host = state.clone();
    let batch = data.train_batch();
    let want =
        forward_backward(&arch, &mut host, &batch, epoch, &settings, &SingleReplica).unwrap();

    let be = Cuda::new(rt).with_conv_math(math);
    let params = be.upload(&state.params).unwrap();
    let mut stats = be.upload(&state.stats).unwrap();
    let mut grads = be.zeros(state.grads.len()).unwrap();
    let image: Feat<f32, Cuda> = data.image.upload_to(&be).unwrap();
    let got: StepOutputs<Cuda> = forward_backward_on(
        &be,
        &arch,
        StepBuffers {
            layout: &state.layout,
            params: &params,
            stats: &mut stats,
            grads: &mut grads,
        },
        &data.train_batch().with_image(&image),
        epoch,
        &settings,
        StepLinks {
            bn: &SingleReplica,
            normalizer: &SingleReplica,
            grads: None,
        },
    )
    .unwrap();
    let (g, s) = (be.download(&grads).unwrap(), be.download(&stats).unwrap());
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
    let arch = Arch::new(ModelConfig::new(0.25, 0.33).with_classes(5)).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(11));
    let data = synthetic::batch(2, 160, 128, 4, 5, 7);
    let be = Cuda::new(rt.clone());
    let params = be.upload(&state.params).unwrap();
    let mut stats = be.upload(&state.stats).unwrap();
    let mut grads = be.zeros(state.grads.len()).unwrap();
    let image: Feat<f32, Cuda> = data.image.upload_to(&be).unwrap();
    let mut reserved = Vec::new();
    for _ in 0..6 {
        be.fill_zero(&mut grads).unwrap();
        forward_backward_on(
            &be,
            &arch,
            StepBuffers {
                layout: &state.layout,
                params: &params,
                stats: &mut stats,
                grads: &mut grads,
            },
            &data.train_batch().with_image(&image),
            0,
            &TrainSettings::default(),
            StepLinks {
                bn: &SingleReplica,
                normalizer: &SingleReplica,
                grads: None,
            },
        )
        .unwrap();
        be.synchronize().unwrap();
        reserved.push(rt.pool_reserved_bytes().unwrap());
    }
    eprintln!("device pool reserved bytes after each step: {reserved:?}");
    assert!(
        reserved[2..].iter().all(|&r| r == reserved[2]),
        "the pool grew after the first steps: {reserved:?}"
    );
}
