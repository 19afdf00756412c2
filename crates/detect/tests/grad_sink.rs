//! The gradient hook of `forward_backward_with`: each range of the flat gradient buffer is
//! reported once, front to back, while backward runs, and the values reported are the final
//! gradient (bit for bit what the buffer holds at the end, and what `forward_backward` computes
//! without a hook); a write into a released gradient and an error from the sink stop backward.

use ringdet_detect::arch::{Arch, ModelConfig, TensorKind};
use ringdet_detect::cross_replica::SingleReplica;
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::model::Bwd;
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{
    StepLinks, TrainBatch, TrainSettings, forward_backward, forward_backward_with,
};
use ringdet_detect::{DetectError, synthetic};

fn tiny() -> (Arch, ModelState) {
    let arch = Arch::new(ModelConfig::new(0.125, 0.33).with_classes(3)).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(3));
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
fn reported_ranges_are_final_and_come_front_to_back() {
    let (arch, state) = tiny();
    let data = synthetic::batch(2, 64, 64, 2, 3, 11);
    let batch = TrainBatch {
        image: &data.image,
        gt_boxes: &data.gt_boxes,
        gt_labels: &data.gt_labels,
        pad_mask: &data.pad_mask,
        max_boxes: 2,
    };
    let settings = TrainSettings::default();
    for epoch in [0usize, 100] {
        let mut plain = state.clone();
        forward_backward(&arch, &mut plain, &batch, epoch, &settings, &SingleReplica).unwrap();

        let mut hooked = state.clone();
        let mut reports: Vec<(usize, Vec<f32>)> = Vec::new();
        let mut sink = |offset: usize, g: &[f32]| {
            reports.push((offset, g.to_vec()));
            Ok(())
        };
        let links = StepLinks {
            bn: &SingleReplica,
            normalizer: &SingleReplica,
            grads: Some(&mut sink),
        };
        forward_backward_with(&arch, &mut hooked, &batch, epoch, &settings, links).unwrap();
        assert!(
            hooked
                .grads
                .iter()
                .zip(&plain.grads)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "the hook changes the gradient"
        );
        let mut end = 0;
        for (offset, values) in &reports {
            assert_eq!(*offset, end, "ranges are contiguous, in buffer order");
            assert!(!values.is_empty());
            let last = &hooked.grads[*offset..offset + values.len()];
            assert!(
                values
                    .iter()
                    .zip(last)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "range {offset}..{} changed after it was reported",
                offset + values.len()
            );
            end += values.len();
        }
        assert_eq!(end, hooked.layout.num_params());
        // Backward finishes the buffer piece by piece in its own order (the layout is reverse
        // execution order): about one report per layer, none of them most of the buffer.
        let tensors = hooked
            .layout
            .slots()
            .iter()
            .filter(|s| s.spec.kind == TensorKind::Param)
            .count();
        let largest = hooked
            .layout
            .slots()
            .iter()
            .filter(|s| s.spec.kind == TensorKind::Param)
            .map(|s| s.spec.numel())
            .max()
            .unwrap();
        let widest = reports.iter().map(|r| r.1.len()).max().unwrap();
        println!(
            "epoch {epoch}: {} reports for {tensors} parameter tensors ({end} values); widest \
             report {widest}, largest tensor {largest}",
            reports.len()
        );
        assert!(reports.len() * 3 >= tensors, "{} reports", reports.len());
        assert!(widest <= 3 * largest, "a report of {widest} values");
    }
}

#[test]
fn a_sink_error_stops_backward() {
    let (arch, mut state) = tiny();
    let data = synthetic::batch(1, 64, 64, 1, 3, 5);
    let batch = TrainBatch {
        image: &data.image,
        gt_boxes: &data.gt_boxes,
        gt_labels: &data.gt_labels,
        pad_mask: &data.pad_mask,
        max_boxes: 1,
    };
    let mut calls = 0;
    let mut sink = |_: usize, _: &[f32]| {
        calls += 1;
        Err(DetectError::Input("the bucket could not be sent".into()))
    };
    let links = StepLinks {
        bn: &SingleReplica,
        normalizer: &SingleReplica,
        grads: Some(&mut sink),
    };
    let e = forward_backward_with(
        &arch,
        &mut state,
        &batch,
        0,
        &TrainSettings::default(),
        links,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("the bucket could not be sent"),
        "{e}"
    );
    assert_eq!(calls, 1);
}

#[test]
fn writing_a_released_gradient_is_an_error() {
    let (_, mut state) = tiny();
    let layout = state.layout.clone();
    let name = "yolo_head.pred_cls.0.bias";
    let mut seen = Vec::new();
    let mut sink = |offset: usize, g: &[f32]| {
        seen.push((offset, g.len()));
        Ok(())
    };
    let mut bwd =
        Bwd::new(&layout, &state.params, &mut state.grads, &SingleReplica).with_sink(&mut sink);
    bwd.add_grad(name, &vec![1.0, 2.0, 3.0]).unwrap();
    bwd.release(&[name]).unwrap();
    let e = bwd
        .add_grad(name, &vec![1.0, 2.0, 3.0])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(name) && e.contains("after it was reported final"),
        "{e}"
    );
    bwd.finish().unwrap();
    drop(bwd);
    let total: usize = seen.iter().map(|s| s.1).sum();
    assert_eq!(total, layout.num_params());
}
