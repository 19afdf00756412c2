//! SyncBN and the loss normaliser through `CrossReplica`: two ranks (threads) with one image each
//! reproduce one rank with both images (gradients up to the normaliser ratio, running statistics).

use std::sync::{Arc, Barrier, Mutex};

use ringdet_detect::Result;
use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::cross_replica::{CrossReplica, SingleReplica};
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::model::Feat;
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{TrainBatch, TrainSettings, forward_backward};
use ringdet_detect::synthetic;

/// In-memory all-reduce between threads: accumulate, wait, read, wait, reset.
struct Threads {
    world: usize,
    acc: Arc<Mutex<Vec<f64>>>,
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
            acc.iter_mut()
                .zip(values.iter())
                .for_each(|(a, v)| *a += *v as f64);
        }
        self.barrier.wait();
        {
            let acc = self.acc.lock().unwrap();
            values
                .iter_mut()
                .zip(acc.iter())
                .for_each(|(v, a)| *v = *a as f32);
        }
        if self.barrier.wait().is_leader() {
            self.acc.lock().unwrap().clear();
        }
        self.barrier.wait();
        Ok(())
    }
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    let n: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let d: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>().sqrt();
    n / d.max(1e-30)
}

#[test]
fn two_ranks_equal_one() {
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
    let data = synthetic::batch(2, 64, 64, 1, 3, 11);
    let settings = TrainSettings::default();
    for epoch in [0usize, 100] {
        let batch = TrainBatch {
            image: &data.image,
            gt_boxes: &data.gt_boxes,
            gt_labels: &data.gt_labels,
            pad_mask: &data.pad_mask,
            max_boxes: 1,
        };
        let mut full = state.clone();
        let s_full = forward_backward(&arch, &mut full, &batch, epoch, &settings, &SingleReplica)
            .unwrap()
            .losses
            .normalizer;

        let acc = Arc::new(Mutex::new(Vec::new()));
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|r| {
                let (arch, mut st) = (arch.clone(), state.clone());
                let hw = 3 * 64 * 64;
                let image =
                    Feat::from_vec(data.image.data[r * hw..(r + 1) * hw].to_vec(), 1, 3, 64, 64)
                        .unwrap();
                let (gb, gl, pm) = (data.gt_boxes[r], data.gt_labels[r], data.pad_mask[r]);
                let rep = Threads {
                    world: 2,
                    acc: acc.clone(),
                    barrier: barrier.clone(),
                };
                std::thread::spawn(move || {
                    let b = TrainBatch {
                        image: &image,
                        gt_boxes: &[gb],
                        gt_labels: &[gl],
                        pad_mask: &[pm],
                        max_boxes: 1,
                    };
                    let out = forward_backward(
                        &arch,
                        &mut st,
                        &b,
                        epoch,
                        &TrainSettings::default(),
                        &rep,
                    )
                    .unwrap();
                    (st.grads, st.stats, out.losses.normalizer)
                })
            })
            .collect();
        let outs: Vec<(Vec<f32>, Vec<f32>, f32)> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        // Rank r minimises L_r / max(mean_r S_r, 1); one rank minimises ΣL_r / max(ΣS_r, 1).
        assert_eq!(outs[0].2, outs[1].2, "normaliser is synchronised");
        let scale = outs[0].2 / s_full;
        let sum: Vec<f32> = outs[0]
            .0
            .iter()
            .zip(&outs[1].0)
            .map(|(a, b)| (a + b) * scale)
            .collect();
        println!(
            "epoch {epoch}: normaliser per rank {} vs one rank {s_full}",
            outs[0].2
        );
        let e = rel(&sum, &full.grads);
        println!(
            "epoch {epoch}: 2-rank gradients (summed, scaled by the normaliser ratio) vs 1 rank: rel L2 {e:.2e}"
        );
        assert!(e < 1e-4, "epoch {epoch}: {e}");
        // Both ranks hold the same (synchronised) running statistics, equal to the single rank's.
        assert!(rel(&outs[0].1, &outs[1].1) == 0.0);
        assert!(rel(&outs[0].1, &full.stats) < 1e-5);
    }
}
