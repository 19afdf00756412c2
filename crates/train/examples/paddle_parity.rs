//! Training-step parity with PaddleDetection on the demo model, beyond the golden set's one step:
//! writes the initial weights and 4 loader batches (160 px, no augmentation) of a shapes dataset
//! for `benches/peers/paddledet/paddle_steps.py` and `paddle_grads.py`, then either prints the
//! losses of 40 momentum-SGD steps (the same schedule the Python side runs) or, with a
//! PaddleDetection gradient file, the per-tensor relative L2 difference of one step's gradients.
//!
//! ```text
//! cargo run --release -p ringdet-train --example paddle_parity -- DATASET OUT [steps|grads] [--perturb]
//! ```
//! `DATASET` is a `make-dataset shapes` folder (its `train2017` split is read); `OUT` receives
//! `parity_init.safetensors` and `parity_batches.safetensors`; `grads` reads
//! `OUT/paddle_grads.safetensors`. `--perturb` gives the head's zero-initialised prediction convs
//! small seeded weights (PaddleDetection's zero init makes the task-aligned top-k meet exact ties
//! that the two implementations break differently).

use std::path::Path;

use ringdet_coco::Instances;
use ringdet_coco::loader::{Batch, Loader, LoaderConfig, training_records};
use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::cross_replica::SingleReplica;
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::model::Feat;
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{TrainBatch, TrainSettings, forward_backward};
use ringdet_detect::train::sgd::Sgd;
use ringdet_tensor::Tensor;
use ringdet_tensor::safetensors::SafeTensors;

/// Epoch passed to the step: at or after `static_assigner_epoch` (4), so the task-aligned assigner.
const EPOCH: usize = 5;
const LR: f64 = 0.0025;
const STEPS: usize = 40;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(data), Some(out)) = (args.first(), args.get(1)) else {
        return Err("usage: paddle_parity DATASET OUT [steps|grads] [--perturb]".into());
    };
    let mode = args.get(2).map(String::as_str).unwrap_or("steps");
    let perturb = args.iter().any(|a| a == "--perturb");
    let (data, out) = (Path::new(data), Path::new(out));
    std::fs::create_dir_all(out)?;

    let instances = Instances::load(data.join("annotations/instances_train2017.json"))?;
    let (records, _) = training_records(&instances, &data.join("train2017"));
    let mut cfg = LoaderConfig::train(4, 1, 0);
    cfg.train_sizes = vec![160];
    cfg.transforms = ringdet_train::config::no_augmentation();
    let loader = Loader::new(records, cfg)?;
    let batches: Vec<Batch> = loader.epoch(0).take(4).collect::<Result<_, _>>()?;
    save_batches(&batches, &out.join("parity_batches.safetensors"))?;

    let arch = Arch::new(ModelConfig {
        width_mult: 0.25,
        depth_mult: 0.33,
        num_classes: 7,
        reg_max: 16,
    })?;
    let mut state = ModelState::zeros(&arch)?;
    initialize(&mut state, &mut SeededNormal::new(0));
    if perturb {
        let mut rng = SeededNormal::new(7);
        for level in 0..3 {
            for kind in ["cls", "reg"] {
                let w = state.get_mut(&format!("yolo_head.pred_{kind}.{level}.weight"))?;
                w.iter_mut().for_each(|v| *v = (0.01 * rng.sample()) as f32);
            }
        }
    }
    ringdet_detect::checkpoint::save(&state, out.join("parity_init.safetensors"))?;

    let settings = TrainSettings {
        static_assigner_epoch: 4,
        ..Default::default()
    };
    let mut sgd = Sgd::ppyoloe(&state.layout);
    let inputs: Vec<Input> = batches.iter().map(Input::new).collect::<Result<_, _>>()?;
    if mode == "grads" {
        state.grads.fill(0.0);
        forward_backward(
            &arch,
            &mut state,
            &inputs[0].batch(),
            EPOCH,
            &settings,
            &SingleReplica,
        )?;
        let paddle = SafeTensors::open(out.join("paddle_grads.safetensors"))?;
        let mut rows = Vec::new();
        for slot in state.layout.slots() {
            let Ok(t) = paddle.tensor(&slot.spec.name) else {
                continue;
            };
            let theirs = t.to_vec::<f32>()?;
            let ours = &state.grads[slot.range()];
            let diff: f64 = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            let norm: f64 = theirs
                .iter()
                .map(|b| f64::from(*b).powi(2))
                .sum::<f64>()
                .sqrt();
            rows.push((diff / norm.max(1e-30), slot.spec.name.clone()));
        }
        rows.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!(
            "{} gradients compared; largest relative L2 differences:",
            rows.len()
        );
        for (rel, name) in rows.iter().take(10) {
            println!("  {rel:.3e}  {name}");
        }
        return Ok(());
    }
    for step in 0..STEPS {
        state.grads.fill(0.0);
        let o = forward_backward(
            &arch,
            &mut state,
            &inputs[step % inputs.len()].batch(),
            EPOCH,
            &settings,
            &SingleReplica,
        )?;
        sgd.step(&mut state.params, &state.grads, LR)?;
        let v = o.losses;
        println!(
            "RINGDET step {step} loss {:.5} cls {:.5} iou {:.5} dfl {:.5}",
            v.loss, v.cls, v.iou, v.dfl
        );
    }
    Ok(())
}

/// The batches as PaddleDetection's field names (`b{i}.image`, `.gt_bbox`, `.gt_class`,
/// `.pad_gt_mask`).
fn save_batches(batches: &[Batch], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut tensors = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        let [n, c, h, w] = b.image_shape;
        let m = b.max_boxes;
        let class: Vec<f32> = b.gt_class.iter().map(|&x| x as f32).collect();
        tensors.push((
            format!("b{i}.image"),
            Tensor::from_slice(&b.image, &[n, c, h, w])?,
        ));
        tensors.push((
            format!("b{i}.gt_bbox"),
            Tensor::from_slice(&b.gt_bbox, &[n, m, 4])?,
        ));
        tensors.push((
            format!("b{i}.gt_class"),
            Tensor::from_slice(&class, &[n, m, 1])?,
        ));
        tensors.push((
            format!("b{i}.pad_gt_mask"),
            Tensor::from_slice(&b.pad_gt_mask, &[n, m, 1])?,
        ));
    }
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    ringdet_tensor::save(path, &refs, &Default::default())?;
    Ok(())
}

/// One batch in the detector's types.
struct Input {
    image: Feat,
    boxes: Vec<[f32; 4]>,
    labels: Vec<usize>,
    mask: Vec<f32>,
    max_boxes: usize,
}

impl Input {
    fn new(b: &Batch) -> Result<Input, Box<dyn std::error::Error>> {
        let [n, c, h, w] = b.image_shape;
        Ok(Input {
            image: Feat::from_vec(b.image.clone(), n, c, h, w)?,
            boxes: b
                .gt_bbox
                .chunks_exact(4)
                .map(|x| [x[0], x[1], x[2], x[3]])
                .collect(),
            labels: b
                .gt_class
                .iter()
                .map(|&c| usize::try_from(c).unwrap_or(0))
                .collect(),
            mask: b.pad_gt_mask.clone(),
            max_boxes: b.max_boxes,
        })
    }

    fn batch(&self) -> TrainBatch<'_> {
        TrainBatch {
            image: &self.image,
            gt_boxes: &self.boxes,
            gt_labels: &self.labels,
            pad_mask: &self.mask,
            max_boxes: self.max_boxes,
        }
    }
}
