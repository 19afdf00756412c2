//! A tiny model (width 0.125, 3 classes) on non-square synthetic inputs: a batch without objects
//! trains (all-background targets, zero box losses, normaliser clipped to 1).
//! (A finite-difference check of the whole step does not apply: the soft targets and the normaliser
//! depend on the predictions but are detached, as in PaddleDetection; the golden gradients and the
//! kernels' own gradient checks cover the backward.)

use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::cross_replica::SingleReplica;
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{TrainBatch, TrainSettings, forward_backward};
use ringdet_detect::synthetic;

fn tiny() -> (Arch, ModelState) {
    let arch = Arch::new(ModelConfig::new(0.125, 0.33).with_classes(3)).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(3));
    // Make the head non-degenerate (zero-initialised prediction convs carry no gradient to the trunk).
    let mut rng = SeededNormal::new(9);
    for i in 0..3 {
        for kind in ["pred_cls", "pred_reg"] {
            let w = state
                .get_mut(&format!("yolo_head.{kind}.{i}.weight"))
                .unwrap();
            w.iter_mut().for_each(|v| *v = 0.05 * rng.sample() as f32);
        }
    }
    (arch, state)
}

#[test]
fn batch_without_objects() {
    let (arch, mut state) = tiny();
    let data = synthetic::batch(2, 64, 96, 1, 3, 5);
    let batch = TrainBatch {
        image: &data.image,
        gt_boxes: &[],
        gt_labels: &[],
        pad_mask: &[],
        max_boxes: 0,
    };
    for epoch in [0, 100] {
        let out = forward_backward(
            &arch,
            &mut state,
            &batch,
            epoch,
            &TrainSettings::default(),
            &SingleReplica,
        )
        .unwrap();
        assert_eq!(out.losses.num_pos, 0);
        assert_eq!((out.losses.iou, out.losses.dfl), (0.0, 0.0));
        assert!(out.losses.cls.is_finite() && out.losses.cls > 0.0);
        assert_eq!(out.losses.normalizer, 1.0);
    }
    assert!(state.grads.iter().all(|g| g.is_finite()));
}
