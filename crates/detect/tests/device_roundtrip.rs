//! The device round-trip entry points (`eval_forward_device`, `forward_backward_device`: state
//! and inputs up, features, gradients and statistics down, decode on the host) run here with the
//! host backend as the "device": they must give exactly what the host entry points give, so a
//! difference on a GPU is the GPU kernels', not the plumbing's.

use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::cross_replica::SingleReplica;
use ringdet_detect::detector::{eval_forward, eval_forward_device};
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{TrainSettings, forward_backward, forward_backward_device};
use ringdet_detect::synthetic;
use ringdet_kernels::Cpu;

fn model() -> (Arch, ModelState) {
    let arch = Arch::new(ModelConfig::new(0.125, 0.33).with_classes(4)).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(21));
    (arch, state)
}

#[test]
fn the_eval_round_trip_on_the_host_backend_is_the_host_eval() {
    let (arch, state) = model();
    let image = synthetic::batch(2, 96, 128, 2, 4, 3).image;
    let want = eval_forward(&arch, &state, &image).unwrap();
    let got = eval_forward_device(&Cpu, &arch, &state, &image).unwrap();
    assert!(got.backbone == want.backbone && got.neck == want.neck);
    for (g, w) in got.logits.iter().zip(&want.logits) {
        assert!(g.cls == w.cls && g.reg == w.reg);
    }
    assert!(got.scores == want.scores && got.boxes_input_px == want.boxes_input_px);
}

#[test]
fn the_step_round_trip_on_the_host_backend_is_the_host_step() {
    let (arch, state) = model();
    let data = synthetic::batch(2, 96, 96, 3, 4, 5);
    let batch = data.train_batch();
    let settings = TrainSettings::default();
    for epoch in [0, 150] {
        let (mut a, mut b) = (state.clone(), state.clone());
        let want =
            forward_backward(&arch, &mut a, &batch, epoch, &settings, &SingleReplica).unwrap();
        let got = forward_backward_device(
            &Cpu,
            &arch,
            &mut b,
            &batch,
            epoch,
            &settings,
            &SingleReplica,
        )
        .unwrap();
        assert_eq!(got.losses.loss.to_bits(), want.losses.loss.to_bits());
        assert!(b.grads == a.grads, "gradients differ (epoch {epoch})");
        assert!(b.stats == a.stats, "BN statistics differ (epoch {epoch})");
        assert!(got.neck == want.neck);
    }
}

/// The CUDA backend hands out two writable views of one buffer only for equal-length ranges a
/// whole number of lengths apart (cudarc splits mutable views by chunks). The training forward
/// takes every BN's running mean and variance that way: the layout must keep them so, for every
/// model size.
#[test]
fn every_bn_keeps_mean_and_variance_where_a_device_buffer_can_split_them() {
    use ringdet_detect::arch::TensorRole;
    for name in ["s", "m", "l", "x"] {
        let arch = Arch::new(ModelConfig::by_name(name).unwrap()).unwrap();
        let state = ModelState::zeros(&arch).unwrap();
        let mut checked = 0;
        for slot in state.layout.slots() {
            if slot.spec.role != TensorRole::BnMean {
                continue;
            }
            let prefix = slot.spec.name.strip_suffix("._mean").unwrap();
            let m = slot.range();
            let v = state
                .layout
                .slot(&format!("{prefix}._variance"))
                .unwrap()
                .range();
            let gap = m.start.abs_diff(v.start);
            assert!(
                m.len() == v.len() && !m.is_empty() && gap % m.len() == 0,
                "{name}: {prefix}: mean {m:?}, variance {v:?}"
            );
            checked += 1;
        }
        assert!(checked > 50, "{name}: only {checked} BNs");
    }
}
